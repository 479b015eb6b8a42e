// AVX2 kernels of the 2-D pooling family (CMake compiles *_avx2.cpp with -mavx2 -mfma). Called
// only from csrc/pool/pool2d.cpp, only when current_isa() is avx2 or better; interface and
// preconditions: csrc/pool/pool2d_simd.hpp. No header-only code is shared with the baseline unit:
// every helper here has internal linkage and no standard-library template is used.
//
// Algorithms (L = 8 float or 4 double lanes; a block of fewer than L lanes at the end of a row
// runs with masked loads and stores, so rows of any width, including the 4-wide rows of an 8x8
// plane, stay in vector registers):
//
//   forward (one output row, interior columns): lane j holds output column j; for each window
//   tap (ih, kw) in row-major order load the L inputs x[ih, ws0 + j*SW + kw] (SW = 1: one load;
//   SW = 2: two loads and an even-element shuffle) and update
//     max/min: best = take ? v : best, pos = take ? ih*W + iw : pos, where
//              take = (v > best) | isnan(v)   (ties keep the first, a NaN wins and the last
//              NaN stays, as in PyTorch); pos is held in int32 lanes, widened to int64 on store;
//     avg:     acc = acc + v from acc = 0, then y = acc / div.
//   The taps run in the naive kernel's order, so results are bit-identical to it.
//
//   average backward (one plane; max/min backward is the scalar scatter of pool2d.cpp on every
//   ISA): g = dy / div, then each dx element is summed in registers and written once:
//     SW = 2, KW <= 2, SH >= KH (avg_plane_direct): no two windows overlap; each output row
//              gives one dx row, 0 + g in the columns of its windows (lane j of output column ow
//              gives dx columns ws and ws + 1, interleaved by shuffles; clipped border windows
//              one element at a time) and 0 elsewhere, copied to the input rows it covers; input
//              rows in no window are zeroed.
//     otherwise (avg_plane_gather; SW = 1, or SW = 2 with KW <= 2): g is copied into
//              zero-padded rows, and each input row ih sums, from acc = 0, over the output rows
//              that cover it (ascending oh) and, with SW = 1, the windows ow = iw + PW - kw,
//              kw = KW-1 .. 0 (ascending ow) of each column iw (L columns per vector; the zero
//              padding stands for ow outside [0, OW)); with SW = 2 each output row adds its one
//              window per column as in the direct case.
//   Each dx element receives its contributions in ascending (oh, ow) order starting from +0.0,
//   exactly as the naive average backward does; the extra additions of +0.0 (padding, masked-off
//   lanes) change nothing because such a partial sum is never -0.0.
#include "pool2d_simd.hpp"

// Built only where CMake gives this unit the AVX2 flags (GCC/Clang on x86-64); pool2d.cpp calls
// it under the same condition.
#if defined(CONVFORGE_X86) && defined(__AVX2__)
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>

namespace convforge::pool_avx2 {
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
struct V;

template <>
struct V<float> {
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
  static mask better_max(reg v, reg best) { return better(_mm256_cmp_ps(v, best, _CMP_GT_OQ), v, best); }
  static mask better_min(reg v, reg best) { return better(_mm256_cmp_ps(v, best, _CMP_LT_OQ), v, best); }
  static mask better(reg cmp, reg v, reg) {  // cmp | isnan(v): the last NaN stays
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
struct V<double> {
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
  static mask better_max(reg v, reg best) { return better(_mm256_cmp_pd(v, best, _CMP_GT_OQ), v, best); }
  static mask better_min(reg v, reg best) { return better(_mm256_cmp_pd(v, best, _CMP_LT_OQ), v, best); }
  static mask better(reg cmp, reg v, reg) {  // cmp | isnan(v): the last NaN stays
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

// L inputs of one tap: p[j*S] for lanes j < n (S = 1 or 2). avail: elements readable from p
// (to the end of the plane). Lanes j >= n may hold anything.
template <int S, typename T>
inline typename V<T>::reg load_tap(const T* p, int64_t n, int64_t avail) {
  using Vt = V<T>;
  if constexpr (S == 1) {
    return avail >= Vt::L ? Vt::loadu(p) : Vt::load(Vt::below(n), p);
  } else {
    if (avail >= 2 * Vt::L) return Vt::load_even(p, 2 * Vt::L);
    return Vt::load_even(p, 2 * n - 1);
  }
}

// ---- forward -----------------------------------------------------------------------------------

// yr, ir (n,): interior outputs of one row; xp: x[n, c] (H, W); window rows [h0, h1).
template <bool IsMax, int S, typename T>
void best_row_s(T* yr, int64_t* ir, const T* xp, int64_t W, int64_t HW, int64_t h0, int64_t h1,
                int64_t ws0, int64_t n, int64_t KW) {
  using Vt = V<T>;
  constexpr int L = Vt::L;
  for (int64_t j0 = 0; j0 < n; j0 += L) {             // blocks of L output columns
    const int64_t nr = imin(L, n - j0);
    const int64_t c0 = ws0 + j0 * S;                  // window start column of lane 0
    typename Vt::reg best = load_tap<S>(xp + h0 * W + c0, nr, HW - (h0 * W + c0));
    typename Vt::ireg pos = Vt::iramp(static_cast<int32_t>(h0 * W + c0), S);
    for (int64_t ih = h0; ih < h1; ++ih) {            // window rows
      for (int64_t kw = 0; kw < KW; ++kw) {           // window columns (taps in window order)
        if (ih == h0 && kw == 0) continue;            // tap 0 started the window
        const int64_t p = ih * W + c0 + kw;
        const typename Vt::reg v = load_tap<S>(xp + p, nr, HW - p);
        const typename Vt::mask take = IsMax ? Vt::better_max(v, best) : Vt::better_min(v, best);
        best = Vt::blend(take, best, v);
        pos = Vt::iblend(take, pos, Vt::iramp(static_cast<int32_t>(p), S));
      }
    }
    Vt::store(yr + j0, nr, best);
    Vt::store_index(ir + j0, nr, pos);
  }
}

template <int S, typename T>
void avg_row_s(T* yr, const T* xp, int64_t W, int64_t HW, int64_t h0, int64_t h1, int64_t ws0,
               int64_t n, int64_t KW, T div) {
  using Vt = V<T>;
  constexpr int L = Vt::L;
  const typename Vt::reg dv = Vt::set1(div);
  for (int64_t j0 = 0; j0 < n; j0 += L) {             // blocks of L output columns
    const int64_t nr = imin(L, n - j0);
    const int64_t c0 = ws0 + j0 * S;
    typename Vt::reg acc = Vt::zero();
    for (int64_t ih = h0; ih < h1; ++ih)              // window rows
      for (int64_t kw = 0; kw < KW; ++kw)             // window columns
        acc = Vt::add(acc, load_tap<S>(xp + ih * W + c0 + kw, nr, HW - (ih * W + c0 + kw)));
    Vt::store(yr + j0, nr, Vt::div(acc, dv));
  }
}

// Two short output rows a and b in one float vector: lanes 0..3 hold columns 0..3 of row a,
// lanes 4..7 those of row b (OW <= 4). Tap (kh, kw) of a lane is x at row h + kh, column
// ws0 + j*S + kw, h = ha or hb; every read stays inside x (the caller checks). The lanes
// follow the naive per-window order, as best_row_s does.
template <int S>
inline __m256 load_pair(const float* pa, const float* pb) {
  const __m256 a = _mm256_set_m128(_mm_loadu_ps(pb), _mm_loadu_ps(pa));  // pa[0..3] | pb[0..3]
  if constexpr (S == 1) return a;
  const __m256 b = _mm256_set_m128(_mm_loadu_ps(pb + 4), _mm_loadu_ps(pa + 4));
  return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // pa[0,2,4,6] | pb[0,2,4,6]
}

inline __m256i pair_positions(int64_t pa, int64_t pb, int S) {  // pa + j*S | pb + j*S
  const __m256i j = _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3);
  return _mm256_add_epi32(
      _mm256_set_m128i(_mm_set1_epi32(static_cast<int32_t>(pb)),
                       _mm_set1_epi32(static_cast<int32_t>(pa))),
      _mm256_mullo_epi32(j, _mm256_set1_epi32(S)));
}

// y, ind (2*OW,): row a then row b. Lanes j >= OW are computed and dropped.
inline void store_pair(float* y, int64_t* ind, int64_t OW, __m256 v, const __m256i* pos) {
  if (OW == 4) {
    _mm256_storeu_ps(y, v);
    if (pos) V<float>::store_index(ind, 8, *pos);
    return;
  }
  alignas(32) float t[8];
  alignas(32) int32_t q[8];
  _mm256_store_ps(t, v);
  if (pos) _mm256_store_si256(reinterpret_cast<__m256i*>(q), *pos);
  for (int64_t j = 0; j < OW; ++j) {                  // row a, row b
    y[j] = t[j];
    y[OW + j] = t[4 + j];
    if (pos) {
      ind[j] = q[j];
      ind[OW + j] = q[4 + j];
    }
  }
}

template <bool IsMax, int S>
void best_rows2_s(float* y, int64_t* ind, const float* xp, int64_t W, int64_t ha, int64_t hb,
                  int64_t KH, int64_t KW, int64_t ws0, int64_t OW) {
  using Vt = V<float>;
  __m256 best = load_pair<S>(xp + ha * W + ws0, xp + hb * W + ws0);
  __m256i pos = pair_positions(ha * W + ws0, hb * W + ws0, S);
  for (int64_t kh = 0; kh < KH; ++kh) {               // window rows
    for (int64_t kw = 0; kw < KW; ++kw) {             // window columns (taps in window order)
      if (kh == 0 && kw == 0) continue;               // tap 0 started the windows
      const int64_t pa = (ha + kh) * W + ws0 + kw, pb = (hb + kh) * W + ws0 + kw;
      const __m256 v = load_pair<S>(xp + pa, xp + pb);
      const Vt::mask take = IsMax ? Vt::better_max(v, best) : Vt::better_min(v, best);
      best = Vt::blend(take, best, v);
      pos = Vt::iblend(take, pos, pair_positions(pa, pb, S));
    }
  }
  store_pair(y, ind, OW, best, &pos);
}

template <int S>
void avg_rows2_s(float* y, const float* xp, int64_t W, int64_t ha, int64_t hb, int64_t KH,
                 int64_t KW, int64_t ws0, int64_t OW, float div) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t kh = 0; kh < KH; ++kh)                 // window rows
    for (int64_t kw = 0; kw < KW; ++kw)               // window columns
      acc = _mm256_add_ps(acc, load_pair<S>(xp + (ha + kh) * W + ws0 + kw,
                                            xp + (hb + kh) * W + ws0 + kw));
  store_pair(y, nullptr, OW, _mm256_div_ps(acc, _mm256_set1_ps(div)), nullptr);
}

// ---- average backward --------------------------------------------------------------------------

// Output rows [lo, hi) whose window holds input row ih.
inline void covering_rows(const Geo& g, int64_t ih, int64_t& lo, int64_t& hi) {
  lo = imax(0, -floor_div(-(ih + g.PH - g.KH + 1), g.SH));  // ceil division
  hi = imin(g.OH, floor_div(ih + g.PH, g.SH) + 1);
}

// Windows that do not overlap (SW = 2, KW <= 2, SH >= KH): every dx element lies in at most one
// window, dx = 0 + dy / div there and 0 elsewhere. Walks the output rows: each computes its dx
// row once (in a row buffer of W + 2L) and copies it to the (up to KH) input rows it covers;
// rows in no window are zeroed. dx (H, W), dy and div (OH, OW); row (W + 2L,) scratch.
template <typename T>
void avg_plane_direct(T* dx, const T* dy, const T* div, const Geo& g, T* row) {
  using Vt = V<T>;
  constexpr int L = Vt::L;
  const int64_t OHW = g.OH * g.OW;
  const bool interior = g.col_hi > g.col_lo;
  // Interior dx columns [c_lo, c_hi) (with KW = 1 the last window's gap column may be W).
  const int64_t c_lo = interior ? g.col_lo * 2 - g.PW : g.W;
  const int64_t c_hi = interior ? imin(g.col_hi * 2 - g.PW, g.W) : g.W;
  auto zero_rows = [&](int64_t h0, int64_t h1) {      // dx rows [h0, h1) = 0
    for (int64_t i = h0 * g.W; i < h1 * g.W; i += L) Vt::store(dx + i, h1 * g.W - i, Vt::zero());
  };
  int64_t next = 0;                                   // first dx row not yet written
  for (int64_t oh = 0; oh < g.OH; ++oh) {             // output rows
    const int64_t hs = oh * g.SH - g.PH;
    const int64_t h0 = imax(hs, 0), h1 = imin(hs + g.KH, g.H);  // covered input rows
    zero_rows(next, h0);
    const T* dr = dy + oh * g.OW;                     // dy[oh] (OW,)
    const T* qr = div + oh * g.OW;                    // div[oh] (OW,)
    auto column = [&](int64_t iw) {                   // one column outside the interior
      const int64_t ow = (iw + g.PW) / 2, kw = (iw + g.PW) % 2;
      row[iw] = kw < g.KW && ow < g.OW ? T(0) + dr[ow] / qr[ow] : T(0);
    };
    for (int64_t iw = 0; iw < c_lo; ++iw) column(iw);
    for (int64_t j0 = g.col_lo; j0 < g.col_hi; j0 += L) {  // blocks of L interior windows
      // Lanes past col_hi may read the next row (never past the plane): their results land
      // in the row buffer past c_hi and are overwritten or not copied.
      const int64_t o = oh * g.OW + j0;
      const bool full = o + L <= OHW;
      const typename Vt::mask m = Vt::below(g.col_hi - j0);
      const typename Vt::reg num = full ? Vt::loadu(dr + j0) : Vt::load(m, dr + j0);
      const typename Vt::reg den = full ? Vt::loadu(qr + j0) : Vt::load(m, qr + j0);
      const typename Vt::reg v = Vt::add(Vt::zero(), Vt::div(num, den));
      typename Vt::reg lo, hi;
      Vt::interleave(v, g.KW == 2 ? v : Vt::zero(), lo, hi);  // dx columns ws, ws + 1
      const int64_t c0 = j0 * 2 - g.PW;
      Vt::storeu(row + c0, lo);
      Vt::storeu(row + c0 + L, hi);
    }
    for (int64_t iw = c_hi; iw < g.W; ++iw) column(iw);
    for (int64_t ih = h0; ih < h1; ++ih) {            // covered input rows: dx[ih] = row
      T* d = dx + ih * g.W;
      int64_t iw = 0;
      for (; iw + L <= g.W; iw += L) Vt::storeu(d + iw, Vt::loadu(row + iw));
      if (iw < g.W) Vt::store(d + iw, g.W - iw, Vt::loadu(row + iw));
    }
    next = imax(next, h1);
  }
  zero_rows(next, g.H);
}

// This thread's scratch, grown on demand and kept between calls.
void* scratch(size_t bytes) {
  struct Buf {
    void* p = nullptr;
    size_t n = 0;
    ~Buf() { std::free(p); }
  };
  static thread_local Buf buf;
  if (bytes > buf.n) {
    std::free(buf.p);
    buf.n = 0;
    buf.p = std::malloc(bytes);
    if (!buf.p) std::abort();  // a few KB: out of memory here is fatal
    buf.n = bytes;
  }
  return buf.p;
}

// Gather (any overlap): g = dy / div of the plane copied into zero-padded rows so that every tap
// below is a plain full-width load; row oh holds output column ow at gp[oh*stride + left + ow].
// Each input row is built in a row buffer (W + 4L,) and copied to dx.
template <typename T>
void avg_plane_gather(T* dx, const T* dy, const T* div, const Geo& g) {
  using Vt = V<T>;
  constexpr int L = Vt::L;
  const int64_t left = g.KW, stride = g.OW + 3 * g.KW + 2 * L;
  T* gp = static_cast<T*>(scratch(sizeof(T) * static_cast<size_t>(g.OH * stride + g.W + 4 * L)));
  T* row = gp + g.OH * stride;
  for (int64_t oh = 0; oh < g.OH; ++oh) {             // output rows
    T* d = gp + oh * stride;                          // padded g row (stride,)
    for (int64_t i = 0; i < left; ++i) d[i] = T(0);
    for (int64_t ow = 0; ow < g.OW; ++ow) d[left + ow] = dy[oh * g.OW + ow] / div[oh * g.OW + ow];
    for (int64_t i = left + g.OW; i < stride; ++i) d[i] = T(0);
  }
  for (int64_t ih = 0; ih < g.H; ++ih) {              // input rows
    int64_t oh_lo, oh_hi;
    covering_rows(g, ih, oh_lo, oh_hi);
    if (g.SW == 1) {
      // Column iw lies in the windows ow = iw + PW - kw, kw = KW-1 .. 0 (ascending ow).
      for (int64_t iw0 = 0; iw0 < g.W; iw0 += L) {    // blocks of L input columns
        typename Vt::reg acc = Vt::zero();
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {  // covering output rows, ascending
          const T* gr = gp + oh * stride + left;      // g[oh]: ow = 0 at gr[0]
          for (int64_t kw = g.KW - 1; kw >= 0; --kw)  // ascending ow; 0 outside [0, OW)
            acc = Vt::add(acc, Vt::loadu(gr + iw0 + g.PW - kw));
        }
        Vt::storeu(row + iw0, acc);
      }
    } else {  // SW = 2, KW <= 2: one window per column and output row
      for (int64_t iw0 = 0; iw0 < g.W + 2 * L; iw0 += L) Vt::storeu(row + iw0, Vt::zero());
      for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {    // covering output rows, ascending
        const T* gr = gp + oh * stride + left;
        auto border = [&](int64_t ow) {               // clipped window, one element at a time
          const int64_t ws = ow * 2 - g.PW;
          for (int64_t iw = imax(ws, 0); iw < imin(ws + g.KW, g.W); ++iw) row[iw] += gr[ow];
        };
        for (int64_t ow = 0; ow < g.col_lo; ++ow) border(ow);
        for (int64_t j0 = g.col_lo; j0 < g.col_hi; j0 += L) {  // blocks of L interior windows
          // Lanes past col_hi are zeroed: they add +0.0 to the columns after the interior.
          const typename Vt::reg v = Vt::keep(Vt::below(g.col_hi - j0), Vt::loadu(gr + j0));
          typename Vt::reg lo, hi;
          Vt::interleave(v, g.KW == 2 ? v : Vt::zero(), lo, hi);
          const int64_t c0 = j0 * 2 - g.PW;
          Vt::storeu(row + c0, Vt::add(Vt::loadu(row + c0), lo));
          Vt::storeu(row + c0 + L, Vt::add(Vt::loadu(row + c0 + L), hi));
        }
        for (int64_t ow = imax(g.col_hi, g.col_lo); ow < g.OW; ++ow) border(ow);
      }
    }
    T* d = dx + ih * g.W;                             // dx[ih] (W,)
    for (int64_t iw = 0; iw < g.W; ++iw) d[iw] = row[iw];
  }
}

}  // namespace

template <bool IsMax, typename T>
void best_row(T* y, int64_t* ind, const T* xp, int64_t W, int64_t HW, int64_t h0, int64_t h1,
              int64_t ws0, int64_t n, int64_t KW, int64_t SW) {
  if (SW == 1) best_row_s<IsMax, 1>(y, ind, xp, W, HW, h0, h1, ws0, n, KW);
  else best_row_s<IsMax, 2>(y, ind, xp, W, HW, h0, h1, ws0, n, KW);
}

template <typename T>
void avg_row(T* y, const T* xp, int64_t W, int64_t HW, int64_t h0, int64_t h1, int64_t ws0,
             int64_t n, int64_t KW, int64_t SW, T div) {
  if (SW == 1) avg_row_s<1>(y, xp, W, HW, h0, h1, ws0, n, KW, div);
  else avg_row_s<2>(y, xp, W, HW, h0, h1, ws0, n, KW, div);
}

template <bool IsMax>
void best_rows2(float* y, int64_t* ind, const float* xp, int64_t W, int64_t ha, int64_t hb,
                int64_t KH, int64_t KW, int64_t ws0, int64_t OW, int64_t SW) {
  if (SW == 1) best_rows2_s<IsMax, 1>(y, ind, xp, W, ha, hb, KH, KW, ws0, OW);
  else best_rows2_s<IsMax, 2>(y, ind, xp, W, ha, hb, KH, KW, ws0, OW);
}
template void best_rows2<true>(float*, int64_t*, const float*, int64_t, int64_t, int64_t,
                               int64_t, int64_t, int64_t, int64_t, int64_t);
template void best_rows2<false>(float*, int64_t*, const float*, int64_t, int64_t, int64_t,
                                int64_t, int64_t, int64_t, int64_t, int64_t);

void avg_rows2(float* y, const float* xp, int64_t W, int64_t ha, int64_t hb, int64_t KH,
               int64_t KW, int64_t ws0, int64_t OW, int64_t SW, float div) {
  if (SW == 1) avg_rows2_s<1>(y, xp, W, ha, hb, KH, KW, ws0, OW, div);
  else avg_rows2_s<2>(y, xp, W, ha, hb, KH, KW, ws0, OW, div);
}

// ---- 2x2 windows, stride 2, no padding (float) --------------------------------------------------
// 8 windows side by side: a0, a1 the 16 inputs of their top row, b0, b1 of their bottom row. The
// shuffles leave the windows in the lane order (0 1 4 5 2 3 6 7); in_order() restores 0..7.
struct Taps2x2 {
  __m256 t[4];  // taps (0, 0), (0, 1), (1, 0), (1, 1): row-major window order
};
inline Taps2x2 taps2x2(__m256 a0, __m256 a1, __m256 b0, __m256 b1) {
  return {{_mm256_shuffle_ps(a0, a1, 0x88), _mm256_shuffle_ps(a0, a1, 0xDD),
           _mm256_shuffle_ps(b0, b1, 0x88), _mm256_shuffle_ps(b0, b1, 0xDD)}};
}
inline __m256 in_order(__m256 v) {
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
}

// y[0..8) = ((((0 + t00) + t01) + t10) + t11) * 0.25 (= / 4 exactly): the naive order.
inline void avg2x2(float* y, const Taps2x2& q) {
  __m256 s = _mm256_setzero_ps();
  for (int t = 0; t < 4; ++t) s = _mm256_add_ps(s, q.t[t]);
  _mm256_storeu_ps(y, _mm256_mul_ps(in_order(s), _mm256_set1_ps(0.25f)));
}

// y[0..8) = best tap of each window (ties keep the first, the last NaN wins), ind[0..8) = its
// position; p00: the positions of the (0, 0) taps, in the shuffled lane order.
template <bool IsMax>
inline void best2x2(float* y, int64_t* ind, const Taps2x2& q, __m256i p00, int64_t W) {
  using Vt = V<float>;
  const int32_t offs[4] = {0, 1, static_cast<int32_t>(W), static_cast<int32_t>(W + 1)};
  __m256 best = q.t[0];
  __m256i pos = p00;
  for (int t = 1; t < 4; ++t) {
    const Vt::mask take = IsMax ? Vt::better_max(q.t[t], best) : Vt::better_min(q.t[t], best);
    best = Vt::blend(take, best, q.t[t]);
    pos = Vt::iblend(take, pos, _mm256_add_epi32(p00, _mm256_set1_epi32(offs[t])));
  }
  _mm256_storeu_ps(y, in_order(best));
  Vt::store_index(ind, Vt::L, _mm256_permute4x64_epi64(pos, 0xD8));
}

// 0 + dy / 4 of 8 windows, each value twice: the 16 dx values of one row of the windows.
inline void spread2x2(__m256 dy8, __m256& lo, __m256& hi) {
  const __m256 v = _mm256_add_ps(_mm256_setzero_ps(), _mm256_mul_ps(dy8, _mm256_set1_ps(0.25f)));
  V<float>::interleave(v, v, lo, hi);
}

// Per row of >= 8 outputs: blocks of 8 (the last one overlapping the one before it).
void avg2x2_plane(float* y, const float* xp, int64_t OH, int64_t W, int64_t OW) {
  for (int64_t oh = 0; oh < OH; ++oh) {  // output row oh: input rows 2*oh, 2*oh + 1
    const float* a = xp + 2 * oh * W;
    for (int64_t j0 = 0; j0 < OW; j0 += 8) {  // outputs [j, j + 8): columns [2j, 2j + 16)
      const int64_t j = j0 + 8 <= OW ? j0 : OW - 8;
      const float* t = a + 2 * j;
      avg2x2(y + oh * OW + j, taps2x2(_mm256_loadu_ps(t), _mm256_loadu_ps(t + 8),
                                      _mm256_loadu_ps(t + W), _mm256_loadu_ps(t + W + 8)));
    }
  }
}

template <bool IsMax>
void best2x2_plane(float* y, int64_t* ind, const float* xp, int64_t OH, int64_t W, int64_t OW) {
  const __m256i lane2j = _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14);  // 2j, shuffled order
  for (int64_t oh = 0; oh < OH; ++oh) {  // output row oh: input rows 2*oh, 2*oh + 1
    const float* a = xp + 2 * oh * W;
    for (int64_t j0 = 0; j0 < OW; j0 += 8) {  // outputs [j, j + 8): columns [2j, 2j + 16)
      const int64_t j = j0 + 8 <= OW ? j0 : OW - 8;
      const float* t = a + 2 * j;
      const __m256i p00 = _mm256_add_epi32(
          lane2j, _mm256_set1_epi32(static_cast<int32_t>(2 * oh * W + 2 * j)));
      best2x2<IsMax>(y + oh * OW + j, ind + oh * OW + j,
                     taps2x2(_mm256_loadu_ps(t), _mm256_loadu_ps(t + 8), _mm256_loadu_ps(t + W),
                             _mm256_loadu_ps(t + W + 8)),
                     p00, W);
    }
  }
}
template void best2x2_plane<true>(float*, int64_t*, const float*, int64_t, int64_t, int64_t);
template void best2x2_plane<false>(float*, int64_t*, const float*, int64_t, int64_t, int64_t);

