// Private helpers of the 2-D pooling family shared by the baseline units pool2d.cpp (fast paths
// and dispatch), naive.cpp and global.cpp: window geometry, divisors, the parallel threshold, the
// max/min comparison and the naive per-window pieces. Never included by a per-ISA unit
// (pool_avx2.cpp), which must share no inline code with baseline units.
#pragma once
#include <algorithm>
#include <cstdint>

#include "convforge/dims.hpp"

namespace convforge::pool_detail {

inline int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
inline int64_t ceil_div_signed(int64_t a, int64_t b) {  // b > 0, any a
  return -floor_div(-a, b);
}

// One axis of the window of output o: clipped [lo, hi) and the extent counted with padding.
struct Range {
  int64_t lo, hi, padded;
};
inline Range window_range(int64_t o, int64_t K, int64_t S, int64_t P, int64_t n) {
  const int64_t s = o * S - P;  // unclipped start
  return {std::max<int64_t>(s, 0), std::min(s + K, n), std::min(s + K, n + P) - s};
}

inline int64_t divisor(const Range& rh, const Range& rw, bool count_include_pad) {
  return count_include_pad ? rh.padded * rw.padded : (rh.hi - rh.lo) * (rw.hi - rw.lo);
}


// Below this many elements (input or output, the larger) a parallel region costs about as much
// as it saves: starting and joining the team takes microseconds, and on a loaded machine, where
// a woken thread waits for a core, up to milliseconds.
constexpr int64_t kMinParallelElements = 4096;
inline bool worth_parallel(const PoolDims& d) {
  return d.N * d.C * std::max(d.H * d.W, d.OH * d.OW) >= kMinParallelElements;
}

// Does v replace best? Strictly better, or v is a NaN (so the last NaN in window order is kept,
// as in PyTorch). Bitwise operators (no branches) let the compiler vectorise the sweeps below.
template <bool IsMax, typename T>
inline bool better(T v, T best) {
  return (IsMax ? v > best : v < best) | (v != v);
}

// ---- naive per-window pieces (the fallback, the border columns, the second reference) -----

// xp: x[n, c] (H, W); window rows [h0, h1), columns [w0, w1).
template <bool IsMax, typename T>
inline void window_best(T* yo, int64_t* io, const T* xp, int64_t W, int64_t h0, int64_t h1,
                        int64_t w0, int64_t w1) {
  T best = xp[h0 * W + w0];
  int64_t bi = h0 * W + w0;
  for (int64_t ih = h0; ih < h1; ++ih) {      // window rows
    for (int64_t iw = w0; iw < w1; ++iw) {    // window columns
      const T v = xp[ih * W + iw];
      if (better<IsMax>(v, best)) {
        best = v;
        bi = ih * W + iw;
      }
    }
  }
  *yo = best;
  *io = bi;
}

template <typename T>
inline T window_sum(const T* xp, int64_t W, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
  T s = 0;
  for (int64_t ih = h0; ih < h1; ++ih)
    for (int64_t iw = w0; iw < w1; ++iw) s += xp[ih * W + iw];
  return s;
}

}  // namespace convforge::pool_detail
