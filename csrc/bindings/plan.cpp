// Binding of the compiled step plan (csrc/plan/step_plan.hpp): _core.StepPlan(dtype, ops,
// param_shapes), .forward(x, params) and .backward(dy, params, grads). python/convforge/nn/
// _plan.py builds the ops from a chain model's layers; this file checks that they describe
// consistent buffers (every size against the next op's and the parameters'), and every array
// it is handed per call (dtype, C order, size), since the engine trusts both.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common.hpp"
#include "convforge/checked.hpp"
#include "plan/step_plan.hpp"

namespace convforge::bind {
namespace {

using plan::Op;

// The element count of a shape (every extent >= 0), overflow-checked.
int64_t prod(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t v : s) {
    if (v < 0) throw py::value_error("StepPlan: negative extent in a shape");
    try {
      n = mul_checked(n, v, "StepPlan: a buffer size");
    } catch (const SizeOverflow& e) {
      throw py::value_error(e.what());
    }
  }
  return n;
}

template <typename V>
V get(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw py::value_error(std::string("StepPlan: op without '") + key + "'");
  return d[key].cast<V>();
}

Op parse_op(const py::dict& d, const std::vector<std::vector<int64_t>>& pshapes) {
  Op op{};
  const std::string kind = get<std::string>(d, "kind");
  const auto in = get<std::vector<int64_t>>(d, "in"), out = get<std::vector<int64_t>>(d, "out");
  for (int64_t v : in)
    if (v < 1) throw py::value_error("StepPlan: empty input shape in op '" + kind + "'");
  op.in_elems = prod(in);
  op.out_elems = prod(out);
  op.need_dx = get<bool>(d, "need_dx");
  op.trainable = get<bool>(d, "trainable");
  op.backward = get<bool>(d, "backward");
  const int np = static_cast<int>(pshapes.size());
  const auto param = [&](const char* key) {
    const int i = get<int>(d, key);
    if (i < -1 || i >= np) throw py::value_error("StepPlan: parameter index out of range");
    return i;
  };
  const auto psize = [&](int i) { return i < 0 ? int64_t(0) : prod(pshapes[i]); };
  if (kind == "rescale") {
    op.kind = Op::Kind::rescale;
    op.scale = get<double>(d, "scale");
    op.offset = get<double>(d, "offset");
    if (op.in_elems != op.out_elems) throw py::value_error("StepPlan: rescale changes size");
  } else if (kind == "relu") {
    op.kind = Op::Kind::relu;
    op.relu_done = get<bool>(d, "relu_done");
    if (op.in_elems != op.out_elems) throw py::value_error("StepPlan: relu changes size");
  } else if (kind == "conv" || kind == "maxpool") {
    if (in.size() != 4 || out.size() != 4 || in[0] != out[0])
      throw py::value_error("StepPlan: " + kind + " needs (N, C, H, W) shapes");
    const auto st = get<I2>(d, "stride");
    const auto pad = get<I4>(d, "padding");
    if (kind == "conv") {
      op.kind = Op::Kind::conv;
      op.w = param("w");
      op.b = param("b");
      op.relu = get<bool>(d, "relu");
      op.relu_done = get<bool>(d, "relu_done");
      const auto dil = get<I2>(d, "dilation");
      const int64_t G = get<int64_t>(d, "groups");
      if (op.w < 0 || pshapes[op.w].size() != 4) throw py::value_error("StepPlan: conv weight");
      const auto& ws = pshapes[op.w];
      ConvDims cd;  // make_conv_dims checks the sizes, groups and output size
      try {
        cd = make_conv_dims(in[0], in[1], in[2], in[3], ws[0], ws[1], ws[2], ws[3], st[0], st[1],
                            pad[0], pad[1], pad[2], pad[3], dil[0], dil[1], G);
      } catch (const std::invalid_argument& e) {
        throw py::value_error(std::string("StepPlan: ") + e.what());
      }
      if (cd.K != out[1] || cd.OH != out[2] || cd.OW != out[3])
        throw py::value_error("StepPlan: conv output shape does not match its dims");
      if (op.b >= 0 && psize(op.b) != cd.K) throw py::value_error("StepPlan: conv bias size");
      op.cd = cd;
    } else {
      op.kind = Op::Kind::maxpool;
      op.pool_relu = get<bool>(d, "pool_relu");
      const auto ks = get<I2>(d, "kernel_size");
      // zero padding only (nn/_plan.py plans no other): every window inside the input
      if (pad[0] || pad[1] || pad[2] || pad[3] || ks[0] < 1 || ks[1] < 1 || st[0] < 1 ||
          st[1] < 1 || ks[0] > in[2] || ks[1] > in[3] || out[1] != in[1] ||
          out[2] != (in[2] - ks[0]) / st[0] + 1 || out[3] != (in[3] - ks[1]) / st[1] + 1)
        throw py::value_error("StepPlan: maxpool dims do not match its shapes");
      op.pd = PoolDims{in[0], in[1], in[2], in[3], ks[0], ks[1], st[0], st[1], 0, 0, out[2],
                       out[3]};
    }
  } else if (kind == "dense") {
    op.kind = Op::Kind::dense;
    op.w = param("w");
    op.b = param("b");
    op.relu = get<bool>(d, "relu");
    if (op.w < 0 || pshapes[op.w].size() != 2) throw py::value_error("StepPlan: dense weight");
    op.fin = pshapes[op.w][0];
    op.fout = pshapes[op.w][1];
    op.rows = in[0];
    if (op.rows * op.fin != op.in_elems || op.rows * op.fout != op.out_elems ||
        (op.b >= 0 && psize(op.b) != op.fout))
      throw py::value_error("StepPlan: dense sizes do not match its weight");
  } else {
    throw py::value_error("StepPlan: unknown op '" + kind + "'");
  }
  return op;
}

class PyStepPlan {
 public:
  PyStepPlan(const std::string& dtype, const py::list& ops,
             const std::vector<std::vector<int64_t>>& param_shapes)
      : f32_(dtype == "float32"), pshapes_(param_shapes) {
    if (dtype != "float32" && dtype != "float64")
      throw py::value_error("StepPlan: dtype must be 'float32' or 'float64', got '" + dtype + "'");
    if (ops.empty()) throw py::value_error("StepPlan: no ops");
    std::vector<Op> parsed;
    for (const auto& o : ops) parsed.push_back(parse_op(o.cast<py::dict>(), pshapes_));
    for (size_t i = 1; i < parsed.size(); ++i)
      if (parsed[i].in_elems != parsed[i - 1].out_elems)
        throw py::value_error("StepPlan: op " + std::to_string(i) + " does not take the size " +
                              "of the op before it");
    in_shape_ = ops[0].cast<py::dict>()["in"].cast<std::vector<int64_t>>();
    out_shape_ = ops[ops.size() - 1].cast<py::dict>()["out"].cast<std::vector<int64_t>>();
    std::vector<int64_t> sizes;
    for (const auto& s : pshapes_) sizes.push_back(prod(s));
    if (f32_) ef_ = std::make_unique<plan::Engine<float>>(parsed, sizes);
    else ed_ = std::make_unique<plan::Engine<double>>(parsed, sizes);
  }

  // x: the batch; it must stay alive (unchanged) until the backward that follows.
  py::array forward(const py::array& x, const py::list& params) {
    check(x, "x", in_shape_);
    const auto pp = param_ptrs(params);
    std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
    if (!lock.owns_lock()) throw py::value_error("StepPlan: already running in another thread");
    return f32_ ? forward_t<float>(*ef_, x, pp) : forward_t<double>(*ed_, x, pp);
  }

  // grads[i]: parameter i's gradient array (the gradient is added to it) or None (a new array,
  // returned at i). Returns the list of new arrays (None where added or not computed).
  py::list backward(const py::array& dy, const py::list& params, const py::list& grads) {
    check(dy, "dy", out_shape_);
    const auto pp = param_ptrs(params);
    if (grads.size() != pshapes_.size())
      throw py::value_error("StepPlan: grads must have one entry per parameter");
    std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
    if (!lock.owns_lock()) throw py::value_error("StepPlan: already running in another thread");
    return f32_ ? backward_t<float>(*ef_, dy, pp, grads) : backward_t<double>(*ed_, dy, pp, grads);
  }

 private:
  void check(const py::array& a, const char* name, const std::vector<int64_t>& shape) const {
    check_float_array(a, name, static_cast<int>(shape.size()));
    if (a.dtype().is(py::dtype::of<float>()) != f32_)
      throw py::type_error(std::string("StepPlan: ") + name + " has the wrong dtype");
    for (size_t i = 0; i < shape.size(); ++i)
      if (a.shape(i) != shape[i])
        throw py::value_error(std::string("StepPlan: ") + name + " has shape " + shape_of(a));
  }

  // The parameters' data; params must hold the arrays themselves (no conversion: the caller's
  // list keeps them alive during the call).
  std::vector<const void*> param_ptrs(const py::list& params) const {
    if (params.size() != pshapes_.size())
      throw py::value_error("StepPlan: params must have one array per parameter");
    std::vector<const void*> out;
    for (size_t i = 0; i < pshapes_.size(); ++i) {
      if (!py::isinstance<py::array>(params[i]))
        throw py::type_error("StepPlan: params must be NumPy arrays");
      const py::array a = params[i].cast<py::array>();
      check(a, "a parameter", pshapes_[i]);
      out.push_back(a.data());
    }
    return out;
  }

  template <typename T>
  py::array forward_t(plan::Engine<T>& e, const py::array& x, const std::vector<const void*>& pp) {
    std::vector<const T*> p(pp.size());
    for (size_t i = 0; i < pp.size(); ++i) p[i] = static_cast<const T*>(pp[i]);
    py::array_t<T> out(out_shape_);
    T* op = out.mutable_data();
    const int64_t n = prod(out_shape_);
    const T* xp = ptr<T>(x);
    {
      py::gil_scoped_release nogil;
      const T* y = e.forward(xp, p.data());
      std::copy(y, y + n, op);
    }
    return std::move(out);
  }

  // Every destination is checked (or allocated) before the kernels run; the gradients go to
  // them without the GIL.
  template <typename T>
  py::list backward_t(plan::Engine<T>& e, const py::array& dy, const std::vector<const void*>& pp,
                      const py::list& grads) {
    std::vector<const T*> p(pp.size());
    for (size_t i = 0; i < pp.size(); ++i) p[i] = static_cast<const T*>(pp[i]);
    std::vector<T*> dst(pshapes_.size(), nullptr);  // where parameter i's gradient goes
    std::vector<char> add(pshapes_.size(), 0);      // added to it (else copied into it)
    py::list fresh;
    for (size_t i = 0; i < pshapes_.size(); ++i) {
      if (!e.has_grad(static_cast<int>(i))) {
        fresh.append(py::none());
      } else if (grads[i].is_none()) {  // Parameter.accumulate's first call: a copy
        py::array_t<T> a(pshapes_[i]);
        dst[i] = a.mutable_data();
        fresh.append(std::move(a));
      } else {  // grad += g
        if (!py::isinstance<py::array>(grads[i]))
          throw py::type_error("StepPlan: grads must be NumPy arrays or None");
        py::array a = grads[i].cast<py::array>();
        check(a, "a gradient", pshapes_[i]);
        if (!a.writeable()) throw py::value_error("StepPlan: a gradient is read-only");
        dst[i] = mut_ptr<T>(a);
        add[i] = 1;
        fresh.append(py::none());
      }
    }
    const T* dyp = ptr<T>(dy);
    {
      py::gil_scoped_release nogil;
      e.backward(dyp, p.data());
      for (size_t i = 0; i < dst.size(); ++i)
        if (dst[i]) e.write_grad(static_cast<int>(i), dst[i], add[i] != 0);
    }
    return fresh;
  }

  bool f32_;
  std::vector<std::vector<int64_t>> pshapes_;
  std::vector<int64_t> in_shape_, out_shape_;
  std::unique_ptr<plan::Engine<float>> ef_;
  std::unique_ptr<plan::Engine<double>> ed_;
  std::mutex mu_;
};

}  // namespace

void bind_plan(py::module_& m) {
  py::class_<PyStepPlan>(m, "StepPlan",
                         "A chain model's training step on buffers it owns (nn/_plan.py).")
      .def(py::init<const std::string&, const py::list&,
                    const std::vector<std::vector<int64_t>>&>(),
           py::arg("dtype"), py::arg("ops"), py::arg("param_shapes"))
      .def("forward", &PyStepPlan::forward, py::arg("x"), py::arg("params"),
           "The chain's output for the batch x (a new array).")
      .def("backward", &PyStepPlan::backward, py::arg("dy"), py::arg("params"),
           py::arg("grads"),
           "Back-propagates dy through the latest forward; adds each parameter's gradient to "
           "grads[i], or returns it (a new array) at i where grads[i] is None.");
}

}  // namespace convforge::bind