// Rows of 4 outputs, two per vector: the 8 inputs of output row r's top row, then those of
// q = r + 1 (the shuffles interleave them; in_order() puts r's 4 outputs first, as in y).
struct Rows4 {
  const float* ta;  // top input row of output row r
  const float* tb;  // top input row of output row q
  int64_t pr, pq;   // in-plane positions of those rows' first elements
};
inline Rows4 rows4(const float* x, int64_t r, int64_t OH, int64_t H, int64_t W) {
  const int64_t pr = 2 * (r % OH) * W, pq = 2 * ((r + 1) % OH) * W;
  return {x + (r / OH) * H * W + pr, x + ((r + 1) / OH) * H * W + pq, pr, pq};
}
inline Taps2x2 taps_rows4(const Rows4& q, int64_t W) {
  return taps2x2(_mm256_loadu_ps(q.ta), _mm256_loadu_ps(q.tb), _mm256_loadu_ps(q.ta + W),
                 _mm256_loadu_ps(q.tb + W));
}

void avg2x2_rows4(float* y, const float* x, int64_t r0, int64_t r1, int64_t OH, int64_t H,
                  int64_t W) {
  for (int64_t r2 = r0; r2 < r1; r2 += 2) {  // output rows r, r + 1 (the last pair may overlap)
    const int64_t r = r2 + 2 <= r1 ? r2 : r1 - 2;
    avg2x2(y + r * 4, taps_rows4(rows4(x, r, OH, H, W), W));
  }
}

template <bool IsMax>
void best2x2_rows4(float* y, int64_t* ind, const float* x, int64_t r0, int64_t r1, int64_t OH,
                   int64_t H, int64_t W) {
  for (int64_t r2 = r0; r2 < r1; r2 += 2) {  // output rows r, r + 1 (the last pair may overlap)
    const int64_t r = r2 + 2 <= r1 ? r2 : r1 - 2;
    const Rows4 q = rows4(x, r, OH, H, W);
    const int32_t pr = static_cast<int32_t>(q.pr), pq = static_cast<int32_t>(q.pq);
    const __m256i p00 = _mm256_setr_epi32(pr, pr + 2, pq, pq + 2, pr + 4, pr + 6, pq + 4, pq + 6);
    best2x2<IsMax>(y + r * 4, ind + r * 4, taps_rows4(q, W), p00, W);
  }
}
template void best2x2_rows4<true>(float*, int64_t*, const float*, int64_t, int64_t, int64_t,
                                  int64_t, int64_t);
template void best2x2_rows4<false>(float*, int64_t*, const float*, int64_t, int64_t, int64_t,
                                   int64_t, int64_t);

void avg2x2_backward_plane(float* dx, const float* dy, int64_t H, int64_t W, int64_t OH,
                           int64_t OW) {
  for (int64_t oh = 0; oh < OH; ++oh) {  // dx rows 2*oh, 2*oh + 1
    float* r0 = dx + 2 * oh * W;
    for (int64_t j0 = 0; j0 < OW; j0 += 8) {  // outputs [j, j + 8): dx columns [2j, 2j + 16)
      const int64_t j = j0 + 8 <= OW ? j0 : OW - 8;
      __m256 lo, hi;
      spread2x2(_mm256_loadu_ps(dy + oh * OW + j), lo, hi);
      for (int64_t a = 0; a < 2; ++a) {
        _mm256_storeu_ps(r0 + a * W + 2 * j, lo);
        _mm256_storeu_ps(r0 + a * W + 2 * j + 8, hi);
      }
    }
    for (int64_t c = 2 * OW; c < W; ++c) r0[c] = r0[W + c] = 0.0f;  // columns in no window
  }
  for (int64_t i = 2 * OH * W; i < H * W; ++i) dx[i] = 0.0f;  // rows in no window
}

void avg2x2_backward_rows4(float* dx, const float* dy, int64_t r0, int64_t r1, int64_t OH,
                           int64_t H, int64_t W) {
  const auto put = [&](int64_t r, __m256 row) {  // both dx rows of output row r
    float* d0 = dx + (r / OH) * H * W + 2 * (r % OH) * W;
    for (int64_t a = 0; a < 2; ++a) {  // dx row 2oh + a
      _mm256_storeu_ps(d0 + a * W, row);
      for (int64_t c = 8; c < W; ++c) d0[a * W + c] = 0.0f;  // columns in no window
    }
  };
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) {  // output rows r, r + 1: dy[r*4, r*4 + 8)
    __m256 lo, hi;
    spread2x2(_mm256_loadu_ps(dy + r * 4), lo, hi);
    put(r, lo);
    put(r + 1, hi);
  }
  if (r < r1) {  // the last row alone: 4 values (upper lanes zero: no read past dy)
    __m256 lo, hi;
    spread2x2(_mm256_insertf128_ps(_mm256_setzero_ps(), _mm_loadu_ps(dy + r * 4), 0), lo, hi);
    put(r, lo);
  }
}

template <typename T>
void avg_backward_plane(T* dx, const T* dy, const T* div, const Geo& g) {
  if (g.SW == 2 && g.KW <= 2 && g.SH >= g.KH) {
    T* row = static_cast<T*>(scratch(sizeof(T) * static_cast<size_t>(g.W + 2 * V<T>::L)));
    avg_plane_direct(dx, dy, div, g, row);
  } else {
    avg_plane_gather(dx, dy, div, g);
  }
}

#define CF_POOL_AVX2_INSTANTIATE(T)                                                             \
  template void best_row<true, T>(T*, int64_t*, const T*, int64_t, int64_t, int64_t, int64_t,   \
                                  int64_t, int64_t, int64_t, int64_t);                          \
  template void best_row<false, T>(T*, int64_t*, const T*, int64_t, int64_t, int64_t, int64_t,  \
                                   int64_t, int64_t, int64_t, int64_t);                         \
  template void avg_row<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,  \
                           int64_t, int64_t, T);                                                \
  template void avg_backward_plane<T>(T*, const T*, const T*, const Geo&);

CF_POOL_AVX2_INSTANTIATE(float)
CF_POOL_AVX2_INSTANTIATE(double)
#undef CF_POOL_AVX2_INSTANTIATE

}  // namespace convforge::pool_avx2

#endif  // CONVFORGE_X86 && __AVX2__
