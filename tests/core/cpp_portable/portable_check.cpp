// Check of the portable baseline kernels (the set a non-x86 build has: CMakeLists.txt here),
// meant to run under qemu-aarch64 after a cross build (tests/core/test_aarch64_build.py): small
// shapes only. Every conv algorithm that applies, in all three directions, against the naive
// loops; max / avg pooling against plain loops; the GEMM exactly (small-integer operands, so
// every partial sum is exact). Prints "isa <name>: N cases, B bad" and exits non-zero when B > 0
// or the dispatcher picked anything but the baseline.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "convforge/conv2d.hpp"
#include "convforge/cpu.hpp"
#include "convforge/gemm.hpp"
#include "convforge/pool2d.hpp"

using namespace convforge;

namespace {

int cases = 0, bad = 0;

template <typename T>
std::vector<T> rnd(int64_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<T> v(n);
  for (auto& x : v) x = T(u(g));
  return v;
}

template <typename T>
void expect_close(const char* what, const std::vector<T>& got, const std::vector<T>& want) {
  const double tol = sizeof(T) == 4 ? 1e-4 : 1e-11;
  ++cases;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(double(got[i]) - double(want[i])) <= tol * (1.0 + std::fabs(double(want[i]))))) {
      std::printf("BAD %s (%s) at %zu: %g vs %g\n", what, sizeof(T) == 4 ? "float" : "double", i,
                  double(got[i]), double(want[i]));
      ++bad;
      return;
    }
}

// shape: N C H W K KH KW S P D G
template <typename T>
void conv_case(const int64_t (&s)[11]) {
  const ConvDims d = make_conv_dims(s[0], s[1], s[2], s[3], s[4], s[1] / s[10], s[5], s[6], s[7],
                                    s[7], s[8], s[8], s[8], s[8], s[9], s[9], s[10]);
  const int64_t nx = d.N * d.C * d.H * d.W, nw = d.K * d.Cg() * d.KH * d.KW;
  const int64_t ny = d.N * d.K * d.OH * d.OW;
  const auto x = rnd<T>(nx, 1), w = rnd<T>(nw, 2), b = rnd<T>(d.K, 3), dy = rnd<T>(ny, 4);
  std::vector<T> y0(ny), dx0(nx), dw0(nw), db0(d.K);
  conv2d_forward_naive(y0.data(), x.data(), w.data(), b.data(), d);
  conv2d_backward_data_naive(dx0.data(), dy.data(), w.data(), d);
  conv2d_backward_weight_naive(dw0.data(), db0.data(), dy.data(), x.data(), d);
  for (int a = 0; a < int(ConvAlgo::kCount); ++a) {
    const ConvAlgo algo = ConvAlgo(a);
    if (conv_algo_applies(algo, ConvDir::forward, d, sizeof(T))) {
      std::vector<T> y(ny);
      conv2d_forward(y.data(), x.data(), w.data(), b.data(), d, algo);
      expect_close(conv_algo_name(algo), y, y0);
    }
    if (conv_algo_applies(algo, ConvDir::data, d, sizeof(T))) {
      std::vector<T> dx(nx);
      conv2d_backward_data(dx.data(), dy.data(), w.data(), d, algo);
      expect_close(conv_algo_name(algo), dx, dx0);
    }
    if (conv_algo_applies(algo, ConvDir::weight, d, sizeof(T))) {
      std::vector<T> dw(nw), db(d.K);
      conv2d_backward_weight(dw.data(), db.data(), dy.data(), x.data(), d, algo);
      expect_close(conv_algo_name(algo), dw, dw0);
      expect_close(conv_algo_name(algo), db, db0);
    }
  }
}

