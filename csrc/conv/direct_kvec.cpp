// direct_kvec (forward any stride; weight): direct kernels vectorised along the output
// channels (conv2d_direct.hpp: KvecTile, KvecDwTile), no im2col.
// Layouts: forward: input of one image and group zero-padded (Cg, Hq, Wq), weights packed
// (G, nkb, Cg, taps, KB); weight: x zero-padded (C, Hp, Wp) and dy channel-last per block of KB
// channels (G*nkb, L, KB), partials (nq, G, nkb, Cg, tp, KB).
// Parallel axis: forward (n, g, channel block, block of tile rows); weight: batch chunks
// (dw_chunks()), else the (g, channel block, input channel) kernel calls of each row block;
// chunks added in order at the end.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "algos.hpp"
#include "conv2d_direct.hpp"
#include "convforge/conv2d.hpp"
#include "partials.hpp"
#include "runtime/tasks.hpp"

namespace convforge::conv_impl {
namespace {

// Tile of the channel-vector kernel for a problem: nk vectors of output channels (1 when a
// group has at most one vector's worth), and the column count S (rows R from the kernel) that
// computes the fewest positions, weighted by the tile's cost per position: per (c, t) a tile
// does nk*P multiply-adds and nk + P loads (two of each per cycle), and needs >= 8 independent
// accumulators to hide the FMA latency.
struct KvecPlan {
  int nk = 0, si = -1;
  int64_t S = 0, R = 0;
};

template <typename T>
KvecPlan kvec_plan(const ConvDims& d, const direct_detail::Kernel<T>& kern) {
  KvecPlan best;
  best.nk = d.Kg() <= kern.vl ? 1 : 2;
  double best_cost = 0;
  for (int si = 0; si < direct_detail::kKvecShapes; ++si) {
    const int64_t R = kern.kvec_r[best.nk - 1][si], S = direct_detail::kKvecS[si];
    if (R < 1 || !kern.kvec[best.nk - 1][si][0]) continue;
    const int64_t P = R * S, fmas = best.nk * P;
    const double per_pos = double(std::max({fmas, best.nk + P, int64_t(8)})) / double(fmas);
    const double cost = double(ceil_div(d.OH, R) * R * ceil_div(d.OW, S) * S) * per_pos;
    if (best.si < 0 || cost < best_cost) {
      best.si = si;
      best.S = S;
      best.R = R;
      best_cost = cost;
    }
  }
  return best;
}

}  // namespace

// Any stride, dilation and groups. Output tile: NK*VL channels of a group x R rows x S columns
// (conv2d_direct.hpp, KvecTile): the input of image n, group g is zero-padded into
// (Cg, Hq, Wq), (Hq, Wq) covering the rounded-up tiles, so that the input element of output
// (oh, ow) and tap (i, j) is pad[c, oh*SH + i*DH, ow*SW + j*DW]. Weights packed per group and
// channel block as (Cg, taps, KB), zero past Kg. Tasks: (n, g, channel block, block of tile
// rows); each output element is computed whole by one tile (results do not depend on the split).
template <typename T>
void forward_kvec(T* y, const T* x, const T* w, const T* b, const ConvDims& d, bool relu) {
  const direct_detail::Kernel<T> kern = direct_detail::kvec_kernel<T>(d.Kg());
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW, L = d.OH * d.OW;
  const KvecPlan pl = kvec_plan(d, kern);
  const int64_t KB = pl.nk * kern.vl, nkb = ceil_div(Kg, KB);
  const int64_t Hq = (ceil_div(d.OH, pl.R) * pl.R - 1) * d.SH + (d.KH - 1) * d.DH + 1;
  const int64_t Wq = (ceil_div(d.OW, pl.S) * pl.S - 1) * d.SW + (d.KW - 1) * d.DW + 1;
  const int64_t plane = Hq * Wq;
  const auto tile = kern.kvec[pl.nk - 1][pl.si][d.SW == 1 ? 1 : d.SW == 2 ? 2 : 0];
  const std::vector<int64_t> offs =  // (taps,)
      tap_offsets(d.KH, d.KW, d.DH, d.DW, Wq, taps);
  // wp (G, nkb, Cg, taps, KB), bp (G, nkb, KB)
  std::vector<T> wp(d.G * nkb * Cg * taps * KB, T(0)), bp(b ? d.G * nkb * KB : 0, T(0));
  for (int64_t g = 0; g < d.G; ++g)
    for (int64_t k = 0; k < Kg; ++k) {
      const int64_t blk = g * nkb + k / KB, lane = k % KB;
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t t = 0; t < taps; ++t)
          wp[((blk * Cg + c) * taps + t) * KB + lane] = w[((g * Kg + k) * Cg + c) * taps + t];
      if (b) bp[blk * KB + lane] = b[g * Kg + k];
    }
  const int64_t units = d.N * d.G * nkb, rtiles = ceil_div(d.OH, pl.R);
  const int64_t nrb = std::min(rtiles, ceil_div(2 * max_threads(), units));  // row blocks
  const int64_t rper = ceil_div(rtiles, nrb);
  run_tasks(units * nrb, true, [&](int64_t task) {
    const int64_t u = task / nrb, rb = task % nrb;
    const int64_t n = u / (d.G * nkb), g = (u / nkb) % d.G, kb = u % nkb;
    const int64_t k0 = kb * KB, blk = g * nkb + kb;
    T* pad = scratch<T>(Cg * plane);  // (Cg, Hq, Wq)
    pad_planes(pad, x + (n * d.C + g * Cg) * d.H * d.W, Cg, d.H, d.W, Hq, Wq, d.PH, d.PW);
    T* out = y + (n * d.K + g * Kg + k0) * L;  // y[n, g*Kg + k0 ...] (kn, OH, OW)
    direct_detail::KvecTile<T> q{nullptr, L, d.OW, std::min(KB, Kg - k0), 0, 0, nullptr,
                                 d.SH * Wq, Cg, plane, offs.data(), taps, d.SW,
                                 wp.data() + blk * Cg * taps * KB,
                                 b ? bp.data() + blk * KB : nullptr, relu};
    for (int64_t rt = rb * rper; rt < std::min(rtiles, (rb + 1) * rper); ++rt) {
      const int64_t oh0 = rt * pl.R;  // tile rows [oh0, oh0 + nr)
      q.nr = std::min(pl.R, d.OH - oh0);
      for (int64_t ow0 = 0; ow0 < d.OW; ow0 += pl.S) {  // tile columns [ow0, ow0 + ns)
        q.ns = std::min(pl.S, d.OW - ow0);
        q.out = out + oh0 * d.OW + ow0;
        q.in = pad + oh0 * d.SH * Wq + ow0 * d.SW;
        tile(q);
      }
    }
  });
}

