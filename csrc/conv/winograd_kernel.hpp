// Private interface between winograd.cpp and the per-ISA copies of the Winograd F(4x4, 3x3) tile
// transforms (winograd_kernel.inc, compiled by winograd.cpp, winograd_avx2.cpp and
// winograd_avx512.cpp): the tile geometry, the transforms' contracts and each copy's table,
// picked in winograd.cpp by select_isa() (csrc/runtime/isa.hpp). Declarations and plain structs
// only: this header is included by units compiled with different -m flags.
#pragma once
#include <cstdint>

#include "runtime/isa.hpp"

namespace convforge::winograd_detail {

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
  bool relu = false;   // output: the ReLU epilogue on the stores (max(v, 0))
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
//           may be null. Returns false when a tile's outputs (before the clamp and the crop)
//           were not all finite: an inf/NaN in the transformed input or filters (or an
//           overflow), which the caller must then replace by the exact computation.
//   grad:   (weight gradient) D[e, k, t - t0] = (A g A^T)[e] for channels [k0, k1) and tiles
//           [t0, t0 + tb), g the 4x4 patch of dy at tile t (zero outside (OH, OW)); s describes
//           dy as the plane read (s.C = its channels, s.H x s.W = OH x OW, no padding; the
//           tile grid of the forward); laid out as V.
//   wgrad_out: dw[k, c] (3, 3) = G^T m G with m[e] = M[e, k, c] (M[e] (K, ld_k) at
//           M + e * ld_e), for k in [k0, k1) and every c < C.
template <typename T>
struct Transforms {
  void (*weights)(T* U, int64_t ld_e, const T* w, int64_t K, int64_t C, bool rotate, int64_t c0,
                  int64_t c1);
  void (*input)(T* V, int64_t ld_e, int64_t ld_c, const T* in, const WgDims& s, int64_t c0,
                int64_t c1, int64_t t0, int64_t tb);
  bool (*output)(T* out, const T* M, int64_t ld_e, int64_t ld_t, const T* bias, const WgDims& s,
                 int64_t k0, int64_t k1, int64_t t0, int64_t tb);
  void (*grad)(T* D, int64_t ld_e, int64_t ld_c, const T* dy, const WgDims& s, int64_t k0,
               int64_t k1, int64_t t0, int64_t tb);
  void (*wgrad_out)(T* dw, const T* M, int64_t ld_e, int64_t ld_k, int64_t C, int64_t k0,
                    int64_t k1);
};

constexpr int64_t kLanes = 16;  // lanes of the transforms' vectorised axis (tiles or channels)

// The transforms of each ISA copy (float and double: specialisations at the end of
// winograd_kernel.inc).
CF_PER_ISA(template <typename T> Transforms<T> transforms();)

}  // namespace convforge::winograd_detail
