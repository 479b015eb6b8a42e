// AVX-512 copy of the pooling fast paths (CMake compiles *_avx512.cpp with -mavx512f/bw/dq/vl):
// the row and plane kernels on 512-bit vectors, 16 float / 8 double lanes (masks in k
// registers); the short-row and 2x2 kernels as in the AVX2 copy (256-bit). Called only through
// the table that pool2d.cpp picks with select_isa(), when current_isa() is avx512.
// Algorithms and bit-identity: see pool_kernel.inc.
#define CF_ISA avx512
#define CF_VEC_BYTES 64
#include "pool_kernel.inc"
