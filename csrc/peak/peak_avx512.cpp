// AVX-512 copy of the FMA peak loop (peak_chains.inc): 512-bit vfmadd, 24 chains.
// CMake compiles *_avx512.cpp with -mavx512f/bw/dq/vl; called only when current_isa() is
// avx512. (The 256-bit measurement under AVX-512 uses the AVX2 copy: same instructions.)
#include <immintrin.h>

#include "peak_chains.hpp"

namespace convforge::peak_detail::avx512 {
#include "peak_chains.inc"

namespace {
struct F32 {
  typedef float T;
  typedef __m512 V;
  static constexpr int kLanes = 16, kChains = 24;
  static V splat(T x) { return _mm512_set1_ps(x); }
  static V madd(V a, V m, V c) { return _mm512_fmadd_ps(a, m, c); }
  static double sum(V v) {
    alignas(64) T t[kLanes];
    _mm512_store_ps(t, v);
    double s = 0;
    for (T x : t) s += x;
    return s;
  }
};
struct F64 {
  typedef double T;
  typedef __m512d V;
  static constexpr int kLanes = 8, kChains = 24;
  static V splat(T x) { return _mm512_set1_pd(x); }
  static V madd(V a, V m, V c) { return _mm512_fmadd_pd(a, m, c); }
  static double sum(V v) {
    alignas(64) T t[kLanes];
    _mm512_store_pd(t, v);
    double s = 0;
    for (T x : t) s += x;
    return s;
  }
};
}  // namespace

ChainFn chains_f32_512() { return &chains<F32>; }
ChainFn chains_f64_512() { return &chains<F64>; }

}  // namespace convforge::peak_detail::avx512
