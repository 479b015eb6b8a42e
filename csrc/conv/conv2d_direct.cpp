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

// On a CPU that runs AVX-512 on 256-bit halves (narrow_avx512(): Zen 4) a layer whose Kg output
// channels fit one 512-bit vector runs the AVX2 copy's channel-vector tiles: two 256-bit vectors
// per broadcast input instead of one 512-bit vector (the same multiply-adds). Zen 4, 1 thread
// (bench/conv_algos.py, CONVFORGE_NARROW_AVX512=0 / 1 alternating), the forward auto runs:
// LeNet C3 0.43 -> 0.34 ms, 8->16 5x5 at 12 px 0.74 -> 0.63, 16->16 3x3 at 10 px 0.22 -> 0.18
// (direct_small before, direct_kvec now; AVX-512's own kvec: 0.45, 0.69, 0.23). The weight
// gradient only where the taps fill the AVX2 tiles' 5 (5x5 kernels: LeNet C3 0.37 -> 0.34 ms,
// 8->16 at 12 px 0.67-0.89 -> 0.63-0.65, 6->16 'same' at 32 px 1.76-1.86 -> 1.68-1.75): on 3x3
// kernels the AVX2 tiles' 10 taps lost (16->12 at 16 px 0.44 -> 0.63 ms). The tiles sum each
// element in the same order: same bits (for the weight gradient, the same batch chunks unless
// a layer's partial sums pass kDwMaxPartElems, dw_chunks()).
// (The AVX2 and AVX-512 tables are only built once current_isa() says the CPU runs them.)
template <typename T>
bool narrow_tiles(int64_t Kg) {
  return current_isa() == Isa::avx512 && narrow_avx512() && Kg <= avx512::kernel<T>().vl;
}

template <typename T>
Kernel<T> kvec_kernel(int64_t Kg) {
  return narrow_tiles<T>(Kg) ? avx2::kernel<T>() : direct_kernel<T>();
}

template <typename T>
Kernel<T> kvec_dw_kernel(int64_t Kg, int64_t taps) {
  if (narrow_tiles<T>(Kg)) {
    const Kernel<T> k = avx2::kernel<T>();
    if (taps % k.kvdw_tb == 0) return k;
  }
  return direct_kernel<T>();
}

template Kernel<float> direct_kernel<float>();
template Kernel<double> direct_kernel<double>();
template Kernel<float> kvec_kernel<float>(int64_t);
template Kernel<double> kvec_kernel<double>(int64_t);
template Kernel<float> kvec_dw_kernel<float>(int64_t, int64_t);
template Kernel<double> kvec_dw_kernel<double>(int64_t, int64_t);

}  // namespace convforge::direct_detail
