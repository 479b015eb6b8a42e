// Python bindings of batch normalisation (kernels: csrc/norm/batch_norm.cpp, norm.hpp):
//
//   batch_norm_stats(x) -> (mean, var)                    float64 (C,) each
//   batch_norm_forward(x, mean, inv_std, gamma|None, beta|None, relu) -> y
//   batch_norm_backward(dy, x, mean, inv_std, gamma|None, beta|None, relu, batch_stats,
//                       need_dx=True, need_params=True) -> (dx|None, dgamma|None, dbeta|None)
//
// x, y, dy, dx: (N, C, HW) float32/float64, C-contiguous (convforge.functional passes (N, C,
// H, W) and (N, C) inputs as this view); mean, inv_std: float64 (C,); gamma, beta: x's dtype
// (C,); dgamma, dbeta: float64 (C,). Checks what memory safety needs; releases the GIL.
#include <optional>
#include <string>

#include "common.hpp"
#include "convforge/norm.hpp"

namespace convforge::bind {
namespace {

// x (N, C, HW) with N * HW >= 1 for statistics; returns the dims.
NormDims norm_dims(const py::array& x, const char* name, bool need_values) {
  check_float_array(x, name, 3);
  const NormDims d{x.shape(0), x.shape(1), x.shape(2)};
  if (need_values && d.N * d.HW < 1)
    throw py::value_error(std::string(name) + " has no values per channel: shape " + shape_of(x));
  return d;
}

void check_channel_vector(const py::array& v, const char* name, int64_t C, bool f64,
                          const py::array* like = nullptr) {
  check_float_array(v, name, 1);
  check_shape(v, name, {C});
  if (like) {
    check_same_dtype(v, name, *like, "x");
  } else if (f64 != v.dtype().is(py::dtype::of<double>())) {
    throw py::type_error(std::string(name) + " must be float64, got " +
                         std::string(py::str(v.dtype())));
  }
}

template <typename T>
const T* opt_ptr(const std::optional<py::array>& a) {
  return a ? ptr<T>(*a) : nullptr;
}

py::tuple stats_py(const py::array& x) {
  const NormDims d = norm_dims(x, "x", true);
  auto mean = empty<double>({d.C}), var = empty<double>({d.C});
  double *mp = mean.mutable_data(), *vp = var.mutable_data();
  const bool f32 = x.dtype().is(py::dtype::of<float>());
  {
    py::gil_scoped_release nogil;
    if (f32) batch_norm_stats(mp, vp, ptr<float>(x), d);
    else batch_norm_stats(mp, vp, ptr<double>(x), d);
  }
  return py::make_tuple(mean, var);
}

// The (C,) inputs shared by forward and backward.
void check_params(const NormDims& d, const py::array& x, const py::array& mean,
                  const py::array& inv_std, const std::optional<py::array>& gamma,
                  const std::optional<py::array>& beta) {
  check_channel_vector(mean, "mean", d.C, true);
  check_channel_vector(inv_std, "inv_std", d.C, true);
  if (gamma) check_channel_vector(*gamma, "gamma", d.C, false, &x);
  if (beta) check_channel_vector(*beta, "beta", d.C, false, &x);
}

template <typename T>
py::array forward_t(const py::array& x, const py::array& mean, const py::array& inv_std,
                    const std::optional<py::array>& gamma, const std::optional<py::array>& beta,
                    bool relu, const NormDims& d) {
  auto y = empty<T>({d.N, d.C, d.HW});
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    batch_norm_forward(yp, ptr<T>(x), ptr<double>(mean), ptr<double>(inv_std),
                       opt_ptr<T>(gamma), opt_ptr<T>(beta), relu, d);
  }
  return std::move(y);
}

py::array forward_py(const py::array& x, const py::array& mean, const py::array& inv_std,
                     const std::optional<py::array>& gamma, const std::optional<py::array>& beta,
                     bool relu) {
  const NormDims d = norm_dims(x, "x", false);
  check_params(d, x, mean, inv_std, gamma, beta);
  return x.dtype().is(py::dtype::of<float>())
             ? forward_t<float>(x, mean, inv_std, gamma, beta, relu, d)
             : forward_t<double>(x, mean, inv_std, gamma, beta, relu, d);
}

template <typename T>
py::tuple backward_t(const py::array& dy, const py::array& x, const py::array& mean,
                     const py::array& inv_std, const std::optional<py::array>& gamma,
                     const std::optional<py::array>& beta, bool relu, bool batch_stats,
                     bool need_dx, bool need_params, const NormDims& d) {
  py::object dx_obj = py::none(), dg_obj = py::none(), db_obj = py::none();
  T* dxp = nullptr;
  double *dgp = nullptr, *dbp = nullptr;
  if (need_dx) {
    auto dx = empty<T>({d.N, d.C, d.HW});
    dxp = dx.mutable_data();
    dx_obj = std::move(dx);
  }
  if (need_params) {
    auto dg = empty<double>({d.C}), db = empty<double>({d.C});
    dgp = dg.mutable_data();
    dbp = db.mutable_data();
    dg_obj = std::move(dg);
    db_obj = std::move(db);
  }
  {
    py::gil_scoped_release nogil;
    batch_norm_backward(dxp, dgp, dbp, ptr<T>(dy), ptr<T>(x), ptr<double>(mean),
                        ptr<double>(inv_std), opt_ptr<T>(gamma), opt_ptr<T>(beta), relu,
                        batch_stats, d);
  }
  return py::make_tuple(dx_obj, dg_obj, db_obj);
}

py::tuple backward_py(const py::array& dy, const py::array& x, const py::array& mean,
                      const py::array& inv_std, const std::optional<py::array>& gamma,
                      const std::optional<py::array>& beta, bool relu, bool batch_stats,
                      bool need_dx, bool need_params) {
  const NormDims d = norm_dims(x, "x", batch_stats);
  check_float_array(dy, "dy", 3);
  check_same_dtype(dy, "dy", x, "x");
  check_shape(dy, "dy", {d.N, d.C, d.HW});
  check_params(d, x, mean, inv_std, gamma, beta);
  const auto run = x.dtype().is(py::dtype::of<float>()) ? &backward_t<float> : &backward_t<double>;
  return run(dy, x, mean, inv_std, gamma, beta, relu, batch_stats, need_dx, need_params, d);
}

}  // namespace

void bind_norm(py::module_& m) {
  using py::arg;
  m.def("batch_norm_stats", &stats_py, arg("x"),
        "x (N, C, HW) -> (mean, var) float64 (C,): per-channel mean and biased variance "
        "(shifted sums in double).");
  m.def("batch_norm_forward", &forward_py, arg("x"), arg("mean"), arg("inv_std"),
        arg("gamma").none(true), arg("beta").none(true), arg("relu"),
        "y (N, C, HW) = act((x - mean) * gamma * inv_std + beta); act = ReLU when relu.");
  m.def("batch_norm_backward", &backward_py, arg("dy"), arg("x"), arg("mean"), arg("inv_std"),
        arg("gamma").none(true), arg("beta").none(true), arg("relu"), arg("batch_stats"),
        arg("need_dx") = true, arg("need_params") = true,
        "(dx (N, C, HW) or None, dgamma, dbeta float64 (C,) or None) of batch_norm_forward; "
        "batch_stats: mean/var were the batch's (dx also flows through them).");
}

}  // namespace convforge::bind
