// Helpers shared by the conv2d algorithm files (private to csrc/conv): ceil_div, the scratch
// tags, pad_planes (the zero-padded copy of direct_small and direct_kvec), and dw_chunks (the
// batch chunks of the chunked weight gradients, whose partials are added in chunk order).
// Layouts as in conv2d.cpp: x (N, C, H, W), w (K, Cg, KH, KW), y and dy (N, K, OH, OW).
// Sequential helpers: the caller owns the parallel axis.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "convforge/dims.hpp"
#include "select.hpp"

namespace convforge::conv_impl {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// scratch<T, Tag> and run_tasks: runtime/tasks.hpp (one copy per translation unit). Tags:
constexpr int TaskTag = 0;  // per-task work buffers
constexpr int PartTag = 1;  // dw partials held by the caller while tasks run

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

}  // namespace convforge::conv_impl