// Weight gradient (channel-vectorised; written for stride 1, the kernel steps the input row by
// the stride otherwise: kvec_dw<T, NK, SW>): dw[k, c, t] = sum_{n, p} dyt[n, kb, p, k]
// xpad[n, c, p + offs[t]] over the valid positions p = oh*Wp + ow (ow < OW), with x zero-padded
// to (Hp, Wp) and dy channel-last per block of KB channels at those positions (zero past Kg).
// No im2col and no transposition of x: per (block of rows, group, channel block, input
// channel, tap block) one kernel call sums those rows of a block of images in registers; a
// row block's dy (KB channels) stays in L2 while every input channel passes over it. Batch
// chunks as dw_chunks(); partials (nq, G, nkb, Cg, tp, KB) added in chunk order at the end;
// db fused per chunk. Only valid positions enter the sums: exact for non-finite inputs.
template <typename T>
void backward_weight_kvec(T* dw, T* db, const T* dy, const T* x, const ConvDims& d) {
  const direct_detail::Kernel<T> kern = direct_detail::kvec_dw_kernel<T>(d.Kg(), d.KH * d.KW);
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW, L = d.OH * d.OW;
  const int64_t nk = direct_detail::kvec_dw_vectors(kern, Kg), KB = nk * kern.vl;
  const int64_t TB = kern.kvdw_tb, nkb = ceil_div(Kg, KB);
  const int64_t tp = ceil_div(taps, TB) * TB;
  // x padded to the rows and columns the outputs read: (Hp, Wp)
  const int64_t Hp = (d.OH - 1) * d.SH + (d.KH - 1) * d.DH + 1;
  const int64_t Wp = (d.OW - 1) * d.SW + (d.KW - 1) * d.DW + 1, plane = Hp * Wp;
  const int64_t x_img = d.C * plane, dy_img = d.G * nkb * L * KB, img = x_img + dy_img;
  const auto kernel = kern.kvec_dw[nk - 1][d.SW == 1 ? 1 : 0];
  const int64_t rb = std::clamp<int64_t>(kKvecDwPositions / d.OW, 1, d.OH);  // rows per call
  const int64_t mb = std::clamp<int64_t>(kKvecDwBlockElems / img, 1, d.N);
  const std::vector<int64_t> offs =  // (tp,): padded taps read offset 0
      tap_offsets(d.KH, d.KW, d.DH, d.DW, Wp, tp);
  const int64_t lanes = d.G * nkb * Cg * tp * KB, nq = dw_chunks(d, lanes);
  // part: (nq, G, nkb, Cg, tp, KB). Tasks: chunks when there are enough of them, else (inner)
  // the padding tasks and the (g, kb, c) kernel calls of each position block (each call owns
  // its accumulators).
  const T* part = run_dw_chunks(db, d, nq, lanes, [&](int64_t, int64_t n0, int64_t n1, T* acc,
                                                      double* db_q, bool inner) {
    std::fill(acc, acc + lanes, T(0));
    T* buf = scratch<T>(mb * img);  // per image: xpad (C, Hp, Wp) | dyt (G*nkb, L, KB)
    for (int64_t na = n0; na < n1; na += mb) {
      const int64_t nimg = std::min(mb, n1 - na);  // images [na, na + nimg)
      // Per image m: each input channel padded (every element of its plane written), each
      // block of KB channels of dy laid out channel-last (the lanes past Kg zero). Tasks:
      // (m, channel) and (m, block).
      run_tasks(nimg * (d.C + d.G * nkb), inner, [&](int64_t task) {
        const int64_t m = task / (d.C + d.G * nkb), j = task % (d.C + d.G * nkb), n = na + m;
        T* xpad = buf + m * img;
        if (j < d.C) {  // plane j of xpad
          pad_planes(xpad + j * plane, x + (n * d.C + j) * d.H * d.W, 1, d.H, d.W, Hp, Wp, d.PH,
                     d.PW);
          return;
        }
        const int64_t g = (j - d.C) / nkb, kb = (j - d.C) % nkb;
        const int64_t kn = std::min(KB, Kg - kb * KB);
        const T* src = dy + (n * d.K + g * Kg + kb * KB) * L;  // (kn, L)
        T* dst = xpad + x_img + (g * nkb + kb) * L * KB;        // (L, KB)
        if (kn < KB) std::fill(dst, dst + L * KB, T(0));
        kern.transpose(dst, KB, src, L, kn, L);  // register squares: one read of each line
      });
      for (int64_t oh0 = 0; oh0 < d.OH; oh0 += rb) {  // output rows [oh0, oh0 + rows)
        const int64_t rows = std::min(rb, d.OH - oh0);
        run_tasks(d.G * nkb * Cg, inner, [&](int64_t u) {  // u = (g, kb, c)
          const int64_t g = u / (nkb * Cg), kb = (u / Cg) % nkb, c = u % Cg;
          for (int64_t t0 = 0; t0 < tp; t0 += TB) {  // taps [t0, t0 + TB) of channel c
            const direct_detail::KvecDwTile<T> r{
                acc + (u * tp + t0) * KB, buf + x_img + ((g * nkb + kb) * L + oh0 * d.OW) * KB,
                KB, img, buf + (g * Cg + c) * plane + oh0 * d.SH * Wp, img, offs.data() + t0,
                rows, d.OW, d.SH * Wp, d.OW, d.SW, nimg};
            kernel(r);
          }
        });
      }
      if (db_q) add_db_partial(db_q, dy, na, na + nimg, d);
    }
  });
  run_tasks(d.K, d.K * Cg * taps * nq >= (int64_t(1) << 14), [&](int64_t kk) {
    const int64_t g = kk / Kg, k = kk % Kg, kb = k / KB, lane = k % KB;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t t = 0; t < taps; ++t) {  // dw[kk, c, t] = sum_q part[q, g, kb, c, t, lane]
        const int64_t e = (((g * nkb + kb) * Cg + c) * tp + t) * KB + lane;
        T s = 0;
        for (int64_t q = 0; q < nq; ++q) s += part[q * lanes + e];
        dw[(kk * Cg + c) * taps + t] = s;
      }
  });
}

#define CF_INSTANTIATE(T)                                                                    \
  template void forward_kvec<T>(T*, const T*, const T*, const T*, const ConvDims&, bool);    \
  template void backward_weight_kvec<T>(T*, T*, const T*, const T*, const ConvDims&);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge::conv_impl
