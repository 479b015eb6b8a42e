// Python bindings of the elementwise layers (csrc/elementwise):
//
//   dropout(x, seed, threshold, scale) -> y      x any shape, float32/float64, C-contiguous;
//       seed uint64, threshold uint32 = floor(rate * 2^32), scale = 1/(1-rate) (rounded to x's
//       dtype here); also the backward (dy in, dx out, same seed).
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

}  // namespace

void bind_elementwise(py::module_& m) {
  m.def("dropout", &dropout_py, py::arg("x"), py::arg("seed"), py::arg("threshold"),
        py::arg("scale"),
        "y = x * scale where dropout_hash(seed, i) >= threshold, else 0 (see elementwise.hpp).");
}

}  // namespace convforge::bind
