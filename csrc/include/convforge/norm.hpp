// Batch normalisation over the batch and spatial axes, per channel (csrc/norm/batch_norm.cpp).
// Layout: x, y, dy, dx (N, C, HW) with HW = H*W (1 for (N, C) inputs); per-channel vectors (C,).
// Statistics and parameter gradients are computed and returned in double; every kernel
// overwrites its outputs; results do not depend on the thread count (each plane (n, c) is
// summed by one thread in a fixed order, planes are added in n order).
#pragma once
#include <cstdint>

namespace convforge {

struct NormDims {
  int64_t N, C, HW;  // planes (n, c) of HW values; m = N * HW values per channel
};

// mean[c] and biased var[c] of x over (n, hw): sums of x - K and (x - K)^2 in double, shifted by
// K = x[0, c, 0] so that a mean far from 0 cannot cancel the variance away. N * HW >= 1.
template <typename T>
void batch_norm_stats(double* mean, double* var, const T* x, const NormDims& d);

// y = act((x - mean[c]) * scale[c] + shift[c]) with scale = gamma * inv_std and shift = beta
// (gamma, beta may be null: 1 and 0), inv_std = 1 / sqrt(var + eps) from the caller (double),
// rounded to T once per channel; act: ReLU (max(., 0)) when relu, else identity.
template <typename T>
void batch_norm_forward(T* y, const T* x, const double* mean, const double* inv_std,
                        const T* gamma, const T* beta, bool relu, const NormDims& d);

// Gradients of batch_norm_forward. dy is the gradient of y; with relu it is masked by the
// forward's own test (pre-activation > 0, recomputed from x exactly as the forward did).
// dgamma[c] = sum dy' * xhat, dbeta[c] = sum dy' (double; both skipped when null), xhat =
// (x - mean) * inv_std. batch_stats: mean/var were the batch's (training): dx also flows
// through them, dx = gamma inv_std (dy' - dbeta/m - xhat dgamma/m); else (moving statistics)
// dx = gamma inv_std dy'. dx may be null (no input gradient).
template <typename T>
void batch_norm_backward(T* dx, double* dgamma, double* dbeta, const T* dy, const T* x,
                         const double* mean, const double* inv_std, const T* gamma,
                         const T* beta, bool relu, bool batch_stats, const NormDims& d);

}  // namespace convforge
