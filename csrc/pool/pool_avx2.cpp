// AVX2+FMA copy of the pooling fast paths (CMake compiles *_avx2.cpp with -mavx2 -mfma): 256-bit
// vectors, 8 float / 4 double lanes. Called only through the table that pool2d.cpp picks with
// select_isa(), when current_isa() is avx2.
// Algorithms and bit-identity: see pool_kernel.inc.
#define CF_ISA avx2
#define CF_VEC_BYTES 32
#include "pool_kernel.inc"
