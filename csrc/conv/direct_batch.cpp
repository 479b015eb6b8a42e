// direct_batch (data direction, any stride): the direct kernel vectorised along the batch
// (conv2d_direct.hpp: BatchTile, images in the vector lanes), only the taps that land in dy.
// Layouts: dy transposed per block of images to dyt (Kg, OH, OW, BLK); weights (G, Kg, taps, Cg).
// Parallel axis: (image block, group) units; with fewer units than threads, each unit's
// transposition by channel and its (row range, channel block) tasks.
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "algos.hpp"
#include "conv2d_direct.hpp"
#include "convforge/conv2d.hpp"
#include "partials.hpp"
#include "runtime/tasks.hpp"

namespace convforge::conv_impl {

// Backward data, any stride, images in the vector lanes: dx[n, c, h, w] = sum over k, then the
// taps (i, j) whose dy position (oh, ow) = ((h + PH - i*DH) / SH, (w + PW - j*DW) / SW) exists
// (divisible, inside), of dy[n, k, oh, ow] w[k, c, i, j]. No zero padding is multiplied (on
// LeNet C3, 14 x 14 from 10 x 10 through 5 x 5, that is half the multiply-adds of a padded
// correlation) and nothing non-finite leaks. Per block of BLK images (batch_vectors) and group:
// dy transposed to dyt (Kg, OH, OW, BLK) (images past N zero), then one kernel call per (dx
// position, block of output channels) over the listed taps, stored straight into dx.
// Weights wp (G, Kg, taps, Cg). Tasks: transposition by channel k, then (h, channel block);
// each dx element is summed whole by one call: results do not depend on the split.
template <typename T>
void backward_data_batch(T* dx, const T* dy, const T* w, const ConvDims& d) {
  const direct_detail::Kernel<T> kern = direct_detail::direct_kernel<T>();
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW, L = d.OH * d.OW, HW = d.H * d.W;
  const int64_t nvb = direct_detail::batch_vectors(kern, d.N), BLK = nvb * kern.vl;
  const auto batch = kern.batch[nvb - 1];
  const int64_t ncb = ceil_div(Cg, kern.batch_kb[nvb - 1]), CB = ceil_div(Cg, ncb);
  std::vector<T> wp(d.K * taps * Cg);  // (G, Kg, taps, Cg)
  for (int64_t k = 0; k < d.K; ++k)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t t = 0; t < taps; ++t) wp[(k * taps + t) * Cg + c] = w[(k * Cg + c) * taps + t];
  // Taps of dx row h: (i, oh) pairs, and of column w: (j, ow) pairs, ascending i / j.
  const auto tap_list = [](int64_t pos, int64_t P, int64_t S, int64_t D, int64_t KS, int64_t O) {
    std::vector<std::pair<int64_t, int64_t>> v;
    for (int64_t i = 0; i < KS; ++i) {
      const int64_t num = pos + P - i * D;
      if (num >= 0 && num % S == 0 && num / S < O) v.emplace_back(i, num / S);
    }
    return v;
  };
  std::vector<std::vector<std::pair<int64_t, int64_t>>> rows(d.H), cols(d.W);
  for (int64_t h = 0; h < d.H; ++h) rows[h] = tap_list(h, d.PH, d.SH, d.DH, d.KH, d.OH);
  for (int64_t x = 0; x < d.W; ++x) cols[x] = tap_list(x, d.PW, d.SW, d.DW, d.KW, d.OW);
  // One block of images [n0, n0 + nv) of group g; inner: split its stages over the threads
  // (row ranges: neighbouring rows share cache lines of dx).
  const auto block = [&](int64_t n0, int64_t g, bool inner) {
    const int64_t nv = std::min(BLK, d.N - n0);
    T* dyt = scratch<T>(Kg * L * BLK);  // (Kg, OH, OW, BLK)
    run_tasks(Kg, inner, [&](int64_t k) {  // dyt[k] (L, BLK) <- dy[n0 + v, g*Kg + k] (L,)
      T* o = dyt + k * L * BLK;
      if (nv < BLK) std::fill(o, o + L * BLK, T(0));
      for (int64_t v = 0; v < nv; ++v) {
        const T* src = dy + ((n0 + v) * d.K + g * Kg + k) * L;
        for (int64_t p = 0; p < L; ++p) o[p * BLK + v] = src[p];
      }
    });
    const int64_t nhb = inner ? std::min<int64_t>(d.H, max_threads()) : 1;
    run_tasks(nhb * ncb, inner, [&](int64_t task) {  // dx rows [h0, h1), channels [c0, c0 + cn)
      const int64_t hb = task / ncb, c0 = (task % ncb) * CB, cn = std::min(CB, Cg - c0);
      const int64_t h0 = d.H * hb / nhb, h1 = d.H * (hb + 1) / nhb;
      std::vector<int64_t> offs(taps), woffs(taps);
      std::vector<T> tile(CB * BLK);  // (cn, BLK)
      direct_detail::BatchTile<T> q{tile.data(), BLK, dyt, Kg, L * BLK, offs.data(),
                                    woffs.data(), 0, wp.data() + (g * Kg * taps) * Cg + c0,
                                    taps * Cg, cn};
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t x = 0; x < d.W; ++x) {  // dx position (h, x)
          q.taps = 0;
          for (const auto& [i, oh] : rows[h])
            for (const auto& [j, ow] : cols[x]) {
              offs[q.taps] = (oh * d.OW + ow) * BLK;
              woffs[q.taps++] = (i * d.KW + j) * Cg;
            }
          if (q.taps == 0) std::fill(tile.begin(), tile.end(), T(0));
          else batch(q);
          for (int64_t c = 0; c < cn; ++c)  // dx[n0 + v, g*Cg + c0 + c, h, x]
            for (int64_t v = 0; v < nv; ++v)
              dx[((n0 + v) * d.C + g * Cg + c0 + c) * HW + h * d.W + x] = tile[c * BLK + v];
        }
    });
  };
  const int64_t units = ceil_div(d.N, BLK) * d.G;  // (image block, group)
  if (units >= max_threads()) {  // tasks: units, one thread each (disjoint dx planes)
    run_tasks(units, true, [&](int64_t u) { block(u / d.G * BLK, u % d.G, false); });
  } else {
    for (int64_t u = 0; u < units; ++u) block(u / d.G * BLK, u % d.G, true);
  }
}

#define CF_INSTANTIATE(T)                                                                    \
  template void backward_data_batch<T>(T*, const T*, const T*, const ConvDims&);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge::conv_impl
