// Dropout (contract and mask in convforge/elementwise.hpp): one pass, parallel over blocks of
// elements; each element's mask depends only on (seed, its index), so neither the split nor the
// thread count nor the backend changes it.
#include <algorithm>

#include "convforge/checked.hpp"
#include "convforge/elementwise.hpp"
#include "runtime/tasks.hpp"

namespace convforge {

namespace {
constexpr int64_t kBlock = 1 << 15;  // elements per task
}  // namespace

template <typename T>
void dropout_apply(T* y, const T* x, int64_t n, uint64_t seed, uint32_t threshold, T scale) {
  run_tasks(ceil_div(n, kBlock), n >= 2 * kBlock, [&](int64_t b) {  // elements [i0, i1)
    const int64_t i0 = b * kBlock, i1 = std::min(n, i0 + kBlock);
    for (int64_t i = i0; i < i1; ++i)
      y[i] = dropout_hash(seed, static_cast<uint64_t>(i)) >= threshold ? x[i] * scale : T(0);
  });
}

template void dropout_apply<float>(float*, const float*, int64_t, uint64_t, uint32_t, float);
template void dropout_apply<double>(double*, const double*, int64_t, uint64_t, uint32_t, double);

}  // namespace convforge
