// AVX2 copy of the plane sums (4 planes side by side: 8 ymm accumulators). Called only through
// plane_sums() (plane_sum.cpp) when current_isa() is avx2. Contract: plane_sum.hpp.
#define CF_ISA avx2
#define CF_PLANE_SUM_PLANES 4
#include "plane_sum_kernel.inc"
