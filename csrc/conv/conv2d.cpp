// conv2d forward, backward data and backward weight (CPU, float and double).
//
// Layouts: x (N, C, H, W), w (K, Cg, KH, KW) with Cg = C/G, b (K,), y and dy (N, K, OH, OW).
// Formula (cross-correlation, group g = k / Kg, Kg = K/G):
//   y[n,k,oh,ow] = b[k] + sum_{c<Cg,i,j} x[n, g*Cg+c, oh*SH-PH+i*DH, ow*SW-PW+j*DW] * w[k,c,i,j]
// with x read as zero in the padding. dx, dw, db are its gradients given dy.
// Every kernel OVERWRITES its outputs.
//
// Algorithms (choose_conv_algo() picks one from the shapes alone, and the binding
// conv2d_algorithm reports that choice; but the data can still overrule it: direct_small gives
// way to conv_exact_algo() when w (backward data) or x (backward weight) holds an inf or NaN, in
// conv2d_backward_data / _weight below, and winograd does the same when x/dy or w does, in
// winograd.cpp; so a call can run another algorithm than the one reported):
//   im2col_gemm: per image, unfold a block of cols (R = Cg*KH*KW rows per group, L = OH*OW
//     columns) into a thread-local buffer and run the blocked GEMM (gemm.hpp):
//       forward   y_n,g (Kg, L) = W_g (Kg, R) cols_n,g (R, L) + b      tasks: (n, column block)
//       data      dcols (R, L) = W_g^T dy_n,g, dx_n = col2im(dcols)  tasks: (n, g, channel block)
//       weight    dw_g (Kg, R) = sum_n dy_n,g (Kg, L) cols_n,g^T        tasks: (g, channel block),
//                 each summing over n and column blocks in a fixed order
//   gemm_pointwise: 1x1 / stride 1 / no padding: x and dx are used as cols directly.
//   direct_depthwise: Cg == 1 (depthwise, also with a channel multiplier): plane-by-plane
//     direct convolution; tasks (n, k) forward, (n, c) data, k weight.
//   direct_small (stride 1; every direction): the image's channels of one group are copied into a
//     zero-padded buffer (Ci, Hp, Wp) and a per-ISA micro-kernel (conv2d_direct.hpp) computes
//     a few output channels x a few vectors of flattened positions p = oh*Wp + ow in registers,
//     looping over input channels and taps; the junk columns ow >= OW are dropped on copy-out.
//     The data direction is the same correlation of dy, padded by (KH-1)*DH - PH (top) and
//     (KW-1)*DW - PW (left), with the kernel rotated by 180 degrees and w's two channel axes
//     swapped: dx[c, ih, iw] = sum_{k,i,j} dy[k, ih + PH - i*DH, iw + PW - j*DW] w[k, c, i, j].
//     tasks (n, g) or (n, g, block of output channels).
//     Weight: dw[k, c, t] = sum_{n, p} dyp[n, k, p] xpad[n, c, p + offs[t]] with dy laid out
//     at the padded width (zero junk columns): lane-wise vector dot products per batch chunk
//     (chunks as in im2col_gemm_batch), lanes and chunks summed in a fixed order at the end.
//   im2col_gemm_batch (weight): the batch is cut into up to kDwChunks chunks (fixed by the
//     shapes: each sums at least kDwMinDepth image positions); each chunk sums its images
//     into its own transposed partial dw^T (R, Kg) = cols (R, depth) . dy^T with GEMMs of depth
//     "several images x OH*OW" (im2col of the images side by side), and its partial db in
//     double; the partials are then added in chunk order and written transposed. Tasks: chunks.
//   winograd (3x3, stride 1, dilation 1, G == 1; forward and data): F(4x4,3x3), 36 GEMMs per
//     chunk of tiles; see winograd.cpp (its accuracy and speed are documented there).
//   direct_kvec (forward, any stride; weight, stride 1): direct kernels vectorised along the
//     output channels (conv2d_direct.hpp: KvecTile, KvecDwTile). Forward: the input of one
//     image and group zero-padded once, then tiles of NK*VL output channels x R rows x S
//     columns in registers, one broadcast of the input per tap and position: no im2col.
//     Weight: x zero-padded and dy channel-last (blocks of KB channels) at the padded
//     positions, tiles of KB output channels x TB taps of one input channel summed over the
//     valid positions of a block of rows in registers: no im2col, no transposition of x.
//     Chunks and partials as im2col_gemm_batch (dw_chunks()).
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

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "conv2d_direct.hpp"
#include "convforge/checked.hpp"
#include "convforge/cpu.hpp"
#include "convforge/gemm.hpp"
#include "convforge/winograd.hpp"
#include "runtime/finite.hpp"
#include "runtime/tasks.hpp"

