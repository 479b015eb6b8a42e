// AVX-512 copy of the Winograd F(4x4, 3x3) tile transforms (CMake compiles *_avx512.cpp with
// -mavx512f/bw/dq/vl). Called only through winograd.cpp, and only when current_isa() is avx512.
// Layouts and algorithm: see winograd_kernel.inc and winograd.hpp.
#define CF_ISA avx512
#define CF_VEC_BYTES 64
#include "winograd_kernel.inc"
