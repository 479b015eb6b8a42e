// direct_batch (forward and data directions, any stride; weight without padding, at the end): the
// direct kernel vectorised along the batch (conv2d_direct.hpp: BatchTile and BatchDwTile, images
// in the vector lanes), only the taps that land inside the input, so no zero padding is
// multiplied and nothing non-finite leaks.
// Both directions are one correlation of a source with Ci channels per group into Co channels
// per group (forward: x into y, Ci = Cg, Co = Kg; data: dy into dx, Ci = Kg, Co = Cg):
// per block of BLK images (batch_vectors) and group the source is transposed to (Ci, Hi, Wi,
// BLK) (images past N zero), then one kernel call per (output position, block of output
// channels) over the listed taps, stored straight into the output. Weights wp (G, Ci, taps, Co).
// Parallel axis: (image block, group) units; with fewer units than threads, each unit's
// transposition by channel and its (row range, channel block) tasks. Each output element is
// summed whole by one call, in (source channel, tap) order: results do not depend on the split.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "algos.hpp"
#include "conv2d_direct.hpp"
#include "convforge/conv2d.hpp"
#include "partials.hpp"
#include "runtime/tasks.hpp"

namespace convforge::conv_impl {

namespace {

// For each output row (or column): the (tap index, source row) pairs that reach it, tap
// index ascending.
using TapList = std::vector<std::vector<std::pair<int64_t, int64_t>>>;

constexpr int kTileTag = 1;  // scratch of a task's results (tag 0: the transposed source)

// One direction as a correlation: out (N, G*Co, Ho, Wo) from src (N, G*Ci, Hi, Wi) and wp.
struct LaneProblem {
  int64_t N, G, Ci, Co, Hi, Wi, Ho, Wo, KW, taps;
  TapList rows, cols;  // rows[ho], cols[wo]: (i, hi) / (j, wi) pairs
};

// out = the correlation of p; bias (G*Co) or null added to each sum, then the ReLU (relu).
template <typename T>
void lane_correlation(T* out, const T* src, const T* wp, const T* bias, bool relu,
                      const LaneProblem& p) {
  const direct_detail::Kernel<T> kern = direct_detail::direct_kernel<T>();
  const int64_t nvb = direct_detail::batch_vectors(kern, p.N), BLK = nvb * kern.vl;
  const auto batch = kern.batch[nvb - 1];
  const int64_t ncb = ceil_div(p.Co, kern.batch_kb[nvb - 1]), CB = ceil_div(p.Co, ncb);
  const int64_t Li = p.Hi * p.Wi, Lo = p.Ho * p.Wo;
  // One block of images [n0, n0 + nv) of group g; inner: split its stages over the threads
  // (row ranges: neighbouring rows share cache lines of out).
  const auto block = [&](int64_t n0, int64_t g, bool inner) {
    const int64_t nv = std::min(BLK, p.N - n0);
    T* st = scratch<T>(p.Ci * Li * BLK);  // (Ci, Hi, Wi, BLK)
    run_tasks(p.Ci, inner, [&](int64_t c) {  // st[c] (Li, BLK) <- src[n0 + v, g*Ci + c] (Li,)
      T* o = st + c * Li * BLK;
      if (nv < BLK) std::fill(o, o + Li * BLK, T(0));
      kern.transpose(o, BLK, src + (n0 * p.G * p.Ci + g * p.Ci + c) * Li, p.G * p.Ci * Li, nv,
                     Li);  // register squares: no element-by-element strided writes
    });
    const int64_t nhb = inner ? std::min<int64_t>(p.Ho, max_threads()) : 1;
    run_tasks(nhb * ncb, inner, [&](int64_t task) {  // out rows [h0, h1), channels [c0, c0 + cn)
      const int64_t hb = task / ncb, c0 = (task % ncb) * CB, cn = std::min(CB, p.Co - c0);
      const int64_t h0 = p.Ho * hb / nhb, h1 = p.Ho * (hb + 1) / nhb;
      std::vector<int64_t> offs(p.taps), woffs(p.taps);
      // the rows' results (cn, (h1 - h0)*Wo, BLK), transposed into out at the end (this
      // thread's scratch: the source st is the calling thread's, under the other tag)
      const int64_t pos = (h1 - h0) * p.Wo;
      T* tile = scratch<T, kTileTag>(cn * pos * BLK);
      direct_detail::BatchTile<T> q{nullptr, pos * BLK, st, p.Ci, Li * BLK, offs.data(),
                                    woffs.data(), 0, wp + (g * p.Ci * p.taps) * p.Co + c0,
                                    p.taps * p.Co, cn};
      const T lo = relu ? T(0) : -std::numeric_limits<T>::infinity();  // max(v, lo)
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t x = 0; x < p.Wo; ++x) {  // output position (h, x): tile[:, e] (cn, BLK)
          const int64_t e = (h - h0) * p.Wo + x;
          q.out = tile + e * BLK;
          q.taps = 0;
          for (const auto& [i, hi] : p.rows[h])
            for (const auto& [j, wi] : p.cols[x]) {
              offs[q.taps] = (hi * p.Wi + wi) * BLK;
              woffs[q.taps++] = (i * p.KW + j) * p.Co;
            }
          if (q.taps == 0) {
            for (int64_t c = 0; c < cn; ++c)
              std::fill(q.out + c * pos * BLK, q.out + c * pos * BLK + BLK, T(0));
          } else {
            batch(q);
          }
          for (int64_t c = 0; c < cn && (bias || relu); ++c) {  // bias and ReLU on the tile
            const T bk = bias ? bias[g * p.Co + c0 + c] : T(0);
            T* t = q.out + c * pos * BLK;
            for (int64_t v = 0; v < nv; ++v) {
              const T val = bias ? t[v] + bk : t[v];
              t[v] = val < lo ? lo : val;
            }
          }
        }
      for (int64_t c = 0; c < cn; ++c)  // out[n0 + v, g*Co + c0 + c, h0*Wo + e] <- tile[c, e, v]
        kern.transpose(out + (n0 * p.G * p.Co + g * p.Co + c0 + c) * Lo + h0 * p.Wo,
                       p.G * p.Co * Lo, tile + c * pos * BLK, BLK, pos, nv);
    });
  };
  const int64_t units = ceil_div(p.N, BLK) * p.G;  // (image block, group)
  if (units >= max_threads()) {  // tasks: units, one thread each (disjoint output planes)
    run_tasks(units, true, [&](int64_t u) { block(u / p.G * BLK, u % p.G, false); });
  } else {
    for (int64_t u = 0; u < units; ++u) block(u / p.G * BLK, u % p.G, true);
  }
}

// (tap index, source position) pairs of one output position `pos` along one axis: forward,
// source = pos*S - P + i*D inside [0, size); data (transposed), the output position is the
// source's: (pos + P - i*D) / S when divisible and inside [0, size).
TapList tap_lists(int64_t n_out, int64_t size, int64_t P, int64_t S, int64_t D, int64_t KS,
                  bool forward) {
  TapList lists(n_out);
  for (int64_t pos = 0; pos < n_out; ++pos)
    for (int64_t i = 0; i < KS; ++i) {
      if (forward) {
        const int64_t s = pos * S - P + i * D;
        if (s >= 0 && s < size) lists[pos].emplace_back(i, s);
      } else {
        const int64_t num = pos + P - i * D;
        if (num >= 0 && num % S == 0 && num / S < size) lists[pos].emplace_back(i, num / S);
      }
    }
  return lists;
}

}  // namespace

// Forward: y[n, k, oh, ow] = b[k] + sum over c, then the taps (i, j) whose input position
// (oh*SH - PH + i*DH, ow*SW - PW + j*DW) lies inside x, of x[n, c, ...] w[k, c, i, j]
// (ReLU after, with relu). Source x, Ci = Cg, Co = Kg; weights (G, Cg, taps, Kg).
template <typename T>
void forward_batch(T* y, const T* x, const T* w, const T* b, const ConvDims& d, bool relu) {
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW;
  std::vector<T> wp(d.K * taps * Cg);  // (G, Cg, taps, Kg)
  for (int64_t g = 0; g < d.G; ++g)
    for (int64_t k = 0; k < Kg; ++k)
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t t = 0; t < taps; ++t)
          wp[((g * Cg + c) * taps + t) * Kg + k] = w[((g * Kg + k) * Cg + c) * taps + t];
  const LaneProblem p{d.N, d.G, Cg, Kg, d.H, d.W, d.OH, d.OW, d.KW, taps,
                      tap_lists(d.OH, d.H, d.PH, d.SH, d.DH, d.KH, true),
                      tap_lists(d.OW, d.W, d.PW, d.SW, d.DW, d.KW, true)};
  lane_correlation(y, x, wp.data(), b, relu, p);
}

// Backward data: dx[n, c, h, w] = sum over k, then the taps (i, j) whose dy position
// (oh, ow) = ((h + PH - i*DH) / SH, (w + PW - j*DW) / SW) exists (divisible, inside), of
// dy[n, k, oh, ow] w[k, c, i, j]. On LeNet C3 (14 x 14 from 10 x 10 through 5 x 5) that is half
// the multiply-adds of a padded correlation. Source dy, Ci = Kg, Co = Cg; weights
// (G, Kg, taps, Cg).
template <typename T>
void backward_data_batch(T* dx, const T* dy, const T* w, const ConvDims& d) {
  const int64_t Cg = d.Cg(), taps = d.KH * d.KW;
  std::vector<T> wp(d.K * taps * Cg);  // (G, Kg, taps, Cg)
  for (int64_t k = 0; k < d.K; ++k)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t t = 0; t < taps; ++t) wp[(k * taps + t) * Cg + c] = w[(k * Cg + c) * taps + t];
  const LaneProblem p{d.N, d.G, d.Kg(), Cg, d.OH, d.OW, d.H, d.W, d.KW, taps,
                      tap_lists(d.H, d.OH, d.PH, d.SH, d.DH, d.KH, false),
                      tap_lists(d.W, d.OW, d.PW, d.SW, d.DW, d.KW, false)};
  lane_correlation(dx, dy, wp.data(), static_cast<const T*>(nullptr), false, p);
}

// Weight gradient, no padding: dw[k, c, i, j] = sum over n and the output positions (oh, ow) of
// dy[n, k, oh, ow] x[n, c, oh*SH + i*DH, ow*SW + j*DW] (every such position lies inside x: the
// same products as the reference). x and dy are transposed, in blocks of VL images (one vector;
// images past N are zero), to xt (blocks, G, Cg, H, W, VL) and dyt (blocks, G, Kgp, OH, OW, VL);
// then each task, a block of bdw_kb output channels of one input channel and group, runs the
// tiles (BatchDwTile: bdw_kb channels x bdw_tb taps, taps rounded up) over the blocks in order,
// adding into its own lane sums acc (G, Kgp, Cg, tp, VL) (one owner per sum: the split does not
// change it; its dy channels stay in cache across its tap tiles); dw[k, c, t] then sums its
// lanes in order. Two parallel passes in all: one per block and stage lost to the threads'
// hand-offs (LeNet C1 at 2 threads: 0.52 ms against 0.21 at 1). On LeNet C1 (1 -> 6 channels,
// 5x5 at 28 px) that is 6 x 25 multiply-adds per position with aligned loads, where
// direct_small's rows carry 4 junk columns of 32 and 28 taps.
template <typename T>
void backward_weight_lanes(T* dw, const T* dy, const T* x, const ConvDims& d) {
  const direct_detail::Kernel<T> kern = direct_detail::direct_kernel<T>();
  const int64_t VL = kern.vl, KB = kern.bdw_kb, TB = kern.bdw_tb;
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW, L = d.OH * d.OW, HW = d.H * d.W;
  const int64_t Kgp = ceil_div(Kg, KB) * KB, tp = ceil_div(taps, TB) * TB;
  const int64_t nblk = ceil_div(d.N, VL);
  std::vector<int64_t> offs(tp, 0);  // (tp,): tap (i, j) at (i*DH*W + j*DW) lanes; padding 0
  for (int64_t i = 0; i < d.KH; ++i)
    for (int64_t j = 0; j < d.KW; ++j) offs[i * d.KW + j] = (i * d.DH * d.W + j * d.DW) * VL;
  const int64_t xs = Cg * HW * VL, ys = Kgp * L * VL;  // one block of one group: xt, dyt
  T* xt = scratch<T>(nblk * d.G * (xs + ys));  // (blocks, G, xt | dyt)
  const auto xblk = [&](int64_t b, int64_t g) { return xt + (b * d.G + g) * (xs + ys); };
  run_tasks(nblk * d.G * (Cg + Kgp), true, [&](int64_t u) {  // one plane per task
    const int64_t b = u / (d.G * (Cg + Kgp)), g = u / (Cg + Kgp) % d.G, e = u % (Cg + Kgp);
    const int64_t n0 = b * VL, nv = std::min(VL, d.N - n0);
    T* o = xblk(b, g) + (e < Cg ? e * HW * VL : xs + (e - Cg) * L * VL);
    const int64_t len = (e < Cg ? HW : L) * VL;
    if (nv < VL || e >= Cg + Kg) std::fill(o, o + len, T(0));  // lanes past N, channels past Kg
    if (e < Cg)  // xt[c] (HW, VL) <- x[n0 + v, g*Cg + c] (HW,)
      kern.transpose(o, VL, x + (n0 * d.C + g * Cg + e) * HW, d.C * HW, nv, HW);
    else if (e < Cg + Kg)  // dyt[k] (L, VL) <- dy[n0 + v, g*Kg + k] (L,)
      kern.transpose(o, VL, dy + (n0 * d.K + g * Kg + e - Cg) * L, d.K * L, nv, L);
  });
  const int64_t ntk = Kgp / KB;
  std::vector<T> acc(d.G * Kgp * Cg * tp * VL, T(0));  // (G, Kgp, Cg, tp, VL)
  run_tasks(d.G * ntk * Cg, d.G * ntk * Cg > 1, [&](int64_t task) {  // channels [k0, k0 + KB)
    const int64_t g = task / (ntk * Cg), k0 = task / Cg % ntk * KB, c = task % Cg;
    for (int64_t b = 0; b < nblk; ++b)  // blocks in order
      for (int64_t t0 = 0; t0 < tp; t0 += TB) {  // taps [t0, t0 + TB)
        const T* blk = xblk(b, g);
        const direct_detail::BatchDwTile<T> q{
            acc.data() + (((g * Kgp + k0) * Cg + c) * tp + t0) * VL, Cg * tp * VL,
            blk + xs + k0 * L * VL, L * VL, d.OW * VL, blk + c * HW * VL, offs.data() + t0,
            d.OH, d.OW, d.SH * d.W * VL, d.SW * VL};
        kern.batch_dw(q);
      }
  });
  run_tasks(d.K, d.K * Cg * taps >= 4096, [&](int64_t kk) {
    const int64_t g = kk / Kg, k = kk % Kg;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t t = 0; t < taps; ++t) {  // dw[kk, c, t] = sum_v acc[g, k, c, t, v]
        const T* a = acc.data() + (((g * Kgp + k) * Cg + c) * tp + t) * VL;
        T s = 0;
        for (int64_t v = 0; v < VL; ++v) s += a[v];
        dw[(kk * Cg + c) * taps + t] = s;
      }
  });
}

#define CF_INSTANTIATE(T)                                                                      \
  template void forward_batch<T>(T*, const T*, const T*, const T*, const ConvDims&, bool);     \
  template void backward_data_batch<T>(T*, const T*, const T*, const ConvDims&);               \
  template void backward_weight_lanes<T>(T*, const T*, const T*, const ConvDims&);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge::conv_impl
