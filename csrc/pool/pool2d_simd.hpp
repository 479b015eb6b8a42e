// Vector operations of the pooling kernels (pool_kernel.inc) for one instruction set: the register,
// mask and int32 position types and the loads, stores, compares, blends and shuffles the kernels
// use. Y<float> / Y<double>: 256-bit (AVX2); Z<float> / Z<double>: 512-bit (AVX-512, only where
// CF_VEC_BYTES is 64); V<T>: the one of CF_VEC_BYTES, used by the generic row and plane kernels
// (the short-row and 2x2 kernels are written for 8 float lanes and use Y<float>). Included only by
// pool_kernel.inc, after CF_ISA and CF_VEC_BYTES are defined: everything here lives in an unnamed
// namespace inside the copy's namespace, so no inline code is shared between units compiled for
// different instruction sets.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace convforge::pool_detail::CF_ISA {
namespace {


inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
inline int32_t clamp_lanes(int64_t n, int L) { return static_cast<int32_t>(imax(0, imin(n, L))); }

// ---- per-type vector operations ----------------------------------------------------------------
// A mask is a vector of the value type's lane width, all ones (selected) or all zeros.

template <typename T>
struct Y;

template <>
struct Y<float> {
  static constexpr int L = 8;
  using reg = __m256;
  using mask = __m256i;  // 8 x 32-bit lanes
  using ireg = __m256i;  // 8 int32 lanes: positions ih*W + iw
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float v) { return _mm256_set1_ps(v); }
  static __m256i lane() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
  static mask below(int64_t n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(clamp_lanes(n, L)), lane()); }
  static reg load(mask m, const float* p) { return _mm256_maskload_ps(p, m); }
  static reg loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, reg v) { _mm256_storeu_ps(p, v); }
  // Stores the first n lanes (all L when n >= L).
  static void store(float* p, int64_t n, reg v) {
    if (n >= L) return _mm256_storeu_ps(p, v);
    alignas(32) float t[L];
    _mm256_store_ps(t, v);
    for (int64_t i = 0; i < n; ++i) p[i] = t[i];
  }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static reg keep(mask m, reg a) { return _mm256_and_ps(_mm256_castsi256_ps(m), a); }
  static reg blend(mask m, reg a, reg b) { return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(m)); }
  static mask better_max(reg v, reg best) { return better(_mm256_cmp_ps(v, best, _CMP_GT_OQ), v); }
  static mask better_min(reg v, reg best) { return better(_mm256_cmp_ps(v, best, _CMP_LT_OQ), v); }
  static mask better(reg cmp, reg v) {  // cmp | isnan(v): the last NaN stays
    return _mm256_castps_si256(_mm256_or_ps(cmp, _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
  }
  // Even elements 0, 2, .., 2L-2 of the 2L elements at p; only elements e < n2 are read.
  static reg load_even(const float* p, int64_t n2) {
    const reg a = n2 >= 2 * L ? loadu(p) : load(below(n2), p);
    const reg b = n2 >= 2 * L ? loadu(p + L) : load(below(n2 - L), p + L);
    const reg s = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 a4 a6 b4 b6
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  // (a0, b0, a1, b1, ...): elements 0..L-1 in lo, L..2L-1 in hi.
  static void interleave(reg a, reg b, reg& lo, reg& hi) {
    const reg ul = _mm256_unpacklo_ps(a, b);  // a0 b0 a1 b1 a4 b4 a5 b5
    const reg uh = _mm256_unpackhi_ps(a, b);  // a2 b2 a3 b3 a6 b6 a7 b7
    lo = _mm256_permute2f128_ps(ul, uh, 0x20);
    hi = _mm256_permute2f128_ps(ul, uh, 0x31);
  }
  static ireg iramp(int32_t base, int32_t step) {  // base + lane * step
    return _mm256_add_epi32(_mm256_set1_epi32(base),
                            _mm256_mullo_epi32(lane(), _mm256_set1_epi32(step)));
  }
  static ireg iblend(mask m, ireg a, ireg b) { return _mm256_blendv_epi8(a, b, m); }
  static void store_index(int64_t* p, int64_t n, ireg v) {
    const __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
    const __m256i hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1));
    if (n >= L) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 4), hi);
      return;
    }
    alignas(32) int64_t t[L];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), lo);
    _mm256_store_si256(reinterpret_cast<__m256i*>(t + 4), hi);
    for (int64_t i = 0; i < n; ++i) p[i] = t[i];
  }
};

template <>
struct Y<double> {
  static constexpr int L = 4;
  using reg = __m256d;
  using mask = __m256i;  // 4 x 64-bit lanes
  using ireg = __m128i;  // 4 int32 lanes
  static reg zero() { return _mm256_setzero_pd(); }
  static reg set1(double v) { return _mm256_set1_pd(v); }
  static __m256i lane() { return _mm256_setr_epi64x(0, 1, 2, 3); }
  static mask below(int64_t n) { return _mm256_cmpgt_epi64(_mm256_set1_epi64x(clamp_lanes(n, L)), lane()); }
  static reg load(mask m, const double* p) { return _mm256_maskload_pd(p, m); }
  static reg loadu(const double* p) { return _mm256_loadu_pd(p); }
  static void storeu(double* p, reg v) { _mm256_storeu_pd(p, v); }
  static void store(double* p, int64_t n, reg v) {
    if (n >= L) return _mm256_storeu_pd(p, v);
    alignas(32) double t[L];
    _mm256_store_pd(t, v);
    for (int64_t i = 0; i < n; ++i) p[i] = t[i];
  }
  static reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_pd(a, b); }
  static reg keep(mask m, reg a) { return _mm256_and_pd(_mm256_castsi256_pd(m), a); }
  static reg blend(mask m, reg a, reg b) { return _mm256_blendv_pd(a, b, _mm256_castsi256_pd(m)); }
  static mask better_max(reg v, reg best) { return better(_mm256_cmp_pd(v, best, _CMP_GT_OQ), v); }
  static mask better_min(reg v, reg best) { return better(_mm256_cmp_pd(v, best, _CMP_LT_OQ), v); }
  static mask better(reg cmp, reg v) {  // cmp | isnan(v): the last NaN stays
    return _mm256_castpd_si256(_mm256_or_pd(cmp, _mm256_cmp_pd(v, v, _CMP_UNORD_Q)));
  }
  static reg load_even(const double* p, int64_t n2) {
    const reg a = n2 >= 2 * L ? loadu(p) : load(below(n2), p);
    const reg b = n2 >= 2 * L ? loadu(p + L) : load(below(n2 - L), p + L);
    const reg s = _mm256_unpacklo_pd(a, b);                  // a0 b0 a2 b2
    return _mm256_permute4x64_pd(s, _MM_SHUFFLE(3, 1, 2, 0));  // a0 a2 b0 b2
  }
  static void interleave(reg a, reg b, reg& lo, reg& hi) {
    const reg ul = _mm256_unpacklo_pd(a, b);  // a0 b0 a2 b2
    const reg uh = _mm256_unpackhi_pd(a, b);  // a1 b1 a3 b3
    lo = _mm256_permute2f128_pd(ul, uh, 0x20);
    hi = _mm256_permute2f128_pd(ul, uh, 0x31);
  }
  static ireg iramp(int32_t base, int32_t step) {
    return _mm_add_epi32(_mm_set1_epi32(base),
                         _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(step)));
  }
  static ireg iblend(mask m, ireg a, ireg b) {  // 64-bit lane mask -> its low dwords
    const __m256i pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    return _mm_blendv_epi8(a, b, _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(m, pick)));
  }
  static void store_index(int64_t* p, int64_t n, ireg v) {
    const __m256i w = _mm256_cvtepi32_epi64(v);
    if (n >= L) return _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), w);
    alignas(32) int64_t t[L];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), w);
    for (int64_t i = 0; i < n; ++i) p[i] = t[i];
  }
};

#if CF_VEC_BYTES == 64
// ---- 512-bit vectors (AVX-512 F/BW/DQ/VL): the same operations as Y<T>, masks in k registers
// (bit j selects lane j); masked loads and stores touch only the selected lanes.

template <typename T>
struct Z;

