// The per-algorithm kernels that conv2d.cpp dispatches to (private to csrc/conv), one file per
// family; float and double are instantiated in each file. Same contracts as the public
// conv2d_* kernels (convforge/conv2d.hpp): outputs first, every kernel OVERWRITES its outputs,
// results bit-identical for any thread count. Layouts: x (N, C, H, W), w (K, Cg, KH, KW),
// b and db (K,), y and dy (N, K, OH, OW). The weight kernels that take db fuse it (db may be
// null); for the others conv2d.cpp computes db. The forward kernels take relu: y = max(conv + b,
// 0) written once (the epilogue, partials.hpp).
#pragma once
#include "convforge/dims.hpp"

namespace convforge::conv_impl {

// im2col_gemm.cpp: im2col_gemm / gemm_pointwise (pointwise = true) and im2col_gemm_batch.
template <typename T>
void forward_gemm(T* y, const T* x, const T* w, const T* b, const ConvDims& d, bool pointwise,
                  bool relu);
template <typename T>
void backward_data_gemm(T* dx, const T* dy, const T* w, const ConvDims& d, bool pointwise);
template <typename T>
void backward_weight_gemm(T* dw, const T* dy, const T* x, const ConvDims& d, bool pointwise);
template <typename T>
void backward_weight_batch(T* dw, T* db, const T* dy, const T* x, const ConvDims& d,
                           bool pointwise);

// depthwise.cpp: direct_depthwise.
template <typename T>
void forward_depthwise(T* y, const T* x, const T* w, const T* b, const ConvDims& d, bool relu);
template <typename T>
void backward_data_depthwise(T* dx, const T* dy, const T* w, const ConvDims& d);
template <typename T>
void backward_weight_depthwise(T* dw, const T* dy, const T* x, const ConvDims& d);

// direct_small.cpp: direct_small.
template <typename T>
void forward_direct(T* y, const T* x, const T* w, const T* b, const ConvDims& d, bool relu);
template <typename T>
void backward_data_direct(T* dx, const T* dy, const T* w, const ConvDims& d);
template <typename T>
void backward_weight_direct(T* dw, T* db, const T* dy, const T* x, const ConvDims& d);

// direct_kvec.cpp: direct_kvec.
template <typename T>
void forward_kvec(T* y, const T* x, const T* w, const T* b, const ConvDims& d, bool relu);
template <typename T>
void backward_weight_kvec(T* dw, T* db, const T* dy, const T* x, const ConvDims& d);

// direct_batch.cpp: direct_batch.
template <typename T>
void forward_batch(T* y, const T* x, const T* w, const T* b, const ConvDims& d, bool relu);
template <typename T>
void backward_data_batch(T* dx, const T* dy, const T* w, const ConvDims& d);
template <typename T>
void backward_weight_lanes(T* dw, const T* dy, const T* x, const ConvDims& d);

}  // namespace convforge::conv_impl
