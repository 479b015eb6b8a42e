// AVX2+FMA copy of the blocked GEMM (CMake compiles *_avx2.cpp with -mavx2 -mfma): 256-bit
// vectors, register tile 6 x 16 floats / 6 x 8 doubles (12 accumulators of 16 ymm registers).
// Blocking tuned on Zen 3 (32 KB L1D, 512 KB L2): KC 320 keeps the B micro-panel (20 KB) in L1
// next to the streamed A micro-panel; MC 96 rows of A (120 KB) stay in L2; NC 2048 (float) /
// 1024 (double) columns of B (L3); B packed 8 panels at a time (L2).
// Called only through gemm() in gemm.cpp, and only when current_isa() is avx2.
// Layouts, algorithm and determinism: see gemm_kernel.inc.
#define CF_ISA avx2
#define CF_VEC_BYTES 32
#define CF_GEMM_MR_F32 6
#define CF_GEMM_MR_F64 6
#define CF_GEMM_KC_F32 320
#define CF_GEMM_KC_F64 320
#include "gemm_kernel.inc"
