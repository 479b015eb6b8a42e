// Python bindings of the convolution family (kernels: csrc/conv, csrc/im2col, csrc/gemm).
//
//   conv2d_forward(x, w, b|None, stride, padding, dilation, groups, algo="auto",
//                  activation="linear"|"relu")
//       -> y (N, K, OH, OW)
//   conv2d_backward_data(dy, w, x_shape, stride, padding, dilation, groups, algo="auto")
//       -> dx (N, C, H, W)
//   conv2d_backward_weight(dy, x, w_shape, stride, padding, dilation, groups, bias, algo="auto")
//       -> (dw (K, C/G, KH, KW), db (K,) or None)
//   conv2d_backward(dy, x, w, stride, padding, dilation, groups, bias, data_algo="auto",
//                   weight_algo="auto", need_dx=True, need_dw=True)
//       -> (dx or None, dw or None, db or None)   (one GIL release)
// algo: "auto" (the heuristic, choose_conv_algo) or an algorithm name (ConvAlgo); a name that
// does not apply to the problem in that direction raises ValueError naming both.
//   im2col(x, kernel_size, stride, padding, dilation) -> cols (N, C*KH*KW, OH*OW)
//   col2im(cols, input_shape, kernel_size, stride, padding, dilation) -> x (N, C, H, W)
// stride/dilation/kernel_size are (h, w), padding is (top, bottom, left, right), shapes are
// 4-tuples. algo="naive" runs the plain loops (the second reference of the tests). For tests
// and diagnostics also:
//   conv2d_algorithm(x_shape, w_shape, stride, padding, dilation, groups, dtype,
//                    direction="forward", *, x=None, w=None, dy=None) -> str (what auto runs)
//   conv2d_algorithms(x_shape, w_shape, stride, padding, dilation, groups, dtype, direction)
//       -> list[str] (every algorithm that applies; direction "forward" | "data" | "weight")
//   set_conv_exact(enabled), conv_exact() -> bool: exact mode (choose_conv_algo skips Winograd)
//   gemm(a, b, trans_a=False, trans_b=False, c=None, row_bias=None) -> op(a) op(b) [+ c] [+ bias]
//
// Bindings only validate (exact dtype float32/float64, C-contiguous, ndim, shapes consistent
// with make_conv_dims, one dtype for all arrays; errors name the argument and the shapes),
// allocate the outputs, release the GIL around the kernel and dispatch float/double.
#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.hpp"
#include "convforge/checked.hpp"
#include "convforge/conv2d.hpp"
#include "convforge/gemm.hpp"

namespace convforge::bind {
namespace {

std::string str4(const I4& s) { return shape_str(s[0], s[1], s[2], s[3]); }

I4 shape4(const py::array& a) { return {a.shape(0), a.shape(1), a.shape(2), a.shape(3)}; }

void check_positive(const I4& s, const char* name) {
  for (int64_t v : s)
    if (v < 1) throw py::value_error(std::string(name) + " must be positive, got " + str4(s));
}

void check_nonempty(const py::array& a, const char* name) {
  if (a.size() == 0)
    throw py::value_error(std::string(name) + " has a zero-size dimension: shape " + shape_of(a));
}

// A float array of the given rank (and, when ref is given, of ref's dtype); true for float32.
bool check_input(const py::array& a, const char* name, int ndim, const py::array* ref = nullptr,
                 const char* ref_name = nullptr) {
  const bool f32 = check_float_array(a, name, ndim);
  if (ref) check_same_dtype(a, name, *ref, ref_name);
  check_nonempty(a, name);
  return f32;
}

// make_conv_dims with the caller's name and both shapes in the error message.
ConvDims conv_dims(const char* fn, const I4& xs, const I4& ws, const I2& stride, const I4& pad,
                   const I2& dil, int64_t groups, const char* xs_name, const char* ws_name) {
  check_positive(xs, xs_name);
  check_positive(ws, ws_name);
  try {
    return make_conv_dims(xs[0], xs[1], xs[2], xs[3], ws[0], ws[1], ws[2], ws[3], stride[0],
                          stride[1], pad[0], pad[1], pad[2], pad[3], dil[0], dil[1], groups);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(std::string(fn) + ": " + e.what() + " (" + xs_name + " " + str4(xs) +
                          ", " + ws_name + " " + str4(ws) + ")");
  }
}

// Dims of an unfold: a conv with one group and K = C output channels.
ConvDims unfold_dims(const char* fn, const I4& xs, const I2& ks, const I2& stride, const I4& pad,
                     const I2& dil, const char* xs_name) {
  check_positive(xs, xs_name);
  if (ks[0] < 1 || ks[1] < 1)
    throw py::value_error(std::string(fn) + ": kernel_size must be >= 1, got (" +
                          std::to_string(ks[0]) + ", " + std::to_string(ks[1]) + ")");
  return conv_dims(fn, xs, {xs[1], xs[1], ks[0], ks[1]}, stride, pad, dil, 1, xs_name,
                   "kernel (C, C, KH, KW)");
}

// ---------------------------------------------------------------- algorithm names

ConvDir parse_direction(const std::string& s) {
  if (s == "forward") return ConvDir::forward;
  if (s == "data") return ConvDir::data;
  if (s == "weight") return ConvDir::weight;
  throw py::value_error("direction must be 'forward', 'data' or 'weight', got '" + s + "'");
}

// "auto" -> nullopt (the heuristic decides); a name -> its algorithm, checked to apply to the
// problem in direction dir; anything else raises ValueError.
std::optional<ConvAlgo> parse_algo(const char* fn, const std::string& name, ConvDir dir,
                                   const ConvDims& d, int64_t elem_bytes) {
  if (name == "auto") return std::nullopt;
  std::string known = "'auto'";
  for (int i = 0; i < static_cast<int>(ConvAlgo::kCount); ++i) {
    const ConvAlgo a = static_cast<ConvAlgo>(i);
    known += std::string(", '") + conv_algo_name(a) + "'";
    if (name != conv_algo_name(a)) continue;
    if (!conv_algo_applies(a, dir, d, elem_bytes))
      throw py::value_error(std::string(fn) + ": algorithm '" + name + "' does not apply to " +
                            conv_dir_name(dir) + " of x " + shape_str(d.N, d.C, d.H, d.W) +
                            ", w " + shape_str(d.K, d.Cg(), d.KH, d.KW) + ", stride (" +
                            std::to_string(d.SH) + ", " + std::to_string(d.SW) +
                            "), groups " + std::to_string(d.G) + " (" + std::string(
                            elem_bytes == 4 ? "float32" : "float64") + ")");
    return a;
  }
  throw py::value_error(std::string(fn) + ": unknown algorithm '" + name + "'; choose one of " +
                        known);
}

// ---------------------------------------------------------------- conv2d

template <typename T>
py::array forward_t(const py::array& x, const py::array& w, const std::optional<py::array>& b,
                    const ConvDims& d, std::optional<ConvAlgo> algo, bool relu) {
  auto y = empty<T>({d.N, d.K, d.OH, d.OW});
  T* yp = y.mutable_data();
  const T *xp = ptr<T>(x), *wp = ptr<T>(w), *bp = b ? ptr<T>(*b) : nullptr;
  {
    py::gil_scoped_release nogil;
    if (algo) conv2d_forward<T>(yp, xp, wp, bp, d, *algo, relu);
    else conv2d_forward<T>(yp, xp, wp, bp, d, relu);
  }
  return std::move(y);
}

py::array conv2d_forward_py(const py::array& x, const py::array& w,
                            const std::optional<py::array>& b, const I2& stride,
                            const I4& padding, const I2& dilation, int64_t groups,
                            const std::string& algo_name, const std::string& activation) {
  if (activation != "linear" && activation != "relu")
    throw py::value_error("conv2d_forward: activation must be 'linear' or 'relu', got '" +
                          activation + "'");
  const bool relu = activation == "relu";
  const bool f32 = check_input(x, "x", 4);
  check_input(w, "w", 4, &x, "x");
  if (b) check_input(*b, "b", 1, &x, "x");
  const ConvDims d = conv_dims("conv2d_forward", shape4(x), shape4(w), stride, padding, dilation,
                               groups, "x", "w");
  if (b) check_shape(*b, "b", {d.K});
  const auto algo = parse_algo("conv2d_forward", algo_name, ConvDir::forward, d, f32 ? 4 : 8);
  return f32 ? forward_t<float>(x, w, b, d, algo, relu)
             : forward_t<double>(x, w, b, d, algo, relu);
}

template <typename T>
py::array backward_data_t(const py::array& dy, const py::array& w, const ConvDims& d,
                          std::optional<ConvAlgo> algo) {
  auto dx = empty<T>({d.N, d.C, d.H, d.W});
  T* dxp = dx.mutable_data();
  const T *dyp = ptr<T>(dy), *wp = ptr<T>(w);
  {
    py::gil_scoped_release nogil;
    if (algo) conv2d_backward_data<T>(dxp, dyp, wp, d, *algo);
    else conv2d_backward_data<T>(dxp, dyp, wp, d);
  }
  return std::move(dx);
}

py::array conv2d_backward_data_py(const py::array& dy, const py::array& w, const I4& x_shape,
                                  const I2& stride, const I4& padding, const I2& dilation,
                                  int64_t groups, const std::string& algo_name) {
  const bool f32 = check_input(dy, "dy", 4);
  check_input(w, "w", 4, &dy, "dy");
  const ConvDims d = conv_dims("conv2d_backward_data", x_shape, shape4(w), stride, padding,
                               dilation, groups, "x_shape", "w");
  check_shape(dy, "dy", {d.N, d.K, d.OH, d.OW});
  const auto algo = parse_algo("conv2d_backward_data", algo_name, ConvDir::data, d, f32 ? 4 : 8);
  return f32 ? backward_data_t<float>(dy, w, d, algo)
             : backward_data_t<double>(dy, w, d, algo);
}

template <typename T>
py::tuple backward_weight_t(const py::array& dy, const py::array& x, const ConvDims& d,
                            bool bias, std::optional<ConvAlgo> algo) {
  auto dw = empty<T>({d.K, d.Cg(), d.KH, d.KW});
  T* dwp = dw.mutable_data();
  py::object db_obj = py::none();
  T* dbp = nullptr;
  if (bias) {
    auto db = empty<T>({d.K});
    dbp = db.mutable_data();
    db_obj = std::move(db);
  }
  const T *dyp = ptr<T>(dy), *xp = ptr<T>(x);
  {
    py::gil_scoped_release nogil;
    if (algo) conv2d_backward_weight<T>(dwp, dbp, dyp, xp, d, *algo);
    else conv2d_backward_weight<T>(dwp, dbp, dyp, xp, d);
  }
  return py::make_tuple(dw, db_obj);
}

py::tuple conv2d_backward_weight_py(const py::array& dy, const py::array& x, const I4& w_shape,
                                    const I2& stride, const I4& padding, const I2& dilation,
                                    int64_t groups, bool bias, const std::string& algo_name) {
  const bool f32 = check_input(dy, "dy", 4);
  check_input(x, "x", 4, &dy, "dy");
  const ConvDims d = conv_dims("conv2d_backward_weight", shape4(x), w_shape, stride, padding,
                               dilation, groups, "x", "w_shape");
  check_shape(dy, "dy", {d.N, d.K, d.OH, d.OW});
  const auto algo =
      parse_algo("conv2d_backward_weight", algo_name, ConvDir::weight, d, f32 ? 4 : 8);
  return f32 ? backward_weight_t<float>(dy, x, d, bias, algo)
             : backward_weight_t<double>(dy, x, d, bias, algo);
}

// dx, dw and db in one call (one GIL release): the data and the weight kernels in turn; a
// direction that is not needed (need_dx / need_dw false: a first layer's dx, a frozen layer's
// dw and db) is not computed and comes back as None.
template <typename T>
py::tuple backward_t(const py::array& dy, const py::array& x, const py::array& w,
                     const ConvDims& d, bool bias, bool need_dx, bool need_dw,
                     std::optional<ConvAlgo> data_algo, std::optional<ConvAlgo> weight_algo) {
  T *dxp = nullptr, *dwp = nullptr, *dbp = nullptr;
  py::object dx_obj = py::none(), dw_obj = py::none(), db_obj = py::none();
  if (need_dx) {
    auto dx = empty<T>({d.N, d.C, d.H, d.W});
    dxp = dx.mutable_data();
    dx_obj = std::move(dx);
  }
  if (need_dw) {
    auto dw = empty<T>({d.K, d.Cg(), d.KH, d.KW});
    dwp = dw.mutable_data();
    dw_obj = std::move(dw);
    if (bias) {
      auto db = empty<T>({d.K});
      dbp = db.mutable_data();
      db_obj = std::move(db);
    }
  }
  const T *dyp = ptr<T>(dy), *xp = ptr<T>(x), *wp = ptr<T>(w);
  {
    py::gil_scoped_release nogil;
    if (need_dx) {
      if (data_algo) conv2d_backward_data<T>(dxp, dyp, wp, d, *data_algo);
      else conv2d_backward_data<T>(dxp, dyp, wp, d);
    }
    if (need_dw) {
      if (weight_algo) conv2d_backward_weight<T>(dwp, dbp, dyp, xp, d, *weight_algo);
      else conv2d_backward_weight<T>(dwp, dbp, dyp, xp, d);
    }
  }
  return py::make_tuple(dx_obj, dw_obj, db_obj);
}

py::tuple conv2d_backward_py(const py::array& dy, const py::array& x, const py::array& w,
                             const I2& stride, const I4& padding, const I2& dilation,
                             int64_t groups, bool bias, const std::string& data_algo,
                             const std::string& weight_algo, bool need_dx, bool need_dw) {
  const bool f32 = check_input(dy, "dy", 4);
  check_input(x, "x", 4, &dy, "dy");
  check_input(w, "w", 4, &dy, "dy");
  const ConvDims d = conv_dims("conv2d_backward", shape4(x), shape4(w), stride, padding,
                               dilation, groups, "x", "w");
  check_shape(dy, "dy", {d.N, d.K, d.OH, d.OW});
  const int64_t eb = f32 ? 4 : 8;
  const auto da = parse_algo("conv2d_backward (data_algo)", data_algo, ConvDir::data, d, eb);
  const auto wa = parse_algo("conv2d_backward (weight_algo)", weight_algo, ConvDir::weight, d, eb);
  return f32 ? backward_t<float>(dy, x, w, d, bias, need_dx, need_dw, da, wa)
             : backward_t<double>(dy, x, w, d, bias, need_dx, need_dw, da, wa);
}

// ---------------------------------------------------------------- im2col / col2im

// Checks that cols (N, C*KH*KW, OH*OW) has a size (in bytes) that fits in int64.
void check_cols_size(const ConvDims& d) {
  product_checked({d.N, d.C, d.KH, d.KW, d.OH, d.OW, 8}, "cols (N, C*KH*KW, OH*OW) size in bytes");
}

template <typename T>
py::array im2col_t(const py::array& x, const ConvDims& d) {
  auto cols = empty<T>({d.N, d.C * d.KH * d.KW, d.OH * d.OW});  // size: check_cols_size
  T* cp = cols.mutable_data();
  const T* xp = ptr<T>(x);
  {
    py::gil_scoped_release nogil;
    im2col<T>(cp, xp, d);
  }
  return std::move(cols);
}

py::array im2col_py(const py::array& x, const I2& kernel_size, const I2& stride, const I4& padding,
                    const I2& dilation) {
  const bool f32 = check_input(x, "x", 4);
  const ConvDims d = unfold_dims("im2col", shape4(x), kernel_size, stride, padding, dilation, "x");
  check_cols_size(d);
  return f32 ? im2col_t<float>(x, d) : im2col_t<double>(x, d);
}

template <typename T>
py::array col2im_t(const py::array& cols, const ConvDims& d) {
  auto x = empty<T>({d.N, d.C, d.H, d.W});
  T* xp = x.mutable_data();
  const T* cp = ptr<T>(cols);
  {
    py::gil_scoped_release nogil;
    col2im<T>(xp, cp, d);
  }
  return std::move(x);
}

py::array col2im_py(const py::array& cols, const I4& input_shape, const I2& kernel_size,
                    const I2& stride, const I4& padding, const I2& dilation) {
  const bool f32 = check_input(cols, "cols", 3);
  const ConvDims d =
      unfold_dims("col2im", input_shape, kernel_size, stride, padding, dilation, "input_shape");
  check_cols_size(d);
  check_shape(cols, "cols", {d.N, d.C * d.KH * d.KW, d.OH * d.OW});
  return f32 ? col2im_t<float>(cols, d) : col2im_t<double>(cols, d);
}

// ---------------------------------------------------------------- diagnostics

int64_t dtype_bytes(const std::string& dtype) {
  if (dtype != "float32" && dtype != "float64")
    throw py::value_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
  return dtype == "float32" ? 4 : 8;
}

template <typename T>
ConvAlgo for_data(ConvAlgo a, ConvDir dir, const ConvDims& d, const py::array& in,
                  const std::optional<py::array>& w) {
  return conv_algo_for_data<T>(a, dir, d, ptr<T>(in), w ? ptr<T>(*w) : nullptr);
}

// The algorithm auto runs. Given the arrays the direction's data rule reads (forward: x and w;
// data: dy and w; weight: x and dy), also on that data (conv_algo_for_data: inf/NaN); without
// them, the choice for finite data.
std::string conv2d_algorithm_py(const I4& x_shape, const I4& w_shape, const I2& stride,
                                const I4& padding, const I2& dilation, int64_t groups,
                                const std::string& dtype, const std::string& direction,
                                const std::optional<py::array>& x,
                                const std::optional<py::array>& w,
                                const std::optional<py::array>& dy) {
  const int64_t eb = dtype_bytes(dtype);
  const ConvDir dir = parse_direction(direction);
  const ConvDims d = conv_dims("conv2d_algorithm", x_shape, w_shape, stride, padding, dilation,
                               groups, "x_shape", "w_shape");
  const ConvAlgo chosen = choose_conv_algo(d, eb, dir);
  if (!x && !w && !dy) return conv_algo_name(chosen);
  const bool data = dir == ConvDir::data, weight = dir == ConvDir::weight;
  const std::optional<py::array>& in = data ? dy : x;
  const std::optional<py::array>& other = weight ? dy : w;  // the second operand
  const char* in_name = data ? "dy" : "x";
  const char* other_name = weight ? "dy" : "w";
  if (!in || !other)
    throw py::value_error(std::string("conv2d_algorithm: the ") + conv_dir_name(dir) +
                          " direction's data rule reads " + in_name + " and " + other_name +
                          ": give them all or no array");
  const bool f32 = check_input(*in, in_name, 4);
  if (f32 != (eb == 4))
    throw py::type_error(std::string("conv2d_algorithm: ") + in_name + " has dtype " +
                         (f32 ? "float32" : "float64") + " but dtype is '" + dtype + "'");
  if (data) check_shape(*in, in_name, {d.N, d.K, d.OH, d.OW});
  else check_shape(*in, in_name, {d.N, d.C, d.H, d.W});
  check_input(*other, other_name, 4, &*in, in_name);
  if (weight) check_shape(*other, other_name, {d.N, d.K, d.OH, d.OW});
  else check_shape(*other, other_name, {d.K, d.Cg(), d.KH, d.KW});
  const ConvAlgo a = f32 ? for_data<float>(chosen, dir, d, *in, other)
                         : for_data<double>(chosen, dir, d, *in, other);
  return conv_algo_name(a);
}

std::vector<std::string> conv2d_algorithms_py(const I4& x_shape, const I4& w_shape,
                                              const I2& stride, const I4& padding,
                                              const I2& dilation, int64_t groups,
                                              const std::string& dtype,
                                              const std::string& direction) {
  const int64_t eb = dtype_bytes(dtype);
  const ConvDir dir = parse_direction(direction);
  const ConvDims d = conv_dims("conv2d_algorithms", x_shape, w_shape, stride, padding, dilation,
                               groups, "x_shape", "w_shape");
  std::vector<std::string> out;
  for (int i = 0; i < static_cast<int>(ConvAlgo::kCount); ++i)
    if (conv_algo_applies(static_cast<ConvAlgo>(i), dir, d, eb))
      out.emplace_back(conv_algo_name(static_cast<ConvAlgo>(i)));
  return out;
}

template <typename T>
py::array gemm_t(const py::array& a, const py::array& b, const std::optional<py::array>& c,
                 const std::optional<py::array>& bias, const GemmDims& g) {
  auto out = empty<T>({g.M, g.N});
  T* op = out.mutable_data();
  if (c) std::copy(ptr<T>(*c), ptr<T>(*c) + g.M * g.N, op);
  const T *ap = ptr<T>(a), *bp = ptr<T>(b), *biasp = bias ? ptr<T>(*bias) : nullptr;
  {
    py::gil_scoped_release nogil;
    gemm<T>(op, ap, bp, biasp, g, true);
  }
  return std::move(out);
}

py::array gemm_py(const py::array& a, const py::array& b, bool trans_a, bool trans_b,
                  const std::optional<py::array>& c, const std::optional<py::array>& row_bias) {
  const bool f32 = check_input(a, "a", 2);
  check_input(b, "b", 2, &a, "a");
  const int64_t M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
  const int64_t Kb = trans_b ? b.shape(1) : b.shape(0), N = trans_b ? b.shape(0) : b.shape(1);
  if (K != Kb)
    throw py::value_error("gemm: op(a) is (" + std::to_string(M) + ", " + std::to_string(K) +
                          ") but op(b) is (" + std::to_string(Kb) + ", " + std::to_string(N) +
                          "): a " + shape_of(a) + ", b " + shape_of(b));
  if (c) {
    check_input(*c, "c", 2, &a, "a");
    check_shape(*c, "c", {M, N});
  }
  if (row_bias) {
    if (c) throw py::value_error("gemm: row_bias applies only without c");
    check_input(*row_bias, "row_bias", 1, &a, "a");
    check_shape(*row_bias, "row_bias", {M});
  }
  const GemmDims g{M, N, K, a.shape(1), b.shape(1), N, trans_a, trans_b, c.has_value()};
  return f32 ? gemm_t<float>(a, b, c, row_bias, g) : gemm_t<double>(a, b, c, row_bias, g);
}

}  // namespace

void bind_conv(py::module_& m) {
  using py::arg;
  const char* fwd_doc =
      "y (N, K, OH, OW) = conv2d(x (N, C, H, W), w (K, C/groups, KH, KW), b (K,) or None); "
      "stride (SH, SW), padding (top, bottom, left, right), dilation (DH, DW).";
  const char* algo_doc =
      " algo: 'auto' (the heuristic) or one of conv2d_algorithms(..., direction) for this problem.";
  m.def("conv2d_forward", &conv2d_forward_py, arg("x"), arg("w"), arg("b").none(true),
        arg("stride"), arg("padding"), arg("dilation"), arg("groups"), py::kw_only(),
        arg("algo") = "auto", arg("activation") = "linear",
        (std::string(fwd_doc) + algo_doc +
         " activation: 'linear' or 'relu' (y = max(conv + b, 0), written once).").c_str());

  const char* data_doc = "dx (x_shape) of conv2d given dy (N, K, OH, OW) and w.";
  m.def("conv2d_backward_data", &conv2d_backward_data_py, arg("dy"), arg("w"),
        arg("x_shape"), arg("stride"), arg("padding"), arg("dilation"), arg("groups"),
        py::kw_only(), arg("algo") = "auto", (std::string(data_doc) + algo_doc).c_str());

  const char* weight_doc =
      "(dw (w_shape), db (K,) or None when bias is False) of conv2d given dy and x.";
  m.def("conv2d_backward_weight", &conv2d_backward_weight_py, arg("dy"), arg("x"),
        arg("w_shape"), arg("stride"), arg("padding"), arg("dilation"), arg("groups"),
        arg("bias"), py::kw_only(), arg("algo") = "auto",
        (std::string(weight_doc) + algo_doc).c_str());
  m.def("conv2d_backward", &conv2d_backward_py, arg("dy"), arg("x"), arg("w"), arg("stride"),
        arg("padding"), arg("dilation"), arg("groups"), arg("bias"), py::kw_only(),
        arg("data_algo") = "auto", arg("weight_algo") = "auto", arg("need_dx") = true,
        arg("need_dw") = true,
        "(dx (x.shape), dw (w.shape), db (K,) or None) of conv2d given dy, in one call; "
        "data_algo / weight_algo: 'auto' or an algorithm applying to that direction; "
        "need_dx / need_dw false: that gradient (dw and db together) is not computed: None.");

  m.def("im2col", &im2col_py, arg("x"), arg("kernel_size"), arg("stride"), arg("padding"),
        arg("dilation"), "cols (N, C*KH*KW, OH*OW) of x (N, C, H, W); padding reads as 0.");
  m.def("col2im", &col2im_py, arg("cols"), arg("input_shape"), arg("kernel_size"), arg("stride"),
        arg("padding"), arg("dilation"),
        "Adjoint of im2col: folds cols back to input_shape, summing overlapping entries.");

  m.def("conv2d_algorithm", &conv2d_algorithm_py, arg("x_shape"), arg("w_shape"), arg("stride"),
        arg("padding"), arg("dilation"), arg("groups"), arg("dtype") = "float32",
        arg("direction") = "forward", py::kw_only(), arg("x") = py::none(), arg("w") = py::none(),
        arg("dy") = py::none(),
        "Name of the algorithm algo='auto' runs for this problem and direction ('forward' | "
        "'data' | 'weight'). With the arrays the direction reads (forward: x, w; data: dy, w; "
        "weight: x), on that data (an inf/NaN can move Winograd and direct_small to the exact "
        "im2col path); without them, for finite data.");
  m.def("set_conv_exact", &set_conv_exact, arg("enabled"),
        "Exact mode: the heuristic never picks Winograd (float32 keeps the GEMM paths' error).");
  m.def("conv_exact", &conv_exact, "Whether exact mode (set_conv_exact) is on.");
  m.def("conv2d_algorithms", &conv2d_algorithms_py, arg("x_shape"), arg("w_shape"),
        arg("stride"), arg("padding"), arg("dilation"), arg("groups"), arg("dtype"),
        arg("direction"),
        "Names of every algorithm that applies to this problem in this direction "
        "('forward' | 'data' | 'weight'), in ConvAlgo order; each is a valid algo= value.");
  m.def("gemm", &gemm_py, arg("a"), arg("b"), arg("trans_a") = false, arg("trans_b") = false,
        arg("c") = py::none(), arg("row_bias") = py::none(),
        "op(a) @ op(b) (+ c) (+ row_bias[:, None]) with the library's blocked GEMM (tests).");
}

}  // namespace convforge::bind
