// Batch normalisation kernels (contracts in convforge/norm.hpp), float and double, baseline ISA:
// memory-bound passes over x / dy, one per kernel (statistics; forward; backward: sums, then dx).
//
// Every per-channel sum is split the same way whatever the thread count: each plane (n, c) is
// summed by one thread in kLanes interleaved double accumulators (element i goes to lane i %
// kLanes, lanes added in order at the end: independent chains the compiler can vectorise without
// reordering a sum), and the planes' sums of a channel are added in n order. Tasks are blocks of
// whole planes. The forward's ReLU mask is recomputed in the backward with the same expression
// in T, so both passes agree on every element (NaN pre-activations give 0 and no gradient).
#include <algorithm>
#include <cmath>
#include <vector>

#include "convforge/checked.hpp"
#include "convforge/norm.hpp"
#include "runtime/tasks.hpp"

namespace convforge {
namespace {

constexpr int kLanes = 8;                 // accumulators per plane sum (fixes the sums' order)
constexpr int64_t kTaskValues = 1 << 14;  // about this many values per task

// body(p) for every plane p = n*C + c, in tasks of whole planes (several when planes are small).
template <typename F>
void each_plane(const NormDims& d, const F& body) {
  const int64_t planes = d.N * d.C;
  const int64_t per = std::max<int64_t>(1, kTaskValues / std::max<int64_t>(d.HW, 1));
  run_tasks(ceil_div(planes, per), planes * d.HW >= 2 * kTaskValues, [&](int64_t t) {
    const int64_t p1 = std::min(planes, (t + 1) * per);
    for (int64_t p = t * per; p < p1; ++p) body(p);
  });
}

// (sum_i a_i, sum_i a_i * b_i) over i < n in double, lane by lane (see the file comment).
template <typename A, typename B>
void pair_sums(int64_t n, const A& a, const B& b, double* s_a, double* s_ab) {
  double acc_a[kLanes] = {}, acc_ab[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const double v = a(i + l);
      acc_a[l] += v;
      acc_ab[l] += v * b(i + l);
    }
  for (int l = 0; i < n; ++i, ++l) {
    const double v = a(i);
    acc_a[l] += v;
    acc_ab[l] += v * b(i);
  }
  double ta = 0, tab = 0;
  for (int l = 0; l < kLanes; ++l) {
    ta += acc_a[l];
    tab += acc_ab[l];
  }
  *s_a = ta;
  *s_ab = tab;
}

// Per-channel sums of the planes' sums, in n order: part (N, C) -> out (C,).
void add_planes(double* out, const std::vector<double>& part, const NormDims& d) {
  for (int64_t c = 0; c < d.C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < d.N; ++n) s += part[n * d.C + c];
    out[c] = s;
  }
}

// The forward's affine map of channel c in T: pre = (x - m) * s + b.
template <typename T>
struct Affine {
  T m, s, b;
  Affine(const double* mean, const double* inv_std, const T* gamma, const T* beta, int64_t c)
      : m(static_cast<T>(mean[c])),
        s(static_cast<T>((gamma ? static_cast<double>(gamma[c]) : 1.0) * inv_std[c])),
        b(beta ? beta[c] : T(0)) {}
  T pre(T x) const { return (x - m) * s + b; }
};

// dy' of a plane: dy itself, or with relu dy where the forward's pre-activation was > 0 and 0
// elsewhere, written to this thread's buffer by a branch-free select (a data-dependent branch per
// element would be mispredicted half the time).
template <typename T>
const T* masked_dy(const T* dy, const T* x, const Affine<T>& f, bool relu, int64_t n) {
  if (!relu) return dy;
  T* g = scratch<T>(n);
  for (int64_t i = 0; i < n; ++i) {
    const T v = dy[i];  // loaded unconditionally: the select below then needs no branch
    g[i] = f.pre(x[i]) > T(0) ? v : T(0);
  }
  return g;
}

}  // namespace

template <typename T>
void batch_norm_stats(double* mean, double* var, const T* x, const NormDims& d) {
  std::vector<double> s1(d.N * d.C), s2(d.N * d.C);  // (N, C): sums of x - K, (x - K)^2
  each_plane(d, [&](int64_t p) {  // plane x[n, c] (HW,)
    const T* xp = x + p * d.HW;
    const double k = static_cast<double>(x[(p % d.C) * d.HW]);  // K = x[0, c, 0]
    const auto a = [&](int64_t i) { return static_cast<double>(xp[i]) - k; };
    pair_sums(d.HW, a, a, &s1[p], &s2[p]);
  });
  std::vector<double> t1(d.C), t2(d.C);
  add_planes(t1.data(), s1, d);
  add_planes(t2.data(), s2, d);
  const double m = static_cast<double>(d.N * d.HW);
  for (int64_t c = 0; c < d.C; ++c) {
    const double k = static_cast<double>(x[c * d.HW]), dm = t1[c] / m;
    mean[c] = k + dm;
    var[c] = std::max(t2[c] / m - dm * dm, 0.0);
  }
}

