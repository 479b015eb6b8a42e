// Elementwise layers (csrc/elementwise): dropout with a counter-based random mask.
#pragma once
#include <cstdint>

namespace convforge {

// The dropout mask, the same on every backend for the same seed: element i (flat, C order) of a
// call is kept iff dropout_hash(seed, i) >= threshold, threshold = floor(rate * 2^32). The hash
// is two rounds of a 32-bit integer mixer (lowbias32) over the counter and the seed's halves:
//   h(x) = x ^ x>>16; x *= 0x7feb352d; x ^= x>>15; x *= 0x846ca68b; x ^= x>>16   (uint32)
//   dropout_hash(seed, i) = h(h(lo32(i) ^ lo32(seed)) ^ hi32(seed) ^ hi32(i))
// No state: the backward recomputes the mask from the seed instead of storing it.
inline uint32_t dropout_mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}
inline uint32_t dropout_hash(uint64_t seed, uint64_t i) {
  return dropout_mix(dropout_mix(static_cast<uint32_t>(i) ^ static_cast<uint32_t>(seed)) ^
                     static_cast<uint32_t>(seed >> 32) ^ static_cast<uint32_t>(i >> 32));
}

// y[i] = x[i] * scale if dropout_hash(seed, i) >= threshold else 0, for i < n (y may be x).
// The forward (x) and the backward (dy) are the same call with the same seed.
template <typename T>
void dropout_apply(T* y, const T* x, int64_t n, uint64_t seed, uint32_t threshold, T scale);

}  // namespace convforge
