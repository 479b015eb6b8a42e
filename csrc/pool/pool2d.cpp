// 2-D pooling family: max, min and average pooling over windows, global average / max pooling,
// forward and backward together.
//
// Layouts: x, dx (N, C, H, W); y, dy, ind (N, C, OH, OW); global y, dy, ind (N, C). All
// C-contiguous, one plane = one (n, c) pair. Indices are 64-bit; ind holds ih*W + iw.
//
// Window of output (oh, ow): rows [hs, hs + KH) with hs = oh*SH - PH, clipped to [0, H); columns
// [ws, ws + KW) with ws = ow*SW - PW, clipped to [0, W). The caller guarantees each clipped
// window is non-empty.
//   max/min: y = best element of the window in row-major window order; ties keep the first
//            occurrence; a NaN wins and the last NaN is kept (PyTorch's choice: its CPU
//            kernels take `v > best || isnan(v)`). ind = its ih*W + iw.
//   avg:     y = (sum of the clipped window) / divisor, the sum taken in row-major window order
//            in T, divisor = count_include_pad ? (min(hs+KH, H+PH) - hs) * (min(ws+KW, W+PW) - ws)
//                                              : clipped row count * clipped column count.
//   backward max/min: dx = 0, then dx[ind] += dy (overlapping windows sum); an index outside
//                     [0, H*W) is skipped and reported (return value false).
//   backward avg:     dx[i] = sum over the windows holding i, in (oh, ow) order, of dy / divisor.
//   global avg: y = (sum of the plane, in double) / (H*W); global max as max over one window.
//
// Parallel axes (OpenMP, static schedule): forward over output rows (N*C*OH), avg backward over
// input rows (N*C*H, each row gathers from the output rows that cover it), max/min backward over
// planes (N*C; indices may point anywhere in their plane), global forward over input rows for the
// row partials then over planes for the fixed-order combination. No atomics; every element is
// computed by one thread in one fixed order, so results are bit-identical for any thread count.
//
// Fast paths: for output columns whose window lies inside [0, W) ("interior" columns) the loops
// run taps outer, output columns inner, so the inner loop is a plain strided (often contiguous)
// sweep the compiler vectorises; border columns use the naive per-window code. The per-element
// order of operations is the naive one, so fast and naive kernels agree bit for bit.
// ISA fast paths: select_kernel() picks the table of one ISA copy of pool_kernel.inc
// (pool_kernel.hpp; select_isa of csrc/runtime/isa.hpp). Where the table has a kernel for the
// shape (avx2 and avx512; the baseline table is empty), column strides 1 and 2 run the interior
// columns through its row kernels instead (masked tails, so short rows stay in vector
// registers), and the average backward gathers plane by plane there (parallel over planes);
// same per-element operations and order, so every ISA gives the same bits.
// 2x2 windows with stride 2 and no padding on rows of >= 8 outputs (LeNet's and VGG's pools)
// skip the row machinery: the table's avg2x2_plane / best2x2_plane run a whole plane with
// shuffles of 16 consecutive inputs per row; rows of 4 outputs (8 x 8 planes) go two per
// vector (avg2x2_rows4 / best2x2_rows4), and so does the average backward of both
// (avg2x2_backward_plane / _rows4).
// Max/min backward is a scalar scatter for every ISA; it checks each index against [0, H*W)
// as it goes (the binding then raises), so the indices are read once.
//
// This file holds the fast windowed kernels and their dispatch; the naive kernels are in
// naive.cpp, global pooling in global.cpp, shared helpers in pool2d_common.hpp. Every kernel
// overwrites its outputs.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

#include "convforge/cpu.hpp"
#include "convforge/pool2d.hpp"
#include "pool2d_common.hpp"
#include "pool_kernel.hpp"
#include "runtime/isa.hpp"

namespace convforge {
using namespace pool_detail;  // NOLINT(build/namespaces): the family's private helpers

namespace pool_detail::baseline {
// No baseline copy of the fast paths (they are written with intrinsics): an empty table, so the
// generic loops below run.
template <>
Kernel<float> kernel<float>() { return {}; }
template <>
Kernel<double> kernel<double>() { return {}; }
}  // namespace pool_detail::baseline

namespace {

// The one place the pooling fast paths' instruction set is chosen.
template <typename T>
Kernel<T> select_kernel() {
  return select_isa(&baseline::kernel<T>, &avx2::kernel<T>, &avx512::kernel<T>);
}

// Output columns [lo, hi) whose window lies inside [0, W): ws >= 0 and ws + KW <= W. Columns in
// [0, lo) and [hi, OW) are border columns; lo <= hi always.
struct Span {
  int64_t lo, hi;
};
inline Span interior_cols(const PoolDims& d) {
  const int64_t last_start = d.W - d.KW + d.PW;  // largest ow*SW with ws + KW <= W
  const int64_t lo = std::min(ceil_div(d.PW, d.SW), d.OW);
  const int64_t hi = last_start >= 0 ? std::min(floor_div(last_start, d.SW) + 1, d.OW) : 0;
  return {lo, std::max(hi, lo)};
}


// The row kernels of the table (k.best_row, k.avg_row) take column strides 1 and 2 and int32
// positions ih*W + iw.
template <typename T>
inline bool simd_forward(const Kernel<T>& k, const PoolDims& d) {
  return k.avg_row && (d.SW == 1 || d.SW == 2) && d.H * d.W <= INT32_MAX;
}

// The table's average backward (k.avg_backward_plane) gathers: SW = 1, or SW = 2 with KW <= 2
// (windows do not overlap along a row).
template <typename T>
inline bool simd_avg_backward(const Kernel<T>& k, const PoolDims& d) {
  return k.avg_backward_plane && (d.SW == 1 || (d.SW == 2 && d.KW <= 2));
}

// The same windows on rows of 4 outputs (8 x 8 planes): k.avg2x2_rows4 / k.best2x2_rows4, two
// output rows per vector; tasks of kRows4Block output rows (the last takes the rest), so no two
// tasks touch one row.
constexpr int64_t kRows4Block = 256;
// 2x2 windows, stride 2, no padding: the windows tile the plane (but an odd last row/column).
inline bool is_2x2(const PoolDims& d) {
  return d.KH == 2 && d.KW == 2 && d.SH == 2 && d.SW == 2 && d.PH == 0 && d.PW == 0 &&
         2 * d.OH <= d.H && 2 * d.OW <= d.W;
}
inline bool is_2x2_rows4(const PoolDims& d) {
  return is_2x2(d) && d.OW == 4 && d.N * d.C * d.OH >= 2;
}

// 2x2 windows, stride 2, no padding (LeNet, VGG): the plane kernels k.avg2x2_plane /
// k.best2x2_plane (float), one plane per task, no border columns; rows of 4 outputs go to the
// paired-row kernels above where they apply (two rows per vector).
inline bool is_2x2_fast(const PoolDims& d) {
  return is_2x2(d) && d.OW >= 1 && !is_2x2_rows4(d);
}

// body(r0, r1) for the row tasks of is_2x2_rows4: output rows [r0, r1) of all planes.
template <typename F>
void rows4_tasks(const PoolDims& d, const F& body) {
  const int64_t rows = d.N * d.C * d.OH, blocks = std::max<int64_t>(1, rows / kRows4Block);
  CF_OMP_FOR(schedule(static) if(worth_parallel(d)))
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t r0 = b * kRows4Block;
    body(r0, b + 1 == blocks ? rows : r0 + kRows4Block);
  }
}

// Short rows (float, OW <= 4, every column interior) go two per vector (k.best_rows2):
// the forward then walks pairs of output rows (step 2) and hands a pair to the paired kernel
// when both rows' windows are unclipped and its reads stay inside x; any other row runs alone.
// Otherwise step 1: one output row per task.
struct PairRows {
  const PoolDims& d;
  bool on;
  int64_t step, per_plane;  // output rows per task, tasks per plane
  PairRows(const PoolDims& dims, Span cols, bool allowed)
      : d(dims),
        on(allowed && d.OW <= 4 && cols.lo == 0 && cols.hi == d.OW),
        step(on ? 2 : 1),
        per_plane(on ? (d.OH + 1) / 2 : d.OH) {}
  bool full(int64_t oh) const {  // window rows of output row oh inside [0, H)
    const int64_t hs = oh * d.SH - d.PH;
    return hs >= 0 && hs + d.KH <= d.H;
  }
  // Rows oh, oh + 1 of plane p can run paired. The paired loads read up to 4*SW - 1 elements
  // past a window; they may run into the next plane, not past x.
  bool fits(int64_t p, int64_t oh) const {
    if (!on || oh + 1 >= d.OH || !full(oh) || !full(oh + 1)) return false;
    const int64_t last = ((oh + 1) * d.SH - d.PH + d.KH - 1) * d.W - d.PW + d.KW - 1;
    return last + 4 * d.SW <= (d.N * d.C - p) * d.H * d.W;
  }
};

inline Geo plane_geo(const PoolDims& d, Span cols) {
  return {d.H, d.W, d.KH, d.KW, d.SH, d.SW, d.PH, d.PW, d.OH, d.OW, cols.lo, cols.hi};
}

// ---- fast inner sweeps over interior output columns j in [0, n) ------------------------------
// S is the column stride as a compile-time constant (0: use the run-time sw).

// yc: y of the interior columns (n,); tc: number of the best tap so far, (ih - h0)*KW + kw, per
// column (n,); xr: x at tap t for column 0, read every sw. The tap number is int32 rather than
// the int64 index because a float/int64 select does not vectorise on baseline x86-64.
template <bool IsMax, int64_t S, typename T>
inline void best_tap(T* __restrict yc, int32_t* __restrict tc, const T* __restrict xr, int32_t t,
                     int64_t n, int64_t sw) {
  const int64_t s = S ? S : sw;
  for (int64_t j = 0; j < n; ++j) {
    const T v = xr[j * s];
    const bool take = better<IsMax>(v, yc[j]);
    yc[j] = take ? v : yc[j];
    tc[j] = take ? t : tc[j];
  }
}

template <int64_t S, typename T>
inline void sum_tap(T* __restrict yc, const T* __restrict xr, int64_t n, int64_t sw) {
  const int64_t s = S ? S : sw;
  for (int64_t j = 0; j < n; ++j) yc[j] += xr[j * s];
}

// dc: dx row at this tap for column 0, written every sw; dyc: dy of the interior columns (n,).
template <int64_t S, typename T>
inline void scatter_tap(T* __restrict dc, const T* __restrict dyc, T div, int64_t n,
                        int64_t sw) {
  const int64_t s = S ? S : sw;
  for (int64_t j = 0; j < n; ++j) dc[j * s] += dyc[j] / div;
}

// ---- one output row of the forward -----------------------------------------------------------

// yr, ir: y[n, c, oh] and ind[n, c, oh] (OW,); xp: x[n, c] (H, W); tap: scratch (OW,).
template <bool IsMax, typename T>
void best_row(T* yr, int64_t* ir, int32_t* tap, const T* xp, const PoolDims& d, int64_t oh,
              Span cols, const Kernel<T>& k, bool simd) {
  const int64_t W = d.W;
  const Range rh = window_range(oh, d.KH, d.SH, d.PH, d.H);
  auto border = [&](int64_t ow) {
    const Range rw = window_range(ow, d.KW, d.SW, d.PW, W);
    window_best<IsMax>(yr + ow, ir + ow, xp, W, rh.lo, rh.hi, rw.lo, rw.hi);
  };
  for (int64_t ow = 0; ow < cols.lo; ++ow) border(ow);
  for (int64_t ow = cols.hi; ow < d.OW; ++ow) border(ow);
  const int64_t n = cols.hi - cols.lo;
  if (n == 0) return;
  T* yc = yr + cols.lo;
  const int64_t ws0 = cols.lo * d.SW - d.PW;  // window start of the first interior column
  if (simd) {
    k.best_row[IsMax](yc, ir + cols.lo, xp, W, d.H * W, rh.lo, rh.hi, ws0, n, d.KW, d.SW);
    return;
  }
  for (int64_t j = 0; j < n; ++j) {            // tap 0 = (rh.lo, 0) starts every window
    yc[j] = xp[rh.lo * W + ws0 + j * d.SW];
    tap[j] = 0;
  }
  for (int64_t ih = rh.lo; ih < rh.hi; ++ih) {           // window rows
    for (int64_t kw = 0; kw < d.KW; ++kw) {              // window columns: taps in window order
      const int32_t t = static_cast<int32_t>((ih - rh.lo) * d.KW + kw);
      if (t == 0) continue;
      const T* xr = xp + ih * W + ws0 + kw;
      if (d.SW == 1) best_tap<IsMax, 1>(yc, tap, xr, t, n, 1);
      else if (d.SW == 2) best_tap<IsMax, 2>(yc, tap, xr, t, n, 2);
      else best_tap<IsMax, 0>(yc, tap, xr, t, n, d.SW);
    }
  }
  int64_t* ic = ir + cols.lo;
  for (int64_t j = 0; j < n; ++j)  // tap number -> ih*W + iw
    ic[j] = (rh.lo + tap[j] / d.KW) * W + ws0 + j * d.SW + tap[j] % d.KW;
}

// yr: y[n, c, oh] (OW,); xp: x[n, c] (H, W).
template <typename T>
void avg_row(T* yr, const T* xp, const PoolDims& d, int64_t oh, Span cols, bool cip,
             const Kernel<T>& k, bool simd) {
  const int64_t W = d.W;
  const Range rh = window_range(oh, d.KH, d.SH, d.PH, d.H);
  auto border = [&](int64_t ow) {
    const Range rw = window_range(ow, d.KW, d.SW, d.PW, W);
    yr[ow] = window_sum(xp, W, rh.lo, rh.hi, rw.lo, rw.hi) / static_cast<T>(divisor(rh, rw, cip));
  };
  for (int64_t ow = 0; ow < cols.lo; ++ow) border(ow);
  for (int64_t ow = cols.hi; ow < d.OW; ++ow) border(ow);
  const int64_t n = cols.hi - cols.lo;
  if (n == 0) return;
  T* yc = yr + cols.lo;
  const int64_t ws0 = cols.lo * d.SW - d.PW;
  // Interior columns: the clipped and the padded column count are both KW.
  const T div = static_cast<T>((cip ? rh.padded : rh.hi - rh.lo) * d.KW);
  if (simd) {
    k.avg_row(yc, xp, W, d.H * W, rh.lo, rh.hi, ws0, n, d.KW, d.SW, div);
    return;
  }
  for (int64_t j = 0; j < n; ++j) yc[j] = 0;
  for (int64_t ih = rh.lo; ih < rh.hi; ++ih) {           // window rows
    for (int64_t kw = 0; kw < d.KW; ++kw) {              // window columns
      const T* xr = xp + ih * W + ws0 + kw;
      if (d.SW == 1) sum_tap<1>(yc, xr, n, 1);
      else if (d.SW == 2) sum_tap<2>(yc, xr, n, 2);
      else sum_tap<0>(yc, xr, n, d.SW);
    }
  }
  for (int64_t j = 0; j < n; ++j) yc[j] /= div;
}

template <bool IsMax, typename T>
void best_forward(T* y, int64_t* ind, const T* x, const PoolDims& d) {
  if (d.KH * d.KW > INT32_MAX) {  // tap numbers would not fit in int32
    (IsMax ? pool2d_max_forward_naive<T> : pool2d_min_forward_naive<T>)(y, ind, x, d);
    return;
  }
  const Kernel<T> k = select_kernel<T>();
  if (k.best2x2_plane[IsMax] && is_2x2_fast(d) && d.H * d.W <= INT32_MAX) {
    const int64_t planes = d.N * d.C, OHW = d.OH * d.OW;
    CF_OMP_FOR(schedule(static) if(worth_parallel(d)))
    for (int64_t p = 0; p < planes; ++p)  // p: plane (n, c): y, ind (OH, OW) from x (H, W)
      k.best2x2_plane[IsMax](y + p * OHW, ind + p * OHW, x + p * d.H * d.W, d.OH, d.W, d.OW);
    return;
  }
  if (k.best2x2_rows4[IsMax] && is_2x2_rows4(d) && d.H * d.W <= INT32_MAX) {
    rows4_tasks(d, [&](int64_t r0, int64_t r1) {
      k.best2x2_rows4[IsMax](y, ind, x, r0, r1, d.OH, d.H, d.W);
    });
    return;
  }
  const Span cols = interior_cols(d);
  const bool simd = simd_forward(k, d);
  const PairRows pairs(d, cols, simd && k.best_rows2[IsMax]);
  const int64_t tasks = d.N * d.C * pairs.per_plane;
  CF_OMP(omp parallel num_threads(::convforge::max_threads()) if(worth_parallel(d)))
  {
    std::vector<int32_t> tap(static_cast<size_t>(d.OW));  // per-thread scratch (OW,)
    CF_OMP(omp for schedule(static))
    for (int64_t t = 0; t < tasks; ++t) {  // t: output row (n, c, oh), or row pair (oh, oh + 1)
      const int64_t p = t / pairs.per_plane, oh = (t % pairs.per_plane) * pairs.step;
      const int64_t r = p * d.OH + oh;     // first output row of the task
      const T* xp = x + p * d.H * d.W;     // x[n, c] (H, W)
      if (pairs.fits(p, oh)) {
        k.best_rows2[IsMax](y + r * d.OW, ind + r * d.OW, xp, d.W, oh * d.SH - d.PH,
                            (oh + 1) * d.SH - d.PH, d.KH, d.KW, -d.PW, d.OW, d.SW);
        continue;
      }
      for (int64_t i = 0; i < pairs.step && oh + i < d.OH; ++i)
        best_row<IsMax>(y + (r + i) * d.OW, ind + (r + i) * d.OW, tap.data(), xp, d, oh + i,
                        cols, k, simd);
    }
  }
}

}  // namespace

// ---- windowed forward ------------------------------------------------------------------------

template <typename T>
void pool2d_max_forward(T* y, int64_t* ind, const T* x, const PoolDims& d) {
  best_forward<true>(y, ind, x, d);
}

template <typename T>
void pool2d_min_forward(T* y, int64_t* ind, const T* x, const PoolDims& d) {
  best_forward<false>(y, ind, x, d);
}

template <typename T>
void pool2d_avg_forward(T* y, const T* x, bool count_include_pad, const PoolDims& d) {
  const Kernel<T> k = select_kernel<T>();
  if (k.avg2x2_plane && is_2x2_fast(d)) {
    const int64_t planes = d.N * d.C;
    CF_OMP_FOR(schedule(static) if(worth_parallel(d)))
    for (int64_t p = 0; p < planes; ++p)  // p: plane (n, c): y (OH, OW) from x (H, W)
      k.avg2x2_plane(y + p * d.OH * d.OW, x + p * d.H * d.W, d.OH, d.W, d.OW);
    return;
  }
  if (k.avg2x2_rows4 && is_2x2_rows4(d)) {
    rows4_tasks(d, [&](int64_t r0, int64_t r1) { k.avg2x2_rows4(y, x, r0, r1, d.OH, d.H, d.W); });
    return;
  }
  const Span cols = interior_cols(d);
  const bool simd = simd_forward(k, d);
  const PairRows pairs(d, cols, simd && k.avg_rows2);
  const int64_t tasks = d.N * d.C * pairs.per_plane;
  CF_OMP_FOR(schedule(static) if(worth_parallel(d)))
  for (int64_t t = 0; t < tasks; ++t) {  // t: output row (n, c, oh), or row pair (oh, oh + 1)
    const int64_t p = t / pairs.per_plane, oh = (t % pairs.per_plane) * pairs.step;
    const int64_t r = p * d.OH + oh;     // first output row of the task
    const T* xp = x + p * d.H * d.W;     // x[n, c] (H, W)
    if (pairs.fits(p, oh)) {  // unclipped windows: divisor KH*KW either way
      k.avg_rows2(y + r * d.OW, xp, d.W, oh * d.SH - d.PH, (oh + 1) * d.SH - d.PH, d.KH, d.KW,
                  -d.PW, d.OW, d.SW, static_cast<T>(d.KH * d.KW));
      continue;
    }
    for (int64_t i = 0; i < pairs.step && oh + i < d.OH; ++i)
      avg_row(y + (r + i) * d.OW, xp, d, oh + i, cols, count_include_pad, k, simd);
  }
}

// ---- windowed backward -----------------------------------------------------------------------

// The scatter of one plane: dx = 0, dx[ind] += dy for every index in [0, H*W); returns false
// (and skips it) for an index outside. dxp (H*W,), dyp, ip and yp (OH*OW,); yp (the ReLU
// mask) may be null.
template <typename T>
bool scatter_plane(T* dxp, const T* dyp, const int64_t* ip, const T* yp, int64_t HW,
                   int64_t OHW) {
  std::fill(dxp, dxp + HW, T(0));
  bool ok = true;
  for (int64_t o = 0; o < OHW; ++o) {  // outputs in (oh, ow) order
    const T g = !yp || yp[o] > T(0) ? dyp[o] : T(0);
    if (ip[o] < 0 || ip[o] >= HW) ok = false;
    else dxp[ip[o]] += g;
  }
  return ok;
}

// The scatter (also the naive index backward) stays scalar on every ISA: for general windows
// a vector gather, comparing every index with every position of its windows, was slower (the
// 2x2 plane kernel below compares each index with its own window's 4 positions only). The
// range check is part of the scatter, so the indices are read once.
template <typename T>
bool pool2d_index_backward_naive(T* dx, const T* dy, const int64_t* ind, const PoolDims& d,
                                 const T* relu_y) {
  const int64_t planes = d.N * d.C, HW = d.H * d.W, OHW = d.OH * d.OW;
  int ok = 1;
  CF_OMP_FOR(schedule(static) reduction(min : ok) if(worth_parallel(d)))
  for (int64_t p = 0; p < planes; ++p)  // p: plane (n, c): dx[n, c] (H*W,), dy/ind (OH*OW,)
    if (!scatter_plane(dx + p * HW, dy + p * OHW, ind + p * OHW,
                       relu_y ? relu_y + p * OHW : nullptr, HW, OHW))
      ok = 0;
  return ok == 1;
}

template <typename T>
bool pool2d_index_backward(T* dx, const T* dy, const int64_t* ind, const PoolDims& d,
                           const T* relu_y) {
  const Kernel<T> k = select_kernel<T>();
  // 2x2 windows on rows of >= 8 outputs (float): every dx element written once, by the table's
  // plane kernel (pool_kernel_2x2.inc); shorter rows, whose planes stay in L1, scatter faster.
  if (k.best2x2_backward_plane && is_2x2(d) && d.OW >= 8) {
    const int64_t planes = d.N * d.C, HW = d.H * d.W, OHW = d.OH * d.OW;
    int ok = 1;
    CF_OMP_FOR(schedule(static) reduction(min : ok) if(worth_parallel(d)))
    for (int64_t p = 0; p < planes; ++p)  // p: plane (n, c): dx[n, c] (H, W), dy/ind (OH, OW)
      if (!k.best2x2_backward_plane(dx + p * HW, dy + p * OHW, ind + p * OHW,
                                    relu_y ? relu_y + p * OHW : nullptr, d.H, d.W, d.OH, d.OW))
        ok = 0;
    if (ok == 1) return true;
  }
  // other windows, or an index outside its window: the scatter handles every case
  return pool2d_index_backward_naive(dx, dy, ind, d, relu_y);
}

// The table's average backward: one plane per task, gathered (see pool_kernel.inc); div (OH, OW)
// is shared.
template <typename T>
void avg_backward_planes(const Kernel<T>& k, T* dx, const T* dy, bool count_include_pad,
                         const PoolDims& d) {
  const int64_t planes = d.N * d.C, HW = d.H * d.W, OHW = d.OH * d.OW;
  const Geo geo = plane_geo(d, interior_cols(d));
  std::vector<T> div(static_cast<size_t>(OHW));  // (OH, OW) divisor of each window
  for (int64_t oh = 0; oh < d.OH; ++oh) {          // output rows
    const Range rh = window_range(oh, d.KH, d.SH, d.PH, d.H);
    for (int64_t ow = 0; ow < d.OW; ++ow)          // output columns
      div[oh * d.OW + ow] = static_cast<T>(
          divisor(rh, window_range(ow, d.KW, d.SW, d.PW, d.W), count_include_pad));
  }
  CF_OMP_FOR(schedule(static) if(worth_parallel(d)))
  for (int64_t p = 0; p < planes; ++p)  // p: plane (n, c)
    k.avg_backward_plane(dx + p * HW, dy + p * OHW, div.data(), geo);
}

template <typename T>
void pool2d_avg_backward(T* dx, const T* dy, bool count_include_pad, const PoolDims& d) {
  const Kernel<T> k = select_kernel<T>();
  if (k.avg2x2_backward_plane && is_2x2_fast(d)) {  // every window whole: divisor 4
    const int64_t planes = d.N * d.C;
    CF_OMP_FOR(schedule(static) if(worth_parallel(d)))
    for (int64_t p = 0; p < planes; ++p)  // p: plane (n, c): dx (H, W) from dy (OH, OW)
      k.avg2x2_backward_plane(dx + p * d.H * d.W, dy + p * d.OH * d.OW, d.H, d.W, d.OH, d.OW);
    return;
  }
  if (k.avg2x2_backward_rows4 && is_2x2_rows4(d)) {  // every window whole: divisor 4
    const int64_t spare = (d.H - 2 * d.OH) * d.W;  // dx rows in no window, per plane (H odd)
    rows4_tasks(d, [&](int64_t r0, int64_t r1) {
      k.avg2x2_backward_rows4(dx, dy, r0, r1, d.OH, d.H, d.W);
      for (int64_t r = r0; spare > 0 && r < r1; ++r)  // a plane's last row: zero the spare
        if (r % d.OH == d.OH - 1) {
          T* end = dx + (r / d.OH + 1) * d.H * d.W;
          std::fill(end - spare, end, T(0));
        }
    });
    return;
  }
  if (simd_avg_backward(k, d)) {
    avg_backward_planes(k, dx, dy, count_include_pad, d);
    return;
  }
  const int64_t rows = d.N * d.C * d.H, W = d.W;
  const Span cols = interior_cols(d);
  const int64_t n = cols.hi - cols.lo;
  const int64_t ws0 = cols.lo * d.SW - d.PW;  // window start of the first interior column
  CF_OMP_FOR(schedule(static) if(worth_parallel(d)))
  for (int64_t r = 0; r < rows; ++r) {  // r: input row (n, c, ih)
    const int64_t p = r / d.H, ih = r % d.H;
    T* dxr = dx + r * W;                // dx[n, c, ih] (W,)
    std::fill(dxr, dxr + W, T(0));
    // Output rows whose window holds ih: oh*SH - PH <= ih < oh*SH - PH + KH.
    const int64_t oh_lo = std::max<int64_t>(0, ceil_div_signed(ih + d.PH - d.KH + 1, d.SH));
    const int64_t oh_hi = std::min(d.OH, floor_div(ih + d.PH, d.SH) + 1);
    for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {         // covering output rows, in order
      const Range rh = window_range(oh, d.KH, d.SH, d.PH, d.H);
      const T* dyr = dy + (p * d.OH + oh) * d.OW;        // dy[n, c, oh] (OW,)
      auto border = [&](int64_t ow) {
        const Range rw = window_range(ow, d.KW, d.SW, d.PW, W);
        const T g = dyr[ow] / static_cast<T>(divisor(rh, rw, count_include_pad));
        for (int64_t iw = rw.lo; iw < rw.hi; ++iw) dxr[iw] += g;
      };
      for (int64_t ow = 0; ow < cols.lo; ++ow) border(ow);
      if (n > 0) {
        // Taps from the last column to the first: each dx element then receives the interior
        // columns in ascending ow order, as in the naive kernel.
        const T div = static_cast<T>((count_include_pad ? rh.padded : rh.hi - rh.lo) * d.KW);
        for (int64_t kw = d.KW - 1; kw >= 0; --kw) {     // window columns, last first
          T* dc = dxr + ws0 + kw;
          if (d.SW == 1) scatter_tap<1>(dc, dyr + cols.lo, div, n, 1);
          else if (d.SW == 2) scatter_tap<2>(dc, dyr + cols.lo, div, n, 2);
          else scatter_tap<0>(dc, dyr + cols.lo, div, n, d.SW);
        }
      }
      for (int64_t ow = cols.hi; ow < d.OW; ++ow) border(ow);
    }
  }
}


int64_t pool2d_first_bad_index(const int64_t* ind, int64_t count, int64_t limit) {
  int64_t first = count;
  CF_OMP_FOR(schedule(static) reduction(min : first) if(count >= kMinParallelElements))
  for (int64_t i = 0; i < count; ++i)  // ind (count,)
    if (ind[i] < 0 || ind[i] >= limit) first = std::min(first, i);
  return first == count ? -1 : first;
}

#define CF_POOL_INSTANTIATE(T)                                                                  \
  template void pool2d_max_forward<T>(T*, int64_t*, const T*, const PoolDims&);                 \
  template void pool2d_min_forward<T>(T*, int64_t*, const T*, const PoolDims&);                 \
  template void pool2d_avg_forward<T>(T*, const T*, bool, const PoolDims&);                     \
  template bool pool2d_index_backward<T>(T*, const T*, const int64_t*, const PoolDims&,       \
                                          const T*);                                            \
  template bool pool2d_index_backward_naive<T>(T*, const T*, const int64_t*, const PoolDims&, \
                                                const T*);                                      \
  template void pool2d_avg_backward<T>(T*, const T*, bool, const PoolDims&);

CF_POOL_INSTANTIATE(float)
CF_POOL_INSTANTIATE(double)
#undef CF_POOL_INSTANTIATE

}  // namespace convforge
