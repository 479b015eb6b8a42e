// CPU convolution family: conv2d forward / backward data / backward weight, im2col / col2im.
//
// Layouts: x (N, C, H, W), w (K, C/G, KH, KW), b (K,), y and dy (N, K, OH, OW),
// cols (N, C*KH*KW, OH*OW) with row (c, i, j) and column (oh, ow). ConvDims from make_conv_dims
// (dims.hpp): PH/PW are the top/left padding, OH/OW already include the bottom/right padding.
// Kernel signatures: outputs first, then inputs, then the dims. Every kernel OVERWRITES its
// outputs. float and double are instantiated. Results do not depend on the OpenMP thread count.
#pragma once
#include <cstdint>

#include "convforge/dims.hpp"

namespace convforge {

// ------------------------------------------------ conv2d (csrc/conv: conv2d.cpp, select.cpp)

// Algorithms. choose_conv_algo() (from the shapes) and conv_algo_for_data() (inf/NaN inputs) are
// the one place that picks one for a problem and a direction; conv_algo_applies() says which ones can run it (a forced algorithm, e.g. from an autotuner,
// must pass it). Adding an algorithm: one enumerator here (before kCount), its name in
// conv_algo_name() and its rule in conv_algo_applies() (both in select.cpp), its kernels in a file
// of its own declared in csrc/conv/algos.hpp, and one case per direction it supports in the
// dispatch switches of conv2d.cpp.
enum class ConvAlgo {
  naive,              // plain nested loops (fallback when an im2col block would be too big)
  direct_depthwise,   // one input channel per group (C/G == 1): direct plane convolutions
  gemm_pointwise,     // 1x1, stride 1, no padding: x itself is the GEMM operand (no im2col)
  im2col_gemm,        // im2col of a block of an image + blocked GEMM
  direct_small,       // stride 1, few channels: direct kernel vectorised along the output row
                      // (all three directions; see conv2d_direct.hpp)
  im2col_gemm_batch,  // weight only: batch split into chunks fixed by the shapes, one partial
                      // dw per chunk (GEMM over several images at once), reduced in order
  winograd,           // 3x3 stride 1 dilation 1, G == 1: Winograd F(4x4,3x3) (winograd.hpp);
                      // forward, data and weight (F(3x3,4x4) by transposition)
  direct_kvec,        // forward and weight, any stride: direct kernels vectorised along the
                      // output channels (no im2col; see conv2d_direct.hpp KvecTile, KvecDwTile)
  direct_batch,       // forward and data, any stride: direct kernel vectorised along the batch
                      // (images in the lanes), only the taps that land inside the input (see
                      // BatchTile); the heuristic picks it for the data direction only
  kCount,             // number of algorithms (not an algorithm)
};
enum class ConvDir { forward, data, weight };

ConvAlgo choose_conv_algo(const ConvDims& d, int64_t elem_bytes, ConvDir dir = ConvDir::forward);
bool conv_algo_applies(ConvAlgo a, ConvDir dir, const ConvDims& d, int64_t elem_bytes);
const char* conv_algo_name(ConvAlgo a);
// The algorithm a call runs on this data: `a` (the caller's choice or choose_conv_algo's)
// unless it would change which outputs are inf/NaN: winograd (any inf/NaN in its two inputs)
// and direct_small (backward data: in w; backward weight: in x) then give way to the exact path
// (im2col_gemm, im2col_gemm_batch for the weight with N >= 2, naive when an im2col block would
// not fit: exact_conv_algo). `in` is x (forward, weight) or dy (data); `w` is w (forward, data)
// or dy (weight). The dispatchers of conv2d_* call it, so choose_conv_algo + this function are
// the whole decision; they pass winograd_checks: winograd is then kept without a scan, as its
// kernels find an inf/NaN on their way and the dispatcher then runs exact_conv_algo (the same
// outcome as the scan's).
template <typename T>
ConvAlgo conv_algo_for_data(ConvAlgo a, ConvDir dir, const ConvDims& d, const T* in, const T* w,
                            bool winograd_checks = false);
// The exact path that replaces winograd or direct_small on inf/NaN data.
ConvAlgo exact_conv_algo(ConvDir dir, const ConvDims& d, int64_t elem_bytes);
// Exact mode (convforge.set_conv_exact, CONVFORGE_CONV_EXACT=1): choose_conv_algo never picks
// winograd, so float32 results keep the GEMM paths' rounding error. Off by default.
void set_conv_exact(bool enabled);
bool conv_exact();
const char* conv_dir_name(ConvDir dir);

// y[n,k,oh,ow] = b[k] + sum_{c,i,j} x[n, g*Cg+c, oh*SH-PH+i*DH, ow*SW-PW+j*DW] * w[k,c,i,j]
// (g = k / Kg; out-of-range x is zero). b may be null. relu: y = max(that, 0) instead, written
// once (the epilogue of a conv followed by a ReLU; NaN and -0.0 pass, as activation_forward).
// Each kernel runs the algorithm choose_conv_algo() picks, or the one given (which must pass
// conv_algo_applies(), else std::invalid_argument).
template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvDims& d,
                    bool relu = false);
template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvDims& d, ConvAlgo algo,
                    bool relu = false);
// dx = d(sum dy*y)/dx: x-shaped (N, C, H, W).
template <typename T>
void conv2d_backward_data(T* dx, const T* dy, const T* w, const ConvDims& d);
template <typename T>
void conv2d_backward_data(T* dx, const T* dy, const T* w, const ConvDims& d, ConvAlgo algo);
// dw (K, C/G, KH, KW) and db (K,) (skipped when db is null).
template <typename T>
void conv2d_backward_weight(T* dw, T* db, const T* dy, const T* x, const ConvDims& d);
template <typename T>
void conv2d_backward_weight(T* dw, T* db, const T* dy, const T* x, const ConvDims& d,
                            ConvAlgo algo);

// Naive direct kernels: same contracts, plain loops; the fallback and a second reference.
template <typename T>
void conv2d_forward_naive(T* y, const T* x, const T* w, const T* b, const ConvDims& d);
template <typename T>
void conv2d_backward_data_naive(T* dx, const T* dy, const T* w, const ConvDims& d);
template <typename T>
void conv2d_backward_weight_naive(T* dw, T* db, const T* dy, const T* x, const ConvDims& d);

// ---------------------------------------------------------------- im2col (im2col.cpp)

// cols (N, C*KH*KW, OH*OW) from x (N, C, H, W); padding reads as zero.
template <typename T>
void im2col(T* cols, const T* x, const ConvDims& d);
// Adjoint: x (N, C, H, W) = sum of every cols entry into the x element it was read from.
template <typename T>
void col2im(T* x, const T* cols, const ConvDims& d);

// Sequential building blocks used by the conv kernels:
// cols ((c1-c0)*KH*KW, l1-l0): rows (c-c0, i, j) for channels [c0, c1) of one image
// x_n (C, H, W), columns l = oh*OW + ow in [l0, l1); row stride l1-l0.
template <typename T>
void im2col_block(T* cols, const T* x_n, int64_t c0, int64_t c1, int64_t l0, int64_t l1,
                  const ConvDims& d);
// Same, with row stride ldc >= l1-l0 (blocks of several images side by side).
template <typename T>
void im2col_block(T* cols, int64_t ldc, const T* x_n, int64_t c0, int64_t c1, int64_t l0,
                  int64_t l1, const ConvDims& d);
// x_c (nc, H, W) overwritten with the fold of cols (nc*KH*KW, OH*OW) (full rows).
template <typename T>
void col2im_block(T* x_c, const T* cols, int64_t nc, const ConvDims& d);

namespace detail {

// Output positions o in [0, out) whose input coordinate o*S - P + off lies in [0, in):
// the range [lo, hi) (empty when hi == lo). off = tap * dilation.
inline void valid_range(int64_t in, int64_t out, int64_t S, int64_t P, int64_t off,
                        int64_t& lo, int64_t& hi) {
  const int64_t a = P - off;           // o*S >= a
  const int64_t b = in - 1 + P - off;  // o*S <= b
  lo = a <= 0 ? 0 : (a + S - 1) / S;
  hi = b < 0 ? 0 : b / S + 1;
  if (lo > out) lo = out;
  if (hi > out) hi = out;
  if (hi < lo) hi = lo;
}

}  // namespace detail
}  // namespace convforge
