// Python bindings of the elementwise layers (csrc/elementwise):
//
//   dropout(x, seed, threshold, scale) -> y      x any shape, float32/float64, C-contiguous;
//       seed uint64, threshold uint32 = floor(rate * 2^32), scale = 1/(1-rate) (rounded to x's
//       dtype here); also the backward (dy in, dx out, same seed).
//   activation(x, kind) -> y                    kind 'linear' | 'relu' | 'sigmoid' | 'tanh'
//   activation_backward(dy, y, kind) -> dx      from the forward's output y (same shape, dtype)
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"
#include "convforge/elementwise.hpp"

namespace convforge::bind {
namespace {

template <typename T>
py::array dropout_t(const py::array& x, uint64_t seed, uint32_t threshold, double scale) {
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  py::array_t<T> y(shape);
  T* yp = y.mutable_data();
  const T* xp = ptr<T>(x);
  const int64_t n = x.size();
  {
    py::gil_scoped_release nogil;
    dropout_apply(yp, xp, n, seed, threshold, static_cast<T>(scale));
  }
  return std::move(y);
}

py::array dropout_py(const py::array& x, uint64_t seed, uint32_t threshold, double scale) {
  const bool f32 = check_float_array(x, "x", static_cast<int>(x.ndim()));
  return f32 ? dropout_t<float>(x, seed, threshold, scale)
             : dropout_t<double>(x, seed, threshold, scale);
}

Activation parse_activation(const std::string& kind) {
  if (kind == "linear") return Activation::linear;
  if (kind == "relu") return Activation::relu;
  if (kind == "sigmoid") return Activation::sigmoid;
  if (kind == "tanh") return Activation::tanh;
  throw py::value_error("activation must be 'linear', 'relu', 'sigmoid' or 'tanh', got '" + kind +
                        "'");
}

template <typename T>
py::array_t<T> like(const py::array& a) {
  return py::array_t<T>(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
}

py::array activation_py(const py::array& x, const std::string& kind) {
  const bool f32 = check_float_array(x, "x", static_cast<int>(x.ndim()));
  const Activation f = parse_activation(kind);
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto y = like<T>(x);
    T* yp = y.mutable_data();
    const T* xp = ptr<T>(x);
    py::gil_scoped_release nogil;
    activation_forward(yp, xp, static_cast<int64_t>(x.size()), f);
    return std::move(y);
  };
  return f32 ? run(float()) : run(double());
}

py::array activation_backward_py(const py::array& dy, const py::array& y,
                                 const std::string& kind) {
  const bool f32 = check_float_array(dy, "dy", static_cast<int>(dy.ndim()));
  check_float_array(y, "y", static_cast<int>(y.ndim()));
  check_same_dtype(y, "y", dy, "dy");
  if (!std::equal(y.shape(), y.shape() + y.ndim(), dy.shape(), dy.shape() + dy.ndim()) ||
      y.ndim() != dy.ndim())
    throw py::value_error("y must have the shape of dy " + shape_of(dy) + ", got " + shape_of(y));
  const Activation f = parse_activation(kind);
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dx = like<T>(dy);
    T* dxp = dx.mutable_data();
    const T *dyp = ptr<T>(dy), *yp = ptr<T>(y);
    py::gil_scoped_release nogil;
    activation_backward(dxp, dyp, yp, static_cast<int64_t>(dy.size()), f);
    return std::move(dx);
  };
  return f32 ? run(float()) : run(double());
}

}  // namespace

void bind_elementwise(py::module_& m) {
  m.def("activation", &activation_py, py::arg("x"), py::arg("kind"),
        "y = f(x) elementwise, f: 'linear' | 'relu' | 'sigmoid' | 'tanh' (elementwise.hpp).");
  m.def("activation_backward", &activation_backward_py, py::arg("dy"), py::arg("y"),
        py::arg("kind"), "dx = dy * f'(y), from the forward's output y.");
  m.def("dropout", &dropout_py, py::arg("x"), py::arg("seed"), py::arg("threshold"),
        py::arg("scale"),
        "y = x * scale where dropout_hash(seed, i) >= threshold, else 0 (see elementwise.hpp).");
}

}  // namespace convforge::bind
