// Helpers shared by the binding files: bindings only validate, convert, allocate and release the
// GIL. Arrays must already be C-contiguous with the exact dtype (Python makes any copy, once,
// in convforge/functional); anything else raises TypeError/ValueError naming the argument and shape.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "convforge/dims.hpp"

namespace convforge::bind {
namespace py = pybind11;

using I2 = std::array<int64_t, 2>;
using I4 = std::array<int64_t, 4>;

inline std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// Checks ndim, C-contiguity and that the dtype is float32 or float64; returns true for float32.
inline bool check_float_array(const py::array& a, const char* name, int ndim) {
  const bool f32 = a.dtype().is(py::dtype::of<float>());
  const bool f64 = a.dtype().is(py::dtype::of<double>());
  if (!f32 && !f64)
    throw py::type_error(std::string(name) + " must be float32 or float64, got dtype " +
                         std::string(py::str(a.dtype())) + " with shape " + shape_of(a));
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) +
                          "-D, got shape " + shape_of(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous (shape " + shape_of(a) +
                          "); convert it once with numpy.ascontiguousarray");
  return f32;
}

// Same dtype as a reference array (no silent mixed-precision).
inline void check_same_dtype(const py::array& a, const char* name, const py::array& ref,
                             const char* ref_name) {
  if (!a.dtype().is(ref.dtype()))
    throw py::type_error(std::string(name) + " has dtype " + std::string(py::str(a.dtype())) +
                         " but " + ref_name + " has dtype " + std::string(py::str(ref.dtype())));
}

inline void check_shape(const py::array& a, const char* name, std::initializer_list<int64_t> want) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(want.size());
  std::string w = "(";
  int i = 0;
  for (int64_t v : want) {
    if (ok && a.shape(i) != v) ok = false;
    w += (i ? ", " : "") + std::to_string(v);
    ++i;
  }
  w += want.size() == 1 ? ",)" : ")";
  if (!ok)
    throw py::value_error(std::string(name) + " must have shape " + w + ", got " + shape_of(a));
}

// Index arrays of max/min pooling: int64, C-contiguous, given shape.
inline void check_index_array(const py::array& a, const char* name,
                              std::initializer_list<int64_t> want) {
  if (!a.dtype().is(py::dtype::of<int64_t>()))
    throw py::type_error(std::string(name) + " must be int64, got " + std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  check_shape(a, name, want);
}

template <typename T>
inline T* mut_ptr(py::array& a) { return static_cast<T*>(a.mutable_data()); }
template <typename T>
inline const T* ptr(const py::array& a) { return static_cast<const T*>(a.data()); }

// Fresh C-contiguous output array of dtype T.
template <typename T>
inline py::array_t<T> empty(std::initializer_list<py::ssize_t> shape) {
  return py::array_t<T>(std::vector<py::ssize_t>(shape));
}

}  // namespace convforge::bind
