// Blocked, packed GEMM for the CPU kernels: C = op(A) op(B) (+ C), row-major, float and double.
//
// One source body (csrc/gemm/gemm_kernel.inc) is compiled three times: baseline x86-64
// (gemm.cpp), AVX2+FMA (gemm_avx2.cpp) and AVX-512 (gemm_avx512.cpp); gemm() picks one at run time
// (csrc/runtime/isa.hpp). The per-ISA interface is private: csrc/gemm/gemm_kernel.hpp.
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

// op(B) packed once for several sequential GEMMs with the same op(B) (Winograd's transformed
// filters, used by every chunk of tiles): gemm_pack_b writes gemm_packed_b_size(K, N) elements
// (g.K, g.N, g.ldb, g.trans_b describe op(B)); gemm_packed_b then computes what gemm() would,
// bit for bit, sequentially (g.ldb and g.trans_b unused). Both use the current ISA's kernel:
// pack and run under the same one.
template <typename T>
int64_t gemm_packed_b_size(int64_t K, int64_t N);
template <typename T>
void gemm_pack_b(T* bp, const T* B, const GemmDims& g);
template <typename T>
void gemm_packed_b(T* C, const T* A, const T* bp, const T* row_bias, const GemmDims& g);

// Name of the ISA whose micro-kernel gemm() uses now (for info and tests).
const char* gemm_isa_name();

}  // namespace convforge
