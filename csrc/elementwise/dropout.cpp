// Dropout (contract and mask in convforge/elementwise.hpp): one pass, parallel over blocks of
// kBlock elements (aligned, so a block never crosses a multiple of 2^32), each run by the block
// kernel of current_isa() (dropout_kernel.inc). Each element's mask depends only on (seed, its
// index): neither the split nor the thread count nor the ISA nor the backend changes it.
#define CF_ISA baseline
#include "dropout_kernel.inc"

#include <algorithm>

#include "convforge/checked.hpp"
#include "convforge/elementwise.hpp"
#include "runtime/tasks.hpp"

namespace convforge {

namespace {
constexpr int64_t kBlock = 1 << 15;  // elements per task (divides 2^32)
}  // namespace

template <typename T>
void dropout_apply(T* y, const T* x, int64_t n, uint64_t seed, uint32_t threshold, T scale) {
  namespace dd = dropout_detail;
  const dd::BlockFn<T> run = select_isa(&dd::baseline::block<T>, &dd::avx2::block<T>,
                                        &dd::avx512::block<T>);
  run_tasks(ceil_div(n, kBlock), n >= 2 * kBlock, [&](int64_t b) {  // elements [i0, i1)
    const int64_t i0 = b * kBlock, i1 = std::min(n, i0 + kBlock);
    run(y + i0, x + i0, i1 - i0, seed, static_cast<uint32_t>(static_cast<uint64_t>(i0) >> 32),
        static_cast<uint32_t>(i0), threshold, scale);
  });
}

template void dropout_apply<float>(float*, const float*, int64_t, uint64_t, uint32_t, float);
template void dropout_apply<double>(double*, const double*, int64_t, uint64_t, uint32_t, double);

}  // namespace convforge
