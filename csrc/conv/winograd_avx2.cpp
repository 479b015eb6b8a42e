// AVX2+FMA copy of the Winograd F(4x4, 3x3) tile transforms (CMake compiles *_avx2.cpp with
// -mavx2 -mfma). Called only through winograd.cpp, and only when current_isa() is avx2.
// Layouts and algorithm: see winograd_kernel.inc and winograd.hpp.
#define CF_ISA avx2
#define CF_VEC_BYTES 32
#include "winograd_kernel.inc"
