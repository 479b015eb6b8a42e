// Naive 2-D pooling kernels: one output (forward) or one plane (backward) at a time, straight
// from the definitions in pool2d.cpp's header comment, no fast paths. The readable version, the
// fallback of the fast kernels (pool2d.cpp) and their second reference in the tests: the fast
// kernels give bit-identical results. Parallel over planes (N*C); every kernel overwrites its
// outputs.
#include <algorithm>
#include <cstdint>

#include "convforge/cpu.hpp"
#include "convforge/pool2d.hpp"
#include "pool2d_common.hpp"

namespace convforge {
using namespace pool_detail;  // NOLINT(build/namespaces): the family's private helpers

namespace {

// The loop nest of every naive kernel: f(p, o, rh, rw) for each output o = (p*OH + oh)*OW + ow
// of each plane p = (n, c), with its window's rows rh and columns rw clipped to the input, in
// that order; parallel over planes (each plane's outputs in one thread).
template <typename F>
void each_window(const PoolDims& d, F f) {
  const int64_t planes = d.N * d.C;
  CF_OMP_FOR(schedule(static) if(worth_parallel(d)))
  for (int64_t p = 0; p < planes; ++p) {          // p: plane (n, c)
    for (int64_t oh = 0; oh < d.OH; ++oh) {       // output rows
      const Range rh = window_range(oh, d.KH, d.SH, d.PH, d.H);
      for (int64_t ow = 0; ow < d.OW; ++ow)       // output columns
        f(p, (p * d.OH + oh) * d.OW + ow, rh, window_range(ow, d.KW, d.SW, d.PW, d.W));
    }
  }
}

template <bool IsMax, typename T>
void best_forward_naive(T* y, int64_t* ind, const T* x, const PoolDims& d) {
  each_window(d, [&](int64_t p, int64_t o, Range rh, Range rw) {  // x[n, c]: (H, W)
    window_best<IsMax>(y + o, ind + o, x + p * d.H * d.W, d.W, rh.lo, rh.hi, rw.lo, rw.hi);
  });
}

}  // namespace

template <typename T>
void pool2d_max_forward_naive(T* y, int64_t* ind, const T* x, const PoolDims& d) {
  best_forward_naive<true>(y, ind, x, d);
}

template <typename T>
void pool2d_min_forward_naive(T* y, int64_t* ind, const T* x, const PoolDims& d) {
  best_forward_naive<false>(y, ind, x, d);
}

template <typename T>
void pool2d_avg_forward_naive(T* y, const T* x, bool count_include_pad, const PoolDims& d) {
  each_window(d, [&](int64_t p, int64_t o, Range rh, Range rw) {  // x[n, c]: (H, W)
    y[o] = window_sum(x + p * d.H * d.W, d.W, rh.lo, rh.hi, rw.lo, rw.hi) /
           static_cast<T>(divisor(rh, rw, count_include_pad));
  });
}

template <typename T>
void pool2d_avg_backward_naive(T* dx, const T* dy, bool count_include_pad, const PoolDims& d) {
  std::fill(dx, dx + d.N * d.C * d.H * d.W, T(0));
  // A plane's outputs all run in the thread that owns the plane: no two threads add to one dx.
  each_window(d, [&](int64_t p, int64_t o, Range rh, Range rw) {
    T* dxp = dx + p * d.H * d.W;  // dx[n, c] (H, W)
    const T g = dy[o] / static_cast<T>(divisor(rh, rw, count_include_pad));
    for (int64_t ih = rh.lo; ih < rh.hi; ++ih)     // window rows
      for (int64_t iw = rw.lo; iw < rw.hi; ++iw)   // window columns
        dxp[ih * d.W + iw] += g;
  });
}

#define CF_POOL_NAIVE_INSTANTIATE(T)                                                            \
  template void pool2d_max_forward_naive<T>(T*, int64_t*, const T*, const PoolDims&);           \
  template void pool2d_min_forward_naive<T>(T*, int64_t*, const T*, const PoolDims&);           \
  template void pool2d_avg_forward_naive<T>(T*, const T*, bool, const PoolDims&);               \
  template void pool2d_avg_backward_naive<T>(T*, const T*, bool, const PoolDims&);

CF_POOL_NAIVE_INSTANTIATE(float)
CF_POOL_NAIVE_INSTANTIATE(double)
#undef CF_POOL_NAIVE_INSTANTIATE

}  // namespace convforge
