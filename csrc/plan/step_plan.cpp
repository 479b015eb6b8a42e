// The compiled step plan's engine (contract: step_plan.hpp). Each op's forward and backward are
// the kernel calls of the bindings the layer's code goes through (bindings/conv.cpp, pool.cpp,
// elementwise.cpp), on the plan's buffers; the elementwise glue is written as NumPy computes it.
#include "step_plan.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include "convforge/conv2d.hpp"
#include "convforge/elementwise.hpp"
#include "convforge/gemm.hpp"
#include "convforge/pool2d.hpp"

namespace convforge::plan {
namespace {

// A buffer of n elements aligned to 64 bytes (as NumPy's large arrays are), never reallocated.
template <typename U>
class Buf {
 public:
  void resize(int64_t n) {
    v_.assign(static_cast<size_t>(n) + 64 / sizeof(U), U(0));
    const auto a = reinterpret_cast<uintptr_t>(v_.data());
    p_ = v_.data() + ((64 - a % 64) % 64) / sizeof(U);
  }
  U* get() const { return p_; }

 private:
  std::vector<U> v_;
  U* p_ = nullptr;
};

}  // namespace

template <typename T>
struct Engine<T>::Impl {
  struct State {
    Buf<T> y, dz, dx, gw, gb;  // forward output; backward: pre-activation grad, input grad
    Buf<int64_t> idx;          // maxpool: argmax indices
    const T* in = nullptr;     // the forward input (x or the previous op's y)
  };
  std::vector<Op> ops;
  std::vector<State> st;
  std::vector<int> grad_op;      // parameter i: the op computing its gradient (-1: none)
  std::vector<bool> grad_is_w;   // ... as its w (else its b)
  std::vector<int64_t> grad_size;  // parameter i's element count
  int64_t nparams = 0;
};

template <typename T>
Engine<T>::Engine(std::vector<Op> ops, std::vector<int64_t> param_sizes)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.ops = std::move(ops);
  m.st.resize(m.ops.size());
  m.nparams = static_cast<int64_t>(param_sizes.size());
  m.grad_op.assign(param_sizes.size(), -1);
  m.grad_is_w.assign(param_sizes.size(), false);
  m.grad_size = param_sizes;
  for (size_t i = 0; i < m.ops.size(); ++i) {
    const Op& op = m.ops[i];
    typename Impl::State& s = m.st[i];
    s.y.resize(op.out_elems);
    if (op.kind == Op::Kind::maxpool) s.idx.resize(op.out_elems);
    if (!op.backward) continue;
    if (op.need_dx) s.dx.resize(op.in_elems);
    if ((op.kind == Op::Kind::conv || op.kind == Op::Kind::dense) && op.relu && !op.relu_done)
      s.dz.resize(op.out_elems);
    if (op.trainable && op.w >= 0) {
      s.gw.resize(param_sizes[op.w]);
      m.grad_op[op.w] = static_cast<int>(i);
      m.grad_is_w[op.w] = true;
      if (op.b >= 0) {
        s.gb.resize(param_sizes[op.b]);
        m.grad_op[op.b] = static_cast<int>(i);
      }
    }
  }
}

template <typename T>
Engine<T>::~Engine() = default;

template <typename T>
const T* Engine<T>::forward(const T* x, const T* const* params) {
  Impl& m = *impl_;
  const T* in = x;
  for (size_t i = 0; i < m.ops.size(); ++i) {
    const Op& op = m.ops[i];
    typename Impl::State& s = m.st[i];
    s.in = in;
    T* y = s.y.get();
    switch (op.kind) {
      case Op::Kind::rescale: {  // NumPy: (x * scale) + offset, each rounded to T
        const T sc = static_cast<T>(op.scale), off = static_cast<T>(op.offset);
        for (int64_t e = 0; e < op.in_elems; ++e) {
          const T v = in[e] * sc;
          y[e] = v + off;
        }
        break;
      }
      case Op::Kind::conv:  // bindings/conv.cpp forward_t, algorithm "auto"
        conv2d_forward<T>(y, in, params[op.w], op.b >= 0 ? params[op.b] : nullptr, op.cd,
                          op.relu);
        break;
      case Op::Kind::maxpool:  // bindings/pool.cpp pool_forward
        if (op.pd.N * op.pd.C > 0) pool2d_max_forward<T>(y, s.idx.get(), in, op.pd);
        break;
      case Op::Kind::dense: {  // nn.Dense: z = x @ w (core gemm); z + b; activation
        const GemmDims g{op.rows, op.fout, op.fin, op.fin, op.fout, op.fout, false, false, false};
        gemm<T>(y, in, params[op.w], nullptr, g, true);
        if (op.b >= 0) {
          const T* b = params[op.b];
          for (int64_t r = 0; r < op.rows; ++r)  // (rows, fout) + (fout,)
            for (int64_t j = 0; j < op.fout; ++j) y[r * op.fout + j] = y[r * op.fout + j] + b[j];
        }
        if (op.relu) activation_forward<T>(y, y, op.out_elems, Activation::relu);
        break;
      }
      case Op::Kind::relu:
        activation_forward<T>(y, in, op.out_elems, Activation::relu);
        break;
    }
    in = y;
  }
  return in;
}

