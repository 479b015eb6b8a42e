// naive: the conv2d kernels as plain loops, straight from the formula (conv2d.cpp): the
// fallback when an im2col block would be too big, and the second reference of the tests
// (algo="naive"). Layouts: x (N, C, H, W), w (K, Cg, KH, KW), y and dy (N, K, OH, OW).
// Parallel axis: forward (n, k) planes of y; data (n, c) planes of dx; weight k (dw[k], db[k]).
#include <cstdint>

#include "convforge/conv2d.hpp"
#include "convforge/cpu.hpp"

namespace convforge {
namespace {

// x[n, c, ih, iw]; the padding reads as 0.
template <typename T>
T x_at(const T* x, const ConvDims& d, int64_t n, int64_t c, int64_t ih, int64_t iw) {
  const bool inside = ih >= 0 && ih < d.H && iw >= 0 && iw < d.W;
  return inside ? x[((n * d.C + c) * d.H + ih) * d.W + iw] : T(0);
}

}  // namespace

template <typename T>
void conv2d_forward_naive(T* y, const T* x, const T* w, const T* b, const ConvDims& d) {
  const int64_t Cg = d.Cg(), Kg = d.Kg();
CF_OMP_FOR(schedule(static))
  for (int64_t nk = 0; nk < d.N * d.K; ++nk) {  // y[n, k] (OH, OW)
    const int64_t n = nk / d.K, k = nk % d.K, g = k / Kg;
    for (int64_t oh = 0; oh < d.OH; ++oh) {
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        T acc = b ? b[k] : T(0);
        for (int64_t c = 0; c < Cg; ++c) {  // x[n, g*Cg + c] (H, W), w[k, c] (KH, KW)
          for (int64_t i = 0; i < d.KH; ++i) {
            const int64_t ih = oh * d.SH - d.PH + i * d.DH;
            for (int64_t j = 0; j < d.KW; ++j) {
              const int64_t iw = ow * d.SW - d.PW + j * d.DW;
              acc += x_at(x, d, n, g * Cg + c, ih, iw) * w[((k * Cg + c) * d.KH + i) * d.KW + j];
            }
          }
        }
        y[(nk * d.OH + oh) * d.OW + ow] = acc;
      }
    }
  }
}

template <typename T>
void conv2d_backward_data_naive(T* dx, const T* dy, const T* w, const ConvDims& d) {
  const int64_t Cg = d.Cg(), Kg = d.Kg();
  // dx[n,c,ih,iw] = sum over k of c's group and taps (i, j) with ih = oh*SH - PH + i*DH and
  // iw = ow*SW - PW + j*DW for some output (oh, ow) of w[k, c%Cg, i, j] * dy[n, k, oh, ow].
CF_OMP_FOR(schedule(static))
  for (int64_t nc = 0; nc < d.N * d.C; ++nc) {  // dx[n, c] (H, W)
    const int64_t n = nc / d.C, c = nc % d.C, g = c / Cg, cl = c % Cg;
    for (int64_t ih = 0; ih < d.H; ++ih) {
      for (int64_t iw = 0; iw < d.W; ++iw) {
        T acc = 0;
        for (int64_t k = g * Kg; k < (g + 1) * Kg; ++k) {  // dy[n, k] (OH, OW), w[k, cl] (KH, KW)
          for (int64_t i = 0; i < d.KH; ++i) {
            const int64_t th = ih + d.PH - i * d.DH;  // = oh * SH
            if (th < 0 || th % d.SH != 0 || th / d.SH >= d.OH) continue;
            for (int64_t j = 0; j < d.KW; ++j) {
              const int64_t tw = iw + d.PW - j * d.DW;  // = ow * SW
              if (tw < 0 || tw % d.SW != 0 || tw / d.SW >= d.OW) continue;
              acc += w[((k * Cg + cl) * d.KH + i) * d.KW + j] *
                     dy[((n * d.K + k) * d.OH + th / d.SH) * d.OW + tw / d.SW];
            }
          }
        }
        dx[(nc * d.H + ih) * d.W + iw] = acc;
      }
    }
  }
}

template <typename T>
void conv2d_backward_weight_naive(T* dw, T* db, const T* dy, const T* x, const ConvDims& d) {
  const int64_t Cg = d.Cg(), Kg = d.Kg();
CF_OMP_FOR(schedule(static))
  for (int64_t k = 0; k < d.K; ++k) {  // dw[k] (Cg, KH, KW), db[k]
    const int64_t g = k / Kg;
    for (int64_t c = 0; c < Cg; ++c) {
      for (int64_t i = 0; i < d.KH; ++i) {
        for (int64_t j = 0; j < d.KW; ++j) {  // dw[k,c,i,j] = sum_{n,oh,ow} dy[n,k,oh,ow] * x[...]
          T acc = 0;
          for (int64_t n = 0; n < d.N; ++n) {
            for (int64_t oh = 0; oh < d.OH; ++oh) {
              const int64_t ih = oh * d.SH - d.PH + i * d.DH;
              for (int64_t ow = 0; ow < d.OW; ++ow) {
                const int64_t iw = ow * d.SW - d.PW + j * d.DW;
                acc += dy[((n * d.K + k) * d.OH + oh) * d.OW + ow] *
                       x_at(x, d, n, g * Cg + c, ih, iw);
              }
            }
          }
          dw[((k * Cg + c) * d.KH + i) * d.KW + j] = acc;
        }
      }
    }
    if (db) {
      T acc = 0;
      for (int64_t n = 0; n < d.N; ++n)
        for (int64_t l = 0; l < d.OH * d.OW; ++l) acc += dy[(n * d.K + k) * d.OH * d.OW + l];
      db[k] = acc;
    }
  }
}

#define CF_INSTANTIATE(T)                                                                    \
  template void conv2d_forward_naive<T>(T*, const T*, const T*, const T*, const ConvDims&);  \
  template void conv2d_backward_data_naive<T>(T*, const T*, const T*, const ConvDims&);      \
  template void conv2d_backward_weight_naive<T>(T*, T*, const T*, const T*, const ConvDims&);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge
