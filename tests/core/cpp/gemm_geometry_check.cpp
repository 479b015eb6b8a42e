// Exactness check of one ISA copy of the blocked GEMM (csrc/gemm/gemm_kernel.inc), for tests that
// need no such CPU: tests/core/test_gemm.py builds (CMakeLists.txt here) csrc/gemm/
// gemm_avx512.cpp with AVX2 flags only (GCC then splits its 64-byte vectors into 32-byte ones),
// links this driver and runs it, so
// the AVX-512 copy's tile geometry (MR 12, NR 32 / 16), blocking and edge handling run on any
// AVX2 machine. Build with -DCF_CHECK_ISA=avx512 (or avx2 / baseline).
//
// Operands are small integers, so every partial sum is exact in float and double: the result
// must equal the sum computed here in double, whatever the blocking; run on an op(B) packed
// beforehand (pack_b_all + run_packed_b) must give run's result. Prints "N cases, B bad" and
// exits non-zero when B > 0.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "gemm/gemm_kernel.hpp"

#ifndef CF_CHECK_ISA
#define CF_CHECK_ISA avx512
#endif

using namespace convforge;

template <typename T>
int check(gemm_detail::Kernel<T> k, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
          bool acc, bool bias, unsigned seed) {
  std::srand(seed);
  std::vector<T> A(M * K), B(K * N), C(M * N), bs(M);
  for (auto& x : A) x = T(std::rand() % 9 - 4);
  for (auto& x : B) x = T(std::rand() % 9 - 4);
  for (auto& x : C) x = T(std::rand() % 9 - 4);
  for (auto& x : bs) x = T(std::rand() % 9 - 4);
  const std::vector<T> C0 = C;
  T* ap = static_cast<T*>(std::aligned_alloc(64, (k.pack_a * sizeof(T) + 63) / 64 * 64));
  T* bp = static_cast<T*>(std::aligned_alloc(64, (k.pack_b * sizeof(T) + 63) / 64 * 64));
  const GemmDims g{M, N, K, ta ? M : K, tb ? K : N, N, ta, tb, acc};
  k.run(C.data(), A.data(), B.data(), bias ? bs.data() : nullptr, g, ap, bp);
  // op(B) packed once (gemm_packed_b): the same bits as run's own packing
  std::vector<T> Cp = C0, bpall((N + k.NR - 1) / k.NR * k.NR * K);
  k.pack_b_all(bpall.data(), B.data(), g);
  k.run_packed_b(Cp.data(), A.data(), bpall.data(), bias ? bs.data() : nullptr, g, ap);
  std::free(ap);
  std::free(bp);
  int bad = 0;
  for (int64_t i = 0; i < M * N; ++i) bad += Cp[i] != C[i];
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = acc ? C0[i * N + j] : (bias ? bs[i] : 0);
      for (int64_t p = 0; p < K; ++p)
        s += double(ta ? A[p * M + i] : A[i * K + p]) * double(tb ? B[j * K + p] : B[p * N + j]);
      bad += s != double(C[i * N + j]);
    }
  if (bad)
    std::printf("BAD %s M=%lld N=%lld K=%lld ta=%d tb=%d acc=%d bias=%d: %d wrong\n",
                sizeof(T) == 4 ? "float" : "double", (long long)M, (long long)N, (long long)K,
                ta, tb, acc, bias, bad);
  return bad;
}

int main() {
  namespace isa = gemm_detail::CF_CHECK_ISA;
  // Around MR (12), NR (32 floats / 16 doubles), KC (256), MC (192 / 144), NC and PG groups.
  const int64_t Ms[] = {1, 11, 13, 145, 193}, Ns[] = {1, 15, 17, 33, 300, 2100};
  const int64_t Ks[] = {1, 257, 600};
  int cases = 0, bad = 0;
  for (int64_t M : Ms)
    for (int64_t N : Ns)
      for (int64_t K : Ks)
        for (int t = 0; t < 4; ++t) {
          if (M * N * K > 30000000) continue;
          const bool acc = (M + N + K + t) % 3 == 0, bias = !acc && (M + t) % 2 == 0;
          const unsigned seed = unsigned(cases);
          bad += check(isa::kernel<float>(), M, N, K, t & 1, t & 2, acc, bias, seed) > 0;
          bad += check(isa::kernel<double>(), M, N, K, t & 1, t & 2, acc, bias, seed) > 0;
          cases += 2;
        }
  std::printf("%d cases, %d bad\n", cases, bad);
  return bad != 0;
}
