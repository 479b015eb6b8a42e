// Elementwise layers (csrc/elementwise): activations (activation.cpp) and dropout with a
// counter-based random mask (dropout.cpp).
#pragma once
#include <cstdint>

namespace convforge {

// The dropout mask, the same on every backend for the same seed: element i (flat, C order) of a
// call is kept iff dropout_hash(seed, i) >= threshold, threshold = floor(rate * 2^32). The hash
// is two rounds of a 32-bit integer mixer (lowbias32) over the counter and the seed's halves:
//   h(x) = x ^ x>>16; x *= 0x7feb352d; x ^= x>>15; x *= 0x846ca68b; x ^= x>>16   (uint32)
//   dropout_hash(seed, i) = h(h(lo32(i) ^ lo32(seed)) ^ hi32(seed) ^ hi32(i))
// (csrc/elementwise/dropout_hash.hpp; backends/_xp_dropout.py and _numba_dropout.py write the
// same). No state: the backward recomputes the mask from the seed instead of storing it.

// y[i] = x[i] * scale if dropout_hash(seed, i) >= threshold else 0, for i < n (y may be x).
// The forward (x) and the backward (dy) are the same call with the same seed.
template <typename T>
void dropout_apply(T* y, const T* x, int64_t n, uint64_t seed, uint32_t threshold, T scale);

// Activations, y = f(x) elementwise: linear, relu max(x, 0) (NaN stays NaN), sigmoid (the
// stable form: 1/(1+e^-x) for x >= 0, e^x/(1+e^x) below), tanh. The backward takes the output:
// dx = dy * f'(y) with relu' = (y > 0), sigmoid' = y (1 - y), tanh' = 1 - y^2. y may be x, dx
// may be dy.
enum class Activation { linear, relu, sigmoid, tanh };

template <typename T>
void activation_forward(T* y, const T* x, int64_t n, Activation f);
template <typename T>
void activation_backward(T* dx, const T* dy, const T* y, int64_t n, Activation f);

}  // namespace convforge