namespace convforge {
namespace {

using detail::valid_range;

constexpr int64_t kBlockElems = int64_t(1) << 18;    // target im2col/dcols block per thread
constexpr int64_t kMinCols = 64;                     // fewest columns in an im2col block
constexpr int64_t kFwdBlockElems = int64_t(1) << 20; // target forward im2col block per thread
constexpr int64_t kFwdMinCols = 256;                 // fewest columns of a forward block
constexpr int64_t kDwCols = 256;                     // target dw columns per weight task
constexpr int64_t kMaxBlockBytes = int64_t(1) << 30; // smallest block above this: naive
constexpr int64_t kDirectMaxChannels = 16;           // direct_small picked up to this many Ci
constexpr int64_t kDirectLimitChannels = 64;         // direct_small applies up to this many Ci
constexpr int64_t kDwChunks = 8;                     // batch chunks of im2col_gemm_batch
constexpr int64_t kDwBlockElems = int64_t(1) << 16;  // direct_small dw: batch block
constexpr int64_t kDwGemmElems = int64_t(1) << 18;   // im2col_gemm_batch: operands per GEMM
constexpr int64_t kDwMinCols = 256;                  // im2col_gemm_batch: fewest GEMM columns
constexpr int64_t kDwMinDepth = 1024;                // im2col_gemm_batch: fewest summed columns
                                                     // (images x positions) per batch chunk
constexpr int64_t kKvecDwPositions = 2048;        // direct_kvec dw: positions per call
constexpr int64_t kKvecDwBlockElems = int64_t(1) << 20;  // direct_kvec dw: images per block
constexpr int64_t kDwMaxPartElems = int64_t(1) << 23; // im2col_gemm_batch: most partial elements

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

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

// scratch<T, Tag> and run_tasks: runtime/tasks.hpp. Scratch tags of this file:
constexpr int TaskTag = 0;  // per-task work buffers
constexpr int PartTag = 1;  // dw partials held by the caller while tasks run

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

// ---------------------------------------------------------------- direct small-channel (stride 1)

// One stride-1 correlation per (image n, group g): out (Co, Ho, Wo) from in (Ci, Hi, Wi), where
// row r / column s of the zero-padded plane (Hp, Wp) = (Ho + (KH-1)*DH, Wo + (KW-1)*DW) is
// in row r - pt / column s - pl (pt, pl may be negative: a crop).
struct DirectProblem {
  int64_t N, G;
  int64_t Ci, Hi, Wi;          // input channels and plane per group
  int64_t Co, Ho, Wo;          // output channels and plane per group
  int64_t KH, KW, DH, DW;      // kernel and dilation
  int64_t pt, pl;              // top / left padding
  int64_t in_n, in_g;          // element strides of an image and a group in `in`
  int64_t out_n, out_g;        // ... in `out`
};

// dst (ci, Hp, Wp): row r, column s is src (ci, Hi, Wi) row r - pt, column s - pl, zero outside
// (pt, pl may be negative: a crop).
template <typename T>
void pad_planes(T* __restrict dst, const T* __restrict src, int64_t ci, int64_t Hi, int64_t Wi,
                int64_t Hp, int64_t Wp, int64_t pt, int64_t pl) {
  const int64_t s0 = std::clamp<int64_t>(pl, 0, Wp);          // first copied column
  const int64_t s1 = std::clamp<int64_t>(pl + Wi, s0, Wp);    // end of the copy
  for (int64_t c = 0; c < ci; ++c) {  // plane c: dst[c] (Hp, Wp)
    for (int64_t r = 0; r < Hp; ++r) {
      T* row = dst + (c * Hp + r) * Wp;
      const int64_t sr = r - pt;
      if (sr < 0 || sr >= Hi) {
        std::fill(row, row + Wp, T(0));
        continue;
      }
      std::fill(row, row + s0, T(0));
      std::memcpy(row + s0, src + (c * Hi + sr) * Wi + (s0 - pl), (s1 - s0) * sizeof(T));
      std::fill(row + s1, row + Wp, T(0));
    }
  }
}

// wgt(g, co, ci, t) is the weight of output channel co, input channel ci and tap t = i*KW + j
// (flattened positions: offset i*DH*Wp + j*DW); bias(g, co) or null.
template <typename T, typename Wgt>
void direct_conv(T* out, const T* in, const T* bias, const DirectProblem& p, const Wgt& wgt) {
  const direct_detail::Kernel<T> kern = direct_detail::direct_kernel<T>();
  const int64_t taps = p.KH * p.KW;
  const int64_t Hp = p.Ho + (p.KH - 1) * p.DH, Wp = p.Wo + (p.KW - 1) * p.DW, plane = Hp * Wp;
  const int64_t len = p.Ho * Wp, lenr = ceil_div(len, kern.block) * kern.block;
  const int64_t in_elems = p.Ci * plane + kern.block + (p.KW - 1) * p.DW;  // + zero tail
  // Output channel blocks of the micro-kernel: nb balanced blocks of at most kb_max.
  const int64_t nb = ceil_div(p.Co, kern.kb_max), KB = ceil_div(p.Co, nb);
  std::vector<int64_t> offs(taps);  // offs[t]: (taps,)
  for (int64_t i = 0; i < p.KH; ++i)
    for (int64_t j = 0; j < p.KW; ++j) offs[i * p.KW + j] = i * p.DH * Wp + j * p.DW;
  // wp: per group g and block b (output channels [b*KB, b*KB + kb)) the (Ci, taps, kb) weights,
  // at offset (g*Co + b*KB)*Ci*taps.
  std::vector<T> wp(p.G * p.Co * p.Ci * taps);
  for (int64_t g = 0; g < p.G; ++g)
    for (int64_t co0 = 0; co0 < p.Co; co0 += KB) {
      const int64_t kb = std::min(KB, p.Co - co0);
      T* wb = wp.data() + (g * p.Co + co0) * p.Ci * taps;  // (Ci, taps, kb)
      for (int64_t ci = 0; ci < p.Ci; ++ci)
        for (int64_t t = 0; t < taps; ++t)
          for (int64_t k = 0; k < kb; ++k) wb[(ci * taps + t) * kb + k] = wgt(g, co0 + k, ci, t);
    }
  std::vector<T> bp;
  if (bias) bp.assign(bias, bias + p.G * p.Co);

  // Tasks: (n, g) when there are enough of them, else (n, g, block); the split does not change
  // any result (each output element is computed whole by one micro-kernel call).
  const int64_t per = p.N * p.G >= 2 * max_threads() ? nb : 1;  // blocks per task
  const int64_t tpg = ceil_div(nb, per);                       // tasks per (n, g)
  run_tasks(p.N * p.G * tpg, true, [&](int64_t task) {
    const int64_t n = task / (p.G * tpg), g = (task / tpg) % p.G, b0 = (task % tpg) * per;
    const T* in_g = in + n * p.in_n + g * p.in_g;  // (Ci, Hi, Wi)
    T* pad = scratch<T>(in_elems + KB * lenr);     // padded input (Ci, Hp, Wp) + tail | tile
    T* tile = pad + in_elems;                      // (kb, lenr)
    pad_planes(pad, in_g, p.Ci, p.Hi, p.Wi, Hp, Wp, p.pt, p.pl);
    std::fill(pad + p.Ci * plane, pad + in_elems, T(0));
    for (int64_t b = b0; b < std::min(nb, b0 + per); ++b) {  // block: channels [co0, co0 + kb)
      const int64_t co0 = b * KB, kb = std::min(KB, p.Co - co0);
      const direct_detail::Rows<T> r{tile, lenr, pad, p.Ci, plane, offs.data(), taps,
                                     wp.data() + (g * p.Co + co0) * p.Ci * taps, kb,
                                     bias ? bp.data() + g * p.Co + co0 : nullptr, len};
      kern.rows(r);
      for (int64_t k = 0; k < kb; ++k) {  // out[n, g, co0 + k] (Ho, Wo) <- tile rows of width Wp
        T* o = out + n * p.out_n + g * p.out_g + (co0 + k) * p.Ho * p.Wo;
        for (int64_t oh = 0; oh < p.Ho; ++oh) {  // a loop: rows are short for a memcpy call
          const T* src = tile + k * lenr + oh * Wp;
          for (int64_t ow = 0; ow < p.Wo; ++ow) o[oh * p.Wo + ow] = src[ow];
        }
      }
    }
  });
}

template <typename T>
void forward_direct(T* y, const T* x, const T* w, const T* b, const ConvDims& d) {
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW, L = d.OH * d.OW;
  const DirectProblem p{d.N, d.G, Cg, d.H, d.W, Kg, d.OH, d.OW, d.KH, d.KW, d.DH, d.DW,
                        d.PH, d.PW, d.C * d.H * d.W, Cg * d.H * d.W, d.K * L, Kg * L};
  // w[g*Kg + k, c, i, j] (K, Cg, KH, KW)
  direct_conv(y, x, b, p, [&](int64_t g, int64_t k, int64_t c, int64_t t) {
    return w[((g * Kg + k) * Cg + c) * taps + t];
  });
}

template <typename T>
void backward_data_direct(T* dx, const T* dy, const T* w, const ConvDims& d) {
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW, L = d.OH * d.OW;
  const DirectProblem p{d.N, d.G, Kg, d.OH, d.OW, Cg, d.H, d.W, d.KH, d.KW, d.DH, d.DW,
                        (d.KH - 1) * d.DH - d.PH, (d.KW - 1) * d.DW - d.PW,
                        d.K * L, Kg * L, d.C * d.H * d.W, Cg * d.H * d.W};
  // Output channel c, input channel k, tap t: w[g*Kg + k, c] rotated: tap taps-1-t.
  direct_conv(dx, dy, static_cast<const T*>(nullptr), p,
              [&](int64_t g, int64_t c, int64_t k, int64_t t) {
                return w[((g * Kg + k) * Cg + c) * taps + (taps - 1 - t)];
              });
}

// Weight gradient, stride 1: dw[k, c, t] = sum_{n, p} dyp[n, k, p] * xpad[n, c, p + offs[t]]
// with x zero-padded as in the forward direction and dy laid out at the padded width Wp (zero
// in the columns ow >= OW). Batch chunks as in im2col_gemm_batch (min(N, kDwChunks), fixed by
// N); per chunk, lane-wise partial sums (G, Kgp, Cg, tp, VL) from the micro-kernel (channels
// and taps rounded up to its tile: zero dy rows, tap offset 0, dropped); at the end each dw
// element sums its chunks in order, each chunk's lanes in order. db fused per chunk, in double.
template <typename T>
void backward_weight_direct(T* dw, T* db, const T* dy, const T* x, const ConvDims& d) {
  const direct_detail::Kernel<T> kern = direct_detail::direct_kernel<T>();
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW, L = d.OH * d.OW, VL = kern.vl;
  const int64_t Hp = d.OH + (d.KH - 1) * d.DH, Wp = d.OW + (d.KW - 1) * d.DW, plane = Hp * Wp;
  const int64_t len = d.OH * Wp, lenr = ceil_div(len, VL) * VL;
  const int64_t Kgp = ceil_div(Kg, kern.dw_kb) * kern.dw_kb;
  const int64_t tp = ceil_div(taps, kern.dw_tb) * kern.dw_tb;
  // One image of a group in the batch block: padded x (Cg, Hp, Wp) + zero tail, then dyp
  // (Kgp, lenr); mb images side by side (about kDwBlockElems elements, fixed by the shapes).
  const int64_t x_elems = Cg * plane + lenr + (d.KW - 1) * d.DW;
  const int64_t img = x_elems + Kgp * lenr;
  const int64_t mb = std::clamp<int64_t>(kDwBlockElems / img, 1, d.N);
  std::vector<int64_t> offs(tp, 0);  // (tp,): padded taps read offset 0
  for (int64_t i = 0; i < d.KH; ++i)
    for (int64_t j = 0; j < d.KW; ++j) offs[i * d.KW + j] = i * d.DH * Wp + j * d.DW;
  const int64_t nq = std::min(d.N, kDwChunks), lanes = d.G * Kgp * Cg * tp * VL;
  T* part = scratch<T, PartTag>(nq * lanes);  // (nq, G, Kgp, Cg, tp, VL)
  std::vector<double> db_part(db ? nq * d.K : 0);
  // Tasks: chunks when there are enough of them, else the (g, kb, c) kernel calls of each
  // position block (each call owns its accumulators).
  const bool outer = nq >= max_threads();
  run_tasks(nq, outer, [&](int64_t q) {  // chunk q: images [n0, n1)
    const int64_t n0 = d.N * q / nq, n1 = d.N * (q + 1) / nq;
    T* acc = part + q * lanes;
    std::fill(acc, acc + lanes, T(0));
    T* buf = scratch<T>(mb * img);  // (mb, img)
    std::fill(buf, buf + mb * img, T(0));  // tails, rows >= Kg and columns >= OW stay 0
    for (int64_t na = n0; na < n1; na += mb) {
      const int64_t nimg = std::min(mb, n1 - na);  // images [na, na + nimg)
      for (int64_t g = 0; g < d.G; ++g) {
        for (int64_t m = 0; m < nimg; ++m) {
          const int64_t n = na + m;
          T* xpad = buf + m * img;  // (Cg, Hp, Wp)
          T* dyp = xpad + x_elems;  // (Kgp, lenr)
          pad_planes(xpad, x + (n * d.C + g * Cg) * d.H * d.W, Cg, d.H, d.W, Hp, Wp, d.PH,
                     d.PW);
          for (int64_t k = 0; k < Kg; ++k) {  // dyp[k] (OH, Wp) <- dy[n, g*Kg + k] (OH, OW)
            const T* src = dy + (n * d.K + g * Kg + k) * L;
            for (int64_t oh = 0; oh < d.OH; ++oh)
              std::memcpy(dyp + k * lenr + oh * Wp, src + oh * d.OW, d.OW * sizeof(T));
          }
        }
        for (int64_t k0 = 0; k0 < Kgp; k0 += kern.dw_kb)  // tile: channels [k0, k0 + dw_kb)
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t t0 = 0; t0 < tp; t0 += kern.dw_tb) {  // taps [t0, t0 + dw_tb)
              const direct_detail::DwRows<T> r{
                  acc + (((g * Kgp + k0) * Cg + c) * tp + t0) * VL, Cg * tp * VL,
                  buf + x_elems + k0 * lenr, lenr, img, buf + c * plane, img,
                  offs.data() + t0, lenr, nimg};
              kern.dw(r);
            }
      }
      if (db) {  // db_q[k] += sum_l dy[n, k, l] for n in [na, na + nimg), in double
        double* s = db_part.data() + q * d.K;
        for (int64_t n = na; n < na + nimg; ++n)
          for (int64_t k = 0; k < d.K; ++k) {
            const T* dy_k = dy + (n * d.K + k) * L;
            double a = s[k];
            for (int64_t l = 0; l < L; ++l) a += dy_k[l];
            s[k] = a;
          }
      }
    }
  });
  run_tasks(d.K, d.K * Cg * taps * nq * VL >= (int64_t(1) << 15), [&](int64_t kk) {
    const int64_t g = kk / Kg, k = kk % Kg;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t t = 0; t < taps; ++t) {  // dw[kk, c, t] = sum_q sum_v part[q, g, k, c, t, v]
        const int64_t e = (((g * Kgp + k) * Cg + c) * tp + t) * VL;
        T s = 0;
        for (int64_t q = 0; q < nq; ++q)
          for (int64_t v = 0; v < VL; ++v) s += part[q * lanes + e + v];
        dw[(kk * Cg + c) * taps + t] = s;
      }
  });
  if (db)
    for (int64_t k = 0; k < d.K; ++k) {
      double s = 0;
      for (int64_t q = 0; q < nq; ++q) s += db_part[q * d.K + k];
      db[k] = static_cast<T>(s);
    }
}

