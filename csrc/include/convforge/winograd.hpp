// Winograd F(4x4, 3x3) convolution for 3x3 / stride 1 / dilation 1 / one group (winograd.cpp):
// forward and backward data, float and double. Layouts as in conv2d.hpp: x (N, C, H, W),
// w (K, C, 3, 3), b (K,), y and dy (N, K, OH, OW). Every kernel OVERWRITES its outputs; results
// do not depend on the OpenMP thread count. See winograd.cpp for the algorithm.
//
// This header is included by translation units compiled with different -m flags
// (winograd_avx2.cpp, winograd_avx512.cpp): declarations and plain structs only.
#pragma once
#include <cstdint>

#include "convforge/dims.hpp"

namespace convforge {

// Winograd can run this problem: 3x3, stride 1, dilation 1, G == 1, and the transformed
// weights (36 * K * C elements) fit the workspace cap (kMaxWeightBytes in winograd.cpp).
bool winograd_applicable(const ConvDims& d, int64_t elem_bytes);
// Applicable and measured faster than im2col_gemm on this kind of layer (the heuristic that
// choose_conv_algo() in conv2d.cpp consults for forward and backward data).
bool winograd_preferred(const ConvDims& d, int64_t elem_bytes);

// y (N, K, OH, OW) = conv2d(x, w) + b (b may be null). Requires winograd_applicable(d).
template <typename T>
void winograd_conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvDims& d);
// dx (N, C, H, W) given dy (N, K, OH, OW). Requires winograd_applicable(d).
template <typename T>
void winograd_conv2d_backward_data(T* dx, const T* dy, const T* w, const ConvDims& d);

namespace winograd_detail {

// One "forward" correlation with a 3x3 filter as the tile transforms see it:
//   out[n, k, oh, ow] = sum_{c, i, j} in[n, c, oh - PH + i, ow - PW + j] * f[k, c, i, j]
// with in read as zero outside (H, W). PH/PW may be negative (backward data of a layer padded
// by more than 2 crops instead of padding). Tiles: 4x4 output tiles, TH = ceil(OH/4) by
// TW = ceil(OW/4) per image, numbered t = (n * TH + th) * TW + tw over the whole batch.
struct WgDims {
  int64_t N;
  int64_t C, H, W;     // in (N, C, H, W)
  int64_t K, OH, OW;   // out (N, K, OH, OW)
  int64_t PH, PW;      // top / left padding (signed)
  int64_t TH, TW;      // tiles per image: rows, columns
};

// The transforms of one instruction set (bodies in winograd_kernel.inc).
//   weights: U[e, c, k] = (G f[k, c] G^T)[e] for c in [c0, c1), U[e] (C, K) at U + e * ld_e;
//           f = w (K, C, 3, 3), or with rotate f[k, c] = rot180(w[c, k]), w (C, K, 3, 3).
//   input:  V[e, c, t - t0] = (B^T d B)[e] for channels [c0, c1) and tiles [t0, t0 + tb),
//           d the 6x6 input patch of tile t (zero outside); element (e, c, u) at
//           V + e * ld_e + c * ld_c + u, u < round_up(tb, 16) (lanes past tb are written as 0).
//   output: out[n, k, 4th + a, 4tw + b] = (A^T m A)[a, b] + bias[k] for k in [k0, k1) and tiles
//           [t0, t0 + tb), m[e] = M + e * ld_e + (t - t0) * ld_t + k (M[e] is (tiles, K) with
//           row stride ld_t >= round_up(K, 16)); only the part inside (OH, OW) is stored. bias
//           may be null.
template <typename T>
struct Transforms {
  void (*weights)(T* U, int64_t ld_e, const T* w, int64_t K, int64_t C, bool rotate, int64_t c0,
                  int64_t c1);
  void (*input)(T* V, int64_t ld_e, int64_t ld_c, const T* in, const WgDims& s, int64_t c0,
                int64_t c1, int64_t t0, int64_t tb);
  void (*output)(T* out, const T* M, int64_t ld_e, int64_t ld_t, const T* bias, const WgDims& s,
                 int64_t k0, int64_t k1, int64_t t0, int64_t tb);
};

constexpr int64_t kLanes = 16;  // lanes of the transforms' vectorised axis (tiles or channels)

namespace baseline {
Transforms<float> transforms_f32();
Transforms<double> transforms_f64();
}  // namespace baseline
namespace avx2 {
Transforms<float> transforms_f32();
Transforms<double> transforms_f64();
}  // namespace avx2
namespace avx512 {
Transforms<float> transforms_f32();
Transforms<double> transforms_f64();
}  // namespace avx512

}  // namespace winograd_detail
}  // namespace convforge
