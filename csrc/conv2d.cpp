// conv2d forward, backward data and backward weight (CPU, float and double).
//
// Layouts: x (N, C, H, W), w (K, Cg, KH, KW) with Cg = C/G, b (K,), y and dy (N, K, OH, OW).
// Formula (cross-correlation, group g = k / Kg, Kg = K/G):
//   y[n,k,oh,ow] = b[k] + sum_{c<Cg,i,j} x[n, g*Cg+c, oh*SH-PH+i*DH, ow*SW-PW+j*DW] * w[k,c,i,j]
// with x read as zero in the padding. dx, dw, db are its gradients given dy.
// Every kernel OVERWRITES its outputs.
//
// Algorithms (picked by choose_conv_algo(), the one place that decides):
//   im2col_gemm: per image, unfold a block of cols (R = Cg*KH*KW rows per group, L = OH*OW
//     columns) into a thread-local buffer and run the blocked GEMM (gemm.hpp):
//       forward   y_n,g (Kg, L) = W_g (Kg, R) cols_n,g (R, L) + b      tasks: (n, column block)
//       data      dcols (R, L) = W_g^T dy_n,g, dx_n = col2im(dcols)  tasks: (n, g, channel block)
//       weight    dw_g (Kg, R) = sum_n dy_n,g (Kg, L) cols_n,g^T        tasks: (g, channel block),
//                 each summing over n and column blocks in a fixed order
//   gemm_pointwise: 1x1 / stride 1 / no padding: x and dx are used as cols directly.
//   direct_depthwise: Cg == 1 (depthwise, also with a channel multiplier): plane-by-plane
//     direct convolution; tasks (n, k) forward, (n, c) data, k weight.
//   naive: plain loops (also exposed as *_naive: the second reference for tests).
// Parallel axis: the tasks above (N for forward/data, output channels of dw for weight). When
// there are fewer tasks than threads, the tasks run in turn and each GEMM splits its C over the
// threads instead. Either way each output element is computed by one thread in an order fixed
// by the shapes alone, so results are bit-identical for any thread count (no atomics).
// db: each k sums dy over (n, oh, ow) in that order, in double, parallel over k.
#include "convforge/conv2d.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>

#include "convforge/cpu.hpp"
#include "convforge/gemm.hpp"
#include "convforge/winograd.hpp"

namespace convforge {
namespace {

using detail::valid_range;

constexpr int64_t kBlockElems = int64_t(1) << 18;    // target im2col/dcols block per thread
constexpr int64_t kMinCols = 64;                     // fewest columns in an im2col block
constexpr int64_t kDwCols = 256;                     // target dw columns per weight task
constexpr int64_t kMaxBlockBytes = int64_t(1) << 30; // smallest block above this: naive

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Columns per im2col block of `rows` rows: about kBlockElems elements, a multiple of kMinCols.
// Depends on the shapes only (it fixes the order of the dw sums).
int64_t column_block(int64_t rows, int64_t L) {
  const int64_t lb = kBlockElems / std::max<int64_t>(rows, 1) / kMinCols * kMinCols;
  return std::min(std::max(lb, kMinCols), L);
}

// Per-thread, grow-only, 64-byte aligned scratch buffer (kept between calls).
template <typename T>
T* scratch(int64_t n) {
  struct Buffer {
    T* p = nullptr;
    int64_t n = 0;
    ~Buffer() { std::free(p); }
  };
  static thread_local Buffer buf;
  if (n > buf.n) {
    std::free(buf.p);
    buf.n = 0;
    const size_t bytes = (static_cast<size_t>(n) * sizeof(T) + 63) / 64 * 64;
    buf.p = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!buf.p) throw std::bad_alloc();
    buf.n = n;
  }
  return buf.p;
}

// Runs body(t) for t in [0, tasks): on the OpenMP threads when parallel, else in turn. An
// exception in a task is re-thrown here after the loop (OpenMP must never see one).
template <typename F>
void run_tasks(int64_t tasks, bool parallel, const F& body) {
  if (!parallel) {
    for (int64_t t = 0; t < tasks; ++t) body(t);
    return;
  }
  std::exception_ptr error = nullptr;
CF_OMP_FOR(schedule(dynamic, 1))
  for (int64_t t = 0; t < tasks; ++t) {
    try {
      body(t);
    } catch (...) {
CF_OMP(omp critical(convforge_conv_error))
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// db[k] = sum_{n, l} dy[n, k, l], in double, in the order (n, l).
template <typename T>
void bias_grad(T* db, const T* dy, const ConvDims& d) {
  const int64_t L = d.OH * d.OW;
  run_tasks(d.K, true, [&](int64_t k) {
    double s = 0;
    for (int64_t n = 0; n < d.N; ++n) {  // dy_k: dy[n, k] (L,)
      const T* dy_k = dy + (n * d.K + k) * L;
      for (int64_t l = 0; l < L; ++l) s += dy_k[l];
    }
    db[k] = static_cast<T>(s);
  });
}

// ---------------------------------------------------------------- im2col + GEMM

template <typename T>
void forward_gemm(T* y, const T* x, const T* w, const T* b, const ConvDims& d, bool pointwise) {
  const int64_t L = d.OH * d.OW, Kg = d.Kg(), R = d.Cg() * d.KH * d.KW;
  const int64_t LB = pointwise ? L : column_block(d.C * d.KH * d.KW, L);
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
      gemm(y + (n * d.K + g * Kg) * L + l0, w + g * Kg * R, cols + g * R * ldb,
           b ? b + g * Kg : nullptr, gd, !outer);
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

// ---------------------------------------------------------------- direct depthwise (Cg == 1)

template <typename T>
void forward_depthwise(T* y, const T* x, const T* w, const T* b, const ConvDims& d) {
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

}  // namespace

// ---------------------------------------------------------------- algorithm choice

ConvAlgo choose_conv_algo(const ConvDims& d, int64_t elem_bytes) {
  if (d.Cg() == 1) return ConvAlgo::direct_depthwise;
  if (d.KH == 1 && d.KW == 1 && d.SH == 1 && d.SW == 1 && d.PH == 0 && d.PW == 0 &&
      d.OH == d.H && d.OW == d.W)
    return ConvAlgo::gemm_pointwise;
  // Smallest blocks the im2col path needs: forward (C*KH*KW, kMinCols), data (KH*KW, OH*OW).
  const int64_t taps = d.KH * d.KW, L = d.OH * d.OW;
  const int64_t smallest = std::max(d.C * taps * std::min(kMinCols, L), taps * L);
  if (smallest * elem_bytes > kMaxBlockBytes) return ConvAlgo::naive;
  if (winograd_preferred(d, elem_bytes)) return ConvAlgo::winograd;  // heuristic: winograd.cpp
  return ConvAlgo::im2col_gemm;
}

const char* conv_algo_name(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::naive: return "naive";
    case ConvAlgo::direct_depthwise: return "direct_depthwise";
    case ConvAlgo::gemm_pointwise: return "gemm_pointwise";
    case ConvAlgo::winograd: return "winograd";
    default: return "im2col_gemm";
  }
}

// ---------------------------------------------------------------- public kernels

template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvDims& d) {
  switch (choose_conv_algo(d, sizeof(T))) {
    case ConvAlgo::naive: conv2d_forward_naive(y, x, w, b, d); break;
    case ConvAlgo::direct_depthwise: forward_depthwise(y, x, w, b, d); break;
    case ConvAlgo::gemm_pointwise: forward_gemm(y, x, w, b, d, true); break;
    case ConvAlgo::im2col_gemm: forward_gemm(y, x, w, b, d, false); break;
    case ConvAlgo::winograd: winograd_conv2d_forward(y, x, w, b, d); break;
  }
}

template <typename T>
void conv2d_backward_data(T* dx, const T* dy, const T* w, const ConvDims& d) {
  switch (choose_conv_algo(d, sizeof(T))) {
    case ConvAlgo::naive: conv2d_backward_data_naive(dx, dy, w, d); break;
    case ConvAlgo::direct_depthwise: backward_data_depthwise(dx, dy, w, d); break;
    case ConvAlgo::gemm_pointwise: backward_data_gemm(dx, dy, w, d, true); break;
    case ConvAlgo::im2col_gemm: backward_data_gemm(dx, dy, w, d, false); break;
    case ConvAlgo::winograd: winograd_conv2d_backward_data(dx, dy, w, d); break;
  }
}

template <typename T>
void conv2d_backward_weight(T* dw, T* db, const T* dy, const T* x, const ConvDims& d) {
  switch (choose_conv_algo(d, sizeof(T))) {
    case ConvAlgo::naive: conv2d_backward_weight_naive(dw, db, dy, x, d); return;
    case ConvAlgo::direct_depthwise: backward_weight_depthwise(dw, dy, x, d); break;
    case ConvAlgo::gemm_pointwise: backward_weight_gemm(dw, dy, x, d, true); break;
    case ConvAlgo::winograd:  // no Winograd weight gradient: the im2col GEMM path
    case ConvAlgo::im2col_gemm: backward_weight_gemm(dw, dy, x, d, false); break;
  }
  if (db) bias_grad(db, dy, d);
}

// ---------------------------------------------------------------- naive kernels

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
              const bool inside = ih >= 0 && ih < d.H && iw >= 0 && iw < d.W;
              const T xv = inside ? x[((n * d.C + g * Cg + c) * d.H + ih) * d.W + iw] : T(0);
              acc += xv * w[((k * Cg + c) * d.KH + i) * d.KW + j];  // padding reads as 0
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
                const bool inside = ih >= 0 && ih < d.H && iw >= 0 && iw < d.W;
                const T xv = inside ? x[((n * d.C + g * Cg + c) * d.H + ih) * d.W + iw] : T(0);
                acc += dy[((n * d.K + k) * d.OH + oh) * d.OW + ow] * xv;  // padding reads as 0
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

#define CF_INSTANTIATE(T)                                                                     \
  template void conv2d_forward<T>(T*, const T*, const T*, const T*, const ConvDims&);        \
  template void conv2d_backward_data<T>(T*, const T*, const T*, const ConvDims&);            \
  template void conv2d_backward_weight<T>(T*, T*, const T*, const T*, const ConvDims&);      \
  template void conv2d_forward_naive<T>(T*, const T*, const T*, const T*, const ConvDims&);  \
  template void conv2d_backward_data_naive<T>(T*, const T*, const T*, const ConvDims&);      \
  template void conv2d_backward_weight_naive<T>(T*, T*, const T*, const T*, const ConvDims&);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge
