// Python bindings of the Winograd F(4x4, 3x3) kernels (winograd.cpp), for tests and
// diagnostics (conv2d_forward / conv2d_backward_data pick Winograd themselves through
// choose_conv_algo() in csrc/conv/select.cpp):
//   winograd_conv2d_forward(x, w, b|None, padding) -> y (N, K, OH, OW)
//   winograd_conv2d_backward_data(dy, w, x_shape, padding) -> dx (N, C, H, W)
//   winograd_applicable(x_shape, w_shape, padding, dtype) -> bool
//   winograd_preferred(x_shape, w_shape, padding, dtype) -> bool
// padding is (top, bottom, left, right); stride and dilation are 1 and groups 1. Arguments are
// validated as in bindings/conv.cpp (exact dtype, C-contiguous, shapes; errors name the
// argument and the shapes); a problem Winograd cannot run raises ValueError. The GIL is
// released around the kernels.
#include <optional>
#include <stdexcept>
#include <string>

#include "common.hpp"
#include "convforge/winograd.hpp"

namespace convforge::bind {
namespace {

std::string str4(const I4& s) { return shape_str(s[0], s[1], s[2], s[3]); }
I4 shape4(const py::array& a) { return {a.shape(0), a.shape(1), a.shape(2), a.shape(3)}; }

// A non-empty float array of the given rank (and of ref's dtype when given); true for float32.
bool check_input(const py::array& a, const char* name, int ndim, const py::array* ref = nullptr,
                 const char* ref_name = nullptr) {
  const bool f32 = check_float_array(a, name, ndim);
  if (ref) check_same_dtype(a, name, *ref, ref_name);
  if (a.size() == 0)
    throw py::value_error(std::string(name) + " has a zero-size dimension: shape " + shape_of(a));
  return f32;
}

// Dims of a stride-1, dilation-1, one-group conv; ValueError naming both shapes when invalid.
ConvDims wg_dims(const char* fn, const I4& xs, const I4& ws, const I4& pad, const char* xs_name,
                 const char* ws_name) {
  for (const I4* s : {&xs, &ws})
    for (int64_t v : *s)
      if (v < 1)
        throw py::value_error(std::string(fn) + ": " + (s == &xs ? xs_name : ws_name) +
                              " must be positive, got " + str4(*s));
  try {
    return make_conv_dims(xs[0], xs[1], xs[2], xs[3], ws[0], ws[1], ws[2], ws[3], 1, 1, pad[0],
                          pad[1], pad[2], pad[3], 1, 1, 1);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(std::string(fn) + ": " + e.what() + " (" + xs_name + " " + str4(xs) +
                          ", " + ws_name + " " + str4(ws) + ")");
  }
}

void require_applicable(const char* fn, const ConvDims& d, int64_t elem, const I4& xs,
                        const I4& ws) {
  if (!winograd_applicable(d, elem))
    throw py::value_error(std::string(fn) + ": Winograd F(4x4, 3x3) needs a 3x3 kernel and a "
                          "transformed weight within the workspace cap (x " + str4(xs) +
                          ", w " + str4(ws) + ")");
}

int64_t elem_of(const std::string& dtype) {
  if (dtype != "float32" && dtype != "float64")
    throw py::value_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
  return dtype == "float32" ? 4 : 8;
}

template <typename T>
py::array forward_t(const py::array& x, const py::array& w, const std::optional<py::array>& b,
                    const ConvDims& d) {
  auto y = empty<T>({d.N, d.K, d.OH, d.OW});
  T* yp = y.mutable_data();
  const T *xp = ptr<T>(x), *wp = ptr<T>(w), *bp = b ? ptr<T>(*b) : nullptr;
  {
    py::gil_scoped_release nogil;
    winograd_conv2d_forward<T>(yp, xp, wp, bp, d);
  }
  return std::move(y);
}

py::array forward_py(const py::array& x, const py::array& w, const std::optional<py::array>& b,
                     const I4& padding) {
  const bool f32 = check_input(x, "x", 4);
  check_input(w, "w", 4, &x, "x");
  if (b) check_input(*b, "b", 1, &x, "x");
  const ConvDims d = wg_dims("winograd_conv2d_forward", shape4(x), shape4(w), padding, "x", "w");
  if (b) check_shape(*b, "b", {d.K});
  require_applicable("winograd_conv2d_forward", d, f32 ? 4 : 8, shape4(x), shape4(w));
  return f32 ? forward_t<float>(x, w, b, d) : forward_t<double>(x, w, b, d);
}

template <typename T>
py::array backward_data_t(const py::array& dy, const py::array& w, const ConvDims& d) {
  auto dx = empty<T>({d.N, d.C, d.H, d.W});
  T* dxp = dx.mutable_data();
  const T *dyp = ptr<T>(dy), *wp = ptr<T>(w);
  {
    py::gil_scoped_release nogil;
    winograd_conv2d_backward_data<T>(dxp, dyp, wp, d);
  }
  return std::move(dx);
}

py::array backward_data_py(const py::array& dy, const py::array& w, const I4& x_shape,
                           const I4& padding) {
  const bool f32 = check_input(dy, "dy", 4);
  check_input(w, "w", 4, &dy, "dy");
  const ConvDims d =
      wg_dims("winograd_conv2d_backward_data", x_shape, shape4(w), padding, "x_shape", "w");
  check_shape(dy, "dy", {d.N, d.K, d.OH, d.OW});
  require_applicable("winograd_conv2d_backward_data", d, f32 ? 4 : 8, x_shape, shape4(w));
  return f32 ? backward_data_t<float>(dy, w, d) : backward_data_t<double>(dy, w, d);
}

bool applicable_py(const I4& x_shape, const I4& w_shape, const I4& padding,
                   const std::string& dtype) {
  const int64_t elem = elem_of(dtype);
  return winograd_applicable(
      wg_dims("winograd_applicable", x_shape, w_shape, padding, "x_shape", "w_shape"), elem);
}

bool preferred_py(const I4& x_shape, const I4& w_shape, const I4& padding,
                  const std::string& dtype) {
  const int64_t elem = elem_of(dtype);
  return winograd_preferred(
      wg_dims("winograd_preferred", x_shape, w_shape, padding, "x_shape", "w_shape"), elem);
}

}  // namespace

void bind_winograd(py::module_& m) {
  using py::arg;
  m.def("winograd_conv2d_forward", &forward_py, arg("x"), arg("w"), arg("b").none(true),
        arg("padding"),
        "y (N, K, OH, OW) of a 3x3 stride-1 conv2d(x (N, C, H, W), w (K, C, 3, 3), b (K,) or "
        "None) by Winograd F(4x4, 3x3); padding (top, bottom, left, right).");
  m.def("winograd_conv2d_backward_data", &backward_data_py, arg("dy"), arg("w"), arg("x_shape"),
        arg("padding"), "dx (x_shape) of a 3x3 stride-1 conv2d by Winograd F(4x4, 3x3).");
  m.def("winograd_applicable", &applicable_py, arg("x_shape"), arg("w_shape"), arg("padding"),
        arg("dtype") = "float32", "Whether the Winograd kernels can run this stride-1 problem.");
  m.def("winograd_preferred", &preferred_py, arg("x_shape"), arg("w_shape"), arg("padding"),
        arg("dtype") = "float32",
        "Whether choose_conv_algo's heuristic prefers Winograd for this stride-1 problem.");
}

}  // namespace convforge::bind
