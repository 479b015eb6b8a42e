// AVX2+FMA copy of the FMA peak loop (peak_chains.inc): 256-bit vfmadd, 12 chains.
// CMake compiles *_avx2.cpp with -mavx2 -mfma; called only when current_isa() >= avx2.
#include <immintrin.h>

#include "peak_chains.hpp"

namespace convforge::peak_detail::avx2 {
#include "peak_chains.inc"

namespace {
struct F32 {
  typedef float T;
  typedef __m256 V;
  static constexpr int kLanes = 8, kChains = 12;
  static V splat(T x) { return _mm256_set1_ps(x); }
  static V madd(V a, V m, V c) { return _mm256_fmadd_ps(a, m, c); }
  static double sum(V v) {
    alignas(32) T t[kLanes];
    _mm256_store_ps(t, v);
    double s = 0;
    for (T x : t) s += x;
    return s;
  }
};
struct F64 {
  typedef double T;
  typedef __m256d V;
  static constexpr int kLanes = 4, kChains = 12;
  static V splat(T x) { return _mm256_set1_pd(x); }
  static V madd(V a, V m, V c) { return _mm256_fmadd_pd(a, m, c); }
  static double sum(V v) {
    alignas(32) T t[kLanes];
    _mm256_store_pd(t, v);
    double s = 0;
    for (T x : t) s += x;
    return s;
  }
};
}  // namespace

ChainFn chains_f32_256() { return &chains<F32>; }
ChainFn chains_f64_256() { return &chains<F64>; }

}  // namespace convforge::peak_detail::avx2
