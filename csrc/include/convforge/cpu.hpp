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

int max_threads();          // OpenMP threads a parallel region will use (1 without OpenMP)
void set_num_threads(int n);
bool has_openmp();

}  // namespace convforge
