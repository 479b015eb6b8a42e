// Python bindings of the pooling family (csrc/pool/pool2d.cpp): validate, allocate, release the
// GIL, dispatch float/double. Called by python/convforge/backends/cpu.py with normalised arguments;
// every check is repeated here because a bad index or window would otherwise read or write out
// of bounds.
#include <algorithm>
#include <optional>
#include <string>

#include "common.hpp"
#include "convforge/checked.hpp"
#include "convforge/pool2d.hpp"

namespace convforge::bind {
namespace {

enum class Mode { max, min, avg };

Mode parse_mode(const std::string& mode, bool global) {
  if (mode == "max") return Mode::max;
  if (mode == "avg") return Mode::avg;
  if (mode == "min" && !global) return Mode::min;
  throw py::value_error(std::string("mode must be ") +
                        (global ? "'avg' or 'max'" : "'max', 'min' or 'avg'") + ", got '" +
                        mode + "'");
}

// algo= of pool2d_forward / pool2d_backward: true for "naive" (the plain loops).
bool parse_pool_algo(const std::string& algo) {
  if (algo == "auto") return false;
  if (algo == "naive") return true;
  throw py::value_error("algo must be 'auto' or 'naive', got '" + algo + "'");
}

std::string pair_str(const I2& v) {
  return "(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ")";
}

// input_shape (N, C, H, W): N, C >= 0 and H, W >= 1.
void check_input_shape(const I4& s, const char* name) {
  if (s[0] < 0 || s[1] < 0 || s[2] < 1 || s[3] < 1)
    throw py::value_error(std::string(name) + " must be (N, C, H, W) with N, C >= 0 and H, W >= 1, "
                          "got " + shape_str(s[0], s[1], s[2], s[3]));
}

// Builds the dims of a windowed pooling and checks that every window is valid and non-empty.
PoolDims make_pool_dims(const I4& in, const I2& ks, const I2& st, const I2& pad, const I2& out) {
  const std::string where = " (input " + shape_str(in[0], in[1], in[2], in[3]) + ", kernel_size " +
                            pair_str(ks) + ", stride " + pair_str(st) + ", padding " +
                            pair_str(pad) + ", out_size " + pair_str(out) + ")";
  if (ks[0] < 1 || ks[1] < 1) throw py::value_error("kernel_size must be >= 1" + where);
  if (st[0] < 1 || st[1] < 1) throw py::value_error("stride must be >= 1" + where);
  if (pad[0] < 0 || pad[1] < 0 || pad[0] > ks[0] / 2 || pad[1] > ks[1] / 2)
    throw py::value_error("padding must lie in [0, kernel_size // 2]" + where);
  if (out[0] < 1 || out[1] < 1) throw py::value_error("out_size must be >= 1" + where);
  // The last window must start inside the input: (OH-1)*SH - PH < H, written without overflow.
  // The first one always reaches it since PH <= KH/2 < KH.
  if (out[0] - 1 > (in[2] + pad[0] - 1) / st[0] || out[1] - 1 > (in[3] + pad[1] - 1) / st[1])
    throw py::value_error("out_size too large: the last window holds no input element" + where);
  try {  // sizes of x and y (and the index planes) in bytes fit in int64
    product_checked({in[0], in[1], in[2], in[3], 8}, "input size in bytes");
    product_checked({in[0], in[1], out[0], out[1], 8}, "output size in bytes");
  } catch (const SizeOverflow& e) {
    throw py::value_error(e.what() + where);
  }
  return PoolDims{in[0], in[1], in[2], in[3], ks[0], ks[1], st[0], st[1],
                  pad[0], pad[1], out[0], out[1]};
}

// Global pooling is one window covering the plane.
PoolDims global_dims(int64_t N, int64_t C, int64_t H, int64_t W) {
  return PoolDims{N, C, H, W, H, W, 1, 1, 0, 0, 1, 1};
}

// indices: int64, C-contiguous, the given shape (values not checked here).
py::array index_array(const py::object& indices, std::initializer_list<int64_t> want,
                      const std::string& mode) {
  if (indices.is_none())
    throw py::value_error("indices are required for mode '" + mode + "'");
  if (!py::isinstance<py::array>(indices))
    throw py::type_error("indices must be a numpy.ndarray of int64, got " +
                         std::string(py::str(py::type::of(indices).attr("__name__"))));
  const py::array ia = indices.cast<py::array>();
  check_index_array(ia, "indices", want);
  return ia;
}

// Throws ValueError naming the first value of ia outside [0, limit), if there is one.
void check_index_range(const py::array& ia, int64_t limit) {
  const int64_t* ip = ptr<int64_t>(ia);
  const int64_t count = static_cast<int64_t>(ia.size());
  int64_t bad;
  {
    py::gil_scoped_release nogil;
    bad = pool2d_first_bad_index(ip, count, limit);
  }
  if (bad >= 0)
    throw py::value_error("indices must lie in [0, H*W) = [0, " + std::to_string(limit) +
                          "), got " + std::to_string(ip[bad]) + " at flat position " +
                          std::to_string(bad) + " of indices with shape " + shape_of(ia));
}

// indices: int64, C-contiguous, the given shape, every value in [0, limit).
const int64_t* checked_indices(const py::object& indices, std::initializer_list<int64_t> want,
                               int64_t limit, const std::string& mode) {
  const py::array ia = index_array(indices, want, mode);
  check_index_range(ia, limit);
  return ptr<int64_t>(ia);
}

template <typename T>
py::tuple pool_forward(const py::array& x, Mode mode, bool cip, const PoolDims& d, bool naive) {
  py::array_t<T> y = empty<T>({d.N, d.C, d.OH, d.OW});
  py::array_t<int64_t> ind;
  if (mode != Mode::avg) ind = empty<int64_t>({d.N, d.C, d.OH, d.OW});
  T* yp = y.mutable_data();
  int64_t* ip = mode != Mode::avg ? ind.mutable_data() : nullptr;
  const T* xp = ptr<T>(x);
  {
    py::gil_scoped_release nogil;
    if (d.N * d.C > 0) {
      switch (mode) {
        case Mode::max:
          naive ? pool2d_max_forward_naive(yp, ip, xp, d) : pool2d_max_forward(yp, ip, xp, d);
          break;
        case Mode::min:
          naive ? pool2d_min_forward_naive(yp, ip, xp, d) : pool2d_min_forward(yp, ip, xp, d);
          break;
        case Mode::avg:
          naive ? pool2d_avg_forward_naive(yp, xp, cip, d) : pool2d_avg_forward(yp, xp, cip, d);
          break;
      }
    }
  }
  if (mode == Mode::avg) return py::make_tuple(y, py::none());
  return py::make_tuple(y, ind);
}

py::tuple pool2d_forward(const py::array& x, const std::string& mode, const I2& kernel_size,
                         const I2& stride, const I2& padding, const I2& out_size,
                         bool count_include_pad, bool naive) {
  const bool f32 = check_float_array(x, "x", 4);
  const Mode m = parse_mode(mode, false);
  const I4 in{x.shape(0), x.shape(1), x.shape(2), x.shape(3)};
  if (in[2] < 1 || in[3] < 1)
    throw py::value_error("x must have H, W >= 1, got shape " + shape_of(x));
  const PoolDims d = make_pool_dims(in, kernel_size, stride, padding, out_size);
  return f32 ? pool_forward<float>(x, m, count_include_pad, d, naive)
             : pool_forward<double>(x, m, count_include_pad, d, naive);
}

// ia: the indices ('max'/'min'; range-checked by the kernel itself, which never writes through
// an index outside the plane and reports one: then the error is raised here).
template <typename T>
py::array pool_backward(const py::array& dy, const py::array& ia, Mode mode, bool cip,
                        const PoolDims& d, bool naive, const std::optional<py::array>& relu_y) {
  py::array_t<T> dx = empty<T>({d.N, d.C, d.H, d.W});
  T* dxp = dx.mutable_data();
  const T* dyp = ptr<T>(dy);
  const T* yp = relu_y ? ptr<T>(*relu_y) : nullptr;
  bool ok = true;
  {
    py::gil_scoped_release nogil;
    if (d.N * d.C > 0) {
      if (mode != Mode::avg)
        ok = naive ? pool2d_index_backward_naive(dxp, dyp, ptr<int64_t>(ia), d, yp)
                   : pool2d_index_backward(dxp, dyp, ptr<int64_t>(ia), d, yp);
      else if (naive) pool2d_avg_backward_naive(dxp, dyp, cip, d);
      else pool2d_avg_backward(dxp, dyp, cip, d);
    }
  }
  if (!ok) check_index_range(ia, d.H * d.W);  // throws
  return dx;
}

py::array pool2d_backward(const py::array& dy, const py::object& indices, const I4& input_shape,
                          const std::string& mode, const I2& kernel_size, const I2& stride,
                          const I2& padding, bool count_include_pad, bool naive,
                          const std::optional<py::array>& relu_y) {
  const bool f32 = check_float_array(dy, "dy", 4);
  const Mode m = parse_mode(mode, false);
  if (relu_y) {
    if (m != Mode::max)
      throw py::value_error("pool2d_backward: relu_y applies to mode 'max' only, got '" + mode +
                            "'");
    check_float_array(*relu_y, "relu_y", 4);
    check_same_dtype(*relu_y, "relu_y", dy, "dy");
    if (!std::equal(dy.shape(), dy.shape() + 4, relu_y->shape()))
      throw py::value_error("relu_y must have the shape of dy " + shape_of(dy) + ", got " +
                            shape_of(*relu_y));
  }
  check_input_shape(input_shape, "input_shape");
  const int64_t N = input_shape[0], C = input_shape[1];
  if (dy.shape(0) != N || dy.shape(1) != C)
    throw py::value_error("dy must have shape (N, C, OH, OW) with (N, C) = (" +
                          std::to_string(N) + ", " + std::to_string(C) + ") from input_shape " +
                          shape_str(N, C, input_shape[2], input_shape[3]) + ", got " +
                          shape_of(dy));
  const PoolDims d = make_pool_dims(input_shape, kernel_size, stride, padding,
                                    I2{dy.shape(2), dy.shape(3)});
  py::array ia;  // indices are not used by 'avg'
  if (m != Mode::avg) ia = index_array(indices, {N, C, d.OH, d.OW}, mode);
  return f32 ? pool_backward<float>(dy, ia, m, count_include_pad, d, naive, relu_y)
             : pool_backward<double>(dy, ia, m, count_include_pad, d, naive, relu_y);
}

template <typename T>
py::tuple global_forward(const py::array& x, Mode mode, const PoolDims& d) {
  py::array_t<T> y = empty<T>({d.N, d.C});
  py::array_t<int64_t> ind;
  if (mode == Mode::max) ind = empty<int64_t>({d.N, d.C});
  T* yp = y.mutable_data();
  int64_t* ip = mode == Mode::max ? ind.mutable_data() : nullptr;
  const T* xp = ptr<T>(x);
  {
    py::gil_scoped_release nogil;
    if (d.N * d.C > 0) {
      if (mode == Mode::max) global_pool2d_max_forward(yp, ip, xp, d);
      else global_pool2d_avg_forward(yp, xp, d);
    }
  }
  if (mode == Mode::avg) return py::make_tuple(y, py::none());
  return py::make_tuple(y, ind);
}

template <typename T>
py::array global_backward(const py::array& dy, const int64_t* ip, Mode mode, const PoolDims& d) {
  py::array_t<T> dx = empty<T>({d.N, d.C, d.H, d.W});
  T* dxp = dx.mutable_data();
  const T* dyp = ptr<T>(dy);
  {
    py::gil_scoped_release nogil;
    if (d.N * d.C > 0) {
      if (mode == Mode::max) pool2d_index_backward(dxp, dyp, ip, d);  // OH = OW = 1
      else global_pool2d_avg_backward(dxp, dyp, d);
    }
  }
  return dx;
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def(
      "pool2d_forward",
      [](const py::array& x, const std::string& mode, const I2& kernel_size, const I2& stride,
         const I2& padding, const I2& out_size, bool count_include_pad, const std::string& algo) {
        return pool2d_forward(x, mode, kernel_size, stride, padding, out_size,
                              count_include_pad, parse_pool_algo(algo));
      },
      py::arg("x"), py::arg("mode"), py::arg("kernel_size"), py::arg("stride"),
      py::arg("padding"), py::arg("out_size"), py::arg("count_include_pad"), py::kw_only(),
      py::arg("algo") = "auto",
      "x (N, C, H, W), mode 'max'|'min'|'avg' -> (y (N, C, OH, OW), indices int64 "
      "(N, C, OH, OW) = ih*W + iw, or None for 'avg'). algo: 'auto' (the vectorised kernels) or "
      "'naive' (plain loops; bit-identical).");
  m.def(
      "pool2d_backward",
      [](const py::array& dy, const py::object& indices, const I4& input_shape,
         const std::string& mode, const I2& kernel_size, const I2& stride, const I2& padding,
         bool count_include_pad, const std::string& algo,
         const std::optional<py::array>& relu_y) {
        return pool2d_backward(dy, indices, input_shape, mode, kernel_size, stride, padding,
                               count_include_pad, parse_pool_algo(algo), relu_y);
      },
      py::arg("dy"), py::arg("indices"), py::arg("input_shape"), py::arg("mode"),
      py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
      py::arg("count_include_pad"), py::kw_only(), py::arg("algo") = "auto",
      py::arg("relu_y") = py::none(),
      "dy (N, C, OH, OW), indices (N, C, OH, OW) int64 for 'max'/'min' (ignored for 'avg') "
      "-> dx (N, C, H, W). algo: 'auto' or 'naive', as pool2d_forward. relu_y ('max' only): "
      "the forward's y over x = relu(z): dy passes only where y > 0, so dx is the gradient "
      "w.r.t. z (the ReLU's backward fused into the scatter).");
  m.def(
      "global_pool2d_forward",
      [](const py::array& x, const std::string& mode) {
        const bool f32 = check_float_array(x, "x", 4);
        const Mode md = parse_mode(mode, true);
        if (x.shape(2) < 1 || x.shape(3) < 1)
          throw py::value_error("x must have H, W >= 1, got shape " + shape_of(x));
        const PoolDims d = global_dims(x.shape(0), x.shape(1), x.shape(2), x.shape(3));
        return f32 ? global_forward<float>(x, md, d) : global_forward<double>(x, md, d);
      },
      py::arg("x"), py::arg("mode"),
      "x (N, C, H, W), mode 'avg'|'max' -> (y (N, C), indices (N, C) int64 = h*W + w, or None "
      "for 'avg').");
  m.def(
      "global_pool2d_backward",
      [](const py::array& dy, const py::object& indices, const I4& input_shape,
         const std::string& mode) {
        const bool f32 = check_float_array(dy, "dy", 2);
        const Mode md = parse_mode(mode, true);
        check_input_shape(input_shape, "input_shape");
        const int64_t N = input_shape[0], C = input_shape[1];
        check_shape(dy, "dy", {N, C});
        const PoolDims d = global_dims(N, C, input_shape[2], input_shape[3]);
        const int64_t* ip = nullptr;  // indices are not used by 'avg'
        if (md == Mode::max) ip = checked_indices(indices, {N, C}, d.H * d.W, mode);
        return f32 ? global_backward<float>(dy, ip, md, d) : global_backward<double>(dy, ip, md, d);
      },
      py::arg("dy"), py::arg("indices"), py::arg("input_shape"), py::arg("mode"),
      "dy (N, C), indices (N, C) int64 for 'max' (ignored for 'avg') -> dx (N, C, H, W).");
}

}  // namespace convforge::bind
