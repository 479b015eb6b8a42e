// conv2d forward, backward data and backward weight (CPU, float and double): the public entry
// points and the dispatch to the algorithm files (the overview of every algorithm is here).
// Files (csrc/conv): select.cpp (the choice), naive.cpp, im2col_gemm.cpp (im2col_gemm,
// gemm_pointwise, im2col_gemm_batch), depthwise.cpp, direct_small.cpp, direct_kvec.cpp,
// direct_batch.cpp, winograd.cpp; shared helpers in partials.hpp, constants in select.hpp.
//
// Layouts: x (N, C, H, W), w (K, Cg, KH, KW) with Cg = C/G, b (K,), y and dy (N, K, OH, OW).
// Formula (cross-correlation, group g = k / Kg, Kg = K/G):
//   y[n,k,oh,ow] = b[k] + sum_{c<Cg,i,j} x[n, g*Cg+c, oh*SH-PH+i*DH, ow*SW-PW+j*DW] * w[k,c,i,j]
// with x read as zero in the padding. dx, dw, db are its gradients given dy.
// Every kernel OVERWRITES its outputs.
//
// Algorithms (select.cpp decides: choose_conv_algo() from the shapes, then conv_algo_for_data()
// moves winograd and direct_small to the exact path on inf/NaN inputs; the binding
// conv2d_algorithm reports the same decision):
//   im2col_gemm: per image, unfold a block of cols (R = Cg*KH*KW rows per group, L = OH*OW
//     columns) into a thread-local buffer and run the blocked GEMM (gemm.hpp):
//       forward   y_n,g (Kg, L) = W_g (Kg, R) cols_n,g (R, L) + b      tasks: (n, column block)
//       data      dcols (R, L) = W_g^T dy_n,g, dx_n = col2im(dcols)  tasks: (n, g, channel block)
//       weight    dw_g (Kg, R) = sum_n dy_n,g (Kg, L) cols_n,g^T        tasks: (g, channel block),
//                 each summing over n and column blocks in a fixed order
//   gemm_pointwise: 1x1 / stride 1 / no padding: x and dx are used as cols directly.
//   direct_depthwise: Cg == 1 (depthwise, also with a channel multiplier): plane-by-plane
//     direct convolution; tasks (n, k) forward, (n, c) data, k weight.
//   direct_small (stride 1; every direction): the image's channels of one group are copied into a
//     zero-padded buffer (Ci, Hp, Wp) and a per-ISA micro-kernel (conv2d_direct.hpp) computes
//     a few output channels x a few vectors of flattened positions p = oh*Wp + ow in registers,
//     looping over input channels and taps; the junk columns ow >= OW are dropped on copy-out.
//     The data direction is the same correlation of dy, padded by (KH-1)*DH - PH (top) and
//     (KW-1)*DW - PW (left), with the kernel rotated by 180 degrees and w's two channel axes
//     swapped: dx[c, ih, iw] = sum_{k,i,j} dy[k, ih + PH - i*DH, iw + PW - j*DW] w[k, c, i, j].
//     tasks (n, g) or (n, g, block of output channels).
//     Weight: dw[k, c, t] = sum_{n, p} dyp[n, k, p] xpad[n, c, p + offs[t]] with dy laid out
//     at the padded width (zero junk columns): lane-wise vector dot products per batch chunk
//     (chunks as in im2col_gemm_batch), lanes and chunks summed in a fixed order at the end.
//   im2col_gemm_batch (weight): the batch is cut into up to kDwChunks chunks (fixed by the
//     shapes: each sums at least kDwMinDepth image positions); each chunk sums its images
//     into its own transposed partial dw^T (R, Kg) = cols (R, depth) . dy^T with GEMMs of depth
//     "several images x OH*OW" (im2col of the images side by side), and its partial db in
//     double; the partials are then added in chunk order and written transposed. Tasks: chunks.
//   winograd (3x3, stride 1, dilation 1, G == 1; forward and data): F(4x4,3x3), 36 GEMMs per
//     chunk of tiles; see winograd.cpp (its accuracy and speed are documented there).
//   direct_kvec (forward and weight, any stride): direct kernels vectorised along the
//     output channels (conv2d_direct.hpp: KvecTile, KvecDwTile). Forward: the input of one
//     image and group zero-padded once, then tiles of NK*VL output channels x R rows x S
//     columns in registers, one broadcast of the input per tap and position: no im2col.
//     Weight: x zero-padded and dy channel-last (blocks of KB channels) at the padded
//     positions, tiles of KB output channels x TB taps of one input channel summed over the
//     valid positions of a block of rows in registers: no im2col, no transposition of x.
//     Chunks and partials as im2col_gemm_batch (dw_chunks()).
//   naive: plain loops (also exposed as *_naive: the second reference for tests).
// Parallel axis: the tasks above (N for forward/data, output channels of dw for weight). When
// there are fewer tasks than threads, the tasks run in turn and each GEMM splits its C over the
// threads instead. Either way each output element is computed by one thread in an order fixed
// by the shapes alone, so results are bit-identical for any thread count (no atomics).
// db: each k sums dy over (n, oh, ow) in that order, in double, parallel over k.
#include "convforge/conv2d.hpp"

