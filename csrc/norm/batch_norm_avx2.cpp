// AVX2 copy of the batch-norm plane kernels (CMake adds the -m flags by file-name suffix).
// Called only through batch_norm.cpp, and only when current_isa() is avx2.
#define CF_ISA avx2
#define CF_VEC_BYTES 32
#include "batch_norm_kernel.inc"
