// AVX-512 copy of the blocked GEMM (CMake compiles *_avx512.cpp with -mavx512f/bw/dq/vl):
// 512-bit vectors, register tile 12 x 32 floats / 12 x 16 doubles (24 accumulators of 32 zmm
// registers). Called only through gemm() in gemm.cpp, and only when current_isa() is avx512.
// Blocking: the defaults of gemm_kernel.inc (KC 256, MC 16 / 12 tiles, NC 2048 / 1024, PG 8), not
// re-tuned for speed: the machine the AVX2 copy was tuned on (Zen 3) has no AVX-512. Note that
// the B micro-panel is then 32 KB (256 x 32 floats), the whole of a Zen 4 L1D.
// Layouts, algorithm and determinism: see gemm_kernel.inc.
#define CF_ISA avx512
#define CF_VEC_BYTES 64
#define CF_GEMM_MR_F32 12
#define CF_GEMM_MR_F64 12
#include "gemm_kernel.inc"