template <>
struct Z<float> {
  static constexpr int L = 16;
  using reg = __m512;
  using mask = __mmask16;
  using ireg = __m512i;  // 16 int32 lanes: positions ih*W + iw
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float v) { return _mm512_set1_ps(v); }
  static __m512i lane() {
    return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  }
  static mask below(int64_t n) { return static_cast<mask>((1u << clamp_lanes(n, L)) - 1u); }
  static reg load(mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static reg loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, reg v) { _mm512_storeu_ps(p, v); }
  // Stores the first n lanes (all L when n >= L).
  static void store(float* p, int64_t n, reg v) {
    if (n >= L) return _mm512_storeu_ps(p, v);
    _mm512_mask_storeu_ps(p, below(n), v);
  }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static reg keep(mask m, reg a) { return _mm512_maskz_mov_ps(m, a); }
  static reg blend(mask m, reg a, reg b) { return _mm512_mask_blend_ps(m, a, b); }
  static mask better_max(reg v, reg best) {  // (v > best) | isnan(v): the last NaN stays
    return _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  }
  static mask better_min(reg v, reg best) {
    return _mm512_cmp_ps_mask(v, best, _CMP_LT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  }
  // Even elements 0, 2, .., 2L-2 of the 2L elements at p; only elements e < n2 are read.
  static reg load_even(const float* p, int64_t n2) {
    const reg a = n2 >= 2 * L ? loadu(p) : load(below(n2), p);
    const reg b = n2 >= 2 * L ? loadu(p + L) : load(below(n2 - L), p + L);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    return _mm512_permutex2var_ps(a, even, b);
  }
  // (a0, b0, a1, b1, ...): elements 0..L-1 in lo, L..2L-1 in hi.
  static void interleave(reg a, reg b, reg& lo, reg& hi) {
    lo = _mm512_permutex2var_ps(
        a, _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), b);
    hi = _mm512_permutex2var_ps(
        a, _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), b);
  }
  static ireg iramp(int32_t base, int32_t step) {  // base + lane * step
    return _mm512_add_epi32(_mm512_set1_epi32(base),
                            _mm512_mullo_epi32(lane(), _mm512_set1_epi32(step)));
  }
  static ireg iblend(mask m, ireg a, ireg b) { return _mm512_mask_blend_epi32(m, a, b); }
  static void store_index(int64_t* p, int64_t n, ireg v) {
    const __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
    const __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1));
    if (n >= L) {
      _mm512_storeu_si512(p, lo);
      _mm512_storeu_si512(p + 8, hi);
      return;
    }
    _mm512_mask_storeu_epi64(p, static_cast<__mmask8>((1u << clamp_lanes(n, 8)) - 1u), lo);
    _mm512_mask_storeu_epi64(p + 8, static_cast<__mmask8>((1u << clamp_lanes(n - 8, 8)) - 1u),
                             hi);
  }
};

template <>
struct Z<double> {
  static constexpr int L = 8;
  using reg = __m512d;
  using mask = __mmask8;
  using ireg = __m256i;  // 8 int32 lanes
  static reg zero() { return _mm512_setzero_pd(); }
  static reg set1(double v) { return _mm512_set1_pd(v); }
  static mask below(int64_t n) { return static_cast<mask>((1u << clamp_lanes(n, L)) - 1u); }
  static reg load(mask m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
  static reg loadu(const double* p) { return _mm512_loadu_pd(p); }
  static void storeu(double* p, reg v) { _mm512_storeu_pd(p, v); }
  static void store(double* p, int64_t n, reg v) {
    if (n >= L) return _mm512_storeu_pd(p, v);
    _mm512_mask_storeu_pd(p, below(n), v);
  }
  static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_pd(a, b); }
  static reg keep(mask m, reg a) { return _mm512_maskz_mov_pd(m, a); }
  static reg blend(mask m, reg a, reg b) { return _mm512_mask_blend_pd(m, a, b); }
  static mask better_max(reg v, reg best) {  // (v > best) | isnan(v): the last NaN stays
    return _mm512_cmp_pd_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q);
  }
  static mask better_min(reg v, reg best) {
    return _mm512_cmp_pd_mask(v, best, _CMP_LT_OQ) | _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q);
  }
  static reg load_even(const double* p, int64_t n2) {
    const reg a = n2 >= 2 * L ? loadu(p) : load(below(n2), p);
    const reg b = n2 >= 2 * L ? loadu(p + L) : load(below(n2 - L), p + L);
    return _mm512_permutex2var_pd(a, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), b);
  }
  static void interleave(reg a, reg b, reg& lo, reg& hi) {
    lo = _mm512_permutex2var_pd(a, _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), b);
    hi = _mm512_permutex2var_pd(a, _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15), b);
  }
  static ireg iramp(int32_t base, int32_t step) {
    return _mm256_add_epi32(_mm256_set1_epi32(base),
                            _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                               _mm256_set1_epi32(step)));
  }
  static ireg iblend(mask m, ireg a, ireg b) { return _mm256_mask_blend_epi32(m, a, b); }
  static void store_index(int64_t* p, int64_t n, ireg v) {
    const __m512i w = _mm512_cvtepi32_epi64(v);
    if (n >= L) return _mm512_storeu_si512(p, w);
    _mm512_mask_storeu_epi64(p, below(n), w);
  }
};

// The vectors of the generic row and plane kernels: 512-bit in this copy.
template <typename T>
using V = Z<T>;
#else
// The vectors of the generic row and plane kernels: 256-bit in this copy.
template <typename T>
using V = Y<T>;
#endif

}  // namespace
}  // namespace convforge::pool_detail::CF_ISA