template <typename T>
void batch_norm_forward(T* y, const T* x, const double* mean, const double* inv_std,
                        const T* gamma, const T* beta, bool relu, const NormDims& d) {
  each_plane(d, [&](int64_t p) {  // y[n, c], x[n, c] (HW,)
    const Affine<T> f(mean, inv_std, gamma, beta, p % d.C);
    const T* xp = x + p * d.HW;
    T* yp = y + p * d.HW;
    if (relu) {
      for (int64_t i = 0; i < d.HW; ++i) yp[i] = std::max(f.pre(xp[i]), T(0));  // NaN stays
    } else {
      for (int64_t i = 0; i < d.HW; ++i) yp[i] = f.pre(xp[i]);
    }
  });
}

template <typename T>
void batch_norm_backward(T* dx, double* dgamma, double* dbeta, const T* dy, const T* x,
                         const double* mean, const double* inv_std, const T* gamma,
                         const T* beta, bool relu, bool batch_stats, const NormDims& d) {
  const bool sums = batch_stats || dgamma || dbeta;
  std::vector<double> sg(d.C), sb(d.C);  // sum dy' (x - mean), sum dy'
  if (sums) {
    std::vector<double> pg(d.N * d.C), pb(d.N * d.C);  // (N, C) plane sums
    each_plane(d, [&](int64_t p) {
      const int64_t c = p % d.C;
      const Affine<T> f(mean, inv_std, gamma, beta, c);
      const T* xp = x + p * d.HW;
      const T* gp = masked_dy(dy + p * d.HW, xp, f, relu, d.HW);
      const double mc = mean[c];
      const auto g = [&](int64_t i) { return static_cast<double>(gp[i]); };
      const auto xc = [&](int64_t i) { return static_cast<double>(xp[i]) - mc; };
      pair_sums(d.HW, g, xc, &pb[p], &pg[p]);
    });
    add_planes(sg.data(), pg, d);
    add_planes(sb.data(), pb, d);
    for (int64_t c = 0; c < d.C; ++c) {
      if (dgamma) dgamma[c] = sg[c] * inv_std[c];
      if (dbeta) dbeta[c] = sb[c];
    }
  }
  if (!dx) return;
  const double m = static_cast<double>(d.N * d.HW);
  // dx[n, c] = (dy' - k3 - (x - mean) k2) k1, k1 = gamma inv_std, k2 = inv_std^2 sum_g / m
  // (xhat dgamma / m), k3 = dbeta / m: the cancellation happens before the scaling by k1, so
  // a channel whose dy' is its mean (one value per channel, say) gets exactly 0.
  each_plane(d, [&](int64_t p) {
    const int64_t c = p % d.C;
    const Affine<T> f(mean, inv_std, gamma, beta, c);
    const T k1 = static_cast<T>((gamma ? static_cast<double>(gamma[c]) : 1.0) * inv_std[c]);
    const T k2 = static_cast<T>(inv_std[c] * inv_std[c] * sg[c] / m);
    const T k3 = static_cast<T>(sb[c] / m);
    const T* xp = x + p * d.HW;
    const T* gp = masked_dy(dy + p * d.HW, xp, f, relu, d.HW);
    T* dxp = dx + p * d.HW;
    if (batch_stats) {
      for (int64_t i = 0; i < d.HW; ++i) dxp[i] = (gp[i] - k3 - (xp[i] - f.m) * k2) * k1;
    } else {
      for (int64_t i = 0; i < d.HW; ++i) dxp[i] = gp[i] * k1;
    }
  });
}

#define CF_INSTANTIATE(T)                                                                     \
  template void batch_norm_stats<T>(double*, double*, const T*, const NormDims&);            \
  template void batch_norm_forward<T>(T*, const T*, const double*, const double*, const T*,  \
                                      const T*, bool, const NormDims&);                      \
  template void batch_norm_backward<T>(T*, double*, double*, const T*, const T*,              \
                                       const double*, const double*, const T*, const T*,     \
                                       bool, bool, const NormDims&);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge
