// Python bindings of the losses (csrc/loss):
//
//   softmax_cross_entropy(logits, labels, label_smoothing, reduction) -> (loss, dlogits)
//       logits (N, K) float32/float64, C-contiguous; labels int64 class ids (N,) (each checked
//       to lie in [0, K): the kernel reads logits[n, labels[n]]) or soft labels (N, K) of
//       logits' dtype; label_smoothing in [0, 1); reduction 'mean' | 'sum' | 'none'.
//       loss: 0-d of logits' dtype ('mean', 'sum') or (N,) ('none'); dlogits (N, K).
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"
#include "convforge/loss.hpp"

namespace convforge::bind {
namespace {

Reduction parse_reduction(const std::string& r) {
  if (r == "mean") return Reduction::mean;
  if (r == "sum") return Reduction::sum;
  if (r == "none") return Reduction::none;
  throw py::value_error("reduction must be 'mean', 'sum' or 'none', got '" + r + "'");
}

// Class ids (N,) int64, each in [0, K): one pass over the N ids (the kernel reads the logit at
// each id, so this check is what keeps a bad id from reading outside the row).
const int64_t* checked_labels(const py::array& labels, int64_t N, int64_t K) {
  check_index_array(labels, "labels", {N});
  const int64_t* lp = ptr<int64_t>(labels);
  if (N == 0) return lp;
  int64_t lo = lp[0], hi = lp[0];
  for (int64_t n = 1; n < N; ++n) {
    lo = lp[n] < lo ? lp[n] : lo;
    hi = lp[n] > hi ? lp[n] : hi;
  }
  if (lo < 0 || hi >= K)
    throw py::value_error("labels must hold class ids in [0, K) = [0, " + std::to_string(K) +
                          "), got values in [" + std::to_string(lo) + ", " +
                          std::to_string(hi) + "]");
  return lp;
}

py::tuple softmax_cross_entropy_py(const py::array& logits, const py::array& labels,
                                   double label_smoothing, const std::string& reduction) {
  const bool f32 = check_float_array(logits, "logits", 2);
  const XentDims d{logits.shape(0), logits.shape(1)};
  if (d.K < 1)
    throw py::value_error("logits must have at least one class, got shape " + shape_of(logits));
  const Reduction r = parse_reduction(reduction);
  if (!(label_smoothing >= 0.0 && label_smoothing < 1.0))
    throw py::value_error("label_smoothing must be in [0, 1), got " +
                          std::to_string(label_smoothing));
  const bool hard = labels.dtype().kind() == 'i' || labels.dtype().kind() == 'u';
  const int64_t* lp = nullptr;
  if (hard) {
    lp = checked_labels(labels, d.N, d.K);
  } else {
    check_float_array(labels, "labels", 2);
    check_same_dtype(labels, "labels", logits, "logits");
    check_shape(labels, "labels", {d.N, d.K});
  }
  auto run = [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    std::vector<py::ssize_t> loss_shape;
    if (r == Reduction::none) loss_shape.push_back(d.N);
    py::array_t<T> loss(loss_shape);
    auto dlogits = empty<T>({d.N, d.K});
    T *lossp = loss.mutable_data(), *gp = dlogits.mutable_data();
    const T* zp = ptr<T>(logits);
    const T* tp = hard ? nullptr : ptr<T>(labels);
    {
      py::gil_scoped_release nogil;
      softmax_xent(lossp, gp, zp, lp, tp, label_smoothing, r, d);
    }
    return py::make_tuple(std::move(loss), std::move(dlogits));
  };
  return f32 ? run(float()) : run(double());
}

}  // namespace

void bind_loss(py::module_& m) {
  m.def("softmax_cross_entropy", &softmax_cross_entropy_py, py::arg("logits"), py::arg("labels"),
        py::arg("label_smoothing"), py::arg("reduction"),
        "(loss, dlogits) of the softmax cross-entropy from logits (see loss.hpp).");
}

}  // namespace convforge::bind
