// Global 2-D pooling over H and W (semantics: pool2d.cpp's header comment): average and max
// forward, average backward; global max backward is pool2d_index_backward (pool2d.cpp) with
// OH = OW = 1. Forward: parallel over input rows for the row partials (sums in double, max with
// its position), then over planes for the fixed-order combination; no atomics, so results are
// bit-identical for any thread count. Every kernel overwrites its outputs.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "convforge/cpu.hpp"
#include "convforge/pool2d.hpp"
#include "pool2d_common.hpp"

namespace convforge {
using namespace pool_detail;  // NOLINT(build/namespaces): the family's private helpers

template <typename T>
void global_pool2d_avg_forward(T* y, const T* x, const PoolDims& d) {
  const int64_t planes = d.N * d.C, rows = planes * d.H, W = d.W;
  std::vector<double> row_sum(static_cast<size_t>(rows));  // (N*C*H,)
  CF_OMP_FOR(schedule(static) if(worth_parallel(d)))
  for (int64_t r = 0; r < rows; ++r) {  // r: input row (n, c, h)
    const T* xr = x + r * W;            // x[n, c, h] (W,)
    // Four fixed partial sums (lanes w mod 4), combined in a fixed order.
    double s[4] = {0, 0, 0, 0};
    int64_t w = 0;
    for (; w + 4 <= W; w += 4)
      for (int k = 0; k < 4; ++k) s[k] += static_cast<double>(xr[w + k]);
    for (; w < W; ++w) s[w % 4] += static_cast<double>(xr[w]);
    row_sum[r] = (s[0] + s[1]) + (s[2] + s[3]);
  }
  const double count = static_cast<double>(d.H * W);
  CF_OMP_FOR(schedule(static) if(worth_parallel(d)))
  for (int64_t p = 0; p < planes; ++p) {  // p: plane (n, c)
    double s = 0;
    for (int64_t h = 0; h < d.H; ++h) s += row_sum[p * d.H + h];
    y[p] = static_cast<T>(s / count);
  }
}

template <typename T>
void global_pool2d_max_forward(T* y, int64_t* ind, const T* x, const PoolDims& d) {
  const int64_t planes = d.N * d.C, rows = planes * d.H, W = d.W;
  std::vector<T> row_best(static_cast<size_t>(rows));        // (N*C*H,)
  std::vector<int64_t> row_ind(static_cast<size_t>(rows));   // (N*C*H,) h*W + w
  CF_OMP_FOR(schedule(static) if(worth_parallel(d)))
  for (int64_t r = 0; r < rows; ++r) {  // r: input row (n, c, h)
    const T* xr = x + r * W;            // x[n, c, h] (W,)
    T best = xr[0];
    int64_t bw = 0;
    for (int64_t w = 1; w < W; ++w)
      if (better<true>(xr[w], best)) {
        best = xr[w];
        bw = w;
      }
    row_best[r] = best;
    row_ind[r] = (r % d.H) * W + bw;
  }
  CF_OMP_FOR(schedule(static) if(worth_parallel(d)))
  for (int64_t p = 0; p < planes; ++p) {  // p: plane (n, c); rows in order keep the first winner
    T best = row_best[p * d.H];
    int64_t bi = row_ind[p * d.H];
    for (int64_t h = 1; h < d.H; ++h)
      if (better<true>(row_best[p * d.H + h], best)) {
        best = row_best[p * d.H + h];
        bi = row_ind[p * d.H + h];
      }
    y[p] = best;
    ind[p] = bi;
  }
}

template <typename T>
void global_pool2d_avg_backward(T* dx, const T* dy, const PoolDims& d) {
  const int64_t rows = d.N * d.C * d.H, W = d.W;
  const double count = static_cast<double>(d.H * W);
  CF_OMP_FOR(schedule(static) if(worth_parallel(d)))
  for (int64_t r = 0; r < rows; ++r) {  // r: input row (n, c, h)
    const T g = static_cast<T>(static_cast<double>(dy[r / d.H]) / count);
    std::fill(dx + r * W, dx + (r + 1) * W, g);  // dx[n, c, h] (W,)
  }
}
#define CF_GLOBAL_POOL_INSTANTIATE(T)                                                           \
  template void global_pool2d_avg_forward<T>(T*, const T*, const PoolDims&);                    \
  template void global_pool2d_max_forward<T>(T*, int64_t*, const T*, const PoolDims&);          \
  template void global_pool2d_avg_backward<T>(T*, const T*, const PoolDims&);

CF_GLOBAL_POOL_INSTANTIATE(float)
CF_GLOBAL_POOL_INSTANTIATE(double)
#undef CF_GLOBAL_POOL_INSTANTIATE

}  // namespace convforge
