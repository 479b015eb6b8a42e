// The per-ISA dropout block kernel (dropout_kernel.inc, one copy per ISA: runtime/isa.hpp), private
// to csrc/elementwise: y[j] = x[j] * scale if dropout_hash(seed, hi, lo + j) >= threshold else 0
// for j < n, where the block's indices are (hi << 32) | (lo + j) (a block never crosses a
// multiple of 2^32).
#pragma once
#include <cstdint>

#include "runtime/isa.hpp"

namespace convforge::dropout_detail {

template <typename T>
using BlockFn = void (*)(T* y, const T* x, int64_t n, uint64_t seed, uint32_t hi, uint32_t lo,
                         uint32_t threshold, T scale);

CF_PER_ISA(template <typename T> BlockFn<T> block();)

}  // namespace convforge::dropout_detail
