// AVX-512 copy of the blocked GEMM (CMake compiles *_avx512.cpp with -mavx512f/bw/dq/vl):
// 512-bit vectors, register tile 12 x 32 floats / 12 x 16 doubles (24 accumulators of 32 zmm
// registers). Called only through gemm() in gemm.cpp, and only when current_isa() is avx512.
// Layouts, algorithm and determinism: see gemm_kernel.inc.
#define CF_GEMM_ISA avx512
#define CF_VEC_BYTES 64
#define CF_MR_F32 12
#define CF_MR_F64 12
#include "gemm_kernel.inc"
