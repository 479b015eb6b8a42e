// Batch normalisation kernels (contracts in convforge/norm.hpp), float and double: memory-bound
// passes over x / dy, one per kernel (statistics; forward; backward: sums, then dx), each plane
// (n, c) run by the plane kernel of current_isa() (batch_norm_kernel.inc; the copies give the
// same bits). The baseline copy of the plane kernels is compiled here too.
//
// Every per-channel sum is split the same way whatever the thread count: each plane is summed
// by one thread in a fixed lane order (batch_norm_kernel.inc), and the planes' sums of a channel
// are added in n order. Tasks are blocks of whole planes. The forward's ReLU mask is recomputed
// in the backward with the same expression in T, so both passes agree on every element (NaN
// pre-activations give 0 and no gradient).
#define CF_ISA baseline
#include "batch_norm_kernel.inc"

#include <algorithm>
#include <cmath>
#include <vector>

#include "convforge/checked.hpp"
#include "convforge/norm.hpp"
#include "runtime/tasks.hpp"

namespace convforge {
namespace {

using norm_detail::Affine;
using norm_detail::PlaneKernels;

constexpr int64_t kTaskValues = 1 << 14;  // about this many values per task

template <typename T>
PlaneKernels<T> kernels() {
  namespace nd = norm_detail;
  return select_isa(&nd::baseline::plane_kernels<T>, &nd::avx2::plane_kernels<T>,
                    &nd::avx512::plane_kernels<T>);
}

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

// Per-channel sums of the planes' sums, in n order: part (N, C) -> out (C,).
void add_planes(double* out, const std::vector<double>& part, const NormDims& d) {
  for (int64_t c = 0; c < d.C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < d.N; ++n) s += part[n * d.C + c];
    out[c] = s;
  }
}

// Channel c's affine map in T: scale = gamma * inv_std and shift = beta, rounded once.
template <typename T>
Affine<T> affine(const double* mean, const double* inv_std, const T* gamma, const T* beta,
                 int64_t c) {
  return {static_cast<T>(mean[c]),
          static_cast<T>((gamma ? static_cast<double>(gamma[c]) : 1.0) * inv_std[c]),
          beta ? beta[c] : T(0)};
}

}  // namespace

template <typename T>
void batch_norm_stats(double* mean, double* var, const T* x, const NormDims& d) {
  const PlaneKernels<T> k = kernels<T>();
  std::vector<double> s1(d.N * d.C), s2(d.N * d.C);  // (N, C): sums of x - K, (x - K)^2
  each_plane(d, [&](int64_t p) {  // plane x[n, c] (HW,), K = x[0, c, 0]
    k.stats(x + p * d.HW, d.HW, static_cast<double>(x[(p % d.C) * d.HW]), &s1[p], &s2[p]);
  });
  std::vector<double> t1(d.C), t2(d.C);
  add_planes(t1.data(), s1, d);
  add_planes(t2.data(), s2, d);
  const double m = static_cast<double>(d.N * d.HW);
  for (int64_t c = 0; c < d.C; ++c) {
    const double shift = static_cast<double>(x[c * d.HW]), dm = t1[c] / m;
    mean[c] = shift + dm;
    var[c] = std::max(t2[c] / m - dm * dm, 0.0);
  }
}

template <typename T>
void batch_norm_forward(T* y, const T* x, const double* mean, const double* inv_std,
                        const T* gamma, const T* beta, bool relu, const NormDims& d) {
  const PlaneKernels<T> k = kernels<T>();
  each_plane(d, [&](int64_t p) {  // y[n, c], x[n, c] (HW,)
    k.forward(y + p * d.HW, x + p * d.HW, d.HW, affine(mean, inv_std, gamma, beta, p % d.C),
              relu);
  });
}

template <typename T>
void batch_norm_backward(T* dx, double* dgamma, double* dbeta, const T* dy, const T* x,
                         const double* mean, const double* inv_std, const T* gamma,
                         const T* beta, bool relu, bool batch_stats, const NormDims& d) {
  const PlaneKernels<T> k = kernels<T>();
  const bool sums = batch_stats || dgamma || dbeta;
  std::vector<double> sg(d.C), sb(d.C);  // sum dy' (x - mean), sum dy'
  if (sums) {
    std::vector<double> pg(d.N * d.C), pb(d.N * d.C);  // (N, C) plane sums
    each_plane(d, [&](int64_t p) {
      const int64_t c = p % d.C;
      k.grad_sums(dy + p * d.HW, x + p * d.HW, d.HW, affine(mean, inv_std, gamma, beta, c), relu,
                  mean[c], &pb[p], &pg[p]);
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
    const T k1 = static_cast<T>((gamma ? static_cast<double>(gamma[c]) : 1.0) * inv_std[c]);
    const T k2 = static_cast<T>(inv_std[c] * inv_std[c] * sg[c] / m);
    const T k3 = static_cast<T>(sb[c] / m);
    k.dx(dx + p * d.HW, dy + p * d.HW, x + p * d.HW, d.HW, affine(mean, inv_std, gamma, beta, c),
         relu, batch_stats, k1, k2, k3);
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