template <typename T>
void pool_case(int64_t N, int64_t C, int64_t H, int64_t W, int64_t Kk, int64_t S, int64_t P) {
  const int64_t OH = (H + 2 * P - Kk) / S + 1, OW = (W + 2 * P - Kk) / S + 1;
  const PoolDims d{N, C, H, W, Kk, Kk, S, S, P, P, OH, OW};
  const auto x = rnd<T>(N * C * H * W, 5);
  std::vector<T> ymax(N * C * OH * OW), yavg(ymax.size()), wmax(ymax.size()), wavg(ymax.size());
  std::vector<int64_t> ind(ymax.size());
  pool2d_max_forward(ymax.data(), ind.data(), x.data(), d);
  pool2d_avg_forward(yavg.data(), x.data(), true, d);
  for (int64_t p = 0; p < N * C; ++p)     // (N*C, OH, OW) windows over (N*C, H, W) planes
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double m = -std::numeric_limits<double>::infinity(), s = 0;
        for (int64_t i = 0; i < Kk; ++i)
          for (int64_t j = 0; j < Kk; ++j) {
            const int64_t ih = oh * S - P + i, iw = ow * S - P + j;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            const double v = x[(p * H + ih) * W + iw];
            m = v > m ? v : m;
            s += v;
          }
        wmax[(p * OH + oh) * OW + ow] = T(m);
        wavg[(p * OH + oh) * OW + ow] = T(s / double(Kk * Kk));
      }
  expect_close("max_pool2d", ymax, wmax);
  expect_close("avg_pool2d", yavg, wavg);
}

template <typename T>
void gemm_case(int64_t M, int64_t N, int64_t K, bool ta, bool tb) {
  std::mt19937 g(unsigned(M * 7 + N * 3 + K));
  std::vector<T> A(M * K), B(K * N), C(M * N), want(M * N);
  for (auto& v : A) v = T(int(g() % 9) - 4);
  for (auto& v : B) v = T(int(g() % 9) - 4);
  const GemmDims dims{M, N, K, ta ? M : K, tb ? K : N, N, ta, tb, false};
  gemm(C.data(), A.data(), B.data(), static_cast<const T*>(nullptr), dims, true);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t p = 0; p < K; ++p)
        s += double(ta ? A[p * M + i] : A[i * K + p]) * double(tb ? B[j * K + p] : B[p * N + j]);
      want[i * N + j] = T(s);
    }
  ++cases;
  if (std::memcmp(C.data(), want.data(), C.size() * sizeof(T)) != 0) {
    std::printf("BAD gemm M=%lld N=%lld K=%lld ta=%d tb=%d\n", (long long)M, (long long)N,
                (long long)K, ta, tb);
    ++bad;
  }
}

template <typename T>
void run_all() {
  // N C H W K KH KW S P D G: Winograd / direct-small (3x3 s1), strided, dilated, grouped,
  // depthwise, pointwise (1x1).
  const int64_t shapes[][11] = {{2, 3, 11, 13, 5, 3, 3, 1, 1, 1, 1}, {2, 4, 12, 9, 6, 3, 3, 2, 1, 1, 1},
                                {1, 4, 10, 10, 4, 3, 3, 1, 2, 2, 2}, {3, 6, 8, 8, 6, 3, 3, 1, 1, 1, 6},
                                {2, 8, 7, 7, 16, 1, 1, 1, 0, 1, 1}, {4, 16, 6, 6, 24, 5, 5, 1, 2, 1, 1}};
  for (const auto& s : shapes) conv_case<T>(s);
  pool_case<T>(2, 3, 9, 11, 2, 2, 0);
  pool_case<T>(2, 5, 10, 10, 3, 2, 1);
  pool_case<T>(1, 2, 13, 17, 3, 1, 1);
  for (int t = 0; t < 4; ++t) {
    gemm_case<T>(13, 33, 17, t & 1, t & 2);
    gemm_case<T>(70, 50, 300, t & 1, t & 2);
  }
}

}  // namespace

int main() {
  const char* isa = isa_name(current_isa());
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    run_all<float>();
    run_all<double>();
  }
  const bool baseline = std::strcmp(isa, "baseline") == 0;
  std::printf("isa %s: %d cases, %d bad\n", isa, cases, bad);
  return (bad != 0 || !baseline) ? 1 : 0;
}
