// AVX2+FMA copy of the blocked GEMM (CMake compiles *_avx2.cpp with -mavx2 -mfma): 256-bit
// vectors, register tile 6 x 16 floats / 6 x 8 doubles (12 accumulators of 16 ymm registers).
// Called only through gemm() in gemm.cpp, and only when current_isa() is avx2.
// Layouts, algorithm and determinism: see gemm_kernel.inc.
#define CF_GEMM_ISA avx2
#define CF_VEC_BYTES 32
#define CF_MR_F32 6
#define CF_MR_F64 6
#include "gemm_kernel.inc"
