// Per-ISA plane sums of the conv bias gradient (db[k] = sum_{n, l} dy[n, k, l]): each plane
// dy[n, k] (L,) summed in double by kSumLanes interleaved lanes (element l to lane
// l % kSumLanes, the lanes added in order at the end), an order fixed by L alone, so every ISA
// copy and every algorithm gives the same bits. A copy sums several planes side by side: one
// plane's lane adds form a chain that waits on each add's latency.
//
// One body (plane_sum_kernel.inc) compiled three times (csrc/runtime/isa.hpp): plane_sum.cpp
// (baseline x86-64, and plane_sums(), the one place that picks the copy), plane_sum_avx2.cpp
// and plane_sum_avx512.cpp. Declarations only: included by units with different -m flags.
#pragma once
#include <cstdint>

#include "runtime/isa.hpp"

namespace convforge::conv_impl {

constexpr int kSumLanes = 8;

// out[q] = sum of the plane p + q*stride (L elements), for q < count.
template <typename T>
using PlaneSums = void (*)(double* out, const T* p, int64_t L, int64_t count, int64_t stride);

namespace plane_sum_detail {
CF_PER_ISA(template <typename T> PlaneSums<T> kernel();)
}  // namespace plane_sum_detail

// The copy of current_isa() (plane_sum.cpp).
template <typename T>
PlaneSums<T> plane_sums();

}  // namespace convforge::conv_impl
