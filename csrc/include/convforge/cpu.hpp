// Run-time CPU feature detection and the one place where the instruction set is chosen.
#pragma once

namespace convforge {

enum class Isa { baseline = 0, avx2 = 1, avx512 = 2 };

// Best ISA this CPU supports, lowered by the environment variable CONVFORGE_ISA
// (baseline|avx2|avx512) when set; never raised above what the CPU has.
Isa detected_isa();
// The ISA kernels dispatch on now (detected_isa() unless set_isa() lowered it, e.g. in tests).
Isa current_isa();
// Choose an ISA at run time; returns false (and changes nothing) if the CPU lacks it.
bool set_isa(Isa isa);
const char* isa_name(Isa isa);
// Whether 16-lane AVX-512 gathers beat scalar loads for the Winograd input patches: Intel's
// AVX-512 cores (the Xeon of bench/README.md), not AMD's (Zen 4 microcodes the gather: the
// scalar copy gave a VGG-small step 5-8% faster there). CONVFORGE_GATHERS=0 or 1 overrides
// (read once, at load; tests run both).
bool fast_gathers();
// Whether the CPU runs AVX-512 on 256-bit halves (AMD Zen 4, family 19h): there a channel-vector
// conv tile of one 512-bit vector loses to the AVX2 copy's two 256-bit vectors (forward; weight
// gradient of 5x5 kernels: conv2d_direct.cpp, kvec_kernel). CONVFORGE_NARROW_AVX512=0 or 1
// overrides (read once, at load; tests run both).
bool narrow_avx512();

// Threads every parallel region uses (1 without OpenMP). convforge keeps its own count instead of
// relying on OpenMP's per-thread ICV, which other libraries sharing libgomp (numba's omp layer,
// PyTorch) may reset; each region passes it explicitly through CF_OMP_FOR.
// In the child of a fork() (see in_fork_child) max_threads() is 1 whatever was set.
int max_threads();
void set_num_threads(int n);
// The count last set (or the load-time default), also in a fork child where it is not used.
int requested_threads();
// True in a process created by fork() from one that had convforge loaded: OpenMP teams of more
// than one thread would hang there (GNU libgomp), so kernels run on one thread.
bool in_fork_child();
bool has_openmp();

}  // namespace convforge

// CF_OMP(directive): an OpenMP pragma that vanishes without OpenMP.
// CF_OMP_FOR(clauses): `omp parallel for` over convforge's thread count.
#ifdef CONVFORGE_OPENMP
#define CF_OMP(directive) _Pragma(#directive)
#else
#define CF_OMP(directive)
#endif
#define CF_OMP_FOR(clauses) CF_OMP(omp parallel for num_threads(::convforge::max_threads()) clauses)
