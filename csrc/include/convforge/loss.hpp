// Losses (csrc/loss): softmax cross-entropy from logits, loss and gradient in one pass per row
// (softmax_xent.cpp).
// Layout: logits, dlogits, target (N, K) C-contiguous, K classes; labels int64 (N,).
#pragma once
#include <cstdint>

namespace convforge {

struct XentDims {
  int64_t N, K;  // rows (samples) and classes; N >= 0, K >= 1
};

// How the per-row losses l_n become the loss output: none: loss (N,) = l_n; mean: loss (1,) =
// (sum_n l_n) / N (NaN for N = 0) and dlogits scaled by 1/N; sum: loss (1,) = sum_n l_n. Sums
// run in double, serially in row order, so they do not depend on the thread count.
enum class Reduction { none, mean, sum };

// Softmax cross-entropy from logits z (PyTorch's cross_entropy with label_smoothing ls):
//   target t: hard labels t_k = (1 - ls) [k == labels[n]] + ls / K; soft labels (labels null,
//     target given) t_k = (1 - ls) target[n, k] + ls / K.
//   m = max_k z_k, s_k = z_k - m, S = sum_k exp(s_k) (double), p_k = exp(s_k) / S;
//   l_n = sum_k t_k (log S - s_k), terms with t_k = 0 skipped (0 log 0 = 0: a -inf logit of a
//     class with no target mass gives a finite loss);
//   dlogits[n, k] = (p_k * sum_k t_k - t_k) * scale, scale 1/N for mean, else 1.
// Every labels[n] must lie in [0, K) (the caller checks; see bindings/loss.cpp). NaN in a row
// makes that row's loss and gradient NaN. Outputs are overwritten. Parallel over rows (static
// schedule); each row is computed by one thread in a fixed order, so results do not depend on
// the thread count.
template <typename T>
void softmax_xent(T* loss, T* dlogits, const T* logits, const int64_t* labels, const T* target,
                  double label_smoothing, Reduction reduction, const XentDims& d);

}  // namespace convforge
