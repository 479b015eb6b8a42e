// Per-ISA micro-kernels of the direct convolutions (direct_small.cpp, direct_kvec.cpp,
// direct_batch.cpp): ConvAlgo::direct_small (Rows, DwRows), direct_kvec (KvecTile, KvecDwTile)
// and direct_batch (BatchTile).
//
// One source body (csrc/conv/conv2d_direct_kernel.inc) is compiled three times: baseline x86-64
// (conv2d_direct.cpp), AVX2+FMA (conv2d_direct_avx2.cpp) and AVX-512 (conv2d_direct_avx512.cpp).
// direct_kernel<T>() in conv2d_direct.cpp picks one (select_isa, csrc/runtime/isa.hpp), and
// nowhere else.
//
// The kernel works on "flattened padded planes": a stride-1 correlation of a zero-padded input
// plane (Hp, Wp) with a (KH, KW) kernel, where the output is computed on the full padded width
// Wp (positions p = oh*Wp + ow; the columns ow >= OW are junk the caller drops). Then the input
// element of output position p and tap t = (i, j) is in[p + offs[t]] with
// offs[t] = i*DH*Wp + j*DW, for every p: the inner loop is a plain vector loop over p.
//
// Declarations only: this header is included by translation units compiled with different -m
// flags (see csrc/runtime/isa.hpp).
#pragma once
#include <cstdint>
#include <utility>

#include "runtime/isa.hpp"

namespace convforge::direct_detail {

// out[k*ldo + p] = bias[k] (or 0) + sum_{c < cin, t < taps} wp[(c*taps + t)*kb + k] *
//                  in[c*plane + offs[t] + p]
// for k < kb and p < len rounded up to a multiple of Kernel::block (out has room for that;
// in is readable, zero or junk, that far past its last plane's p + offs).
// Summation order: (c, t) ascending, one multiply-add each: fixed by the shapes.
template <typename T>
struct Rows {
  T* out;
  int64_t ldo;
  const T* in;
  int64_t cin, plane;
  const int64_t* offs;
  int64_t taps;
  const T* wp;
  int64_t kb;
  const T* bias;
  int64_t len;
};

// Weight gradient (direct_small, weight direction): lane-wise partial dot products
//   acc[k*ldacc + t*VL + v] += sum_{m < nimg} sum_{p = v mod VL, p < len}
//                                dy[m*dy_img + k*ldd + p] * in[m*in_img + offs[t] + p]
// for k < dw_kb, t < dw_tb, lane v < VL (len a multiple of VL). The caller sums the lanes (in
// a fixed order) at the end. Summation order per lane: (m, p) ascending: fixed by the shapes.
template <typename T>
struct DwRows {
  T* acc;
  int64_t ldacc;
  const T* dy;
  int64_t ldd, dy_img;
  const T* in;
  int64_t in_img;
  const int64_t* offs;
  int64_t len, nimg;
};

// Channel-vector tile (ConvAlgo::direct_kvec, forward, any stride): NK vectors of output
// channels (KB = NK*VL lanes) x R rows x S columns of output positions in registers,
//   out[k*ldo + r*ldr + s] = bias[k] (or 0) + sum_{c < cin, t < taps} wp[(c*taps + t)*KB + k] *
//                            in[c*plane + offs[t] + r*row + s*sw]
// for k < kn, r < nr, s < ns (the rest of the R x S x KB tile is computed and dropped: in must
// be readable that far). One weight vector load per (c, t) and vector, one broadcast of the
// input per (c, t) and position. Summation order: (c, t) ascending: fixed by the shapes.
template <typename T>
struct KvecTile {
  T* out;
  int64_t ldo, ldr;
  int64_t kn, nr, ns;
  const T* in;
  int64_t row, cin, plane;
  const int64_t* offs;
  int64_t taps, sw;
  const T* wp;
  const T* bias;
  bool relu;  // the ReLU epilogue on the stores (max(v, 0))
};

// Channel-vector weight gradient (ConvAlgo::direct_kvec, weight direction): KB output
// channels (vectors) x TB taps of one input channel in registers,
//   acc[t*KB + k] += sum_{m < nimg} sum_{r < rows} sum_{s < row_len}
//                      dyt[m*dy_img + (r*ld_row_dy + s)*ldk + k] *
//                      in[m*in_img + offs[t] + r*ld_row + s*sw]
// for t < TB, k < KB (exactly these many: the caller pads taps with offset 0 and channels with
// zero dy columns, and drops them). dy is channel-last (positions, channels); in is the padded
// input plane, sw the stride along its rows. Summation order per element: (m, r, s) ascending.
template <typename T>
struct KvecDwTile {
  T* acc;
  const T* dyt;
  int64_t ldk, dy_img;
  const T* in;
  int64_t in_img;
  const int64_t* offs;
  int64_t rows, row_len, ld_row, ld_row_dy, sw, nimg;
};

// Batch-lane tile (ConvAlgo::direct_batch, forward and data): kb output channels x BLK images
// (BLK = nv vectors of images, the images in the vector lanes; batch_vectors()) in registers,
//   out[k*ldo + v] = sum_{c < cin, t < taps} wp[c*ldw + woffs[t] + k] * in[c*plane + offs[t] + v]
// for k < kb, v < BLK. The caller lists only the taps that contribute (no zero padding is
// multiplied). Summation order per element: (c, t) ascending.
template <typename T>
struct BatchTile {
  T* out;
  int64_t ldo;
  const T* in;
  int64_t cin, plane;
  const int64_t* offs;
  const int64_t* woffs;
  int64_t taps;
  const T* wp;
  int64_t ldw, kb;
};

// Batch-lane weight-gradient tile (ConvAlgo::direct_batch, weight direction): KB output
// channels x TB taps of one input channel, each accumulator a vector of VL images,
//   acc[k*ldacc + t*VL + v] += sum_{r < rows} sum_{s < cols} dy[k*ldk + r*dy_row + s*VL + v] *
//                                                          in[offs[t] + r*in_row + s*in_col + v]
// for k < KB, t < TB (exactly these many: the caller pads channels with zero dy rows and taps
// with offset 0, and drops them). dy and in hold one image per lane (layouts (K, OH, OW, VL)
// and (C, H, W, VL)), so every load is a whole aligned vector. Summation order per lane:
// (r, s) ascending.
template <typename T>
struct BatchDwTile {
  T* acc;
  int64_t ldacc;
  const T* dy;
  int64_t ldk, dy_row;
  const T* in;
  const int64_t* offs;
  int64_t rows, cols, in_row, in_col;
};

// The tile shapes of the channel-vector kernel: kKvecS[si] columns; kvec[nk-1][si][sw] is the
// kernel for nk channel vectors, kKvecS[si] columns, stride sw = 1, 2 (index 1, 2) or any
// (index 0: q.sw at run time), with kvec_r[nk-1][si] rows; null where the tile would not fit
// the registers.
constexpr int kKvecShapes = 4;
constexpr int64_t kBatchMaxVectors = 4;  // image vectors of the batch-lane tile
constexpr int64_t kKvecS[kKvecShapes] = {4, 5, 6, 8};

template <typename T>
struct Kernel {
  void (*rows)(const Rows<T>& r);
  int64_t kb_max;  // most output channels per call (register blocking)
  int64_t block;   // positions per register tile (a multiple of the vector length)
  void (*dw)(const DwRows<T>& r);
  int64_t dw_kb, dw_tb;  // output channels and taps per dw call (exactly these many)
  // A second dw tile (or null), for layers whose channels and taps it pads less
  // (direct_small.cpp, dw_tile())
  void (*dw2)(const DwRows<T>& r);
  int64_t dw2_kb, dw2_tb;
  int64_t vl;            // vector lanes
  void (*kvec[2][kKvecShapes][3])(const KvecTile<T>& q);
  int64_t kvec_r[2][kKvecShapes];
  // kvec_dw[nk-1][s]: nk vectors of channels (nk*vl lanes, nk <= kvdw_nk) x kvdw_tb taps per
  // call; s = 0: any stride (q.sw), s = 1: stride 1
  void (*kvec_dw[2][2])(const KvecDwTile<T>& q);
  int64_t kvdw_nk, kvdw_tb;
  // batch[nv-1]: kb <= batch_kb[nv-1] channels x nv vectors of images
  void (*batch[kBatchMaxVectors])(const BatchTile<T>& q);
  int64_t batch_kb[kBatchMaxVectors];
  // dst[j*ldd + i] = src[i*lds + j] for i < rows, j < cols (csrc/runtime/transpose_simd.inc)
  void (*transpose)(T* dst, int64_t ldd, const T* src, int64_t lds, int64_t rows, int64_t cols);
  // batch_dw: bdw_kb channels x bdw_tb taps per call (BatchDwTile)
  void (*batch_dw)(const BatchDwTile<T>& q);
  int64_t bdw_kb, bdw_tb;
  // dst[r*ldd + c] = src[r*lds + c] < lo ? lo : src[r*lds + c] for r < rows, c < cols: a
  // copy (lo = -inf) or the ReLU epilogue on a copy (lo = 0; NaN and -0.0 pass), in vectors
  // (the rows of a tile are a few tens of elements: a call or a scalar loop per row costs
  // more than the copy)
  void (*copy_rows)(T* dst, int64_t ldd, const T* src, int64_t lds, int64_t rows, int64_t cols,
                    T lo);
};

// Channel vectors per kvec_dw call for Kg output channels per group: one where they fit in one
// vector, else the kernel's most.
template <typename T>
int64_t kvec_dw_vectors(const Kernel<T>& k, int64_t Kg) {
  return Kg <= k.vl ? 1 : k.kvdw_nk;
}

// Image vectors per direct_batch tile for a batch of N images: the fewest lanes past N, then
// the most accumulators (channels x vectors), then the most vectors. LeNet C3's 64 images: one
// tile of 4 x 6 AVX-512 vectors instead of 48 + 16 images in 3 x 8.
template <typename T>
int64_t batch_vectors(const Kernel<T>& k, int64_t N) {
  const auto key = [&](int64_t nv) {  // (padded lanes, -accumulators): smaller is better
    const int64_t lanes = nv * k.vl;
    return std::make_pair((N + lanes - 1) / lanes * lanes, -nv * k.batch_kb[nv - 1]);
  };
  int64_t best = 1;
  for (int64_t nv = 2; nv <= kBatchMaxVectors; ++nv)
    if (key(nv) <= key(best)) best = nv;
  return best;
}

// The table of each ISA copy (float and double: specialisations at the end of
// conv2d_direct_kernel.inc).
CF_PER_ISA(template <typename T> Kernel<T> kernel();)

// The kernel of the current ISA (conv2d_direct.cpp).
template <typename T>
Kernel<T> direct_kernel();
// The kernels whose channel-vector tiles direct_kvec runs for Kg output channels per group:
// forward (kvec) and weight gradient (kvec_dw, kernels of `taps` taps): direct_kernel(), or the
// AVX2 copy on a narrow AVX-512 CPU (conv2d_direct.cpp).
template <typename T>
Kernel<T> kvec_kernel(int64_t Kg);
template <typename T>
Kernel<T> kvec_dw_kernel(int64_t Kg, int64_t taps);

}  // namespace convforge::direct_detail
