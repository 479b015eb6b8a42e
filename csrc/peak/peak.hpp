// FMA peak microbenchmark: the machine's floating-point multiply-add throughput with the
// instruction set convforge dispatches on (current_isa()), the denominator of "% of peak".
//
// Each thread runs its own independent chains acc[i] = acc[i] * m + c on NACC vector
// registers (enough to cover the FMA latency times the number of FMA pipes), in short timed
// windows; a thread's rate is its best window (noise from other processes only ever slows a
// window down, so the best one is the closest to the hardware's rate). The total is the sum
// of the threads' rates. 2 FLOPs are counted per multiply-add lane. The baseline (SSE2) copy
// has no FMA instruction: it measures a separate multiply and add, still 2 FLOPs per lane.
//
// Private to csrc/peak (peak.cpp and module.cpp, the convforge._peak module; baseline x86-64
// code only); the per-ISA loops are declared in peak_chains.hpp.
#pragma once
#include <cstdint>
#include <vector>

namespace convforge {

struct PeakWidth {
  int bits;                        // vector width measured: 128 | 256 | 512
  double gflops;                   // sum over threads of each thread's best window
  double gflops_median;            // sum over threads of each thread's median window
  std::vector<double> per_thread;  // best-window GFLOP/s of each thread
};

struct PeakResult {
  const char* isa;                // current_isa() when measured
  bool fma;                       // false for baseline (separate multiply and add)
  int threads;
  std::vector<PeakWidth> widths;  // every width measured (AVX-512: 512 and 256 bits)
  int best;                       // index into widths of the highest total
};

// Measures for about `seconds` per vector width on `threads` threads (max_threads() when
// threads <= 0). f64: double lanes, else float lanes.
PeakResult fma_peak(bool f64, double seconds, int threads);

}  // namespace convforge
