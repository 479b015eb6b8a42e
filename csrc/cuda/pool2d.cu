// pool2d.cu: max / min / average pooling and global pooling, forward and backward, for the CuPy
// backend.
//
// Layouts (all C-contiguous): x and dx (N, C, H, W); y, dy and idx (N, C, OH, OW); global
// pooling y, dy and idx (N, C). idx holds ih*W + iw (int64) of the element each output took.
//
// Window of output (oh, ow): rows hs = oh*SH - PH .. hs+KH-1 clipped to [0, H) (likewise
// columns). OH/OW come from the caller with ceil_mode already applied, so every window holds at
// least one input element. Rules (those of the float64 reference):
//   max / min: the first extreme in row-major window order wins ties; a NaN beats any number and
//              the last NaN is kept (so NaN propagates; PyTorch's index);
//   avg:       sum / divisor, divisor = count_include_pad ? (he - hs)*(we - ws) with the window
//              end clipped to the padded input (he = min(hs+KH, H+PH)) : the clipped window size
//              (PyTorch's rule).
// Sums are accumulated in double and rounded once to T; the backward kernels add in the same
// order as the reference, so they match it exactly.
//
// Kernels (outputs overwritten; no atomics):
//   pool2d_{max,min,avg}_forward_*  one thread per y element.
//   pool2d_index_backward_*         (max and min) one thread per dx element: sums dy over the
//                                   windows that contain it and chose it (idx == ih*W + iw).
//                                   An index outside its own window (possible only with
//                                   hand-made indices) is never gathered.
//   pool2d_avg_backward_*           one thread per dx element: sums dy/divisor over the windows
//                                   that contain it.
//   global_pool2d_{avg,max}_forward_*   one block per (n, c) plane, fixed-order tree reduction.
//   global_pool2d_{avg,max}_backward_*  one thread per dx element.
//
// Entry points take outputs first, then inputs, then the dims N C H W KH KW SH SW PH PW OH OW
// (global pooling: NC = N*C planes of HW = H*W elements) as long long.
#include "common.cuh"

// True when candidate (v, i) should replace (best, bi) in a max (IS_MAX) or min search: a NaN
// beats a number and of two NaNs the higher index wins (the last NaN, as in PyTorch), then the
// more extreme value, then (equal values) the lower index.
// bi < 0 marks an empty slot. The order is total, so any reduction tree gives the same winner.
template <typename T, bool IS_MAX>
__device__ __forceinline__ bool cf_pool_takes(T v, i64 i, T best, i64 bi) {
  if (i < 0) return false;
  if (bi < 0) return true;
  const bool vn = cf_isnan(v), bn = cf_isnan(best);
  if (vn || bn) return vn && (!bn || i > bi);
  if (IS_MAX ? v > best : v < best) return true;
  return v == best && i < bi;
}

// Range of outputs o in [0, O) whose window start o*S - P satisfies start <= i < start + K.
__device__ __forceinline__ void cf_windows_containing(i64 i, i64 K, i64 S, i64 P, i64 O,
                                                      i64* o_lo, i64* o_hi) {
  *o_lo = i + P < K ? 0 : (i + P - K) / S + 1;
  *o_hi = cf_min((i + P) / S, O - 1);  // inclusive
}

// ------------------------------------------------------------------------------ forward

