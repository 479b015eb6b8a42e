// direct_depthwise: one input channel per group (Cg == 1, also with a channel multiplier):
// plane-by-plane direct convolution, tap by tap over the valid output range of each tap
// (detail::valid_range), padding contributions only where a value is inf or NaN.
// Layouts: x plane (H, W), y / dy plane (OH, OW), w[k, 0] (KH, KW).
// Parallel axis: forward (n, k) planes of y; data (n, c) planes of dx; weight k (each dw[k]
// summed over (n, oh, ow) in double, in that order).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "algos.hpp"
#include "partials.hpp"
#include "convforge/conv2d.hpp"
#include "runtime/tasks.hpp"

namespace convforge::conv_impl {
namespace {

using detail::valid_range;

}  // namespace

template <typename T>
void forward_depthwise(T* y, const T* x, const T* w, const T* b, const ConvDims& d, bool relu) {
  const int64_t L = d.OH * d.OW, Kg = d.Kg(), taps = d.KH * d.KW;
  run_tasks(d.N * d.K, true, [&](int64_t t) {  // task (n, k): y[n, k] (OH, OW)
    const int64_t n = t / d.K, k = t % d.K;
    const T* __restrict x_c = x + (n * d.C + k / Kg) * d.H * d.W;  // the group's channel (H, W)
    const T* w_k = w + k * taps;                                    // (KH, KW)
    T* __restrict y_k = y + t * L;
    std::fill(y_k, y_k + L, b ? b[k] : T(0));
    for (int64_t i = 0; i < d.KH; ++i) {
      int64_t oh_lo, oh_hi;
      valid_range(d.H, d.OH, d.SH, d.PH, i * d.DH, oh_lo, oh_hi);
      for (int64_t j = 0; j < d.KW; ++j) {  // tap (i, j): y_k += w_k[i, j] * shifted x_c
        int64_t ow_lo, ow_hi;
        valid_range(d.W, d.OW, d.SW, d.PW, j * d.DW, ow_lo, ow_hi);
        const T wv = w_k[i * d.KW + j];
        const int64_t off = j * d.DW - d.PW;  // iw = ow*SW + off
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          T* __restrict y_row = y_k + oh * d.OW;                                   // (OW,)
          const T* __restrict x_row = x_c + (oh * d.SH - d.PH + i * d.DH) * d.W;   // (W,)
          if (d.SW == 1) {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) y_row[ow] += wv * x_row[ow + off];
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) y_row[ow] += wv * x_row[ow * d.SW + off];
          }
        }
        if (!std::isfinite(wv)) {  // padding reads as 0, and 0 * inf or NaN is NaN
          for (int64_t oh = 0; oh < d.OH; ++oh) {
            const bool row_in = oh >= oh_lo && oh < oh_hi;
            for (int64_t ow = 0; ow < d.OW; ++ow)
              if (!row_in || ow < ow_lo || ow >= ow_hi) y_k[oh * d.OW + ow] += wv * T(0);
          }
        }
      }
    }
    if (relu) relu_block(y_k, 1, L, L);
  });
}

template <typename T>
void backward_data_depthwise(T* dx, const T* dy, const T* w, const ConvDims& d) {
  const int64_t L = d.OH * d.OW, Kg = d.Kg(), taps = d.KH * d.KW;
  run_tasks(d.N * d.C, true, [&](int64_t t) {  // task (n, c): dx[n, c] (H, W); group g = c
    const int64_t n = t / d.C, c = t % d.C;
    T* __restrict dx_c = dx + t * d.H * d.W;
    std::fill(dx_c, dx_c + d.H * d.W, T(0));
    for (int64_t k = c * Kg; k < (c + 1) * Kg; ++k) {  // the group's output channels
      const T* __restrict dy_k = dy + (n * d.K + k) * L;  // (OH, OW)
      for (int64_t i = 0; i < d.KH; ++i) {
        int64_t oh_lo, oh_hi;
        valid_range(d.H, d.OH, d.SH, d.PH, i * d.DH, oh_lo, oh_hi);
        for (int64_t j = 0; j < d.KW; ++j) {  // tap (i, j): scatter w[k, 0, i, j] * dy_k
          int64_t ow_lo, ow_hi;
          valid_range(d.W, d.OW, d.SW, d.PW, j * d.DW, ow_lo, ow_hi);
          const T wv = w[k * taps + i * d.KW + j];
          const int64_t off = j * d.DW - d.PW;
          for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
            T* __restrict dx_row = dx_c + (oh * d.SH - d.PH + i * d.DH) * d.W;  // (W,)
            const T* __restrict dy_row = dy_k + oh * d.OW;                     // (OW,)
            if (d.SW == 1) {
              for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dx_row[ow + off] += wv * dy_row[ow];
            } else {
              for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dx_row[ow * d.SW + off] += wv * dy_row[ow];
            }
          }
        }
      }
    }
  });
}

template <typename T>
void backward_weight_depthwise(T* dw, const T* dy, const T* x, const ConvDims& d) {
  const int64_t L = d.OH * d.OW, Kg = d.Kg();
  run_tasks(d.K, true, [&](int64_t k) {  // task k: dw[k, 0] (KH, KW), from channel c = k / Kg
    const int64_t c = k / Kg;
    for (int64_t i = 0; i < d.KH; ++i) {
      int64_t oh_lo, oh_hi;
      valid_range(d.H, d.OH, d.SH, d.PH, i * d.DH, oh_lo, oh_hi);
      for (int64_t j = 0; j < d.KW; ++j) {  // dw[k, 0, i, j] = sum_{n, oh, ow} dy * x, in double
        int64_t ow_lo, ow_hi;
        valid_range(d.W, d.OW, d.SW, d.PW, j * d.DW, ow_lo, ow_hi);
        const int64_t off = j * d.DW - d.PW;
        double s = 0;
        const auto pad = [&s](T v) {  // dy at a position where this tap reads the padding
          if (!std::isfinite(v)) s += static_cast<double>(v) * 0.0;
        };
        for (int64_t n = 0; n < d.N; ++n) {
          const T* dy_k = dy + (n * d.K + k) * L;             // (OH, OW)
          const T* x_c = x + (n * d.C + c) * d.H * d.W;       // (H, W)
          for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
            const T* dy_row = dy_k + oh * d.OW;
            const T* x_row = x_c + (oh * d.SH - d.PH + i * d.DH) * d.W;
#pragma omp simd reduction(+ : s)
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow)
              s += static_cast<double>(dy_row[ow]) * static_cast<double>(x_row[ow * d.SW + off]);
          }
          // Where this tap reads the padding x is 0: dy * 0 adds nothing unless dy is inf or
          // NaN, which makes the sum NaN (as in the reference).
          for (int64_t oh = 0; oh < d.OH; ++oh) {
            const T* dy_row = dy_k + oh * d.OW;
            if (oh < oh_lo || oh >= oh_hi) {
              for (int64_t ow = 0; ow < d.OW; ++ow) pad(dy_row[ow]);
            } else {
              for (int64_t ow = 0; ow < ow_lo; ++ow) pad(dy_row[ow]);
              for (int64_t ow = ow_hi; ow < d.OW; ++ow) pad(dy_row[ow]);
            }
          }
        }
        dw[(k * d.KH + i) * d.KW + j] = static_cast<T>(s);
      }
    }
  });
}

#define CF_INSTANTIATE(T)                                                                    \
  template void forward_depthwise<T>(T*, const T*, const T*, const T*, const ConvDims&, bool); \
  template void backward_data_depthwise<T>(T*, const T*, const T*, const ConvDims&);         \
  template void backward_weight_depthwise<T>(T*, const T*, const T*, const ConvDims&);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge::conv_impl
