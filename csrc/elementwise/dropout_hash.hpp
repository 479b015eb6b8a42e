// dropout_hash (the mask's definition: convforge/elementwise.hpp), for the dropout kernel units.
// In an unnamed namespace like runtime/tasks.hpp: the units are compiled for different ISAs, and
// each must keep its own copy (the linker may not hand one unit's code to another).
#pragma once
#include <cstdint>

namespace convforge {
namespace {  // NOLINT(build/namespaces): per-translation-unit copies on purpose

inline uint32_t dropout_mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// hash(seed, i) for i = (hi << 32) | lo: two 32-bit halves, so that a block of indices sharing
// hi runs on 32-bit lanes.
inline uint32_t dropout_hash(uint64_t seed, uint32_t hi, uint32_t lo) {
  return dropout_mix(dropout_mix(lo ^ static_cast<uint32_t>(seed)) ^
                     static_cast<uint32_t>(seed >> 32) ^ hi);
}

}  // namespace
}  // namespace convforge