template <typename T>
void Engine<T>::backward(const T* dy, const T* const* params) {
  Impl& m = *impl_;
  const T* g = dy;  // the gradient of op i's output
  for (size_t k = m.ops.size(); k-- > 0;) {
    const Op& op = m.ops[k];
    if (!op.backward) break;
    typename Impl::State& s = m.st[k];
    const T* y = s.y.get();
    T* dx = op.need_dx ? s.dx.get() : nullptr;
    switch (op.kind) {
      case Op::Kind::rescale:  // NumPy: dy * scale
        if (dx) {
          const T sc = static_cast<T>(op.scale);
          for (int64_t e = 0; e < op.in_elems; ++e) dx[e] = g[e] * sc;
        }
        break;
      case Op::Kind::conv: {  // bindings/conv.cpp backward_t: data, then weight
        const T* dz = g;
        if (op.relu && !op.relu_done) {
          activation_backward<T>(s.dz.get(), g, y, op.out_elems, Activation::relu);
          dz = s.dz.get();
        }
        if (dx) conv2d_backward_data<T>(dx, dz, params[op.w], op.cd);
        if (op.trainable)
          conv2d_backward_weight<T>(s.gw.get(), op.b >= 0 ? s.gb.get() : nullptr, dz, s.in,
                                    op.cd);
        break;
      }
      case Op::Kind::maxpool:  // bindings/pool.cpp pool_backward (our own indices: all valid)
        if (dx && op.pd.N * op.pd.C > 0)
          pool2d_index_backward<T>(dx, g, s.idx.get(), op.pd, op.pool_relu ? y : nullptr);
        break;
      case Op::Kind::dense: {  // nn.Dense._backward
        const T* dz = g;
        if (op.relu) {
          activation_backward<T>(s.dz.get(), g, y, op.out_elems, Activation::relu);
          dz = s.dz.get();
        }
        if (op.trainable) {
          // gemm(x2, dz, trans_a): (fin, fout)
          const GemmDims gw{op.fin, op.fout, op.rows, op.fin, op.fout, op.fout, true, false, false};
          gemm<T>(s.gw.get(), s.in, dz, nullptr, gw, true);
          if (op.b >= 0) {  // NumPy dz.sum(axis=0): the first row, then each next row added
            T* gb = s.gb.get();
            std::copy(dz, dz + op.fout, gb);
            for (int64_t r = 1; r < op.rows; ++r)
              for (int64_t j = 0; j < op.fout; ++j) gb[j] = gb[j] + dz[r * op.fout + j];
          }
        }
        if (dx) {  // gemm(dz, w, trans_b): (rows, fin)
          const GemmDims gx{op.rows, op.fin, op.fout, op.fout, op.fout, op.fin, false, true, false};
          gemm<T>(dx, dz, params[op.w], nullptr, gx, true);
        }
        break;
      }
      case Op::Kind::relu:
        if (op.relu_done) {
          dx = const_cast<T*>(g);  // the max pool after it did the ReLU's backward: dx = dy
        } else if (dx) {
          activation_backward<T>(dx, g, y, op.out_elems, Activation::relu);
        }
        break;
    }
    g = dx;
  }
}

template <typename T>
bool Engine<T>::has_grad(int i) const {
  return i >= 0 && i < impl_->nparams && impl_->grad_op[i] >= 0;
}

template <typename T>
void Engine<T>::write_grad(int i, T* dst, bool add) const {
  const Impl& m = *impl_;
  const typename Impl::State& s = m.st[m.grad_op[i]];
  const T* g = m.grad_is_w[i] ? s.gw.get() : s.gb.get();
  const int64_t n = m.grad_size[i];
  if (add) {
    for (int64_t j = 0; j < n; ++j) dst[j] = dst[j] + g[j];
  } else {
    std::copy(g, g + n, dst);
  }
}

template class Engine<float>;
template class Engine<double>;

}  // namespace convforge::plan
