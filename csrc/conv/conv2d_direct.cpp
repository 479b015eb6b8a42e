// Direct small-channel convolution micro-kernel: the baseline x86-64 copy (SSE2 vectors, tile
// 6 channels x 2 vectors of 16 xmm) and direct_kernel<T>(), the one place its instruction set is
// chosen (from current_isa()). The convolution around it (padding, tasks, the three
// directions) is in conv2d.cpp; contract in conv2d_direct.hpp, body in conv2d_direct_kernel.inc.
#define CF_DIRECT_ISA baseline
#define CF_VEC_BYTES 16
#define CF_DIRECT_NV 2
#define CF_DIRECT_KB 6
#define CF_DW_KB 2
#define CF_KVEC_ACC 12
#define CF_KVDW_NK 2
#define CF_KVDW_TB 5
#define CF_DW_TB 4
#include "conv2d_direct_kernel.inc"

#include <type_traits>

#include "convforge/cpu.hpp"

namespace convforge::direct_detail {

template <typename T>
Kernel<T> direct_kernel() {
  const Isa isa = current_isa();
  if constexpr (std::is_same_v<T, float>) {
    if (isa == Isa::avx512) return avx512::kernel_f32();
    if (isa == Isa::avx2) return avx2::kernel_f32();
    return baseline::kernel_f32();
  } else {
    if (isa == Isa::avx512) return avx512::kernel_f64();
    if (isa == Isa::avx2) return avx2::kernel_f64();
    return baseline::kernel_f64();
  }
}

template Kernel<float> direct_kernel<float>();
template Kernel<double> direct_kernel<double>();

}  // namespace convforge::direct_detail
