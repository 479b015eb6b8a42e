// Activations forward and backward (contracts in convforge/elementwise.hpp): one pass each,
// parallel over blocks of elements; every element on its own, so results do not depend on the
// split or the thread count. relu is branch-free (max, and a select with both sides loaded);
// sigmoid and tanh take one C-library exp / expm1 per value, branch-free.
#include <algorithm>
#include <cmath>

#include "convforge/checked.hpp"
#include "convforge/elementwise.hpp"
#include "runtime/tasks.hpp"

namespace convforge {
namespace {

constexpr int64_t kBlock = 1 << 15;  // elements per task

// body(i0, i1) over blocks of [0, n), in parallel when there are several.
template <typename F>
void each_block(int64_t n, const F& body) {
  run_tasks(ceil_div(n, kBlock), n >= 2 * kBlock, [&](int64_t b) {
    body(b * kBlock, std::min(n, (b + 1) * kBlock));
  });
}

// Both branch-free (random signs would mispredict a branch per value) with one exponential:
// sigmoid: e = exp(-|x|) in (0, 1], r = 1/(1+e), y = r for x >= 0 else e*r (no overflow);
// tanh: m = expm1(-2|x|) in (-1, 0], |y| = -m/(2+m) (expm1: no cancellation near 0), sign of x.
template <typename T>
T sigmoid(T x) {
  const T e = std::exp(-std::fabs(x));
  const T r = T(1) / (T(1) + e);
  return x >= T(0) ? r : e * r;
}

template <typename T>
T tanh_(T x) {
  const T m = std::expm1(T(-2) * std::fabs(x));
  return std::copysign(-m / (T(2) + m), x);
}

}  // namespace

template <typename T>
void activation_forward(T* y, const T* x, int64_t n, Activation f) {
  each_block(n, [&](int64_t i0, int64_t i1) {
    switch (f) {
      case Activation::relu:
        for (int64_t i = i0; i < i1; ++i) y[i] = std::max(x[i], T(0));  // NaN: x[i]
        break;
      case Activation::sigmoid:
        for (int64_t i = i0; i < i1; ++i) y[i] = sigmoid(x[i]);
        break;
      case Activation::tanh:
        for (int64_t i = i0; i < i1; ++i) y[i] = tanh_(x[i]);
        break;
      case Activation::linear:
        std::copy(x + i0, x + i1, y + i0);
        break;
    }
  });
}

template <typename T>
void activation_backward(T* dx, const T* dy, const T* y, int64_t n, Activation f) {
  each_block(n, [&](int64_t i0, int64_t i1) {
    switch (f) {
      case Activation::relu:
        for (int64_t i = i0; i < i1; ++i) {
          const T g = dy[i];
          dx[i] = y[i] > T(0) ? g : T(0);
        }
        break;
      case Activation::sigmoid:
        for (int64_t i = i0; i < i1; ++i) dx[i] = dy[i] * y[i] * (T(1) - y[i]);
        break;
      case Activation::tanh:
        for (int64_t i = i0; i < i1; ++i) dx[i] = dy[i] * (T(1) - y[i] * y[i]);
        break;
      case Activation::linear:
        std::copy(dy + i0, dy + i1, dx + i0);
        break;
    }
  });
}

#define CF_INSTANTIATE(T)                                                              \
  template void activation_forward<T>(T*, const T*, int64_t, Activation);             \
  template void activation_backward<T>(T*, const T*, const T*, int64_t, Activation);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge
