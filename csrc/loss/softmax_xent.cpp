// Softmax cross-entropy from logits, loss and dlogits together (contract in convforge/loss.hpp).
// Layouts: logits, dlogits, target (N, K) C-contiguous; labels int64 (N,).
// Per row, two passes over its K logits: the max, then exp(z - max) written into the dlogits
// row while S = sum exp is accumulated in double; the loss follows from log S, and a third pass
// over the (cache-resident) dlogits row turns exp values into (p * sum t - t) * scale.
// Parallel over rows (static schedule); each row's loss is stored in double and the reduction
// adds them serially in row order afterwards: results do not depend on the thread count.
// Outputs are overwritten.
#include <cmath>
#include <limits>
#include <vector>

#include "convforge/cpu.hpp"
#include "convforge/loss.hpp"

namespace convforge {
namespace {

// Below this many logits the rows run on the calling thread (a parallel region costs more).
constexpr int64_t kParallelMin = 1 << 14;

// One row: writes g (K,) and returns the row's loss l_n. z: logits[n] (K,); g: dlogits[n] (K,);
// label: the class id (hard labels) when tgt is null, else tgt: target[n] (K,).
template <typename T>
double xent_row(T* __restrict g, const T* __restrict z, int64_t label,
                const T* __restrict tgt, double ls, double scale, int64_t K) {
  T m = z[0];
  for (int64_t k = 1; k < K; ++k) m = z[k] > m ? z[k] : m;  // a NaN reaches S below
  double S = 0;
  for (int64_t k = 0; k < K; ++k) {
    const T e = std::exp(z[k] - m);
    g[k] = e;
    S += e;
  }
  const double logS = std::log(S), invS = 1.0 / S;
  const double off = ls / static_cast<double>(K);  // target mass of every class
  if (tgt == nullptr) {
    // t_k = off + on [k == label]: l = on (log S - s_y) + off sum_k (log S - s_k)
    const double on = 1.0 - ls;
    double l = on * (logS - static_cast<double>(z[label] - m));
    if (ls > 0) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += logS - static_cast<double>(z[k] - m);
      l += off * acc;
    }
    const double e_label = g[label];
    for (int64_t k = 0; k < K; ++k) g[k] = static_cast<T>((g[k] * invS - off) * scale);
    g[label] = static_cast<T>((e_label * invS - off - on) * scale);
    return l;
  }
  // soft labels: t_k = (1 - ls) target_k + off, recomputed by the same expression in both loops
  const double on = 1.0 - ls;
  double tsum = 0, l = 0;
  for (int64_t k = 0; k < K; ++k) {
    const double t = on * static_cast<double>(tgt[k]) + off;
    tsum += t;
    if (t != 0) l += t * (logS - static_cast<double>(z[k] - m));  // 0 log 0 = 0
  }
  for (int64_t k = 0; k < K; ++k) {
    const double t = on * static_cast<double>(tgt[k]) + off;
    g[k] = static_cast<T>((g[k] * invS * tsum - t) * scale);
  }
  return l;
}

}  // namespace

template <typename T>
void softmax_xent(T* loss, T* dlogits, const T* logits, const int64_t* labels, const T* target,
                  double label_smoothing, Reduction reduction, const XentDims& d) {
  const int64_t N = d.N, K = d.K;
  const double scale = reduction == Reduction::mean ? 1.0 / static_cast<double>(N) : 1.0;
  std::vector<double> rows(static_cast<size_t>(N));
  double* rp = rows.data();
  // rows n: logits[n], dlogits[n], target[n] (K,) each
CF_OMP_FOR(schedule(static) if(N > 1 && N * K >= kParallelMin))
  for (int64_t n = 0; n < N; ++n) {
    rp[n] = xent_row(dlogits + n * K, logits + n * K, labels ? labels[n] : 0,
                     target ? target + n * K : nullptr, label_smoothing, scale, K);
  }
  if (reduction == Reduction::none) {
    for (int64_t n = 0; n < N; ++n) loss[n] = static_cast<T>(rp[n]);
    return;
  }
  double total = 0;
  for (int64_t n = 0; n < N; ++n) total += rp[n];
  if (reduction == Reduction::mean)
    total = N > 0 ? total / static_cast<double>(N) : std::numeric_limits<double>::quiet_NaN();
  loss[0] = static_cast<T>(total);
}

#define CF_INSTANTIATE(T)                                                                  \
  template void softmax_xent<T>(T*, T*, const T*, const int64_t*, const T*, double, Reduction, \
                                const XentDims&);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge
