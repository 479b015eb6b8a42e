// A compiled step plan (issue #14): the forward and backward of a chain of layers (the step
// plans of python/convforge/nn/_plan.py) run as one call each, with every activation, index
// and gradient in buffers the plan owns (allocated once, reused by every step: no allocation,
// no page faults, no Python between the kernels).
//
// Each op calls the kernels the layer's own code calls through the bindings, with the same
// arguments, in the same order, and does the little arithmetic around them (a bias add, the
// bias gradient's column sums, a rescale) as NumPy's expressions do (one rounding per
// operation, rows summed first to last from the first row, no contraction: CMake compiles
// csrc/plan with -ffp-contract=off), so a planned step gives the bits of the plain one
// (tests/nn/test_plan.py).
//
// Ops (Op::Kind), in forward order; a Flatten is no op (the buffers are flat):
//   rescale  y = x * scale + offset                       (Rescaling)
//   conv     y = conv2d(x, w, b) [+ ReLU epilogue]        (Conv2D, linear or relu)
//   maxpool  y, idx = max_pool2d(x) [backward: relu_y]    (MaxPooling2D, zero padding)
//   dense    y = act(x @ w + b)                           (Dense, linear or relu)
//   relu     y = max(x, 0)                                (Activation('relu'), ReLU)
// Gradients: for each parameter the plan's buffer g, added into the caller's grad as
// Parameter.accumulate does (grad += g, or a copy where the grad was None).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "convforge/dims.hpp"

namespace convforge::plan {

struct Op {
  enum class Kind { rescale, conv, maxpool, dense, relu } kind;
  int64_t in_elems = 0, out_elems = 0;  // input and output sizes (whole batch)
  double scale = 1, offset = 0;         // rescale
  ConvDims cd{};                        // conv
  PoolDims pd{};                        // maxpool
  int64_t rows = 0, fin = 0, fout = 0;  // dense: x (rows, fin), w (fin, fout)
  int w = -1, b = -1;                   // parameter indices (conv, dense), -1: none
  bool relu = false;       // conv / dense: ReLU activation (else linear)
  bool relu_done = false;  // conv / relu: the max pool after it did the ReLU's backward
  bool pool_relu = false;  // maxpool: do the backward of the ReLU before it (relu_y = y)
  bool need_dx = false;    // backward computes the input's gradient
  bool trainable = false;  // backward computes the parameters' gradients
  bool backward = false;   // the op runs in backward (at or above the lowest trainable op)
};

// The per-dtype engine (step_plan.cpp).
template <typename T>
class Engine {
 public:
  // ops in forward order; param_sizes: the element count of every parameter index.
  Engine(std::vector<Op> ops, std::vector<int64_t> param_sizes);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // x: the batch (ops[0].in_elems); params[i]: parameter i's values. Returns the last op's
  // output (out_elems of the last op), valid until the next forward.
  const T* forward(const T* x, const T* const* params);
  // dy: the gradient of the output; params as in forward (the same values). Then grad(i) holds
  // parameter i's gradient where some op computed it (has_grad(i)).
  void backward(const T* dy, const T* const* params);
  bool has_grad(int i) const;
  // dst (parameter i's size) = its gradient, or += it (add): Parameter.accumulate's copy or sum
  void write_grad(int i, T* dst, bool add) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace convforge::plan
