// FMA peak microbenchmark (see peak.hpp): the baseline (SSE2) copy of the timed loop, and
// fma_peak(), which picks the loops for current_isa(), runs them on every thread and sums the
// threads' rates.
//
// Timing: each thread first calibrates a window of about 0.5 ms (doubling `reps`) and warms up
// for about 20 ms (clock ramp-up, the wide-vector power state), then runs windows back to back
// for `seconds`; its rate is the best window (and, for information, the median one). The
// threads run at the same time, so the total includes any sharing of the cores.
#include <emmintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>
#ifdef CONVFORGE_OPENMP
#include <omp.h>
#endif

#include "convforge/cpu.hpp"
#include "peak.hpp"
#include "peak_chains.hpp"

namespace convforge {

namespace peak_detail::baseline {
#include "peak_chains.inc"

namespace {
// No FMA instruction in baseline x86-64: multiply then add (still 2 FLOPs per lane).
struct F32 {
  typedef float T;
  typedef __m128 V;
  static constexpr int kLanes = 4, kChains = 12;
  static V splat(T x) { return _mm_set1_ps(x); }
  static V madd(V a, V m, V c) { return _mm_add_ps(_mm_mul_ps(a, m), c); }
  static double sum(V v) {
    alignas(16) T t[kLanes];
    _mm_store_ps(t, v);
    double s = 0;
    for (T x : t) s += x;
    return s;
  }
};
struct F64 {
  typedef double T;
  typedef __m128d V;
  static constexpr int kLanes = 2, kChains = 12;
  static V splat(T x) { return _mm_set1_pd(x); }
  static V madd(V a, V m, V c) { return _mm_add_pd(_mm_mul_pd(a, m), c); }
  static double sum(V v) {
    alignas(16) T t[kLanes];
    _mm_store_pd(t, v);
    return t[0] + t[1];
  }
};
}  // namespace

ChainFn chains_f32_128() { return &chains<F32>; }
ChainFn chains_f64_128() { return &chains<F64>; }
}  // namespace peak_detail::baseline

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kMaxWindows = int64_t(1) << 16;  // per thread (>= 30 s of 0.5 ms windows)

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// One thread's windows of fn: calibrate, warm up, then time windows for `seconds`.
// rates: room for kMaxWindows entries; returns how many were written (>= 1).
int64_t run_windows(peak_detail::ChainFn fn, double seconds, double* rates, double* sink) {
  int64_t reps = 1024;
  for (;;) {  // calibrate: a window of >= 0.5 ms
    const auto t0 = Clock::now();
    fn(reps, 0.999, 1e-3, sink);
    if (seconds_since(t0) >= 5e-4 || reps >= (int64_t(1) << 30)) break;
    reps *= 2;
  }
  const auto w0 = Clock::now();
  while (seconds_since(w0) < 0.02) fn(reps, 0.999, 1e-3, sink);  // warm-up
  int64_t n = 0;
  const auto start = Clock::now();
  do {
    const auto t0 = Clock::now();
    const double flops = fn(reps, 0.999, 1e-3, sink);
    const double dt = seconds_since(t0);
    if (dt > 0) rates[n++] = flops / dt / 1e9;
  } while (n < kMaxWindows && (n == 0 || seconds_since(start) < seconds));
  return n;
}

PeakWidth measure(peak_detail::ChainFn fn, int bits, double seconds, int threads) {
  std::vector<double> rates(static_cast<size_t>(threads) * kMaxWindows);
  std::vector<int64_t> count(threads, 0);
  std::vector<double> sinks(static_cast<size_t>(threads) * 8, 0.0);  // a cache line each
CF_OMP(omp parallel num_threads(threads))
  {
    int t = 0;
#ifdef CONVFORGE_OPENMP
    t = omp_get_thread_num();
#endif
    count[t] = run_windows(fn, seconds, rates.data() + t * kMaxWindows, &sinks[t * 8]);
  }
  PeakWidth w{bits, 0.0, 0.0, {}};
  for (int t = 0; t < threads; ++t) {
    double* r = rates.data() + t * kMaxWindows;
    const int64_t n = count[t];
    std::sort(r, r + n);
    w.per_thread.push_back(r[n - 1]);
    w.gflops += r[n - 1];
    w.gflops_median += r[n / 2];
  }
  double s = 0;  // the sinks are read, so the loops' results are used
  for (double x : sinks) s += x;
  if (!std::isfinite(s)) w.gflops = w.gflops_median = 0.0;
  return w;
}

}  // namespace

PeakResult fma_peak(bool f64, double seconds, int threads) {
  namespace pd = peak_detail;
  if (threads <= 0 || in_fork_child()) threads = max_threads();  // 1 after fork(): see cpu.hpp
#ifndef CONVFORGE_OPENMP
  threads = 1;
#endif
  const Isa isa = current_isa();
  PeakResult res{isa_name(isa), isa != Isa::baseline, threads, {}, 0};
  if (isa == Isa::avx512)
    res.widths.push_back(measure(f64 ? pd::avx512::chains_f64_512() : pd::avx512::chains_f32_512(),
                                 512, seconds, threads));
  if (isa == Isa::avx512 || isa == Isa::avx2)
    res.widths.push_back(measure(f64 ? pd::avx2::chains_f64_256() : pd::avx2::chains_f32_256(),
                                 256, seconds, threads));
  if (isa == Isa::baseline)
    res.widths.push_back(
        measure(f64 ? pd::baseline::chains_f64_128() : pd::baseline::chains_f32_128(), 128,
                seconds, threads));
  for (size_t i = 1; i < res.widths.size(); ++i)
    if (res.widths[i].gflops > res.widths[res.best].gflops) res.best = static_cast<int>(i);
  return res;
}

}  // namespace convforge
