// AVX2 copy of the optimiser block kernels (CMake adds the -m flags by file-name suffix).
// Called only through update.cpp, and only when current_isa() is avx2.
#define CF_ISA avx2
#include "update_kernel.inc"
