// Winograd F(4x4, 3x3) convolution for 3x3 / stride 1 / dilation 1 / one group (winograd.cpp):
// forward, backward data and backward weight, float and double. Layouts as in conv2d.hpp: x (N, C, H, W),
// w (K, C, 3, 3), b (K,), y and dy (N, K, OH, OW). Every kernel OVERWRITES its outputs; results
// do not depend on the OpenMP thread count. See winograd.cpp for the algorithm.
//
// Private to csrc/conv (the dispatch in conv2d.cpp and the heuristic in select.cpp call it; the
// conv2d bindings reach it through algo="winograd"). The per-ISA tile transforms:
// winograd_kernel.hpp.
#pragma once
#include <cstdint>

#include "convforge/dims.hpp"

namespace convforge {

// Winograd can run this problem: 3x3, stride 1, dilation 1, G == 1, and the transformed
// weights (36 * K * C elements) fit the workspace cap (kMaxWeightBytes in winograd.cpp).
bool winograd_applicable(const ConvDims& d, int64_t elem_bytes);
// Applicable and measured faster than im2col_gemm on this kind of layer (the heuristic that
// choose_conv_algo() in csrc/conv/select.cpp consults for forward and backward data).
bool winograd_preferred(const ConvDims& d, int64_t elem_bytes);
// The same for the weight gradient (its two transforms per tile weigh more: more channels needed).
bool winograd_weight_preferred(const ConvDims& d, int64_t elem_bytes);

// Each kernel returns false when a value on its way was not finite (an inf/NaN in its inputs,
// which the transforms would spread over whole tiles, or an overflow): its outputs are then
// undefined and the caller runs the exact path (conv2d.cpp).
//
// y (N, K, OH, OW) = conv2d(x, w) + b (b may be null). Requires winograd_applicable(d).
template <typename T>
bool winograd_conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvDims& d,
                             bool relu = false);
// dx (N, C, H, W) given dy (N, K, OH, OW). Requires winograd_applicable(d).
template <typename T>
bool winograd_conv2d_backward_data(T* dx, const T* dy, const T* w, const ConvDims& d);
// dw (K, C, 3, 3) and db (K,) (db may be null) given dy and x. Requires winograd_applicable(d).
template <typename T>
bool winograd_conv2d_backward_weight(T* dw, T* db, const T* dy, const T* x, const ConvDims& d);

}  // namespace convforge