// ---------------------------------------------------------------- direct, channel-vector (forward)

// Tile of the channel-vector kernel for a problem: nk vectors of output channels (1 when a
// group has at most one vector's worth), and the column count S (rows R from the kernel) that
// computes the fewest positions, weighted by the tile's cost per position: per (c, t) a tile
// does nk*P multiply-adds and nk + P loads (two of each per cycle), and needs >= 8 independent
// accumulators to hide the FMA latency.
struct KvecPlan {
  int nk = 0, si = -1;
  int64_t S = 0, R = 0;
};

template <typename T>
KvecPlan kvec_plan(const ConvDims& d, const direct_detail::Kernel<T>& kern) {
  KvecPlan best;
  best.nk = d.Kg() <= kern.vl ? 1 : 2;
  double best_cost = 0;
  for (int si = 0; si < direct_detail::kKvecShapes; ++si) {
    const int64_t R = kern.kvec_r[best.nk - 1][si], S = direct_detail::kKvecS[si];
    if (R < 1 || !kern.kvec[best.nk - 1][si][0]) continue;
    const int64_t P = R * S, fmas = best.nk * P;
    const double per_pos = double(std::max({fmas, best.nk + P, int64_t(8)})) / double(fmas);
    const double cost = double(ceil_div(d.OH, R) * R * ceil_div(d.OW, S) * S) * per_pos;
    if (best.si < 0 || cost < best_cost) {
      best.si = si;
      best.S = S;
      best.R = R;
      best_cost = cost;
    }
  }
  return best;
}

// Any stride, dilation and groups. Output tile: NK*VL channels of a group x R rows x S columns
// (conv2d_direct.hpp, KvecTile): the input of image n, group g is zero-padded into
// (Cg, Hq, Wq), (Hq, Wq) covering the rounded-up tiles, so that the input element of output
// (oh, ow) and tap (i, j) is pad[c, oh*SH + i*DH, ow*SW + j*DW]. Weights packed per group and
// channel block as (Cg, taps, KB), zero past Kg. Tasks: (n, g, channel block, block of tile
// rows); each output element is computed whole by one tile (results do not depend on the split).
template <typename T>
void forward_kvec(T* y, const T* x, const T* w, const T* b, const ConvDims& d) {
  const direct_detail::Kernel<T> kern = direct_detail::direct_kernel<T>();
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW, L = d.OH * d.OW;
  const KvecPlan pl = kvec_plan(d, kern);
  const int64_t KB = pl.nk * kern.vl, nkb = ceil_div(Kg, KB);
  const int64_t Hq = (ceil_div(d.OH, pl.R) * pl.R - 1) * d.SH + (d.KH - 1) * d.DH + 1;
  const int64_t Wq = (ceil_div(d.OW, pl.S) * pl.S - 1) * d.SW + (d.KW - 1) * d.DW + 1;
  const int64_t plane = Hq * Wq;
  const auto tile = kern.kvec[pl.nk - 1][pl.si][d.SW == 1 ? 1 : d.SW == 2 ? 2 : 0];
  std::vector<int64_t> offs(taps);  // offs[t]: (taps,)
  for (int64_t i = 0; i < d.KH; ++i)
    for (int64_t j = 0; j < d.KW; ++j) offs[i * d.KW + j] = i * d.DH * Wq + j * d.DW;
  // wp (G, nkb, Cg, taps, KB), bp (G, nkb, KB)
  std::vector<T> wp(d.G * nkb * Cg * taps * KB, T(0)), bp(b ? d.G * nkb * KB : 0, T(0));
  for (int64_t g = 0; g < d.G; ++g)
    for (int64_t k = 0; k < Kg; ++k) {
      const int64_t blk = g * nkb + k / KB, lane = k % KB;
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t t = 0; t < taps; ++t)
          wp[((blk * Cg + c) * taps + t) * KB + lane] = w[((g * Kg + k) * Cg + c) * taps + t];
      if (b) bp[blk * KB + lane] = b[g * Kg + k];
    }
  const int64_t units = d.N * d.G * nkb, rtiles = ceil_div(d.OH, pl.R);
  const int64_t nrb = std::min(rtiles, ceil_div(2 * max_threads(), units));  // row blocks
  const int64_t rper = ceil_div(rtiles, nrb);
  run_tasks(units * nrb, true, [&](int64_t task) {
    const int64_t u = task / nrb, rb = task % nrb;
    const int64_t n = u / (d.G * nkb), g = (u / nkb) % d.G, kb = u % nkb;
    const int64_t k0 = kb * KB, blk = g * nkb + kb;
    T* pad = scratch<T>(Cg * plane);  // (Cg, Hq, Wq)
    pad_planes(pad, x + (n * d.C + g * Cg) * d.H * d.W, Cg, d.H, d.W, Hq, Wq, d.PH, d.PW);
    T* out = y + (n * d.K + g * Kg + k0) * L;  // y[n, g*Kg + k0 ...] (kn, OH, OW)
    direct_detail::KvecTile<T> q{nullptr, L, d.OW, std::min(KB, Kg - k0), 0, 0, nullptr,
                                 d.SH * Wq, Cg, plane, offs.data(), taps, d.SW,
                                 wp.data() + blk * Cg * taps * KB,
                                 b ? bp.data() + blk * KB : nullptr};
    for (int64_t rt = rb * rper; rt < std::min(rtiles, (rb + 1) * rper); ++rt) {
      const int64_t oh0 = rt * pl.R;  // tile rows [oh0, oh0 + nr)
      q.nr = std::min(pl.R, d.OH - oh0);
      for (int64_t ow0 = 0; ow0 < d.OW; ow0 += pl.S) {  // tile columns [ow0, ow0 + ns)
        q.ns = std::min(pl.S, d.OW - ow0);
        q.out = out + oh0 * d.OW + ow0;
        q.in = pad + oh0 * d.SH * Wq + ow0 * d.SW;
        tile(q);
      }
    }
  });
}

// Backward data, any stride, images in the vector lanes: dx[n, c, h, w] = sum over k, then the
// taps (i, j) whose dy position (oh, ow) = ((h + PH - i*DH) / SH, (w + PW - j*DW) / SW) exists
// (divisible, inside), of dy[n, k, oh, ow] w[k, c, i, j]. No zero padding is multiplied (on
// LeNet C3, 14 x 14 from 10 x 10 through 5 x 5, that is half the multiply-adds of a padded
// correlation) and nothing non-finite leaks. Per block of BLK images (Kernel::block) and group:
// dy transposed to dyt (Kg, OH, OW, BLK) (images past N zero), then one kernel call per (dx
// position, block of output channels) over the listed taps, stored straight into dx.
// Weights wp (G, Kg, taps, Cg). Tasks: transposition by channel k, then (h, channel block);
// each dx element is summed whole by one call: results do not depend on the split.
template <typename T>
void backward_data_batch(T* dx, const T* dy, const T* w, const ConvDims& d) {
  const direct_detail::Kernel<T> kern = direct_detail::direct_kernel<T>();
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW, L = d.OH * d.OW, HW = d.H * d.W;
  const int64_t BLK = kern.block, ncb = ceil_div(Cg, kern.kb_max), CB = ceil_div(Cg, ncb);
  std::vector<T> wp(d.K * taps * Cg);  // (G, Kg, taps, Cg)
  for (int64_t k = 0; k < d.K; ++k)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t t = 0; t < taps; ++t) wp[(k * taps + t) * Cg + c] = w[(k * Cg + c) * taps + t];
  // Taps of dx row h: (i, oh) pairs, and of column w: (j, ow) pairs, ascending i / j.
  const auto tap_list = [](int64_t pos, int64_t P, int64_t S, int64_t D, int64_t KS, int64_t O) {
    std::vector<std::pair<int64_t, int64_t>> v;
    for (int64_t i = 0; i < KS; ++i) {
      const int64_t num = pos + P - i * D;
      if (num >= 0 && num % S == 0 && num / S < O) v.emplace_back(i, num / S);
    }
    return v;
  };
  std::vector<std::vector<std::pair<int64_t, int64_t>>> rows(d.H), cols(d.W);
  for (int64_t h = 0; h < d.H; ++h) rows[h] = tap_list(h, d.PH, d.SH, d.DH, d.KH, d.OH);
  for (int64_t x = 0; x < d.W; ++x) cols[x] = tap_list(x, d.PW, d.SW, d.DW, d.KW, d.OW);
  // One block of images [n0, n0 + nv) of group g; inner: split its stages over the threads
  // (row ranges: neighbouring rows share cache lines of dx).
  const auto block = [&](int64_t n0, int64_t g, bool inner) {
    const int64_t nv = std::min(BLK, d.N - n0);
    T* dyt = scratch<T>(Kg * L * BLK);  // (Kg, OH, OW, BLK)
    run_tasks(Kg, inner, [&](int64_t k) {  // dyt[k] (L, BLK) <- dy[n0 + v, g*Kg + k] (L,)
      T* o = dyt + k * L * BLK;
      if (nv < BLK) std::fill(o, o + L * BLK, T(0));
      for (int64_t v = 0; v < nv; ++v) {
        const T* src = dy + ((n0 + v) * d.K + g * Kg + k) * L;
        for (int64_t p = 0; p < L; ++p) o[p * BLK + v] = src[p];
      }
    });
    const int64_t nhb = inner ? std::min<int64_t>(d.H, max_threads()) : 1;
    run_tasks(nhb * ncb, inner, [&](int64_t task) {  // dx rows [h0, h1), channels [c0, c0 + cn)
      const int64_t hb = task / ncb, c0 = (task % ncb) * CB, cn = std::min(CB, Cg - c0);
      const int64_t h0 = d.H * hb / nhb, h1 = d.H * (hb + 1) / nhb;
      std::vector<int64_t> offs(taps), woffs(taps);
      std::vector<T> tile(CB * BLK);  // (cn, BLK)
      direct_detail::BatchTile<T> q{tile.data(), BLK, dyt, Kg, L * BLK, offs.data(),
                                    woffs.data(), 0, wp.data() + (g * Kg * taps) * Cg + c0,
                                    taps * Cg, cn};
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t x = 0; x < d.W; ++x) {  // dx position (h, x)
          q.taps = 0;
          for (const auto& [i, oh] : rows[h])
            for (const auto& [j, ow] : cols[x]) {
              offs[q.taps] = (oh * d.OW + ow) * BLK;
              woffs[q.taps++] = (i * d.KW + j) * Cg;
            }
          if (q.taps == 0) std::fill(tile.begin(), tile.end(), T(0));
          else kern.batch(q);
          for (int64_t c = 0; c < cn; ++c)  // dx[n0 + v, g*Cg + c0 + c, h, x]
            for (int64_t v = 0; v < nv; ++v)
              dx[((n0 + v) * d.C + g * Cg + c0 + c) * HW + h * d.W + x] = tile[c * BLK + v];
        }
    });
  };
  const int64_t units = ceil_div(d.N, BLK) * d.G;  // (image block, group)
  if (units >= max_threads()) {  // tasks: units, one thread each (disjoint dx planes)
    run_tasks(units, true, [&](int64_t u) { block(u / d.G * BLK, u % d.G, false); });
  } else {
    for (int64_t u = 0; u < units; ++u) block(u / d.G * BLK, u % d.G, true);
  }
}

// Chunks of the batch for the weight gradients (im2col_gemm_batch, direct_kvec): up to
// kDwChunks, each summing at least kDwMinDepth positions when it can (a chunk's partial dw is
// written once per block and added at the end, so thin chunks of a large dw, like VGG 512
// channels at 4 x 4, would be all store and no compute), partials within kDwMaxPartElems; but
// 2 chunks whenever N >= 2, so that two threads share the work (on such a layer a little slower
// on one thread, clearly faster on two). Fixed by the shapes (it orders the sums), never by the
// thread count.
int64_t dw_chunks(const ConvDims& d, int64_t dw_elems) {
  const int64_t L = d.OH * d.OW;
  return std::clamp<int64_t>(std::min(d.N * L / kDwMinDepth, kDwMaxPartElems / dw_elems),
                             std::min<int64_t>(d.N, 2), std::min(d.N, kDwChunks));
}

// Weight gradient, stride 1 (channel-vectorised): dw[k, c, t] = sum_{n, p} dyt[n, kb, p, k]
// xpad[n, c, p + offs[t]] over the valid positions p = oh*Wp + ow (ow < OW), with x zero-padded
// to (Hp, Wp) and dy channel-last per block of KB channels at those positions (zero past Kg).
// No im2col and no transposition of x: per (block of rows, group, channel block, input
// channel, tap block) one kernel call sums those rows of a block of images in registers; a
// row block's dy (KB channels) stays in L2 while every input channel passes over it. Batch
// chunks as dw_chunks(); partials (nq, G, nkb, Cg, tp, KB) added in chunk order at the end;
// db fused per chunk. Only valid positions enter the sums: exact for non-finite inputs.
template <typename T>
void backward_weight_kvec(T* dw, T* db, const T* dy, const T* x, const ConvDims& d) {
  const direct_detail::Kernel<T> kern = direct_detail::direct_kernel<T>();
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW, L = d.OH * d.OW;
  const int64_t KB = kern.kvdw_kb, TB = kern.kvdw_tb, nkb = ceil_div(Kg, KB);
  const int64_t tp = ceil_div(taps, TB) * TB;
  // x padded to the rows and columns the outputs read: (Hp, Wp)
  const int64_t Hp = (d.OH - 1) * d.SH + (d.KH - 1) * d.DH + 1;
  const int64_t Wp = (d.OW - 1) * d.SW + (d.KW - 1) * d.DW + 1, plane = Hp * Wp;
  const int64_t x_img = d.C * plane, dy_img = d.G * nkb * L * KB, img = x_img + dy_img;
  const auto kernel = kern.kvec_dw[d.SW == 1 ? 1 : 0];
  const int64_t rb = std::clamp<int64_t>(kKvecDwPositions / d.OW, 1, d.OH);  // rows per call
  const int64_t mb = std::clamp<int64_t>(kKvecDwBlockElems / img, 1, d.N);
  std::vector<int64_t> offs(tp, 0);  // (tp,): padded taps read offset 0
  for (int64_t i = 0; i < d.KH; ++i)
    for (int64_t j = 0; j < d.KW; ++j) offs[i * d.KW + j] = i * d.DH * Wp + j * d.DW;
  const int64_t lanes = d.G * nkb * Cg * tp * KB, nq = dw_chunks(d, lanes);
  T* part = scratch<T, PartTag>(nq * lanes);  // (nq, G, nkb, Cg, tp, KB)
  std::vector<double> db_part(db ? nq * d.K : 0);
  // Tasks: chunks when there are enough of them, else the (g, kb, c) kernel calls of each
  // position block (each call owns its accumulators).
  const bool outer = nq >= max_threads();
  run_tasks(nq, outer, [&](int64_t q) {  // chunk q: images [n0, n1)
    const int64_t n0 = d.N * q / nq, n1 = d.N * (q + 1) / nq;
    T* acc = part + q * lanes;
    std::fill(acc, acc + lanes, T(0));
    T* buf = scratch<T>(mb * img);  // per image: xpad (C, Hp, Wp) | dyt (G*nkb, L, KB)
    for (int64_t na = n0; na < n1; na += mb) {
      const int64_t nimg = std::min(mb, n1 - na);  // images [na, na + nimg)
      // Per image m: each input channel padded (every element of its plane written), each
      // block of KB channels of dy laid out channel-last (the lanes past Kg zero). Tasks:
      // (m, channel) and (m, block).
      run_tasks(nimg * (d.C + d.G * nkb), !outer, [&](int64_t task) {
        const int64_t m = task / (d.C + d.G * nkb), j = task % (d.C + d.G * nkb), n = na + m;
        T* xpad = buf + m * img;
        if (j < d.C) {  // plane j of xpad
          pad_planes(xpad + j * plane, x + (n * d.C + j) * d.H * d.W, 1, d.H, d.W, Hp, Wp, d.PH,
                     d.PW);
          return;
        }
        const int64_t g = (j - d.C) / nkb, kb = (j - d.C) % nkb;
        const int64_t kn = std::min(KB, Kg - kb * KB);
        const T* src = dy + (n * d.K + g * Kg + kb * KB) * L;  // (kn, OH, OW)
        T* dst = xpad + x_img + (g * nkb + kb) * L * KB;        // (L, KB)
        for (int64_t oh = 0; oh < d.OH; ++oh) {  // row oh: (OW, KB), in L1
          T* o = dst + oh * d.OW * KB;
          if (kn < KB) std::fill(o, o + d.OW * KB, T(0));
          for (int64_t k = 0; k < kn; ++k) {
            const T* row = src + k * L + oh * d.OW;
            for (int64_t ow = 0; ow < d.OW; ++ow) o[ow * KB + k] = row[ow];
          }
        }
      });
      for (int64_t oh0 = 0; oh0 < d.OH; oh0 += rb) {  // output rows [oh0, oh0 + rows)
        const int64_t rows = std::min(rb, d.OH - oh0);
        run_tasks(d.G * nkb * Cg, !outer, [&](int64_t u) {  // u = (g, kb, c)
          const int64_t g = u / (nkb * Cg), kb = (u / Cg) % nkb, c = u % Cg;
          for (int64_t t0 = 0; t0 < tp; t0 += TB) {  // taps [t0, t0 + TB) of channel c
            const direct_detail::KvecDwTile<T> r{
                acc + (u * tp + t0) * KB, buf + x_img + ((g * nkb + kb) * L + oh0 * d.OW) * KB,
                KB, img, buf + (g * Cg + c) * plane + oh0 * d.SH * Wp, img, offs.data() + t0,
                rows, d.OW, d.SH * Wp, d.OW, d.SW, nimg};
            kernel(r);
          }
        });
      }
      if (db) {  // db_q[k] += sum_l dy[n, k, l] for n in [na, na + nimg), in double
        double* s = db_part.data() + q * d.K;
        for (int64_t n = na; n < na + nimg; ++n)
          for (int64_t k = 0; k < d.K; ++k) {
            const T* dy_k = dy + (n * d.K + k) * L;
            double a = s[k];
            for (int64_t l = 0; l < L; ++l) a += dy_k[l];
            s[k] = a;
          }
      }
    }
  });
  run_tasks(d.K, d.K * Cg * taps * nq >= (int64_t(1) << 14), [&](int64_t kk) {
    const int64_t g = kk / Kg, k = kk % Kg, kb = k / KB, lane = k % KB;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t t = 0; t < taps; ++t) {  // dw[kk, c, t] = sum_q part[q, g, kb, c, t, lane]
        const int64_t e = (((g * nkb + kb) * Cg + c) * tp + t) * KB + lane;
        T s = 0;
        for (int64_t q = 0; q < nq; ++q) s += part[q * lanes + e];
        dw[(kk * Cg + c) * taps + t] = s;
      }
  });
  if (db)
    for (int64_t k = 0; k < d.K; ++k) {
      double s = 0;
      for (int64_t q = 0; q < nq; ++q) s += db_part[q * d.K + k];
      db[k] = static_cast<T>(s);
    }
}

