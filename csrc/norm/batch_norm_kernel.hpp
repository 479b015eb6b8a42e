// The per-ISA plane kernels of batch normalisation (batch_norm_kernel.inc, one copy per ISA:
// runtime/isa.hpp), private to csrc/norm: batch_norm.cpp splits the work into planes (n, c) and
// calls the copy of current_isa() for each. csrc/norm is compiled without FMA contraction, so
// every copy rounds each operation as written: the copies give the same bits (the vector ones
// are faster: the double accumulators and conversions run 4 or 8 wide instead of 2).
#pragma once
#include <cstdint>

#include "runtime/isa.hpp"

namespace convforge::norm_detail {

// The forward's affine map of one channel in T: pre = (x - m) * s + b, on a value or on a
// vector of values of T (batch_norm_kernel.inc's blocks: the same operations lane by lane).
template <typename T>
struct Affine {
  T m, s, b;
  template <typename V>
  V pre(V x) const { return (x - m) * s + b; }
};

template <typename T>
struct PlaneKernels {
  // (sum (x - k), sum (x - k)^2) over a plane of n values, in double.
  void (*stats)(const T* x, int64_t n, double k, double* s1, double* s2);
  // y = f.pre(x), or max(f.pre(x), 0) with relu.
  void (*forward)(T* y, const T* x, int64_t n, Affine<T> f, bool relu);
  // (sum dy', sum dy' (x - mc)) in double, dy' = dy masked by f.pre(x) > 0 with relu.
  void (*grad_sums)(const T* dy, const T* x, int64_t n, Affine<T> f, bool relu, double mc,
                    double* s_dy, double* s_dyx);
  // dx = (dy' - k3 - (x - f.m) k2) k1 with batch_stats, else dy' k1.
  void (*dx)(T* dx, const T* dy, const T* x, int64_t n, Affine<T> f, bool relu,
             bool batch_stats, T k1, T k2, T k3);
};

CF_PER_ISA(template <typename T> PlaneKernels<T> plane_kernels();)

}  // namespace convforge::norm_detail
