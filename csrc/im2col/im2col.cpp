// im2col / col2im: unfold receptive fields into columns, and the adjoint fold.
//
// Layouts: x (N, C, H, W); cols (N, C*KH*KW, OH*OW), row r = (c*KH + i)*KW + j, column
// l = oh*OW + ow. Formula: cols[n, r, l] = x[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW], zero
// where that lies in the padding; col2im sums every cols entry back into that x element
// (overlapping windows add up), which makes it the adjoint of im2col.
// Parallel axis: N*C (each (n, c) owns its KH*KW rows of cols and its plane of x: no races, and
// each x element is summed in a fixed order (i, j, oh, ow) for any thread count).
// Outputs are overwritten. The *_block functions are sequential and are also used by the conv
// kernels in csrc/conv/im2col_gemm.cpp on blocks of channels and columns.
#include <algorithm>
#include <cstring>

#include "convforge/conv2d.hpp"
#include "convforge/cpu.hpp"

namespace convforge {

using detail::valid_range;

template <typename T>
void im2col_block(T* __restrict cols, int64_t lb, const T* __restrict x_n, int64_t c0,
                  int64_t c1, int64_t l0, int64_t l1, const ConvDims& d) {
  // lb: row stride of cols (>= l1 - l0)
  for (int64_t c = c0; c < c1; ++c) {  // x_c: x_n[c] (H, W)
    const T* x_c = x_n + c * d.H * d.W;
    for (int64_t i = 0; i < d.KH; ++i) {
      for (int64_t j = 0; j < d.KW; ++j) {  // row (c - c0, i, j) of cols: (lb,)
        T* row = cols + (((c - c0) * d.KH + i) * d.KW + j) * lb;
        int64_t ow_lo, ow_hi;  // ow whose iw is inside x
        valid_range(d.W, d.OW, d.SW, d.PW, j * d.DW, ow_lo, ow_hi);
        for (int64_t l = l0; l < l1;) {  // one output row oh: ow in [ow_a, ow_b)
          const int64_t oh = l / d.OW, ow_a = l - oh * d.OW;
          const int64_t ow_b = std::min(d.OW, ow_a + (l1 - l));
          T* dst = row + (l - l0) - ow_a;  // dst[ow]
          const int64_t ih = oh * d.SH - d.PH + i * d.DH;
          if (ih < 0 || ih >= d.H) {
            std::fill(dst + ow_a, dst + ow_b, T(0));
          } else {
            const int64_t lo = std::clamp(ow_lo, ow_a, ow_b), hi = std::clamp(ow_hi, lo, ow_b);
            const T* x_row = x_c + ih * d.W;  // x_row[iw], iw = ow*SW - PW + j*DW
            std::fill(dst + ow_a, dst + lo, T(0));
            if (d.SW == 1) {
              if (hi > lo)
                std::memcpy(dst + lo, x_row + lo - d.PW + j * d.DW, (hi - lo) * sizeof(T));
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = x_row[ow * d.SW - d.PW + j * d.DW];
            }
            std::fill(dst + hi, dst + ow_b, T(0));
          }
          l += ow_b - ow_a;
        }
      }
    }
  }
}

template <typename T>
void im2col_block(T* cols, const T* x_n, int64_t c0, int64_t c1, int64_t l0, int64_t l1,
                  const ConvDims& d) {
  im2col_block(cols, l1 - l0, x_n, c0, c1, l0, l1, d);
}

template <typename T>
void col2im_block(T* __restrict x_c, const T* __restrict cols, int64_t nc, const ConvDims& d) {
  const int64_t L = d.OH * d.OW;
  for (int64_t c = 0; c < nc; ++c) {  // plane: x_c[c] (H, W)
    T* plane = x_c + c * d.H * d.W;
    std::fill(plane, plane + d.H * d.W, T(0));
    for (int64_t i = 0; i < d.KH; ++i) {
      int64_t oh_lo, oh_hi;  // oh whose ih is inside x
      valid_range(d.H, d.OH, d.SH, d.PH, i * d.DH, oh_lo, oh_hi);
      for (int64_t j = 0; j < d.KW; ++j) {  // row (c, i, j) of cols: (OH, OW)
        const T* row = cols + ((c * d.KH + i) * d.KW + j) * L;
        int64_t ow_lo, ow_hi;
        valid_range(d.W, d.OW, d.SW, d.PW, j * d.DW, ow_lo, ow_hi);
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          T* x_row = plane + (oh * d.SH - d.PH + i * d.DH) * d.W;  // x_row[iw]
          const T* src = row + oh * d.OW;                          // src[ow]
          const int64_t off = j * d.DW - d.PW;                     // iw = ow*SW + off
          if (d.SW == 1) {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) x_row[ow + off] += src[ow];
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) x_row[ow * d.SW + off] += src[ow];
          }
        }
      }
    }
  }
}

template <typename T>
void im2col(T* cols, const T* x, const ConvDims& d) {
  const int64_t L = d.OH * d.OW, rows = d.KH * d.KW;  // per channel: rows x L block of cols
CF_OMP_FOR(schedule(static))
  for (int64_t nc = 0; nc < d.N * d.C; ++nc) {  // (n, c): cols[n, c*KH*KW : (c+1)*KH*KW] (KH*KW, L)
    const int64_t n = nc / d.C, c = nc % d.C;
    im2col_block(cols + nc * rows * L, x + n * d.C * d.H * d.W, c, c + 1, 0, L, d);
  }
}

template <typename T>
void col2im(T* x, const T* cols, const ConvDims& d) {
  const int64_t L = d.OH * d.OW, rows = d.KH * d.KW;
CF_OMP_FOR(schedule(static))
  for (int64_t nc = 0; nc < d.N * d.C; ++nc)  // (n, c): x[n, c] (H, W) from (KH*KW, L) rows
    col2im_block(x + nc * d.H * d.W, cols + nc * rows * L, 1, d);
}

#define CF_INSTANTIATE(T)                                                                      \
  template void im2col_block<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t,             \
                                const ConvDims&);                                             \
  template void im2col_block<T>(T*, int64_t, const T*, int64_t, int64_t, int64_t, int64_t,    \
                                const ConvDims&);                                             \
  template void col2im_block<T>(T*, const T*, int64_t, const ConvDims&);                      \
  template void im2col<T>(T*, const T*, const ConvDims&);                                     \
  template void col2im<T>(T*, const T*, const ConvDims&);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge
