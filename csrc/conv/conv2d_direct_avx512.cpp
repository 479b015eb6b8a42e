// AVX-512 copy of the direct small-channel micro-kernel (CMake compiles *_avx512.cpp with
// -mavx512f/bw/dq/vl): 512-bit vectors, register tile 8 channels x 3 vectors (24 of 32 zmm).
// Called only through direct_kernel<T>() (conv2d_direct.cpp) when current_isa() is avx512.
// Contract and algorithm: conv2d_direct.hpp and conv2d_direct_kernel.inc.
#define CF_ISA avx512
#define CF_VEC_BYTES 64
#define CF_DIRECT_NV 3
#define CF_DIRECT_KB 8
#define CF_DIRECT_DW_KB 4
#define CF_DIRECT_KVEC_ACC 24
#define CF_DIRECT_KVDW_NK 2
#define CF_DIRECT_KVDW_TB 9
#define CF_DIRECT_DW_TB 5
#define CF_DIRECT_DW2_KB 6
#define CF_DIRECT_DW2_TB 4
#define CF_DIRECT_BDW_KB 3
#define CF_DIRECT_BDW_TB 5
#include "conv2d_direct_kernel.inc"
