// Direct small-channel convolution micro-kernel: the baseline x86-64 copy (SSE2 vectors, tile
// 6 channels x 2 vectors of 16 xmm) and direct_kernel<T>(), the one place its instruction set is
// chosen (from current_isa()). The convolution around it (padding, tasks, the three
// directions) is in direct_small.cpp, direct_kvec.cpp and direct_batch.cpp; contract in
// conv2d_direct.hpp, body and tile knobs in conv2d_direct_kernel.inc.
#define CF_ISA baseline
#define CF_VEC_BYTES 16
#include "conv2d_direct_kernel.inc"

#include "runtime/isa.hpp"

namespace convforge::direct_detail {

template <typename T>
Kernel<T> direct_kernel() {
  return select_isa(&baseline::kernel<T>, &avx2::kernel<T>, &avx512::kernel<T>);
}

template Kernel<float> direct_kernel<float>();
template Kernel<double> direct_kernel<double>();

}  // namespace convforge::direct_detail
