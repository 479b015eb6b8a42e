// direct_small (stride 1, few channels, every direction): the channels of one image and group
// copied once into a zero-padded buffer (Ci, Hp, Wp), then the per-ISA micro-kernels of
// conv2d_direct.hpp (Rows, DwRows) on flattened padded planes (positions p = oh*Wp + ow, junk
// columns ow >= OW dropped). Data is the same correlation of dy with the kernel rotated by 180
// degrees and w's channel axes swapped.
// Layouts: padded planes (Ci, Hp, Wp); packed weights (Ci, taps, kb) per channel block.
// Parallel axis: forward / data (n, g) or (n, g, block of output channels); weight: batch
// chunks, lanes and chunks summed in a fixed order at the end.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "algos.hpp"
#include "conv2d_direct.hpp"
#include "convforge/conv2d.hpp"
#include "partials.hpp"
#include "runtime/tasks.hpp"

namespace convforge::conv_impl {
namespace {

// One stride-1 correlation per (image n, group g): out (Co, Ho, Wo) from in (Ci, Hi, Wi), where
// row r / column s of the zero-padded plane (Hp, Wp) = (Ho + (KH-1)*DH, Wo + (KW-1)*DW) is
// in row r - pt / column s - pl (pt, pl may be negative: a crop).
struct DirectProblem {
  int64_t N, G;
  int64_t Ci, Hi, Wi;          // input channels and plane per group
  int64_t Co, Ho, Wo;          // output channels and plane per group
  int64_t KH, KW, DH, DW;      // kernel and dilation
  int64_t pt, pl;              // top / left padding
  int64_t in_n, in_g;          // element strides of an image and a group in `in`
  int64_t out_n, out_g;        // ... in `out`
};

// wgt(g, co, ci, t) is the weight of output channel co, input channel ci and tap t = i*KW + j
// (flattened positions: offset i*DH*Wp + j*DW); bias(g, co) or null.
template <typename T, typename Wgt>
void direct_conv(T* out, const T* in, const T* bias, bool relu, const DirectProblem& p,
                 const Wgt& wgt) {
  const direct_detail::Kernel<T> kern = direct_detail::direct_kernel<T>();
  const int64_t taps = p.KH * p.KW;
  const int64_t Hp = p.Ho + (p.KH - 1) * p.DH, Wp = p.Wo + (p.KW - 1) * p.DW, plane = Hp * Wp;
  const int64_t len = p.Ho * Wp, lenr = ceil_div(len, kern.block) * kern.block;
  const int64_t in_elems = p.Ci * plane + kern.block + (p.KW - 1) * p.DW;  // + zero tail
  // Output channel blocks of the micro-kernel: nb balanced blocks of at most kb_max.
  const int64_t nb = ceil_div(p.Co, kern.kb_max), KB = ceil_div(p.Co, nb);
  const std::vector<int64_t> offs =  // (taps,)
      tap_offsets(p.KH, p.KW, p.DH, p.DW, Wp, taps);
  // wp: per group g and block b (output channels [b*KB, b*KB + kb)) the (Ci, taps, kb) weights,
  // at offset (g*Co + b*KB)*Ci*taps.
  std::vector<T> wp(p.G * p.Co * p.Ci * taps);
  for (int64_t g = 0; g < p.G; ++g)
    for (int64_t co0 = 0; co0 < p.Co; co0 += KB) {
      const int64_t kb = std::min(KB, p.Co - co0);
      T* wb = wp.data() + (g * p.Co + co0) * p.Ci * taps;  // (Ci, taps, kb)
      for (int64_t ci = 0; ci < p.Ci; ++ci)
        for (int64_t t = 0; t < taps; ++t)
          for (int64_t k = 0; k < kb; ++k) wb[(ci * taps + t) * kb + k] = wgt(g, co0 + k, ci, t);
    }
  std::vector<T> bp;
  if (bias) bp.assign(bias, bias + p.G * p.Co);

  // Tasks: (n, g) when there are enough of them, else (n, g, block); the split does not change
  // any result (each output element is computed whole by one micro-kernel call).
  const int64_t per = p.N * p.G >= 2 * max_threads() ? nb : 1;  // blocks per task
  const int64_t tpg = ceil_div(nb, per);                       // tasks per (n, g)
  run_tasks(p.N * p.G * tpg, true, [&](int64_t task) {
    const int64_t n = task / (p.G * tpg), g = (task / tpg) % p.G, b0 = (task % tpg) * per;
    const T* in_g = in + n * p.in_n + g * p.in_g;  // (Ci, Hi, Wi)
    T* pad = scratch<T>(in_elems + KB * lenr);     // padded input (Ci, Hp, Wp) + tail | tile
    T* tile = pad + in_elems;                      // (kb, lenr)
    pad_planes(pad, in_g, p.Ci, p.Hi, p.Wi, Hp, Wp, p.pt, p.pl);
    std::fill(pad + p.Ci * plane, pad + in_elems, T(0));
    for (int64_t b = b0; b < std::min(nb, b0 + per); ++b) {  // block: channels [co0, co0 + kb)
      const int64_t co0 = b * KB, kb = std::min(KB, p.Co - co0);
      const direct_detail::Rows<T> r{tile, lenr, pad, p.Ci, plane, offs.data(), taps,
                                     wp.data() + (g * p.Co + co0) * p.Ci * taps, kb,
                                     bias ? bp.data() + g * p.Co + co0 : nullptr, len};
      kern.rows(r);
      const T lo = relu_floor<T>(relu);    // the ReLU epilogue on the copy-out
      for (int64_t k = 0; k < kb; ++k)     // out[n, g, co0 + k] (Ho, Wo) <- tile rows of width Wp
        kern.copy_rows(out + n * p.out_n + g * p.out_g + (co0 + k) * p.Ho * p.Wo, p.Wo,
                       tile + k * lenr, Wp, p.Ho, p.Wo, lo);
    }
  });
}

}  // namespace

template <typename T>
void forward_direct(T* y, const T* x, const T* w, const T* b, const ConvDims& d, bool relu) {
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW, L = d.OH * d.OW;
  const DirectProblem p{d.N, d.G, Cg, d.H, d.W, Kg, d.OH, d.OW, d.KH, d.KW, d.DH, d.DW,
                        d.PH, d.PW, d.C * d.H * d.W, Cg * d.H * d.W, d.K * L, Kg * L};
  // w[g*Kg + k, c, i, j] (K, Cg, KH, KW)
  direct_conv(y, x, b, relu, p, [&](int64_t g, int64_t k, int64_t c, int64_t t) {
    return w[((g * Kg + k) * Cg + c) * taps + t];
  });
}

template <typename T>
void backward_data_direct(T* dx, const T* dy, const T* w, const ConvDims& d) {
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW, L = d.OH * d.OW;
  const DirectProblem p{d.N, d.G, Kg, d.OH, d.OW, Cg, d.H, d.W, d.KH, d.KW, d.DH, d.DW,
                        (d.KH - 1) * d.DH - d.PH, (d.KW - 1) * d.DW - d.PW,
                        d.K * L, Kg * L, d.C * d.H * d.W, Cg * d.H * d.W};
  // Output channel c, input channel k, tap t: w[g*Kg + k, c] rotated: tap taps-1-t.
  direct_conv(dx, dy, static_cast<const T*>(nullptr), false, p,
              [&](int64_t g, int64_t c, int64_t k, int64_t t) {
                return w[((g * Kg + k) * Cg + c) * taps + (taps - 1 - t)];
              });
}

// Weight gradient, stride 1: dw[k, c, t] = sum_{n, p} dyp[n, k, p] * xpad[n, c, p + offs[t]]
// with x zero-padded as in the forward direction and dy laid out at the padded width Wp (zero
// in the columns ow >= OW). Batch chunks as in im2col_gemm_batch (min(N, kDwChunks), fixed by
// N); per chunk, lane-wise partial sums (G, Kgp, Cg, tp, VL) from the micro-kernel (channels
// and taps rounded up to its tile: zero dy rows, tap offset 0, dropped); at the end each dw
// element sums its chunks in order, each chunk's lanes in order. db fused per chunk, in double.
template <typename T>
void backward_weight_direct(T* dw, T* db, const T* dy, const T* x, const ConvDims& d) {
  const direct_detail::Kernel<T> kern = direct_detail::direct_kernel<T>();
  const int64_t Cg = d.Cg(), Kg = d.Kg(), taps = d.KH * d.KW, L = d.OH * d.OW, VL = kern.vl;
  const int64_t Hp = d.OH + (d.KH - 1) * d.DH, Wp = d.OW + (d.KW - 1) * d.DW, plane = Hp * Wp;
  const int64_t len = d.OH * Wp, lenr = ceil_div(len, VL) * VL;
  // The tile that pads the channels and taps least: the table's dw, or its dw2 (AVX-512: 6 x 4
  // against 4 x 5; LeNet C1's 6 channels and 25 taps: 6 x 28 against 8 x 25 multiply-adds per
  // position, 0.34 -> 0.31 ms on Zen 4). Same sums either way (one accumulator lane per channel,
  // tap and lane, positions in order).
  const auto padded = [&](int64_t kb, int64_t tb) {
    return ceil_div(Kg, kb) * kb * ceil_div(taps, tb) * tb;
  };
  const bool use2 = kern.dw2 && padded(kern.dw2_kb, kern.dw2_tb) < padded(kern.dw_kb, kern.dw_tb);
  const auto dw_tile = use2 ? kern.dw2 : kern.dw;
  const int64_t dkb = use2 ? kern.dw2_kb : kern.dw_kb, dtb = use2 ? kern.dw2_tb : kern.dw_tb;
  const int64_t Kgp = ceil_div(Kg, dkb) * dkb;
  const int64_t tp = ceil_div(taps, dtb) * dtb;
  // One image of a group in the batch block: padded x (Cg, Hp, Wp) + zero tail, then dyp
  // (Kgp, lenr); mb images side by side (about kDwBlockElems elements, fixed by the shapes).
  const int64_t x_elems = Cg * plane + lenr + (d.KW - 1) * d.DW;
  const int64_t img = x_elems + Kgp * lenr;
  const int64_t mb = std::clamp<int64_t>(kDwBlockElems / img, 1, d.N);
  const std::vector<int64_t> offs =  // (tp,): padded taps read offset 0
      tap_offsets(d.KH, d.KW, d.DH, d.DW, Wp, tp);
  const int64_t nq = std::min(d.N, kDwChunks), lanes = d.G * Kgp * Cg * tp * VL;
  // part: (nq, G, Kgp, Cg, tp, VL)
  const T* part = run_dw_chunks(db, d, nq, lanes, [&](int64_t, int64_t n0, int64_t n1, T* acc,
                                                      double* db_q, bool) {
    std::fill(acc, acc + lanes, T(0));
    T* buf = scratch<T>(mb * img);  // (mb, img)
    for (int64_t m = 0; m < mb; ++m) {  // the zeros of each image slot, which no copy writes:
      T* xpad = buf + m * img;          // x's tail, dy's columns >= OW, its tail, rows >= Kg
      T* dyp = xpad + x_elems;
      std::fill(xpad + Cg * plane, xpad + x_elems, T(0));
      for (int64_t k = 0; k < Kgp; ++k) {  // dyp[k] (lenr,)
        T* row = dyp + k * lenr;
        if (k >= Kg) {
          std::fill(row, row + lenr, T(0));
          continue;
        }
        for (int64_t oh = 0; oh < d.OH; ++oh)
          std::fill(row + oh * Wp + d.OW, row + (oh + 1) * Wp, T(0));
        std::fill(row + len, row + lenr, T(0));
      }
    }
    for (int64_t na = n0; na < n1; na += mb) {
      const int64_t nimg = std::min(mb, n1 - na);  // images [na, na + nimg)
      for (int64_t g = 0; g < d.G; ++g) {
        for (int64_t m = 0; m < nimg; ++m) {
          const int64_t n = na + m;
          T* xpad = buf + m * img;  // (Cg, Hp, Wp)
          T* dyp = xpad + x_elems;  // (Kgp, lenr)
          pad_planes(xpad, x + (n * d.C + g * Cg) * d.H * d.W, Cg, d.H, d.W, Hp, Wp, d.PH,
                     d.PW);
          for (int64_t k = 0; k < Kg; ++k)  // dyp[k] (OH, Wp) <- dy[n, g*Kg + k] (OH, OW)
            kern.copy_rows(dyp + k * lenr, Wp, dy + (n * d.K + g * Kg + k) * L, d.OW, d.OH,
                           d.OW, -std::numeric_limits<T>::infinity());
        }
        for (int64_t k0 = 0; k0 < Kgp; k0 += dkb)  // tile: channels [k0, k0 + dkb)
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t t0 = 0; t0 < tp; t0 += dtb) {  // taps [t0, t0 + dtb)
              const direct_detail::DwRows<T> r{
                  acc + (((g * Kgp + k0) * Cg + c) * tp + t0) * VL, Cg * tp * VL,
                  buf + x_elems + k0 * lenr, lenr, img, buf + c * plane, img,
                  offs.data() + t0, lenr, nimg};
              dw_tile(r);
            }
      }
      if (db_q) add_db_partial(db_q, dy, na, na + nimg, d);
    }
  });
  run_tasks(d.K, d.K * Cg * taps * nq * VL >= (int64_t(1) << 15), [&](int64_t kk) {
    const int64_t g = kk / Kg, k = kk % Kg;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t t = 0; t < taps; ++t) {  // dw[kk, c, t] = sum_q sum_v part[q, g, k, c, t, v]
        const int64_t e = (((g * Kgp + k) * Cg + c) * tp + t) * VL;
        T s = 0;
        for (int64_t q = 0; q < nq; ++q)
          for (int64_t v = 0; v < VL; ++v) s += part[q * lanes + e + v];
        dw[(kk * Cg + c) * taps + t] = s;
      }
  });
}

#define CF_INSTANTIATE(T)                                                                    \
  template void forward_direct<T>(T*, const T*, const T*, const T*, const ConvDims&, bool);  \
  template void backward_data_direct<T>(T*, const T*, const T*, const ConvDims&);            \
  template void backward_weight_direct<T>(T*, T*, const T*, const T*, const ConvDims&);
CF_INSTANTIATE(float)
CF_INSTANTIATE(double)
#undef CF_INSTANTIATE

}  // namespace convforge::conv_impl