// ---------------------------------------------------------------- batch-chunked weight GEMM

// Images of chunk q (of nq chunks, see below): [N*q/nq, N*(q+1)/nq).
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
  T* part = scratch<T, PartTag>(nq * dw_elems);    // (nq, G, R, Kg)
  std::vector<double> db_part(db ? nq * d.K : 0);  // (nq, K)
  const bool outer = nq >= max_threads();
  run_tasks(nq, outer, [&](int64_t q) {  // chunk q: images [n0, n1) into part[q]
    const int64_t n0 = d.N * q / nq, n1 = d.N * (q + 1) / nq;
    T* dwt_q = part + q * dw_elems;  // (G, R, Kg)
    bool first = true;
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
               static_cast<const T*>(nullptr), gd, !outer);
        }
        first = false;
      }
      if (db) {  // db_q[k] += dy[n, k] summed over (n, l) in order, in double
        double* s = db_part.data() + q * d.K;
        for (int64_t n = na; n < na + nb; ++n)
          for (int64_t k = 0; k < d.K; ++k) {  // dy_k: dy[n, k] (L,)
            const T* dy_k = dy + (n * d.K + k) * L;
            double acc = s[k];
            for (int64_t l = 0; l < L; ++l) acc += dy_k[l];
            s[k] = acc;
          }
      }
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
  if (db)
    for (int64_t k = 0; k < d.K; ++k) {
      double s = 0;
      for (int64_t q = 0; q < nq; ++q) s += db_part[q * d.K + k];
      db[k] = static_cast<T>(s);
    }
}

}  // namespace

// ---------------------------------------------------------------- algorithm choice

namespace {

bool is_pointwise(const ConvDims& d) {
  return d.KH == 1 && d.KW == 1 && d.SH == 1 && d.SW == 1 && d.PH == 0 && d.PW == 0 &&
         d.OH == d.H && d.OW == d.W;
}

// Smallest blocks the im2col path needs: forward (C*KH*KW, kMinCols), data (KH*KW, OH*OW).
// Sizes in checked arithmetic (checked.hpp): an overflowing size does not fit.
bool im2col_fits(const ConvDims& d, int64_t elem_bytes) {
  const int64_t taps = d.KH * d.KW, L = d.OH * d.OW;  // both fit: make_conv_dims
  return product_within(kMaxBlockBytes, {d.C, taps, std::min(kMinCols, L), elem_bytes}) &&
         product_within(kMaxBlockBytes, {taps, L, elem_bytes});
}

// A zero-padded copy of the input (direct_small, direct_kvec) must stay within the scratch
// budget and in proportion to the data: at most 4x the input plus output planes, plus 64 Ki
// elements. Huge padding, stride or dilation with a small output (stride = padding = 2**61 on
// a 5x6 image: 3x3 outputs) would otherwise allocate a plane of mostly zeros, or overflow; such
// problems run on im2col (workspace bounded by the output) or naive.
bool padded_plane_ok(int64_t plane, int64_t channels, const ConvDims& d, int64_t elem_bytes) {
  const int64_t data = add_sat(mul_sat(d.H, d.W), mul_sat(d.OH, d.OW));
  return plane <= add_sat(mul_sat(4, data), int64_t(1) << 16) &&
         product_within(kMaxBlockBytes, {channels, plane, elem_bytes});
}

// Input channels per group the direct kernel loops over in a direction (forward: Cg, data: Kg).
int64_t direct_channels(const ConvDims& d, ConvDir dir) {
  return dir == ConvDir::data ? d.Kg() : d.Cg();
}

// The direct kernel's padded plane and one output tile must fit the scratch budget.
bool direct_fits(const ConvDims& d, ConvDir dir, int64_t elem_bytes) {
  const int64_t ci = direct_channels(d, dir);
  const int64_t ho = dir == ConvDir::data ? d.H : d.OH, wo = dir == ConvDir::data ? d.W : d.OW;
  const int64_t plane = mul_sat(add_sat(ho, mul_sat(d.KH - 1, d.DH)),
                                add_sat(wo, mul_sat(d.KW - 1, d.DW)));
  return padded_plane_ok(plane, ci + 8, d, elem_bytes);
}

// The channel-vector kernel's padded plane (tiles of at most 24 rows and 8 columns) fits.
bool kvec_fits(const ConvDims& d, int64_t elem_bytes) {
  const int64_t hq = add_sat(mul_sat(d.OH + 24, d.SH), add_sat(mul_sat(d.KH - 1, d.DH), 1));
  const int64_t wq = add_sat(mul_sat(d.OW + 8, d.SW), add_sat(mul_sat(d.KW - 1, d.DW), 1));
  return padded_plane_ok(mul_sat(hq, wq), d.Cg(), d, elem_bytes);
}

// Vector lanes and register-tile positions (Kernel::vl, ::block) of the current ISA's direct
// kernels for this element size.
int64_t direct_lanes(int64_t elem_bytes) {
  return elem_bytes == 4 ? direct_detail::direct_kernel<float>().vl
                         : direct_detail::direct_kernel<double>().vl;
}
int64_t direct_block(int64_t elem_bytes) {
  return elem_bytes == 4 ? direct_detail::direct_kernel<float>().block
                         : direct_detail::direct_kernel<double>().block;
}

// direct_kvec for the weight gradient: float with a vector ISA, a whole tile of output channels
// (16 with AVX2, 32 with AVX-512), taps that fill the kernel's tap tile (5 with AVX2, 9 with
// AVX-512: 3x3, 5x5, 7x7 waste at most 1/8; a 3x1 kernel would waste 2/3 of it and lose to
// im2col_gemm_batch), and either rows of at least 16 outputs (on 4-8 px
// planes the per-row overheads lose to im2col_gemm_batch) or few input channels (where
// direct_small's rows would carry KW-1 junk columns). Any stride.
bool kvec_weight_preferred(const ConvDims& d, int64_t elem_bytes) {
  const direct_detail::Kernel<float> kern = direct_detail::direct_kernel<float>();
  const int64_t taps = d.KH * d.KW, padded = ceil_div(taps, kern.kvdw_tb) * kern.kvdw_tb;
  return elem_bytes == 4 && current_isa() != Isa::baseline && d.Kg() >= kern.kvdw_kb &&
         8 * (padded - taps) <= taps && (d.OW >= 16 || d.Cg() <= kDirectMaxChannels) &&
         conv_algo_applies(ConvAlgo::direct_kvec, ConvDir::weight, d, elem_bytes);
}

// direct_kvec forward for a stride-1 layer on few input channels (instead of direct_small):
// when the output channels fill kvec's vector lanes at least 1.2x better than direct_small's
// rows are filled with valid columns (it computes OW + (KW-1)*DW columns per row, keeps OW).
// LeNet C3 (16 channels, 10 of 14 columns) gains; VGG 3->64 at 32 px (32 of 34 columns) and
// LeNet C1 (6 channels of 8 lanes) are faster with direct_small.
bool kvec_forward_preferred(const ConvDims& d, int64_t elem_bytes) {
  const int64_t vl = direct_lanes(elem_bytes);
  const double lanes = double(d.Kg()) / double(ceil_div(d.Kg(), vl) * vl);
  const double cols = double(d.OW) / double(d.OW + (d.KW - 1) * d.DW);
  return current_isa() != Isa::baseline && lanes >= 1.2 * cols &&
         conv_algo_applies(ConvAlgo::direct_kvec, ConvDir::forward, d, elem_bytes);
}

// direct_batch for the data gradient of a stride-1 small-channel layer (instead of
// direct_small): when direct_small's padded correlation would multiply mostly zeros. It
// computes H x (W + (KW-1)*DW) positions with every tap where OH*OW positions x taps carry
// data; direct_batch pays only those, in lanes of images (used N / N rounded up to the block).
// direct_batch wins at low useful fractions (LeNet C3 N=64: 0.40; 12 px from 10 px 3x3
// 16->16: 0.60) and loses at high ones (32 px from 28 px 5x5 on 3 channels: 0.68; 'same' 5x5
// on 28 px: 0.88).
bool batch_data_preferred(const ConvDims& d, int64_t elem_bytes) {
  const int64_t blk = direct_block(elem_bytes);
  const double lanes = double(d.N) / double(ceil_div(d.N, blk) * blk);
  const double useful = double(d.OH * d.OW) / double(d.H * (d.W + (d.KW - 1) * d.DW));
  return d.N >= blk && useful < 0.6 * lanes &&
         conv_algo_applies(ConvAlgo::direct_batch, ConvDir::data, d, elem_bytes);
}

}  // namespace

