// Private interface between gemm.cpp and the per-ISA copies of the blocked GEMM (gemm_kernel.inc,
// compiled by gemm.cpp, gemm_avx2.cpp and gemm_avx512.cpp): each copy's table, picked in gemm.cpp
// by select_isa() (csrc/runtime/isa.hpp). Declarations only: this header is included by units
// compiled with different -m flags.
#pragma once
#include <cstdint>

#include "convforge/gemm.hpp"
#include "runtime/isa.hpp"

namespace convforge::gemm_detail {

// One ISA's sequential blocked GEMM over the whole of C, its register-tile size and the
// sizes of the pack buffers it needs (ap, bp: 64-byte aligned, owned by the caller, one pair
// per thread).
// pack_b_all packs the whole of op(B) (ceil(N / NR) * NR * K elements) as run would, and
// run_packed_b is run on such a packed op(B) (the same sums: the same panels).
template <typename T>
struct Kernel {
  void (*run)(T* C, const T* A, const T* B, const T* row_bias, const GemmDims& g, T* ap, T* bp);
  void (*pack_b_all)(T* bp, const T* B, const GemmDims& g);
  void (*run_packed_b)(T* C, const T* A, const T* bp, const T* row_bias, const GemmDims& g,
                       T* ap);
  int64_t MR, NR;              // register tile rows / columns (work is split in multiples)
  int64_t pack_a, pack_b;      // elements of the A and B pack buffers
};

// The table of each ISA copy (float and double: specialisations at the end of gemm_kernel.inc).
CF_PER_ISA(template <typename T> Kernel<T> kernel();)

}  // namespace convforge::gemm_detail
