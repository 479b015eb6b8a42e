// im2col_gemm, gemm_pointwise and im2col_gemm_batch: convolution as blocked GEMMs
// (convforge/gemm.hpp) on im2col blocks (pointwise: x and dx are the GEMM operands directly).
// Layouts: cols (R = Cg*KH*KW rows per group, L = OH*OW columns); dw_g (Kg, R).
// Parallel axis: forward (image, column block); data (image, group, channel block); weight
// (group, channel block), each summing over images and column blocks in a fixed order;
// im2col_gemm_batch: batch chunks (dw_chunks()), partials added in chunk order. With fewer
// tasks than threads the tasks run in turn and each GEMM splits its C over the threads.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "algos.hpp"
#include "convforge/conv2d.hpp"
#include "convforge/gemm.hpp"
#include "partials.hpp"
#include "runtime/tasks.hpp"

namespace convforge::conv_impl {
namespace {

// Columns per im2col block of `rows` rows: about kBlockElems elements, a multiple of kMinCols.
// Depends on the shapes only (it fixes the order of the dw sums).
int64_t column_block(int64_t rows, int64_t L) {
  const int64_t lb = kBlockElems / std::max<int64_t>(rows, 1) / kMinCols * kMinCols;
  return std::min(std::max(lb, kMinCols), L);
}

// Columns per forward im2col block: balanced blocks of about kFwdBlockElems elements, at least
// kFwdMinCols columns: every block re-packs the whole weight matrix (Kg, R), so a deep layer
// (R = 4608 at VGG's 512 channels) needs wide blocks to amortise it. Results do not depend on
// it (each output element is one GEMM dot product of depth R).
int64_t forward_column_block(int64_t rows, int64_t L) {
  const int64_t target = std::max(kFwdBlockElems / std::max<int64_t>(rows, 1), kFwdMinCols);
  return ceil_div(L, ceil_div(L, target));
}

}  // namespace

template <typename T>
void forward_gemm(T* y, const T* x, const T* w, const T* b, const ConvDims& d, bool pointwise,
                  bool relu) {
  const int64_t L = d.OH * d.OW, Kg = d.Kg(), R = d.Cg() * d.KH * d.KW;
  const int64_t LB = pointwise ? L : forward_column_block(d.C * d.KH * d.KW, L);
  const int64_t nb = ceil_div(L, LB), tasks = d.N * nb;
  const bool outer = tasks >= max_threads();  // else: tasks in turn, each GEMM parallel
  run_tasks(tasks, outer, [&](int64_t t) {    // task: image n, columns [l0, l0+lb)
    const int64_t n = t / nb, l0 = (t % nb) * LB, lb = std::min(LB, L - l0);
    const T* x_n = x + n * d.C * d.H * d.W;  // x_n: x[n] (C, H, W)
    const T* cols = x_n + l0;                // pointwise: x_n is already cols (C, L)
    int64_t ldb = L;
    if (!pointwise) {  // cols: (C*KH*KW, lb)
      T* buf = scratch<T>(d.C * d.KH * d.KW * lb);
      im2col_block(buf, x_n, 0, d.C, l0, l0 + lb, d);
      cols = buf;
      ldb = lb;
    }
    for (int64_t g = 0; g < d.G; ++g) {  // y[n, g*Kg:(g+1)*Kg, l0:l0+lb] (Kg, lb)
      const GemmDims gd{Kg, lb, R, /*lda*/ R, ldb, /*ldc*/ L, false, false, false};
      T* y_g = y + (n * d.K + g * Kg) * L + l0;
      gemm(y_g, w + g * Kg * R, cols + g * R * ldb, b ? b + g * Kg : nullptr, gd, !outer);
      if (relu) relu_block(y_g, Kg, lb, L);
    }
  });
}

template <typename T>
void backward_data_gemm(T* dx, const T* dy, const T* w, const ConvDims& d, bool pointwise) {
  const int64_t L = d.OH * d.OW, Kg = d.Kg(), Cg = d.Cg(), taps = d.KH * d.KW, R = Cg * taps;
  // Channel blocks: dcols (Cb*KH*KW, L) of about kBlockElems elements, balanced.
  int64_t nb = pointwise ? 1 : ceil_div(Cg, std::clamp<int64_t>(kBlockElems / (taps * L), 1, Cg));
  const int64_t Cb = ceil_div(Cg, nb);
  nb = ceil_div(Cg, Cb);
  const int64_t tasks = d.N * d.G * nb;
  const bool outer = tasks >= max_threads();
  run_tasks(tasks, outer, [&](int64_t t) {  // task: image n, group g, channels [c0, c0+cb)
    const int64_t n = t / (d.G * nb), g = (t / nb) % d.G, c0 = (t % nb) * Cb;
    const int64_t cb = std::min(Cb, Cg - c0), rows = cb * taps;
    T* dx_c = dx + (n * d.C + g * Cg + c0) * d.H * d.W;  // dx[n, g*Cg+c0 : +cb] (cb, H, W)
    T* dcols = pointwise ? dx_c : scratch<T>(rows * L);  // (rows, L)
    // dcols = W_g[:, c0*taps : c0*taps+rows]^T (rows, Kg) . dy[n, g*Kg:(g+1)*Kg] (Kg, L)
    const GemmDims gd{rows, L, Kg, /*lda*/ R, /*ldb*/ L, /*ldc*/ L, true, false, false};
    gemm(dcols, w + g * Kg * R + c0 * taps, dy + (n * d.K + g * Kg) * L,
         static_cast<const T*>(nullptr), gd, !outer);
    if (!pointwise) col2im_block(dx_c, dcols, cb, d);
  });
}

template <typename T>
void backward_weight_gemm(T* dw, const T* dy, const T* x, const ConvDims& d, bool pointwise) {
  const int64_t L = d.OH * d.OW, Kg = d.Kg(), Cg = d.Cg(), taps = d.KH * d.KW, R = Cg * taps;
  // Channel blocks: about kDwCols columns of dw_g each, balanced; column blocks of the sum.
  int64_t nb = std::clamp<int64_t>(ceil_div(R, kDwCols), 1, Cg);
  const int64_t Cb = ceil_div(Cg, nb);
  nb = ceil_div(Cg, Cb);
  const int64_t LB = pointwise ? L : column_block(Cb * taps, L), nl = ceil_div(L, LB);
  const int64_t tasks = d.G * nb;
  const bool outer = tasks >= max_threads();
  run_tasks(tasks, outer, [&](int64_t t) {  // task: group g, channels [c0, c0+cb)
    const int64_t g = t / nb, c0 = (t % nb) * Cb, cb = std::min(Cb, Cg - c0), rows = cb * taps;
    T* dw_c = dw + g * Kg * R + c0 * taps;  // dw_g[:, c0*taps : +rows] (Kg, rows), row stride R
    for (int64_t n = 0; n < d.N; ++n) {
      for (int64_t lbi = 0; lbi < nl; ++lbi) {  // sum over columns [l0, l0+lb) of image n
        const int64_t l0 = lbi * LB, lb = std::min(LB, L - l0);
        const T* cols = x + (n * d.C + g * Cg + c0) * d.H * d.W + l0;  // pointwise: (cb, L)
        int64_t ldb = L;
        if (!pointwise) {  // cols: (rows, lb)
          T* buf = scratch<T>(rows * lb);
          im2col_block(buf, x + n * d.C * d.H * d.W, g * Cg + c0, g * Cg + c0 + cb, l0, l0 + lb, d);
          cols = buf;
          ldb = lb;
        }
        // dw_c (Kg, rows) += dy[n, g*Kg:(g+1)*Kg, l0:l0+lb] (Kg, lb) . cols^T (lb, rows)
        const GemmDims gd{Kg, rows, lb, /*lda*/ L, ldb, /*ldc*/ R, false, true,
                          /*accumulate*/ n > 0 || lbi > 0};
        gemm(dw_c, dy + (n * d.K + g * Kg) * L + l0, cols, static_cast<const T*>(nullptr), gd,
             !outer);
      }
    }
  });
}

// Images of chunk q (of nq chunks, dw_chunks() in partials.hpp): [N*q/nq, N*(q+1)/nq).
// Each chunk sums its transposed partial dw_q^T (G, R, Kg) = sum cols_g (R, cw) . dy_g^T
// (cw, Kg): the GEMM then packs the small operand (dy, Kg rows) transposed and reads the
// large one (cols, R rows) along its rows; dw (K, R) = dw_0^T + dw_1^T + ... in chunk order.
template <typename T>
void backward_weight_batch(T* dw, T* db, const T* dy, const T* x, const ConvDims& d,
                           bool pointwise) {
  const int64_t L = d.OH * d.OW, Kg = d.Kg(), Cg = d.Cg(), taps = d.KH * d.KW, R = Cg * taps;
  const int64_t rows = d.C * taps;  // im2col rows of all groups
  const int64_t dw_elems = d.K * R;
  const int64_t nq = dw_chunks(d, dw_elems);
  // Columns of one GEMM (its depth): whole images side by side when an image has fewer than
  // the target, else balanced column blocks of one image. Operands (rows + K, columns) of
  // about kDwGemmElems elements, at least kDwMinCols columns (fixed by the shapes).
  const int64_t target = std::max(kDwGemmElems / (rows + d.K) / kMinCols * kMinCols, kDwMinCols);
  const int64_t nl = ceil_div(L, target);
  const int64_t LB = ceil_div(L, nl);  // columns of an image per GEMM
  const int64_t imgs = L >= target ? 1 : std::max<int64_t>(target / L, 1);
  const T* part = run_dw_chunks(db, d, nq, dw_elems, [&](int64_t, int64_t n0, int64_t n1,
                                                          T* dwt_q, double* db_q, bool inner) {
    bool first = true;  // dwt_q: (G, R, Kg), part: (nq, G, R, Kg)
    for (int64_t na = n0; na < n1; na += imgs) {
      const int64_t nb = std::min(n1, na + imgs) - na;  // images [na, na + nb)
      for (int64_t l0 = 0; l0 < L; l0 += LB) {          // columns [l0, l0 + lb) of each
        const int64_t lb = std::min(LB, L - l0), cw = nb * lb;
        const T *dyb = dy + na * d.K * L + l0, *cols = x + na * d.C * L + l0;  // pointwise: x
        int64_t ldd = L, ldc = L;
        if (nb > 1) {  // dy images side by side: (K, cw); cols (rows, cw)
          T* buf = scratch<T>(d.K * cw + (pointwise ? d.C : rows) * cw);
          T* cb = buf + d.K * cw;
          for (int64_t m = 0; m < nb; ++m) {
            const T* dy_n = dy + (na + m) * d.K * L;  // (K, L)
            for (int64_t k = 0; k < d.K; ++k)
              std::memcpy(buf + k * cw + m * lb, dy_n + k * L + l0, lb * sizeof(T));
            if (pointwise) {
              const T* x_n = x + (na + m) * d.C * L;  // (C, L)
              for (int64_t c = 0; c < d.C; ++c)
                std::memcpy(cb + c * cw + m * lb, x_n + c * L + l0, lb * sizeof(T));
            } else {
              im2col_block(cb + m * lb, cw, x + (na + m) * d.C * d.H * d.W, 0, d.C, l0,
                           l0 + lb, d);
            }
          }
          dyb = buf;
          cols = cb;
          ldd = ldc = cw;
        } else if (!pointwise) {  // one image: cols (rows, lb)
          T* cb = scratch<T>(rows * lb);
          im2col_block(cb, x + na * d.C * d.H * d.W, 0, d.C, l0, l0 + lb, d);
          cols = cb;
          ldc = lb;
        }
        for (int64_t g = 0; g < d.G; ++g) {
          // dw_q,g^T (R, Kg) (+)= cols_g (R, cw) . dy block^T (cw, Kg)
          const GemmDims gd{R, Kg, cw, ldc, ldd, /*ldc*/ Kg, false, true, !first};
          gemm(dwt_q + g * R * Kg, cols + g * R * ldc, dyb + g * Kg * ldd,
               static_cast<const T*>(nullptr), gd, inner);
        }
        first = false;
      }
      if (db_q) add_db_partial(db_q, dy, na, na + nb, d);
    }
  });
  // dw[g*Kg + k, r] = part[0, g, r, k] + part[1, g, r, k] + ..., in chunk order. Tasks: blocks
  // of kTb rows r of a group; each sums its (rb, Kg) block of the partials into a buffer
  // and writes it transposed.
  constexpr int64_t kTb = 64;
  const int64_t rblocks = ceil_div(R, kTb);
  run_tasks(d.G * rblocks, dw_elems >= (int64_t(1) << 15), [&](int64_t t) {
    const int64_t g = t / rblocks, r0 = (t % rblocks) * kTb, rb = std::min(kTb, R - r0);
    T* sum = scratch<T>(rb * Kg);  // (rb, Kg)
    const T* p0 = part + (g * R + r0) * Kg;
    std::copy(p0, p0 + rb * Kg, sum);
    for (int64_t q = 1; q < nq; ++q) {
      const T* pq = p0 + q * dw_elems;
      for (int64_t e = 0; e < rb * Kg; ++e) sum[e] += pq[e];
    }
    for (int64_t k = 0; k < Kg; ++k) {  // dw[g*Kg + k, r0 : r0 + rb] <- sum[:, k]
      T* dst = dw + (g * Kg + k) * R + r0;
      for (int64_t r = 0; r < rb; ++r) dst[r] = sum[r * Kg + k];
    }
  });
}

#define CF_INSTANTIATE(T)                                                                    \
  template void forward_gemm<T>(T*, const T*, const T*, const T*, const ConvDims&, bool, bool); \
  template void backward_data_gemm<T>(T*, const T*, const T*, const ConvDims&, bool);        \
  template void backward_weight_gemm<T>(T*, const T*, const T*, const ConvDims&, bool);      \
  template void backward_weight_batch<T>(T*, T*, const T*, const T*, const ConvDims&, bool);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge::conv_impl
