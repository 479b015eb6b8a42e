// Python bindings of the optimiser updates (csrc/optim, formulas in convforge/optim.hpp). Each
// takes lists of arrays, one entry per parameter, and updates params and the state lists in
// place in one kernel call (one GIL release, one parallel pass over every element):
//
//   sgd_update(params, grads, momentum_buffers, lr, momentum, nesterov, weight_decay, first_step)
//       momentum_buffers: a list when momentum != 0 (overwritten with d when first_step), else
//       None or ignored
//   adam_update(params, grads, m, v, v_max, step_size, sqrt_bc2, beta_1, beta_2, epsilon,
//               weight_decay, decay)
//       v_max: a list for AMSGrad, else None; step_size, sqrt_bc2: one float per parameter;
//       decay: AdamW's factor 1 - lr*wd (1 for Adam)
//   rmsprop_update(params, grads, square_avg, grad_avg, momentum_buffers, lr, rho, epsilon,
//                  momentum, weight_decay)
//       grad_avg: a list for the centred variant, else None; momentum_buffers: a list when
//       momentum != 0, else None or ignored
//
// Every array: float32 or float64, one dtype for the whole call, C-contiguous; entry i of
// every list has the shape of params[i]; params and state writeable. Arrays must not overlap
// (not checked: a caller's aliasing gives wrong values, never out-of-bounds accesses).
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "convforge/optim.hpp"

namespace convforge::bind {
namespace {

using List = std::vector<py::array>;

std::string entry(const char* name, size_t i) {
  return std::string(name) + "[" + std::to_string(i) + "]";
}

bool same_shape(const py::array& a, const py::array& b) {
  if (a.ndim() != b.ndim()) return false;
  for (py::ssize_t k = 0; k < a.ndim(); ++k)
    if (a.shape(k) != b.shape(k)) return false;
  return true;
}

// One list argument: its entries have params' count, shapes and dtype; C-contiguous; writeable
// unless read_only. params itself is checked against its own first entry's dtype.
void check_list(const List& list, const char* name, const List& params, bool read_only) {
  if (list.size() != params.size())
    throw py::value_error(std::string(name) + " has " + std::to_string(list.size()) +
                          " entries but params has " + std::to_string(params.size()));
  for (size_t i = 0; i < list.size(); ++i) {
    const py::array& a = list[i];
    const std::string n = entry(name, i);
    check_float_array(a, n.c_str(), static_cast<int>(a.ndim()));
    check_same_dtype(a, n.c_str(), params[0], "params[0]");
    if (!same_shape(a, params[i]))
      throw py::value_error(n + " has shape " + shape_of(a) + " but params[" + std::to_string(i) +
                            "] has shape " + shape_of(params[i]));
    if (!read_only && !a.writeable())
      throw py::value_error(n + " is read-only; it is updated in place");
  }
}

// The pointers of a checked call. state lists that are not used stay empty (nullptr).
template <typename T>
struct Tensors {
  std::vector<int64_t> size;
  std::vector<T*> param;
  std::vector<const T*> grad;
  std::vector<T*> state[3];
  OptimTensors<T> view;

  // a.data() of an array checked writeable (mutable_data() would check again per array)
  static T* mutable_ptr(const py::array& a) { return static_cast<T*>(const_cast<void*>(a.data())); }

  Tensors(const List& params, const List& grads, std::initializer_list<const List*> states) {
    for (const py::array& p : params) {
      size.push_back(static_cast<int64_t>(p.size()));
      param.push_back(mutable_ptr(p));
    }
    for (const py::array& g : grads) grad.push_back(ptr<T>(g));
    int k = 0;
    for (const List* s : states) {
      if (s)
        for (const py::array& a : *s) state[k].push_back(mutable_ptr(a));
      ++k;
    }
    view.count = static_cast<int64_t>(params.size());
    view.size = size.data();
    view.param = param.data();
    view.grad = grad.data();
    for (int j = 0; j < 3; ++j) view.state[j] = state[j].empty() ? nullptr : state[j].data();
  }
};

// Checks every list (nullptr: an unused optional one); returns whether the call is float32.
bool check_call(const List& params, const List& grads,
                std::initializer_list<std::pair<const List*, const char*>> states) {
  if (params.empty()) return true;
  check_list(params, "params", params, false);
  check_list(grads, "grads", params, true);
  for (const auto& [list, name] : states)
    if (list) check_list(*list, name, params, false);
  return params[0].dtype().is(py::dtype::of<float>());
}

const List* optional(const std::optional<List>& list) { return list ? &*list : nullptr; }

void sgd_py(const List& params, const List& grads, const std::optional<List>& bufs, double lr,
            double momentum, bool nesterov, double weight_decay, bool first_step) {
  const List* b = momentum != 0 ? optional(bufs) : nullptr;
  if (momentum != 0 && !b) throw py::value_error("momentum_buffers are needed when momentum != 0");
  const bool f32 = check_call(params, grads, {{b, "momentum_buffers"}});
  const SgdConfig c{lr, momentum, weight_decay, nesterov, first_step};
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Tensors<T> t(params, grads, {b});
    py::gil_scoped_release nogil;
    sgd_update(t.view, c);
  };
  f32 ? run(float()) : run(double());
}

void adam_py(const List& params, const List& grads, const List& m, const List& v,
             const std::optional<List>& v_max, const std::vector<double>& step_size,
             const std::vector<double>& sqrt_bc2, double beta_1, double beta_2, double epsilon,
             double weight_decay, double decay) {
  const bool f32 = check_call(params, grads,
                              {{&m, "m"}, {&v, "v"}, {optional(v_max), "v_max"}});
  if (step_size.size() != params.size() || sqrt_bc2.size() != params.size())
    throw py::value_error("step_size and sqrt_bc2 need one value per parameter (" +
                          std::to_string(params.size()) + "), got " +
                          std::to_string(step_size.size()) + " and " +
                          std::to_string(sqrt_bc2.size()));
  AdamConfig c;
  c.beta_1 = beta_1;
  c.beta_2 = beta_2;
  c.epsilon = epsilon;
  c.weight_decay = weight_decay;
  c.decay = decay;
  c.step_size = step_size.data();
  c.sqrt_bc2 = sqrt_bc2.data();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Tensors<T> t(params, grads, {&m, &v, optional(v_max)});
    py::gil_scoped_release nogil;
    adam_update(t.view, c);
  };
  f32 ? run(float()) : run(double());
}

void rmsprop_py(const List& params, const List& grads, const List& square_avg,
                const std::optional<List>& grad_avg, const std::optional<List>& bufs, double lr,
                double rho, double epsilon, double momentum, double weight_decay) {
  const List* b = momentum != 0 ? optional(bufs) : nullptr;
  if (momentum != 0 && !b) throw py::value_error("momentum_buffers are needed when momentum != 0");
  const bool f32 = check_call(params, grads, {{&square_avg, "square_avg"},
                                              {optional(grad_avg), "grad_avg"},
                                              {b, "momentum_buffers"}});
  RmspropConfig c;
  c.lr = lr;
  c.rho = rho;
  c.epsilon = epsilon;
  c.momentum = momentum;
  c.weight_decay = weight_decay;
  c.centered = grad_avg.has_value();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Tensors<T> t(params, grads, {&square_avg, optional(grad_avg), b});
    py::gil_scoped_release nogil;
    rmsprop_update(t.view, c);
  };
  f32 ? run(float()) : run(double());
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("sgd_update", &sgd_py, py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"),
        py::arg("lr"), py::arg("momentum"), py::arg("nesterov"), py::arg("weight_decay"),
        py::arg("first_step"), "SGD step over lists of parameters, in place (optim.hpp).");
  m.def("adam_update", &adam_py, py::arg("params"), py::arg("grads"), py::arg("m"), py::arg("v"),
        py::arg("v_max"), py::arg("step_size"), py::arg("sqrt_bc2"), py::arg("beta_1"),
        py::arg("beta_2"), py::arg("epsilon"), py::arg("weight_decay"), py::arg("decay"),
        "Adam / AdamW step over lists of parameters, in place (optim.hpp).");
  m.def("rmsprop_update", &rmsprop_py, py::arg("params"), py::arg("grads"),
        py::arg("square_avg"), py::arg("grad_avg"), py::arg("momentum_buffers"), py::arg("lr"),
        py::arg("rho"), py::arg("epsilon"), py::arg("momentum"), py::arg("weight_decay"),
        "RMSprop step over lists of parameters, in place (optim.hpp).");
}

}  // namespace convforge::bind
