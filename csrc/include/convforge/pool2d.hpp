// 2-D pooling kernels (max, min, average, global): declarations. See csrc/pool/pool2d.cpp for the
// layouts, formulas and parallel axes. Every kernel overwrites its outputs; float and double
// instantiations exist for each. Arguments: outputs first, then inputs, then options, then dims.
#pragma once
#include <cstdint>

#include "convforge/dims.hpp"

namespace convforge {

// ---- windowed pooling: d holds N C H W KH KW SH SW PH PW OH OW -----------------------------
// The caller (binding) guarantees: N, C >= 0; H, W, KH, KW, SH, SW, OH, OW >= 1; 0 <= PH <= KH/2,
// 0 <= PW <= KW/2; every window holds at least one input element: (OH-1)*SH - PH < H and
// (OW-1)*SW - PW < W.

// y (N, C, OH, OW), ind (N, C, OH, OW) = ih*W + iw of the chosen element, x (N, C, H, W).
template <typename T>
void pool2d_max_forward(T* y, int64_t* ind, const T* x, const PoolDims& d);
template <typename T>
void pool2d_min_forward(T* y, int64_t* ind, const T* x, const PoolDims& d);
// y (N, C, OH, OW), x (N, C, H, W).
template <typename T>
void pool2d_avg_forward(T* y, const T* x, bool count_include_pad, const PoolDims& d);

// Backward of max and min (and of global max with OH = OW = 1): dx = 0, then dx[ind] += dy.
// dx (N, C, H, W), dy (N, C, OH, OW), ind (N, C, OH, OW), values meant to lie in [0, H*W).
// Returns false if some index lies outside [0, H*W) (that output is then skipped; the caller
// raises). Indices are otherwise free to point anywhere in their plane.
// relu_y (N, C, OH, OW) or null: the max pool's forward output y over x = relu(z); then only
// outputs with y > 0 pass their dy, which makes dx the gradient w.r.t. z (the ReLU's backward
// fused: the window's maximum x[ind] is y, and the ReLU passes a gradient where x > 0).
template <typename T>
bool pool2d_index_backward(T* dx, const T* dy, const int64_t* ind, const PoolDims& d,
                           const T* relu_y = nullptr);
// The same by the scatter alone (no 2x2 fast path): the naive kernel, bit-identical.
template <typename T>
bool pool2d_index_backward_naive(T* dx, const T* dy, const int64_t* ind, const PoolDims& d,
                                 const T* relu_y = nullptr);
// dx (N, C, H, W), dy (N, C, OH, OW).
template <typename T>
void pool2d_avg_backward(T* dx, const T* dy, bool count_include_pad, const PoolDims& d);

// Naive kernels: one output (forward) or one plane (backward) at a time, no fast paths. The
// fallback and the second reference for the fast kernels above (bit-identical results).
template <typename T>
void pool2d_max_forward_naive(T* y, int64_t* ind, const T* x, const PoolDims& d);
template <typename T>
void pool2d_min_forward_naive(T* y, int64_t* ind, const T* x, const PoolDims& d);
template <typename T>
void pool2d_avg_forward_naive(T* y, const T* x, bool count_include_pad, const PoolDims& d);
template <typename T>
void pool2d_avg_backward_naive(T* dx, const T* dy, bool count_include_pad, const PoolDims& d);

// Position (flat, in ind) of the first value outside [0, limit), or -1 if all are inside.
// ind (count,). Used by the bindings before any index is used to write.
int64_t pool2d_first_bad_index(const int64_t* ind, int64_t count, int64_t limit);

// ---- global pooling over H and W: only N C H W of d are used -------------------------------
// y (N, C), x (N, C, H, W); the mean is accumulated in double.
template <typename T>
void global_pool2d_avg_forward(T* y, const T* x, const PoolDims& d);
// y (N, C), ind (N, C) = h*W + w of the first maximum (the last NaN if any, as in PyTorch).
template <typename T>
void global_pool2d_max_forward(T* y, int64_t* ind, const T* x, const PoolDims& d);
// dx (N, C, H, W) = dy / (H*W) broadcast, dy (N, C). Global max backward is
// pool2d_index_backward with OH = OW = 1.
template <typename T>
void global_pool2d_avg_backward(T* dx, const T* dy, const PoolDims& d);

}  // namespace convforge