template <typename T, bool IS_MAX>
__device__ void pool2d_extreme_forward(T* __restrict__ y, i64* __restrict__ idx,
                                       const T* __restrict__ x, const PoolDims d) {
  // y, idx: (N, C, OH, OW) out, one thread per element; x: (N, C, H, W)
  CF_GRID_STRIDE(i, d.N * d.C * d.OH * d.OW) {
    const i64 ow = i % d.OW, oh = i / d.OW % d.OH, nc = i / (d.OH * d.OW);
    const T* x_nc = x + nc * d.H * d.W;  // x_nc: x[n, c] (H, W)
    const i64 hs = oh * d.SH - d.PH, ws = ow * d.SW - d.PW;
    const i64 h0 = cf_max(hs, 0), h1 = cf_min(hs + d.KH, d.H);
    const i64 w0 = cf_max(ws, 0), w1 = cf_min(ws + d.KW, d.W);
    T best = x_nc[h0 * d.W + w0];
    i64 bi = h0 * d.W + w0;
    // (ih, iw): the clipped window in row-major order; every NaN replaces best, so the last
    // NaN is kept (PyTorch's choice)
    for (i64 ih = h0; ih < h1; ++ih) {
      for (i64 iw = w0; iw < w1; ++iw) {
        const T v = x_nc[ih * d.W + iw];
        if (cf_isnan(v) || (IS_MAX ? v > best : v < best)) {
          best = v;
          bi = ih * d.W + iw;
        }
      }
    }
    y[i] = best;
    idx[i] = bi;
  }
}

template <typename T>
__device__ void pool2d_avg_forward(T* __restrict__ y, const T* __restrict__ x, const PoolDims d,
                                   i64 count_include_pad) {
  // y: (N, C, OH, OW) out, one thread per element; x: (N, C, H, W)
  CF_GRID_STRIDE(i, d.N * d.C * d.OH * d.OW) {
    const i64 ow = i % d.OW, oh = i / d.OW % d.OH, nc = i / (d.OH * d.OW);
    const T* x_nc = x + nc * d.H * d.W;  // x_nc: x[n, c] (H, W)
    const i64 hs = oh * d.SH - d.PH, ws = ow * d.SW - d.PW;
    const i64 h0 = cf_max(hs, 0), h1 = cf_min(hs + d.KH, d.H);
    const i64 w0 = cf_max(ws, 0), w1 = cf_min(ws + d.KW, d.W);
    const i64 div = count_include_pad
                        ? (cf_min(hs + d.KH, d.H + d.PH) - hs) * (cf_min(ws + d.KW, d.W + d.PW) - ws)
                        : (h1 - h0) * (w1 - w0);
    double acc = 0.0;
    // (ih, iw): the clipped window
    for (i64 ih = h0; ih < h1; ++ih)
      for (i64 iw = w0; iw < w1; ++iw) acc += (double)x_nc[ih * d.W + iw];
    y[i] = (T)(acc / (double)div);
  }
}

// ------------------------------------------------------------------------------ backward

template <typename T>
__device__ void pool2d_index_backward(T* __restrict__ dx, const T* __restrict__ dy,
                                      const i64* __restrict__ idx, const PoolDims d) {
  // dx: (N, C, H, W) out, one thread per element; dy, idx: (N, C, OH, OW)
  CF_GRID_STRIDE(i, d.N * d.C * d.H * d.W) {
    const i64 iw = i % d.W, ih = i / d.W % d.H, nc = i / (d.H * d.W);
    const T* dy_nc = dy + nc * d.OH * d.OW;      // dy_nc: dy[n, c] (OH, OW)
    const i64* idx_nc = idx + nc * d.OH * d.OW;  // idx_nc: idx[n, c] (OH, OW)
    const i64 self = ih * d.W + iw;
    i64 oh0, oh1, ow0, ow1;
    cf_windows_containing(ih, d.KH, d.SH, d.PH, d.OH, &oh0, &oh1);
    cf_windows_containing(iw, d.KW, d.SW, d.PW, d.OW, &ow0, &ow1);
    double acc = 0.0;
    // (oh, ow): windows containing (ih, iw), in row-major order
    for (i64 oh = oh0; oh <= oh1; ++oh)
      for (i64 ow = ow0; ow <= ow1; ++ow)
        if (idx_nc[oh * d.OW + ow] == self) acc += (double)dy_nc[oh * d.OW + ow];
    dx[i] = (T)acc;
  }
}

template <typename T>
__device__ void pool2d_avg_backward(T* __restrict__ dx, const T* __restrict__ dy,
                                    const PoolDims d, i64 count_include_pad) {
  // dx: (N, C, H, W) out, one thread per element; dy: (N, C, OH, OW)
  CF_GRID_STRIDE(i, d.N * d.C * d.H * d.W) {
    const i64 iw = i % d.W, ih = i / d.W % d.H, nc = i / (d.H * d.W);
    const T* dy_nc = dy + nc * d.OH * d.OW;  // dy_nc: dy[n, c] (OH, OW)
    i64 oh0, oh1, ow0, ow1;
    cf_windows_containing(ih, d.KH, d.SH, d.PH, d.OH, &oh0, &oh1);
    cf_windows_containing(iw, d.KW, d.SW, d.PW, d.OW, &ow0, &ow1);
    double acc = 0.0;
    // (oh, ow): windows containing (ih, iw), in row-major order
    for (i64 oh = oh0; oh <= oh1; ++oh) {
      const i64 hs = oh * d.SH - d.PH;
      const i64 rows = count_include_pad ? cf_min(hs + d.KH, d.H + d.PH) - hs
                                         : cf_min(hs + d.KH, d.H) - cf_max(hs, 0);
      for (i64 ow = ow0; ow <= ow1; ++ow) {
        const i64 ws = ow * d.SW - d.PW;
        const i64 cols = count_include_pad ? cf_min(ws + d.KW, d.W + d.PW) - ws
                                           : cf_min(ws + d.KW, d.W) - cf_max(ws, 0);
        acc += (double)dy_nc[oh * d.OW + ow] / (double)(rows * cols);
      }
    }
    dx[i] = (T)acc;
  }
}

// ------------------------------------------------------------------------------ global pooling

template <typename T>
__device__ void global_pool2d_avg_forward(T* __restrict__ y, const T* __restrict__ x, i64 NC,
                                          i64 HW) {
  // y: (N*C,) out, one block per plane; x: (N*C, H*W)
  __shared__ double red[CF_THREADS];
  CF_BLOCK_STRIDE(p, NC) {
    double acc = 0.0;
    // e: elements of plane p, strided over the block's threads
    for (i64 e = threadIdx.x; e < HW; e += CF_THREADS) acc += (double)x[p * HW + e];
    acc = cf_block_sum(acc, red);
    if (threadIdx.x == 0) y[p] = (T)(acc / (double)HW);
  }
}

template <typename T>
__device__ void global_pool2d_max_forward(T* __restrict__ y, i64* __restrict__ idx,
                                          const T* __restrict__ x, i64 NC, i64 HW) {
  // y, idx: (N*C,) out, one block per plane; x: (N*C, H*W)
  __shared__ T best_v[CF_THREADS];
  __shared__ i64 best_i[CF_THREADS];
  const int t = threadIdx.x;
  CF_BLOCK_STRIDE(p, NC) {
    T v = T(0);
    i64 vi = -1;  // -1: this thread saw no element
    // e: elements of plane p, strided over the block's threads, in increasing order
    for (i64 e = t; e < HW; e += CF_THREADS)
      if (cf_pool_takes<T, true>(x[p * HW + e], e, v, vi)) {
        v = x[p * HW + e];
        vi = e;
      }
    best_v[t] = v;
    best_i[t] = vi;
    __syncthreads();
    for (int s = CF_THREADS / 2; s > 0; s >>= 1) {
      if (t < s && cf_pool_takes<T, true>(best_v[t + s], best_i[t + s], best_v[t], best_i[t])) {
        best_v[t] = best_v[t + s];
        best_i[t] = best_i[t + s];
      }
      __syncthreads();
    }
    if (t == 0) {
      y[p] = best_v[0];
      idx[p] = best_i[0];
    }
    __syncthreads();  // slot 0 is read before the next plane overwrites it
  }
}

template <typename T>
__device__ void global_pool2d_avg_backward(T* __restrict__ dx, const T* __restrict__ dy, i64 NC,
                                           i64 HW) {
  // dx: (N*C, H*W) out, one thread per element; dy: (N*C,)
  CF_GRID_STRIDE(i, NC * HW) dx[i] = (T)((double)dy[i / HW] / (double)HW);
}

template <typename T>
__device__ void global_pool2d_max_backward(T* __restrict__ dx, const T* __restrict__ dy,
                                           const i64* __restrict__ idx, i64 NC, i64 HW) {
  // dx: (N*C, H*W) out, one thread per element; dy, idx: (N*C,)
  CF_GRID_STRIDE(i, NC * HW) dx[i] = (i % HW == idx[i / HW]) ? dy[i / HW] : T(0);
}

// ------------------------------------------------------------------------------ entry points

#define CF_POOL_DIMS_PARAMS \
  i64 N, i64 C, i64 H, i64 W, i64 KH, i64 KW, i64 SH, i64 SW, i64 PH, i64 PW, i64 OH, i64 OW
#define CF_POOL_DIMS PoolDims{N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW}
#define CF_KERNEL extern "C" __global__ void __launch_bounds__(CF_THREADS)

#define CF_POOL_ENTRIES(T, SUFFIX)                                                          \
  CF_KERNEL pool2d_max_forward_##SUFFIX(T* y, i64* idx, const T* x, CF_POOL_DIMS_PARAMS) {  \
    pool2d_extreme_forward<T, true>(y, idx, x, CF_POOL_DIMS);                               \
  }                                                                                         \
  CF_KERNEL pool2d_min_forward_##SUFFIX(T* y, i64* idx, const T* x, CF_POOL_DIMS_PARAMS) {  \
    pool2d_extreme_forward<T, false>(y, idx, x, CF_POOL_DIMS);                              \
  }                                                                                         \
  CF_KERNEL pool2d_avg_forward_##SUFFIX(T* y, const T* x, CF_POOL_DIMS_PARAMS,              \
                                        i64 count_include_pad) {                            \
    pool2d_avg_forward<T>(y, x, CF_POOL_DIMS, count_include_pad);                           \
  }                                                                                         \
  CF_KERNEL pool2d_index_backward_##SUFFIX(T* dx, const T* dy, const i64* idx,              \
                                           CF_POOL_DIMS_PARAMS) {                           \
    pool2d_index_backward<T>(dx, dy, idx, CF_POOL_DIMS);                                    \
  }                                                                                         \
  CF_KERNEL pool2d_avg_backward_##SUFFIX(T* dx, const T* dy, CF_POOL_DIMS_PARAMS,           \
                                         i64 count_include_pad) {                           \
    pool2d_avg_backward<T>(dx, dy, CF_POOL_DIMS, count_include_pad);                        \
  }                                                                                         \
  CF_KERNEL global_pool2d_avg_forward_##SUFFIX(T* y, const T* x, i64 NC, i64 HW) {          \
    global_pool2d_avg_forward<T>(y, x, NC, HW);                                             \
  }                                                                                         \
  CF_KERNEL global_pool2d_max_forward_##SUFFIX(T* y, i64* idx, const T* x, i64 NC, i64 HW) { \
    global_pool2d_max_forward<T>(y, idx, x, NC, HW);                                        \
  }                                                                                         \
  CF_KERNEL global_pool2d_avg_backward_##SUFFIX(T* dx, const T* dy, i64 NC, i64 HW) {       \
    global_pool2d_avg_backward<T>(dx, dy, NC, HW);                                          \
  }                                                                                         \
  CF_KERNEL global_pool2d_max_backward_##SUFFIX(T* dx, const T* dy, const i64* idx, i64 NC, \
                                                i64 HW) {                                   \
    global_pool2d_max_backward<T>(dx, dy, idx, NC, HW);                                     \
  }

CF_POOL_ENTRIES(float, f32)
CF_POOL_ENTRIES(double, f64)