#include <stdexcept>
#include <string>

#include "algos.hpp"
#include "partials.hpp"
#include "winograd.hpp"
#include "runtime/tasks.hpp"
#include "select.hpp"

namespace convforge {
namespace {

using namespace conv_impl;  // NOLINT(build/namespaces): the algorithm kernels (algos.hpp)

// db[k] = sum_{n, l} dy[n, k, l], in double: the planes dy[n, k] (L,) by plane_sums
// (plane_sum.hpp), added in the order n.
template <typename T>
void bias_grad(T* db, const T* dy, const ConvDims& d) {
  const int64_t L = d.OH * d.OW;
  const PlaneSums<T> sums = plane_sums<T>();
  run_tasks(d.K, true, [&](int64_t k) {
    std::vector<double> plane(d.N);  // (N,): the planes dy[n, k]
    sums(plane.data(), dy + k * L, L, d.N, d.K * L);
    double s = 0;
    for (int64_t n = 0; n < d.N; ++n) s += plane[n];
    db[k] = static_cast<T>(s);
  });
}

// Throws std::invalid_argument when algorithm a cannot run this problem in this direction.
void require_applies(ConvAlgo a, ConvDir dir, const ConvDims& d, int64_t elem_bytes) {
  if (conv_algo_applies(a, dir, d, elem_bytes)) return;
  throw std::invalid_argument(
      std::string("conv2d algorithm '") + conv_algo_name(a) + "' does not apply to the " +
      conv_dir_name(dir) + " direction of x " + shape_str(d.N, d.C, d.H, d.W) + ", w " +
      shape_str(d.K, d.Cg(), d.KH, d.KW) + ", stride (" + std::to_string(d.SH) + ", " +
      std::to_string(d.SW) + "), dilation (" + std::to_string(d.DH) + ", " +
      std::to_string(d.DW) + "), groups " + std::to_string(d.G));
}

}  // namespace

// ---------------------------------------------------------------- public kernels

template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvDims& d, ConvAlgo algo,
                    bool relu) {
  require_applies(algo, ConvDir::forward, d, sizeof(T));
  switch (conv_algo_for_data(algo, ConvDir::forward, d, x, w, /*winograd_checks*/ true)) {
    case ConvAlgo::naive:  // the plain loops stay the reference: the ReLU as a pass after
      conv2d_forward_naive(y, x, w, b, d);
      if (relu) run_tasks(d.N * d.K, true, [&](int64_t t) {
        relu_block(y + t * d.OH * d.OW, 1, d.OH * d.OW, 0);
      });
      break;
    case ConvAlgo::direct_depthwise: forward_depthwise(y, x, w, b, d, relu); break;
    case ConvAlgo::gemm_pointwise: forward_gemm(y, x, w, b, d, true, relu); break;
    case ConvAlgo::im2col_gemm: forward_gemm(y, x, w, b, d, false, relu); break;
    case ConvAlgo::direct_small: forward_direct(y, x, w, b, d, relu); break;
    case ConvAlgo::winograd:  // an inf/NaN on its way: the exact path overwrites y
      if (!winograd_conv2d_forward(y, x, w, b, d, relu))
        conv2d_forward(y, x, w, b, d, exact_conv_algo(ConvDir::forward, d, sizeof(T)), relu);
      break;
    case ConvAlgo::direct_kvec: forward_kvec(y, x, w, b, d, relu); break;
    case ConvAlgo::direct_batch: forward_batch(y, x, w, b, d, relu); break;
    default: break;  // rejected by require_applies
  }
}

