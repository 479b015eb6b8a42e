// Batch normalisation kernels (contracts in convforge/norm.hpp), float and double: memory-bound
// passes over x / dy, one per kernel (statistics; forward; backward: sums, then dx), each plane
// (n, c) run by the plane kernel of current_isa() (batch_norm_kernel.inc; the copies give the
// same bits). The baseline copy of the plane kernels is compiled here too.
//
// Every per-channel sum is split the same way whatever the thread count or task split: each
// plane is summed by one thread in a fixed lane order (batch_norm_kernel.inc), and the planes'
// sums of a channel are added in n order. Tasks are blocks of whole planes, or of whole
// channels where the backward runs both of its passes block of channels by block (same sums,
// same bits). The forward's ReLU mask is recomputed in the backward with the same expression in
// T, so both passes agree on every element (NaN pre-activations give 0 and no gradient).
#define CF_ISA baseline
#define CF_VEC_BYTES 16
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

// Channels per block of the backward's channel-blocked passes: enough that a sample's planes of
// the block span a few KiB of contiguous memory (the hardware prefetchers follow runs within a
// page; a run of one 256-byte plane per sample would be latency bound).
int64_t channel_block(const NormDims& d) {
  constexpr int64_t kRunValues = 2048;
  return std::min(d.C, ceil_div(kRunValues, std::max<int64_t>(d.HW, 1)));
}

// Channel c's sum of its planes' sums, in n order: part (N, C).
double add_planes(const std::vector<double>& part, const NormDims& d, int64_t c) {
  double s = 0;
  for (int64_t n = 0; n < d.N; ++n) s += part[n * d.C + c];
  return s;
}

// Per-channel sums of the planes' sums: part (N, C) -> out (C,).
void add_planes(double* out, const std::vector<double>& part, const NormDims& d) {
  for (int64_t c = 0; c < d.C; ++c) out[c] = add_planes(part, d, c);
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
  std::vector<double> pg(sums ? d.N * d.C : 0), pb(sums ? d.N * d.C : 0);  // (N, C) plane sums
  const double m = static_cast<double>(d.N * d.HW);
  // Plane p = n*C + c of each pass.
  const auto plane_sums = [&](int64_t p) {
    const int64_t c = p % d.C;
    k.grad_sums(dy + p * d.HW, x + p * d.HW, d.HW, affine(mean, inv_std, gamma, beta, c), relu,
                mean[c], &pb[p], &pg[p]);
  };
  const auto channel_sums = [&](int64_t c) {
    sg[c] = add_planes(pg, d, c);
    sb[c] = add_planes(pb, d, c);
    if (dgamma) dgamma[c] = sg[c] * inv_std[c];
    if (dbeta) dbeta[c] = sb[c];
  };
  // dx[n, c] = (dy' - k3 - (x - mean) k2) k1, k1 = gamma inv_std, k2 = inv_std^2 sum_g / m
  // (xhat dgamma / m), k3 = dbeta / m: the cancellation happens before the scaling by k1, so
  // a channel whose dy' is its mean (one value per channel, say) gets exactly 0.
  const auto plane_dx = [&](int64_t p) {
    const int64_t c = p % d.C;
    const T k1 = static_cast<T>((gamma ? static_cast<double>(gamma[c]) : 1.0) * inv_std[c]);
    const T k2 = static_cast<T>(inv_std[c] * inv_std[c] * sg[c] / m);
    const T k3 = static_cast<T>(sb[c] / m);
    k.dx(dx + p * d.HW, dy + p * d.HW, x + p * d.HW, d.HW, affine(mean, inv_std, gamma, beta, c),
         relu, batch_stats, k1, k2, k3);
  };
  const int64_t cb = channel_block(d), blocks = ceil_div(d.C, cb);
  if (sums && dx && blocks >= 4 * max_threads()) {
    // Both passes block of channels by block: the dx pass reads the block's dy and x again
    // while they are still in this core's cache, instead of a second time from memory. Enough
    // blocks to share out, else plane by plane below.
    run_tasks(blocks, d.N * d.C * d.HW >= 2 * kTaskValues, [&](int64_t t) {
      const int64_t c0 = t * cb, c1 = std::min(d.C, c0 + cb);
      for (int64_t n = 0; n < d.N; ++n)
        for (int64_t c = c0; c < c1; ++c) plane_sums(n * d.C + c);
      for (int64_t c = c0; c < c1; ++c) channel_sums(c);
      for (int64_t n = 0; n < d.N; ++n)
        for (int64_t c = c0; c < c1; ++c) plane_dx(n * d.C + c);
    });
    return;
  }
  if (sums) {
    each_plane(d, plane_sums);
    for (int64_t c = 0; c < d.C; ++c) channel_sums(c);
  }
  if (dx) each_plane(d, plane_dx);
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
