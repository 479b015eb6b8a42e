// common.cuh: pieces shared by the convforge CUDA kernel families (conv2d.cu, im2col.cu,
// pool2d.cu).
//
// The .cu files are compiled at run time by NVRTC through cupy.RawModule (the Python backend
// pastes this header in place of its #include line, so one string holds everything) and by
// `nvcc -ptx` in the tests. NVRTC has no system headers, so nothing here includes any.
//
// Conventions for every kernel:
//   - 64-bit indices (i64) for every element offset and loop counter over tensor elements;
//   - dims arrive as explicit long long scalars in a fixed order and are packed into the structs
//     below by the extern "C" wrappers;
//   - blocks have exactly CF_THREADS threads (the Python launch helper uses the same number);
//   - grids may be smaller than the work: every kernel loops grid-stride (over elements, or over
//     tiles / reductions for the one-block-per-item kernels);
//   - outputs are overwritten, never accumulated into; no atomics anywhere, so results do not
//     depend on scheduling.
#ifndef CONVFORGE_CUDA_COMMON_CUH
#define CONVFORGE_CUDA_COMMON_CUH

typedef long long i64;

#define CF_THREADS 256  // threads per block, for every kernel in every family

// Element loop: i runs over [0, total) spread across the whole grid.
#define CF_GRID_STRIDE(i, total)                                                        \
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (total);                 \
       i += (i64)blockDim.x * gridDim.x)

// Block loop: item runs over [0, total), one item per block at a time (every thread of a block
// sees the same items, so __syncthreads() inside the body is safe).
#define CF_BLOCK_STRIDE(item, total) \
  for (i64 item = blockIdx.x; item < (total); item += gridDim.x)

// Convolution / unfold dims (same order as the CPU's ConvDims). PH/PW are the top/left padding;
// bottom/right padding only changes OH/OW, which the caller computes.
struct ConvDims {
  i64 N, C, H, W;  // input x (N, C, H, W)
  i64 K, KH, KW;   // weight w (K, C/G, KH, KW)
  i64 SH, SW;      // stride
  i64 PH, PW;      // top / left padding
  i64 DH, DW;      // dilation
  i64 OH, OW;      // output y (N, K, OH, OW)
  i64 G;           // groups
};

// Pooling dims (same order as the CPU's PoolDims). Padding is symmetric.
struct PoolDims {
  i64 N, C, H, W;  // input x (N, C, H, W)
  i64 KH, KW;      // window
  i64 SH, SW;      // stride
  i64 PH, PW;      // padding
  i64 OH, OW;      // output y (N, C, OH, OW)
};

__device__ __forceinline__ i64 cf_min(i64 a, i64 b) { return a < b ? a : b; }
__device__ __forceinline__ i64 cf_max(i64 a, i64 b) { return a > b ? a : b; }

// NaN test without math headers (valid because nothing is compiled with fast-math).
template <typename T>
__device__ __forceinline__ bool cf_isnan(T v) { return v != v; }

// Sum of v over the CF_THREADS threads of the block, in a fixed tree order (so the result is
// the same on every run). sh: CF_THREADS scratch slots in shared memory. Every thread of the
// block must call it; every thread gets the sum, and sh may be reused right after.
template <typename A>
__device__ A cf_block_sum(A v, A* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = CF_THREADS / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  const A total = sh[0];
  __syncthreads();
  return total;
}

#endif  // CONVFORGE_CUDA_COMMON_CUH
