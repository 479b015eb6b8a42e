// AVX-512 copy of the plane sums (8 planes side by side: 8 zmm accumulators). Called only
// through plane_sums() (plane_sum.cpp) when current_isa() is avx512. Contract: plane_sum.hpp.
#define CF_ISA avx512
#define CF_PLANE_SUM_PLANES 8
#include "plane_sum_kernel.inc"
