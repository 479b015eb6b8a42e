// The one ISA-dispatch mechanism of the CPU kernel families that have per-ISA copies: the GEMM
// (csrc/gemm), the direct convolution kernels and the Winograd transforms (csrc/conv), the
// pooling fast paths (csrc/pool).
//
// A family writes its kernel body once, in <family>_kernel.inc, and compiles it once per
// instruction set: <family>.cpp (baseline x86-64), <family>_avx2.cpp and <family>_avx512.cpp
// (CMake adds the -m flags by file-name suffix). Each of these units defines, before its
// #include of the .inc:
//   CF_ISA               namespace of its copy: baseline | avx2 | avx512
//   CF_VEC_BYTES         vector register width in bytes: 16 | 32 | 64 (where the body uses it)
//   CF_<FAMILY>_<KNOB>   the family's tuning knobs for that copy (register tile, blocking), e.g.
//                        CF_GEMM_MR_F32, CF_DIRECT_KB; listed at the top of each .inc.
// A copy hands out its kernels as one table (a struct of function pointers and sizes) per
// dtype, from a function template declared for the three namespaces at once by CF_PER_ISA in the
// family's private header, e.g.
//   CF_PER_ISA(template <typename T> Kernel<T> kernel();)
// and specialised for float and double at the end of the .inc. The family's baseline unit picks
// the copy of current_isa() with
//   select_isa(&baseline::kernel<T>, &avx2::kernel<T>, &avx512::kernel<T>)
// and nowhere else.
//
// This header is included by units compiled with different -m flags: CF_PER_ISA is a macro and
// select_isa lives in an unnamed namespace (each unit has its own copy), so the linker can never
// hand a baseline caller code built for a wider ISA.
#pragma once

#include "convforge/cpu.hpp"

// Declares the same entities in the namespaces baseline, avx2 and avx512 (of the enclosing one).
#if defined(CONVFORGE_X86)
#define CF_PER_ISA(...)    \
  namespace baseline {     \
  __VA_ARGS__              \
  }                        \
  namespace avx2 {         \
  __VA_ARGS__              \
  }                        \
  namespace avx512 {       \
  __VA_ARGS__              \
  }
#else
// Not x86 (aarch64, ...): CMake builds no *_avx2.cpp / *_avx512.cpp unit and current_isa() is
// always baseline; avx2 and avx512 name the baseline copy, so select_isa's callers compile
// unchanged and reference no code that does not exist.
#define CF_PER_ISA(...)           \
  namespace baseline {            \
  __VA_ARGS__                     \
  }                               \
  namespace avx2 = baseline;      \
  namespace avx512 = baseline;
#endif

namespace convforge {
namespace {  // NOLINT(build/namespaces): per-translation-unit copies on purpose

// The table of the copy for current_isa().
template <typename Table>
Table select_isa(Table (*baseline)(), Table (*avx2)(), Table (*avx512)()) {
  switch (current_isa()) {
    case Isa::avx512:
      return avx512();
    case Isa::avx2:
      return avx2();
    case Isa::baseline:
      break;
  }
  return baseline();
}

}  // namespace
}  // namespace convforge
