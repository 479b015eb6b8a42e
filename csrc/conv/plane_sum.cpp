// Plane sums of the conv bias gradient: the baseline x86-64 copy (2 planes side by side: 8 of
// the 16 xmm registers) and plane_sums(), the one place its instruction set is chosen. Contract
// in plane_sum.hpp, body in plane_sum_kernel.inc.
#define CF_ISA baseline
#define CF_PLANE_SUM_PLANES 2
#include "plane_sum_kernel.inc"

namespace convforge::conv_impl {

template <typename T>
PlaneSums<T> plane_sums() {
  return select_isa(&plane_sum_detail::baseline::kernel<T>, &plane_sum_detail::avx2::kernel<T>,
                    &plane_sum_detail::avx512::kernel<T>);
}

template PlaneSums<float> plane_sums<float>();
template PlaneSums<double> plane_sums<double>();

}  // namespace convforge::conv_impl
