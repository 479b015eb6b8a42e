// Helpers shared by the conv2d algorithm files (private to csrc/conv): the scratch
// tags, pad_planes (the zero-padded copy of direct_small and direct_kvec), tap_offsets (the
// taps' offsets in a flattened padded plane), and for the chunked weight gradients
// (direct_small, direct_kvec, im2col_gemm_batch) dw_chunks (the batch chunks) and the bias
// gradient's per-chunk partial sums and their reduction in chunk order, and run_dw_chunks (their
// common frame).
// Layouts as in conv2d.cpp: x (N, C, H, W), w (K, Cg, KH, KW), y and dy (N, K, OH, OW).
// Sequential helpers: the caller owns the parallel axis.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "convforge/checked.hpp"
#include "convforge/cpu.hpp"
#include "convforge/dims.hpp"
#include "runtime/tasks.hpp"
#include "plane_sum.hpp"
#include "select.hpp"

namespace convforge::conv_impl {

// scratch<T, Tag> and run_tasks: runtime/tasks.hpp (one copy per translation unit). Tags: the
// default 0 for per-task work buffers, and
constexpr int PartTag = 1;  // dw partials held by the caller while tasks run

// The forward's ReLU epilogue (conv2d_forward(..., relu = true): a Conv2D with
// activation="relu"): each algorithm applies it where it stores y, or to the block a task has
// just written (still in cache), so y is not read back by a separate pass. relu_floor is 0 with
// the ReLU and -inf without: max_floor(v, lo) = v < lo ? lo : v is then relu(v) (as
// activation_forward's std::max(v, 0): NaN and -0.0 pass) or v itself, branch-free.
template <typename T>
inline T relu_floor(bool relu) {
  return relu ? T(0) : -std::numeric_limits<T>::infinity();
}
template <typename T>
inline T max_floor(T v, T lo) {
  return v < lo ? lo : v;
}
// p[r*ld + i] = max(p[r*ld + i], 0) for r < rows, i < len.
template <typename T>
void relu_block(T* p, int64_t rows, int64_t len, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    T* row = p + r * ld;
    for (int64_t i = 0; i < len; ++i) row[i] = max_floor(row[i], T(0));
  }
}

// dst (ci, Hp, Wp): row r, column s is src (ci, Hi, Wi) row r - pt, column s - pl, zero outside
// (pt, pl may be negative: a crop).
template <typename T>
void pad_planes(T* __restrict dst, const T* __restrict src, int64_t ci, int64_t Hi, int64_t Wi,
                int64_t Hp, int64_t Wp, int64_t pt, int64_t pl) {
  const int64_t s0 = std::clamp<int64_t>(pl, 0, Wp);          // first copied column
  const int64_t s1 = std::clamp<int64_t>(pl + Wi, s0, Wp);    // end of the copy
  if (s0 == 0 && s1 == Wp && Wi == Wp) {  // whole rows (no column padding): one copy per plane
    const int64_t r0 = std::clamp<int64_t>(pt, 0, Hp);          // first copied row
    const int64_t r1 = std::clamp<int64_t>(pt + Hi, r0, Hp);    // end of the copy
    for (int64_t c = 0; c < ci; ++c) {  // plane c: dst[c] (Hp, Wp)
      T* plane = dst + c * Hp * Wp;
      std::fill(plane, plane + r0 * Wp, T(0));
      std::memcpy(plane + r0 * Wp, src + (c * Hi + r0 - pt) * Wi, (r1 - r0) * Wp * sizeof(T));
      std::fill(plane + r1 * Wp, plane + Hp * Wp, T(0));
    }
    return;
  }
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

// Chunks of the batch for the weight gradients (im2col_gemm_batch, direct_kvec): up to
// kDwChunks, each summing at least kDwMinDepth positions when it can (a chunk's partial dw is
// written once per block and added at the end, so thin chunks of a large dw, like VGG 512
// channels at 4 x 4, would be all store and no compute), partials within kDwMaxPartElems; but
// 2 chunks whenever N >= 2, so that two threads share the work (on such a layer a little slower
// on one thread, clearly faster on two). Fixed by the shapes (it orders the sums), never by the
// thread count.
inline int64_t dw_chunks(const ConvDims& d, int64_t dw_elems) {
  const int64_t L = d.OH * d.OW;
  return std::clamp<int64_t>(std::min(d.N * L / kDwMinDepth, kDwMaxPartElems / dw_elems),
                             std::min<int64_t>(d.N, 2), std::min(d.N, kDwChunks));
}

// Flattened-plane offsets of the taps of a (KH, KW) kernel with dilation (DH, DW) in a padded
// plane of row stride `row`: offs[i*KW + j] = i*DH*row + j*DW; n >= KH*KW entries, those past
// KH*KW 0 (the taps a kernel's tap tile rounds up to read offset 0).
inline std::vector<int64_t> tap_offsets(int64_t KH, int64_t KW, int64_t DH, int64_t DW,
                                        int64_t row, int64_t n) {
  std::vector<int64_t> offs(n, 0);  // (n,)
  for (int64_t i = 0; i < KH; ++i)
    for (int64_t j = 0; j < KW; ++j) offs[i * KW + j] = i * DH * row + j * DW;
  return offs;
}

// Bias-gradient partial of a batch chunk: s[k] += sum_l dy[n, k, l] for every k, image by image
// over [n0, n1), each plane summed in double by plane_sums (plane_sum.hpp: an order fixed by L).
// The chunked weight kernels call it once per block of images of a chunk, in order, and
// reduce_db_partials() adds the chunks' sums in chunk order.
template <typename T>
void add_db_partial(double* s, const T* dy, int64_t n0, int64_t n1, const ConvDims& d) {
  const int64_t L = d.OH * d.OW;
  const PlaneSums<T> sums = plane_sums<T>();
  std::vector<double> plane(d.K);  // (K,): the sums of image n's planes
  for (int64_t n = n0; n < n1; ++n) {
    sums(plane.data(), dy + n * d.K * L, L, d.K, L);
    for (int64_t k = 0; k < d.K; ++k) s[k] += plane[k];
  }
}

// db[k] = sum_q part[q, k] over the nq chunks in order, in double: part (nq, K).
template <typename T>
void reduce_db_partials(T* db, const double* part, int64_t nq, int64_t K) {
  for (int64_t k = 0; k < K; ++k) {
    double s = 0;
    for (int64_t q = 0; q < nq; ++q) s += part[q * K + k];
    db[k] = static_cast<T>(s);
  }
}

// The frame of the chunked weight gradients (im2col_gemm_batch, direct_small, direct_kvec,
// winograd): nq batch chunks (dw_chunks or fixed by the caller), chunk q summing images
// [N*q/nq, N*(q+1)/nq) into its partial dw part_q = part + q * lanes (part (nq, lanes) is
// returned for the caller's reduction in chunk order, whose layout differs per algorithm; it
// may reduce in place) and, when db is given, into its bias partial db_q (K,)
// (add_db_partial), reduced into db here. The chunks are the tasks when there are at least as
// many as threads; else they run in turn and the body parallelises inside (its `inner`
// argument). body(q, n0, n1, part_q, db_q or nullptr, inner).
template <typename T, typename Body>
T* run_dw_chunks(T* db, const ConvDims& d, int64_t nq, int64_t lanes, Body body) {
  T* part = scratch<T, PartTag>(nq * lanes);  // (nq, lanes)
  std::vector<double> db_part(db ? nq * d.K : 0);  // (nq, K)
  const bool outer = nq >= max_threads();
  run_tasks(nq, outer, [&](int64_t q) {  // chunk q: images [n0, n1) into part[q]
    body(q, d.N * q / nq, d.N * (q + 1) / nq, part + q * lanes,
         db ? db_part.data() + q * d.K : nullptr, !outer);
  });
  if (db) reduce_db_partials(db, db_part.data(), nq, d.K);
  return part;
}

}  // namespace convforge::conv_impl
