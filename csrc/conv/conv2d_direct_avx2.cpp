// AVX2+FMA copy of the direct small-channel micro-kernel (CMake compiles *_avx2.cpp with
// -mavx2 -mfma): 256-bit vectors, register tile 6 channels x 2 vectors (12 of 16 ymm).
// Called only through direct_kernel<T>() (conv2d_direct.cpp) when current_isa() is avx2.
// Contract and algorithm: conv2d_direct.hpp and conv2d_direct_kernel.inc.
#define CF_ISA avx2
#define CF_VEC_BYTES 32
#include "conv2d_direct_kernel.inc"