bool conv_algo_applies(ConvAlgo a, ConvDir dir, const ConvDims& d, int64_t elem_bytes) {
  switch (a) {
    case ConvAlgo::naive: return true;
    case ConvAlgo::direct_depthwise: return d.Cg() == 1;
    case ConvAlgo::gemm_pointwise: return is_pointwise(d);
    case ConvAlgo::im2col_gemm: return im2col_fits(d, elem_bytes);
    case ConvAlgo::direct_small:
      return d.SH == 1 && d.SW == 1 && direct_channels(d, dir) <= kDirectLimitChannels &&
             (dir != ConvDir::weight || d.Kg() <= kDirectLimitChannels) &&
             direct_fits(d, dir, elem_bytes);
    case ConvAlgo::im2col_gemm_batch: return dir == ConvDir::weight && im2col_fits(d, elem_bytes);
    case ConvAlgo::winograd: return dir != ConvDir::weight && winograd_applicable(d, elem_bytes);
    case ConvAlgo::direct_kvec:
      return dir != ConvDir::data && kvec_fits(d, elem_bytes);
    case ConvAlgo::direct_batch:  // dyt of one block of images: Kg * OH * OW * block
      return dir == ConvDir::data &&
             product_within(kMaxBlockBytes, {d.Kg(), d.OH, d.OW, direct_block(elem_bytes),
                                             elem_bytes});
    case ConvAlgo::kCount: break;
  }
  return false;
}

// The heuristic (measured on 2-core Zen 1/Zen 3/Zen 4 machines and an AVX-512 Xeon against
// the alternatives, see the commit log):
//   depthwise (Cg == 1 with G > 1) and pointwise shapes have their own paths in every
//     direction (a single-channel input with G == 1, like LeNet's first layer, does not count
//     as depthwise: its dw would be K plane-sized dot products on one thread each);
//   weight, float with AVX2 or AVX-512, a whole channel tile, taps filling the tap tile, rows
//     >= 16 wide or few input channels: direct_kvec (kvec_weight_preferred(); it beat
//     im2col_gemm_batch on VGG layers with AVX-512 at 1 and 2 threads, and with AVX2
//     direct_small on LeNet C3 and VGG 3->64 and im2col_gemm on VGG 64@32 and 7x7/2 RGB);
//   stride 1, at most kDirectMaxChannels input channels of that direction (forward and
//     weight Cg, data Kg; data also needs Cg >= 2): direct_small, except forward where the
//     output channels fill direct_kvec's lanes clearly better than direct_small's rows are
//     filled with valid columns (kvec_forward_preferred(): LeNet C3), and data where the
//     padded correlation would multiply mostly zeros (batch_data_preferred(): LeNet C3):
//     direct_batch;
//   weight: im2col_gemm_batch once there are at least 2 images (chunks run in parallel and
//     each GEMM is deep), else im2col_gemm (channel-block tasks, GEMMs split over threads);
//   forward and data of 3x3 stride-1 layers with enough channels and tiles:
//     winograd (winograd_preferred() in winograd.cpp holds the rule);
//   forward, strided, at most kDirectMaxChannels input channels per group: direct_kvec
//     (faster than im2col_gemm on 7x7/2 on RGB at 224 px with AVX-512 and AVX2);
//   im2col_gemm otherwise, naive when even one im2col block would be too big.
// Data-dependent exceptions (in the dispatchers below): direct_small multiplies dy's zero
// padding by w (data) and the junk columns of x by dy's zero columns (weight), so with a
// non-finite weight (data) or input (weight) the auto choice falls back to the im2col paths
// (direct_kvec sums only valid positions: exact).
ConvAlgo choose_conv_algo(const ConvDims& d, int64_t elem_bytes, ConvDir dir) {
  if (d.Cg() == 1 && d.G > 1) return ConvAlgo::direct_depthwise;
  if (is_pointwise(d)) {
    if (dir == ConvDir::weight && d.N >= 2) return ConvAlgo::im2col_gemm_batch;
    return ConvAlgo::gemm_pointwise;
  }
  if (!im2col_fits(d, elem_bytes)) {
    const ConvAlgo direct = ConvAlgo::direct_small;
    return conv_algo_applies(direct, dir, d, elem_bytes) ? direct : ConvAlgo::naive;
  }
  if (dir == ConvDir::weight && kvec_weight_preferred(d, elem_bytes))
    return ConvAlgo::direct_kvec;
  // data with one output plane per group (Cg == 1): one accumulator row per tile, im2col wins.
  if (direct_channels(d, dir) <= kDirectMaxChannels && (dir != ConvDir::data || d.Cg() >= 2) &&
      conv_algo_applies(ConvAlgo::direct_small, dir, d, elem_bytes)) {
    if (dir == ConvDir::forward && kvec_forward_preferred(d, elem_bytes))
      return ConvAlgo::direct_kvec;
    if (dir == ConvDir::data && batch_data_preferred(d, elem_bytes))
      return ConvAlgo::direct_batch;
    return ConvAlgo::direct_small;
  }
  if (dir == ConvDir::weight && d.N >= 2) return ConvAlgo::im2col_gemm_batch;
  if (dir != ConvDir::weight && winograd_preferred(d, elem_bytes))  // rule: winograd.cpp
    return ConvAlgo::winograd;
  // Strided layers on few input channels (a 7x7/2 first layer on RGB): the im2col matrix
  // (C*KH*KW rows of OH*OW) costs more than the GEMM it feeds.
  if (dir == ConvDir::forward && d.Cg() <= kDirectMaxChannels && (d.SH > 1 || d.SW > 1) &&
      conv_algo_applies(ConvAlgo::direct_kvec, dir, d, elem_bytes))
    return ConvAlgo::direct_kvec;
  return ConvAlgo::im2col_gemm;
}

const char* conv_algo_name(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::naive: return "naive";
    case ConvAlgo::direct_depthwise: return "direct_depthwise";
    case ConvAlgo::gemm_pointwise: return "gemm_pointwise";
    case ConvAlgo::im2col_gemm: return "im2col_gemm";
    case ConvAlgo::direct_small: return "direct_small";
    case ConvAlgo::im2col_gemm_batch: return "im2col_gemm_batch";
    case ConvAlgo::winograd: return "winograd";
    case ConvAlgo::direct_kvec: return "direct_kvec";
    case ConvAlgo::direct_batch: return "direct_batch";
    case ConvAlgo::kCount: break;
  }
  return "?";
}

const char* conv_dir_name(ConvDir dir) {
  switch (dir) {
    case ConvDir::forward: return "forward";
    case ConvDir::data: return "data";
    default: return "weight";
  }
}

namespace {

// Throws std::invalid_argument when algorithm a cannot run this problem in this direction.
void require_applies(ConvAlgo a, ConvDir dir, const ConvDims& d, int64_t elem_bytes) {
  if (conv_algo_applies(a, dir, d, elem_bytes)) return;
  throw std::invalid_argument(
      std::string("conv2d algorithm '") + conv_algo_name(a) + "' does not apply to the " +
      conv_dir_name(dir) + " direction of x " + shape_str(d.N, d.C, d.H, d.W) + ", w " +
      shape_str(d.K, d.Cg(), d.KH, d.KW) + ", stride (" + std::to_string(d.SH) + ", " +
      std::to_string(d.SW) + "), dilation (" + std::to_string(d.DH) + ", " +
      std::to_string(d.DW) + "), groups " + std::to_string(d.G));
}

}  // namespace

// The exact path (im2col GEMM, naive when an im2col block would not fit) that replaces an
// algorithm which would change which outputs are non-finite (see the dispatchers below).
ConvAlgo conv_exact_algo(const ConvDims& d, int64_t elem_bytes, ConvDir dir) {
  if (!im2col_fits(d, elem_bytes)) return ConvAlgo::naive;
  return dir == ConvDir::weight && d.N >= 2 ? ConvAlgo::im2col_gemm_batch : ConvAlgo::im2col_gemm;
}

// ---------------------------------------------------------------- public kernels

template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvDims& d, ConvAlgo algo) {
  require_applies(algo, ConvDir::forward, d, sizeof(T));
  switch (algo) {
    case ConvAlgo::naive: conv2d_forward_naive(y, x, w, b, d); break;
    case ConvAlgo::direct_depthwise: forward_depthwise(y, x, w, b, d); break;
    case ConvAlgo::gemm_pointwise: forward_gemm(y, x, w, b, d, true); break;
    case ConvAlgo::im2col_gemm: forward_gemm(y, x, w, b, d, false); break;
    case ConvAlgo::direct_small: forward_direct(y, x, w, b, d); break;
    case ConvAlgo::winograd: winograd_conv2d_forward(y, x, w, b, d); break;
    case ConvAlgo::direct_kvec: forward_kvec(y, x, w, b, d); break;
    default: break;  // rejected by require_applies
  }
}

template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvDims& d) {
  conv2d_forward(y, x, w, b, d, choose_conv_algo(d, sizeof(T), ConvDir::forward));
}

template <typename T>
void conv2d_backward_data(T* dx, const T* dy, const T* w, const ConvDims& d, ConvAlgo algo) {
  require_applies(algo, ConvDir::data, d, sizeof(T));
  // direct_small multiplies dy's zero padding by w: with an inf/NaN weight it would put NaN
  // where the exact computation has none. (Winograd checks its inputs itself: winograd.cpp.)
  if (algo == ConvAlgo::direct_small && !all_finite(w, d.K * d.Cg() * d.KH * d.KW))
    algo = conv_exact_algo(d, sizeof(T), ConvDir::data);
  switch (algo) {
    case ConvAlgo::naive: conv2d_backward_data_naive(dx, dy, w, d); break;
    case ConvAlgo::direct_depthwise: backward_data_depthwise(dx, dy, w, d); break;
    case ConvAlgo::gemm_pointwise: backward_data_gemm(dx, dy, w, d, true); break;
    case ConvAlgo::im2col_gemm: backward_data_gemm(dx, dy, w, d, false); break;
    case ConvAlgo::direct_small: backward_data_direct(dx, dy, w, d); break;
    case ConvAlgo::winograd: winograd_conv2d_backward_data(dx, dy, w, d); break;
    case ConvAlgo::direct_batch: backward_data_batch(dx, dy, w, d); break;
    default: break;
  }
}

template <typename T>
void conv2d_backward_data(T* dx, const T* dy, const T* w, const ConvDims& d) {
  conv2d_backward_data(dx, dy, w, d, choose_conv_algo(d, sizeof(T), ConvDir::data));
}

template <typename T>
void conv2d_backward_weight(T* dw, T* db, const T* dy, const T* x, const ConvDims& d,
                            ConvAlgo algo) {
  require_applies(algo, ConvDir::weight, d, sizeof(T));
  // direct_small multiplies x's junk columns by zeros of dy: with an inf/NaN in x it would
  // spread NaN over dw where the exact computation has none.
  if (algo == ConvAlgo::direct_small && !all_finite(x, d.N * d.C * d.H * d.W))
    algo = conv_exact_algo(d, sizeof(T), ConvDir::weight);
  switch (algo) {
    case ConvAlgo::naive: conv2d_backward_weight_naive(dw, db, dy, x, d); return;
    case ConvAlgo::direct_depthwise: backward_weight_depthwise(dw, dy, x, d); break;
    case ConvAlgo::gemm_pointwise: backward_weight_gemm(dw, dy, x, d, true); break;
    case ConvAlgo::im2col_gemm: backward_weight_gemm(dw, dy, x, d, false); break;
    case ConvAlgo::direct_small:  // db fused into the pass over the chunks
      backward_weight_direct(dw, db, dy, x, d);
      return;
    case ConvAlgo::im2col_gemm_batch:  // db fused into the pass over the chunks
      backward_weight_batch(dw, db, dy, x, d, is_pointwise(d));
      return;
    case ConvAlgo::direct_kvec:  // db fused into the pass over the chunks
      backward_weight_kvec(dw, db, dy, x, d);
      return;
    default: return;
  }
  if (db) bias_grad(db, dy, d);
}

template <typename T>
void conv2d_backward_weight(T* dw, T* db, const T* dy, const T* x, const ConvDims& d) {
  conv2d_backward_weight(dw, db, dy, x, d, choose_conv_algo(d, sizeof(T), ConvDir::weight));
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
  template void conv2d_forward<T>(T*, const T*, const T*, const T*, const ConvDims&,         \
                                  ConvAlgo);                                                 \
  template void conv2d_backward_data<T>(T*, const T*, const T*, const ConvDims&, ConvAlgo);  \
  template void conv2d_backward_weight<T>(T*, T*, const T*, const T*, const ConvDims&,       \
                                          ConvAlgo);                                         \
  template void conv2d_forward_naive<T>(T*, const T*, const T*, const T*, const ConvDims&);  \
  template void conv2d_backward_data_naive<T>(T*, const T*, const T*, const ConvDims&);      \
  template void conv2d_backward_weight_naive<T>(T*, T*, const T*, const T*, const ConvDims&);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge
