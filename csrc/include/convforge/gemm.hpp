// Blocked, packed GEMM for the CPU kernels: C = op(A) op(B) (+ C), row-major, float and double.
//
// One source body (csrc/gemm/gemm_kernel.inc) is compiled three times: baseline x86-64 (gemm.cpp),
// AVX2+FMA (gemm_avx2.cpp) and AVX-512 (gemm_avx512.cpp). gemm() picks one of them at run time
// from current_isa(), in select_kernel() in gemm.cpp, and nowhere else.
//
// Determinism: every element of C is summed in the same order whatever the thread count and
// however the work is split (the depth blocking is fixed per ISA and dtype; threads only own
// disjoint tiles of C). Results differ between ISAs (FMA vs mul+add), never between runs.
//
// This header holds declarations only: it is included by translation units compiled with
// different -m flags, so it must not define inline code the linker could share between them.
#pragma once
#include <cstdint>

namespace convforge {

struct GemmDims {
  int64_t M, N, K;        // op(A) (M, K), op(B) (K, N), C (M, N)
  int64_t lda, ldb, ldc;  // row strides of A, B, C as stored
  bool trans_a;           // false: A stored (M, K); true: A stored (K, M), op(A) = A^T
  bool trans_b;           // false: B stored (K, N); true: B stored (N, K), op(B) = B^T
  bool accumulate;        // true: C += op(A) op(B); false: C is overwritten
};

// C (M, N) = op(A) op(B), plus row_bias[i] on every element of row i (when row_bias is not
// null and accumulate is false), plus the old C (when accumulate is true).
// parallel: split C into tiles over the OpenMP threads (call it false from inside a parallel
// region). C must not overlap A or B.
template <typename T>
void gemm(T* C, const T* A, const T* B, const T* row_bias, const GemmDims& g, bool parallel);

// Name of the ISA whose micro-kernel gemm() uses now (for info and tests).
const char* gemm_isa_name();

namespace gemm_detail {

// One ISA's sequential blocked GEMM over the whole of C, its register-tile size and the
// sizes of the pack buffers it needs (ap, bp: 64-byte aligned, owned by the caller, one pair
// per thread).
template <typename T>
struct Kernel {
  void (*run)(T* C, const T* A, const T* B, const T* row_bias, const GemmDims& g, T* ap, T* bp);
  int64_t MR, NR;              // register tile rows / columns (work is split in multiples)
  int64_t pack_a, pack_b;      // elements of the A and B pack buffers
};

// Defined once per ISA by gemm_kernel.inc.
namespace baseline {
Kernel<float> kernel_f32();
Kernel<double> kernel_f64();
}  // namespace baseline
namespace avx2 {
Kernel<float> kernel_f32();
Kernel<double> kernel_f64();
}  // namespace avx2
namespace avx512 {
Kernel<float> kernel_f32();
Kernel<double> kernel_f64();
}  // namespace avx512

}  // namespace gemm_detail
}  // namespace convforge
