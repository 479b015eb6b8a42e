// GEMM: C (M, N) = op(A) (M, K) op(B) (K, N) [+ C] [+ row_bias], row-major, float and double.
//
// This file holds (1) the baseline x86-64 copy of the blocked GEMM (SSE2 vectors, register
// tile 6 x 8 floats / 6 x 4 doubles; body in gemm_kernel.inc, also compiled by gemm_avx2.cpp
// and gemm_avx512.cpp) and (2) gemm(), which picks the ISA copy in select_kernel() -- the one
// place the instruction set of the GEMM is chosen -- and, when asked to run in parallel, splits
// C into a grid of disjoint tiles, one per OpenMP thread (parallel axis: rows and columns of C).
// Each tile runs the sequential blocked algorithm with the same depth blocking, so every element
// of C is summed in the same order for any thread count. C is overwritten unless
// g.accumulate is set.
#define CF_ISA baseline
#define CF_VEC_BYTES 16
#define CF_GEMM_MR_F32 6
#define CF_GEMM_MR_F64 6
#include "gemm_kernel.inc"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <new>

#include "convforge/checked.hpp"
#include "convforge/cpu.hpp"
#include "runtime/isa.hpp"

namespace convforge {
namespace {

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kMinParallelWork = int64_t(1) << 17;

// The one place the GEMM's instruction set is chosen.
template <typename T>
gemm_detail::Kernel<T> select_kernel() {
  namespace gd = gemm_detail;
  return select_isa(&gd::baseline::kernel<T>, &gd::avx2::kernel<T>, &gd::avx512::kernel<T>);
}

// Grows a 64-byte aligned buffer p of n elements to at least want elements.
template <typename T>
void grow(T*& p, int64_t& n, int64_t want) {
  if (want <= n) return;
  std::free(p);
  n = 0;
  const size_t bytes = (static_cast<size_t>(want) * sizeof(T) + 63) / 64 * 64;
  p = static_cast<T*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  n = want;
}

// This thread's pack buffers for kernel k (grow-only, kept between calls: no page faults).
template <typename T>
void pack_buffers(const gemm_detail::Kernel<T>& k, T*& ap, T*& bp) {
  struct Buffers {
    T *a = nullptr, *b = nullptr;
    int64_t na = 0, nb = 0;
    ~Buffers() {
      std::free(a);
      std::free(b);
    }
  };
  static thread_local Buffers buf;
  grow(buf.a, buf.na, k.pack_a);
  grow(buf.b, buf.nb, k.pack_b);
  ap = buf.a;
  bp = buf.b;
}

}  // namespace

const char* gemm_isa_name() { return isa_name(current_isa()); }

template <typename T>
void gemm(T* C, const T* A, const T* B, const T* row_bias, const GemmDims& g, bool parallel) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K <= 0) {  // empty sum: C = bias (or 0), or unchanged when accumulating
    if (!g.accumulate)
      for (int64_t i = 0; i < g.M; ++i)  // C row i: (N,)
        std::fill(C + i * g.ldc, C + i * g.ldc + g.N, row_bias ? row_bias[i] : T(0));
    return;
  }
  const gemm_detail::Kernel<T> kernel = select_kernel<T>();
  const int64_t threads = parallel ? max_threads() : 1;
  const int64_t mp = ceil_div(g.M, kernel.MR), np = ceil_div(g.N, kernel.NR);  // register tiles
  if (threads <= 1 || mp * np < 2 || g.M * g.N * g.K < kMinParallelWork) {
    T *ap, *bp;
    pack_buffers(kernel, ap, bp);
    kernel.run(C, A, B, row_bias, g, ap, bp);
    return;
  }

  // Grid tm x tn of C blocks (<= threads blocks) minimising the largest block, in register
  // tiles; ties prefer more column blocks (op(A) is usually the smaller operand to re-pack).
  int64_t tm = 1, tn = 1, best = mp * np;
  for (int64_t cn = 1; cn <= std::min(threads, np); ++cn) {
    const int64_t cm = std::min(threads / cn, mp);
    const int64_t cost = ceil_div(mp, cm) * ceil_div(np, cn);
    if (cost <= best) {
      best = cost;
      tm = cm;
      tn = cn;
    }
  }
  const int64_t rows = ceil_div(mp, tm) * kernel.MR, cols = ceil_div(np, tn) * kernel.NR;

  std::exception_ptr error = nullptr;
CF_OMP_FOR(schedule(static))
  for (int64_t t = 0; t < tm * tn; ++t) {  // block (ti, tj) of C: rows [i0, i1), cols [j0, j1)
    const int64_t i0 = (t / tn) * rows, j0 = (t % tn) * cols;
    const int64_t i1 = std::min(g.M, i0 + rows), j1 = std::min(g.N, j0 + cols);
    if (i0 >= i1 || j0 >= j1) continue;
    GemmDims s = g;
    s.M = i1 - i0;
    s.N = j1 - j0;
    const T* a = g.trans_a ? A + i0 : A + i0 * g.lda;  // op(A) rows i0..
    const T* b = g.trans_b ? B + j0 * g.ldb : B + j0;  // op(B) columns j0..
    try {
      T *ap, *bp;
      pack_buffers(kernel, ap, bp);
      kernel.run(C + i0 * g.ldc + j0, a, b, row_bias ? row_bias + i0 : nullptr, s, ap, bp);
    } catch (...) {
CF_OMP(omp critical(convforge_gemm_error))
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

template <typename T>
int64_t gemm_packed_b_size(int64_t K, int64_t N) {
  const int64_t nr = select_kernel<T>().NR;
  return mul_checked(ceil_div(std::max<int64_t>(N, 0), nr) * nr, std::max<int64_t>(K, 0),
                     "packed B");
}

template <typename T>
void gemm_pack_b(T* bp, const T* B, const GemmDims& g) {
  if (g.N > 0 && g.K > 0) select_kernel<T>().pack_b_all(bp, B, g);
}

template <typename T>
void gemm_packed_b(T* C, const T* A, const T* bp, const T* row_bias, const GemmDims& g) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K <= 0) {  // gemm() of an empty sum
    gemm(C, A, static_cast<const T*>(nullptr), row_bias, g, false);
    return;
  }
  const gemm_detail::Kernel<T> kernel = select_kernel<T>();
  T *ap, *unused;
  pack_buffers(kernel, ap, unused);
  kernel.run_packed_b(C, A, bp, row_bias, g, ap);
}

template int64_t gemm_packed_b_size<float>(int64_t, int64_t);
template int64_t gemm_packed_b_size<double>(int64_t, int64_t);
template void gemm_pack_b<float>(float*, const float*, const GemmDims&);
template void gemm_pack_b<double>(double*, const double*, const GemmDims&);
template void gemm_packed_b<float>(float*, const float*, const float*, const float*,
                                   const GemmDims&);
template void gemm_packed_b<double>(double*, const double*, const double*, const double*,
                                    const GemmDims&);
template void gemm<float>(float*, const float*, const float*, const float*, const GemmDims&,
                          bool);
template void gemm<double>(double*, const double*, const double*, const double*,
                           const GemmDims&, bool);

}  // namespace convforge