template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvDims& d, bool relu) {
  conv2d_forward(y, x, w, b, d, choose_conv_algo(d, sizeof(T), ConvDir::forward), relu);
}

template <typename T>
void conv2d_backward_data(T* dx, const T* dy, const T* w, const ConvDims& d, ConvAlgo algo) {
  require_applies(algo, ConvDir::data, d, sizeof(T));
  switch (conv_algo_for_data(algo, ConvDir::data, d, dy, w, /*winograd_checks*/ true)) {
    case ConvAlgo::naive: conv2d_backward_data_naive(dx, dy, w, d); break;
    case ConvAlgo::direct_depthwise: backward_data_depthwise(dx, dy, w, d); break;
    case ConvAlgo::gemm_pointwise: backward_data_gemm(dx, dy, w, d, true); break;
    case ConvAlgo::im2col_gemm: backward_data_gemm(dx, dy, w, d, false); break;
    case ConvAlgo::direct_small: backward_data_direct(dx, dy, w, d); break;
    case ConvAlgo::winograd:
      if (!winograd_conv2d_backward_data(dx, dy, w, d))
        conv2d_backward_data(dx, dy, w, d, exact_conv_algo(ConvDir::data, d, sizeof(T)));
      break;
    case ConvAlgo::direct_batch: backward_data_batch(dx, dy, w, d); break;
    default: break;
  }
}

template <typename T>
void conv2d_backward_data(T* dx, const T* dy, const T* w, const ConvDims& d) {
  conv2d_backward_data(dx, dy, w, d, choose_conv_algo(d, sizeof(T), ConvDir::data));
}

template <typename T>
void conv2d_backward_weight(T* dw, T* db, const T* dy, const T* x, const ConvDims& d,
                            ConvAlgo algo) {
  require_applies(algo, ConvDir::weight, d, sizeof(T));
  switch (conv_algo_for_data(algo, ConvDir::weight, d, x, dy, /*winograd_checks*/ true)) {
    case ConvAlgo::naive: conv2d_backward_weight_naive(dw, db, dy, x, d); return;
    case ConvAlgo::direct_depthwise: backward_weight_depthwise(dw, dy, x, d); break;
    case ConvAlgo::gemm_pointwise: backward_weight_gemm(dw, dy, x, d, true); break;
    case ConvAlgo::im2col_gemm: backward_weight_gemm(dw, dy, x, d, false); break;
    case ConvAlgo::direct_small:  // db fused into the pass over the chunks
      backward_weight_direct(dw, db, dy, x, d);
      return;
    case ConvAlgo::im2col_gemm_batch:  // db fused into the pass over the chunks
      backward_weight_batch(dw, db, dy, x, d, is_pointwise(d));
      return;
    case ConvAlgo::direct_kvec:  // db fused into the pass over the chunks
      backward_weight_kvec(dw, db, dy, x, d);
      return;
    case ConvAlgo::direct_batch: backward_weight_lanes(dw, dy, x, d); break;
    case ConvAlgo::winograd:  // db fused into the pass over the chunks
      if (!winograd_conv2d_backward_weight(dw, db, dy, x, d))
        conv2d_backward_weight(dw, db, dy, x, d, exact_conv_algo(ConvDir::weight, d, sizeof(T)));
      return;
    default: return;
  }
  if (db) bias_grad(db, dy, d);
}

template <typename T>
void conv2d_backward_weight(T* dw, T* db, const T* dy, const T* x, const ConvDims& d) {
  conv2d_backward_weight(dw, db, dy, x, d, choose_conv_algo(d, sizeof(T), ConvDir::weight));
}

#define CF_INSTANTIATE(T)                                                                    \
  template void conv2d_forward<T>(T*, const T*, const T*, const T*, const ConvDims&, bool);  \
  template void conv2d_backward_data<T>(T*, const T*, const T*, const ConvDims&);            \
  template void conv2d_backward_weight<T>(T*, T*, const T*, const T*, const ConvDims&);      \
  template void conv2d_forward<T>(T*, const T*, const T*, const T*, const ConvDims&, ConvAlgo,  \
                                  bool);                                                      \
  template void conv2d_backward_data<T>(T*, const T*, const T*, const ConvDims&, ConvAlgo);  \
  template void conv2d_backward_weight<T>(T*, T*, const T*, const T*, const ConvDims&, ConvAlgo);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge
