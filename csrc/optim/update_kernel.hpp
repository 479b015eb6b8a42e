// The per-ISA optimiser block kernels (update_kernel.inc, one copy per ISA: runtime/isa.hpp),
// private to csrc/optim. Each updates elements [0, n) of one block of one tensor (pointers at
// the block's start), with the options as template flags: a table per optimiser holds every
// combination, indexed by the options' bits (flag j is bit j, in the order listed).
#pragma once
#include <array>
#include <cstdint>

#include "runtime/isa.hpp"

namespace convforge::optim_detail {

// Adam's scalars in T: c1 = 1 - b1, c2 = 1 - b2; decay is AdamW's factor; step_size and
// sqrt_bc2 are the tensor's (lr/(1 - b1^t), sqrt(1 - b2^t)).
template <typename T>
struct AdamScalars {
  T b1, c1, b2, c2, eps, wd, decay, step_size, sqrt_bc2;
};

// flags: weight decay, momentum, nesterov, first step
template <typename T>
using SgdFn = void (*)(T* p, const T* g, T* buf, int64_t n, T lr, T wd, T mu);
// flags: coupled weight decay, decoupled decay, amsgrad
template <typename T>
using AdamFn = void (*)(T* p, const T* g, T* m, T* v, T* v_max, int64_t n, AdamScalars<T> s);
// flags: weight decay, centered, momentum; c = 1 - rho
template <typename T>
using RmspropFn = void (*)(T* p, const T* g, T* sq, T* ga, T* buf, int64_t n, T lr, T rho, T c,
                           T eps, T mu, T wd);

template <typename T>
struct Kernels {
  std::array<SgdFn<T>, 16> sgd;
  std::array<AdamFn<T>, 8> adam;
  std::array<RmspropFn<T>, 8> rmsprop;
};

CF_PER_ISA(template <typename T> Kernels<T> kernels();)

}  // namespace convforge::optim_detail
