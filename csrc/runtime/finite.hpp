// all_finite(p, n): true when none of p[0..n) is inf or NaN. Used by conv_algo_for_data
// (csrc/conv/select.cpp) to keep the algorithms that would mix a non-finite value into outputs the exact computation
// leaves finite (Winograd's transforms, direct_small's padded correlations) off such inputs.
// Tests the exponent bits (all ones: inf or NaN) with integer operations, which vectorise, a
// block at a time; parallel over blocks for large arrays. In an unnamed namespace like
// tasks.hpp: each (baseline-ISA) translation unit has its own copy.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "convforge/cpu.hpp"

namespace convforge {
namespace {  // NOLINT(build/namespaces): per-translation-unit copies on purpose

template <typename U, typename T>
bool all_finite_bits(const T* p, int64_t n, U exp_mask) {
  static_assert(sizeof(U) == sizeof(T), "bits of T");
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  int ok = 1;
CF_OMP_FOR(schedule(static) reduction(min : ok) if(n >= 16 * kBlock))
  for (int64_t b = 0; b < blocks; ++b) {  // elements [b*kBlock, min(n, (b+1)*kBlock))
    const int64_t i0 = b * kBlock, i1 = std::min(n, i0 + kBlock);
    U bad = 0;
    for (int64_t i = i0; i < i1; ++i) {
      U bits;
      std::memcpy(&bits, p + i, sizeof(U));
      bad |= static_cast<U>((bits & exp_mask) == exp_mask);
    }
    if (bad) ok = 0;
  }
  return ok == 1;
}

[[maybe_unused]] bool all_finite(const float* p, int64_t n) {
  return all_finite_bits<uint32_t>(p, n, 0x7f800000u);
}
[[maybe_unused]] bool all_finite(const double* p, int64_t n) {
  return all_finite_bits<uint64_t>(p, n, 0x7ff0000000000000ull);
}

}  // namespace
}  // namespace convforge
