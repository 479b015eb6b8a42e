// The conv2d algorithm choice, all of it: choose_conv_algo() (the heuristic, from the shapes, the
// CPU's ISA and the exact-mode switch), conv_algo_for_data() (the one data-dependent rule: inf or
// NaN inputs move winograd, direct_small and direct_batch's forward to the exact path),
// conv_algo_applies() (which algorithms can run a problem), the algorithm and direction names,
// and the constants only the heuristic reads. The block-size constants the algorithm files
// share with it are in select.hpp. Nothing here depends on the thread count.
#include <algorithm>
#include <atomic>
#include <cstdint>

#include "conv2d_direct.hpp"
#include "convforge/checked.hpp"
#include "convforge/conv2d.hpp"
#include "convforge/cpu.hpp"
#include "winograd.hpp"
#include "partials.hpp"
#include "runtime/finite.hpp"
#include "select.hpp"

namespace convforge {

namespace conv_impl {

bool is_pointwise(const ConvDims& d) {
  return d.KH == 1 && d.KW == 1 && d.SH == 1 && d.SW == 1 && d.PH == 0 && d.PW == 0 &&
         d.OH == d.H && d.OW == d.W;
}

}  // namespace conv_impl

namespace {

using namespace conv_impl;  // NOLINT(build/namespaces): the shared constants and helpers

constexpr int64_t kMaxBlockBytes = int64_t(1) << 30; // smallest block above this: naive
constexpr int64_t kDirectMaxChannels = 16;           // direct_small picked up to this many Ci
constexpr int64_t kDirectLimitChannels = 64;         // direct_small applies up to this many Ci
constexpr int64_t kKvecDwMinPositions = 1024;        // direct_kvec dw on small planes: at least
constexpr int64_t kKvecDwMaxChannels = 128;          // these positions, at most these channels

std::atomic<bool> g_exact{false};  // set_conv_exact

// Smallest blocks the im2col path needs: forward (C*KH*KW, kMinCols), data (KH*KW, OH*OW).
// Sizes in checked arithmetic (checked.hpp): an overflowing size does not fit.
bool im2col_fits(const ConvDims& d, int64_t elem_bytes) {
  const int64_t taps = d.KH * d.KW, L = d.OH * d.OW;  // both fit: make_conv_dims
  return product_within(kMaxBlockBytes, {d.C, taps, std::min(kMinCols, L), elem_bytes}) &&
         product_within(kMaxBlockBytes, {taps, L, elem_bytes});
}

// A zero-padded copy of the input (direct_small, direct_kvec) must stay within the scratch
// budget and in proportion to the data: at most 4x the input plus output planes, plus 64 Ki
// elements. Huge padding, stride or dilation with a small output (stride = padding = 2**61 on
// a 5x6 image: 3x3 outputs) would otherwise allocate a plane of mostly zeros, or overflow; such
// problems run on im2col (workspace bounded by the output) or naive.
bool padded_plane_ok(int64_t plane, int64_t channels, const ConvDims& d, int64_t elem_bytes) {
  const int64_t data = add_sat(mul_sat(d.H, d.W), mul_sat(d.OH, d.OW));
  return plane <= add_sat(mul_sat(4, data), int64_t(1) << 16) &&
         product_within(kMaxBlockBytes, {channels, plane, elem_bytes});
}

// Input channels per group the direct kernel loops over in a direction (forward: Cg, data: Kg).
int64_t direct_channels(const ConvDims& d, ConvDir dir) {
  return dir == ConvDir::data ? d.Kg() : d.Cg();
}

// The direct kernel's padded plane and one output tile must fit the scratch budget.
bool direct_fits(const ConvDims& d, ConvDir dir, int64_t elem_bytes) {
  const int64_t ci = direct_channels(d, dir);
  const int64_t ho = dir == ConvDir::data ? d.H : d.OH, wo = dir == ConvDir::data ? d.W : d.OW;
  const int64_t plane = mul_sat(add_sat(ho, mul_sat(d.KH - 1, d.DH)),
                                add_sat(wo, mul_sat(d.KW - 1, d.DW)));
  return padded_plane_ok(plane, ci + 8, d, elem_bytes);
}

// The channel-vector kernel's padded plane (tiles of at most 24 rows and 8 columns) fits.
bool kvec_fits(const ConvDims& d, int64_t elem_bytes) {
  const int64_t hq = add_sat(mul_sat(d.OH + 24, d.SH), add_sat(mul_sat(d.KH - 1, d.DH), 1));
  const int64_t wq = add_sat(mul_sat(d.OW + 8, d.SW), add_sat(mul_sat(d.KW - 1, d.DW), 1));
  return padded_plane_ok(mul_sat(hq, wq), d.Cg(), d, elem_bytes);
}

// Images per direct_batch tile (its block) for a batch of N.
int64_t batch_block(int64_t elem_bytes, int64_t N) {
  if (elem_bytes == 4) {
    const direct_detail::Kernel<float> k = direct_detail::direct_kernel<float>();
    return direct_detail::batch_vectors(k, N) * k.vl;
  }
  const direct_detail::Kernel<double> k = direct_detail::direct_kernel<double>();
  return direct_detail::batch_vectors(k, N) * k.vl;
}

// direct_kvec for the weight gradient: float with a vector ISA, a whole tile of output channels
// (the kernel's lanes: one vector where Kg fits in one, else two: 8 or 16 with AVX2, 16 or 32
// with AVX-512), taps that fill the kernel's tap tile (5 with AVX2, 9 with AVX-512: 3x3, 5x5,
// 7x7 waste at most 1/8; a 3x1 kernel would waste 2/3 of it and lose to im2col_gemm_batch), and
// either rows of at least 16 outputs, or few input channels (where direct_small's rows would
// carry KW-1 junk columns), or at most kKvecDwMaxChannels input channels with at least
// kKvecDwMinPositions positions summed per dw element (N*OH*OW): on 4-8 px planes the per-row
// overheads lose to im2col_gemm_batch's deep GEMMs when the batch gives few positions or the
// channels are many (8 images of 512 channels at 4 px: kvec 1.3x slower; 256 channels at 8 px:
// even with AVX-512, 4-11% slower with AVX2), and win on 32 images of 64-128 channels at 8 px
// (1.4x faster with AVX-512, 1.14x with AVX2, 1 and 2 threads, Zen 5). Any stride. Half a tile
// or more also pays where direct_small's rows would carry 10% or more junk columns on 2-16
// input channels (Zen 4, 1 thread, kvec against direct_small: LeNet C3 0.43 against 0.75 ms
// with AVX-512; 6->12 5x5 at 14 px 0.55 against 1.04, 8->12 5x5 at 28 px 2.63 against 4.35
// with AVX2), not where they would carry fewer (3->8 3x3 at 32 px, 32 of 34 columns: 0.37
// against 0.28 with AVX-512) or on one input channel (1->20 5x5 at 28 px: 0.51 against 0.45;
// Xeon).
bool kvec_weight_preferred(const ConvDims& d, int64_t elem_bytes) {
  const direct_detail::Kernel<float> kern =
      direct_detail::kvec_dw_kernel<float>(d.Kg(), d.KH * d.KW);
  const int64_t taps = d.KH * d.KW, padded = ceil_div(taps, kern.kvdw_tb) * kern.kvdw_tb;
  const bool many_positions =
      d.Cg() <= kKvecDwMaxChannels && d.N * d.OH * d.OW >= kKvecDwMinPositions;
  const bool rows_pay = d.OW >= 16 || d.Cg() <= kDirectMaxChannels || many_positions;
  const bool junk_rows = 10 * d.OW < 9 * (d.OW + (d.KW - 1) * d.DW);
  const int64_t lanes = direct_detail::kvec_dw_vectors(kern, d.Kg()) * kern.vl;
  const bool half_tile = 2 * d.Kg() >= lanes &&
                         d.Cg() >= 2 && d.Cg() <= kDirectMaxChannels && junk_rows;
  return elem_bytes == 4 && current_isa() != Isa::baseline &&
         (d.Kg() >= lanes || half_tile) && 8 * (padded - taps) <= taps && rows_pay &&
         conv_algo_applies(ConvAlgo::direct_kvec, ConvDir::weight, d, elem_bytes);
}

// direct_kvec forward for a stride-1 layer on few input channels (instead of direct_small):
// when the output channels fill kvec's vector lanes at least 1.2x better than direct_small's
// rows are filled with valid columns (it computes OW + (KW-1)*DW columns per row, keeps OW),
// and span more than one vector: with one, each multiply-add needs a broadcast load of its own
// and kvec runs at the load ports' pace (lanes: those of kvec_kernel, whose AVX2 tiles a narrow
// AVX-512 CPU runs for one 512-bit vector of channels). LeNet C3 (16 channels, 10 of 14
// columns) gains with AVX2 (two vectors; also on Zen 4's AVX-512, 0.34 against direct_small's
// 0.43 ms) and loses with AVX-512 (one, Xeon);
// VGG 3->64 at 32 px (32 of 34 columns) and LeNet C1 (6 channels of 8 lanes) are faster with
// direct_small.
bool kvec_forward_preferred(const ConvDims& d, int64_t elem_bytes) {
  const int64_t vl = elem_bytes == 4 ? direct_detail::kvec_kernel<float>(d.Kg()).vl
                                     : direct_detail::kvec_kernel<double>(d.Kg()).vl;
  const double lanes = double(d.Kg()) / double(ceil_div(d.Kg(), vl) * vl);
  const double cols = double(d.OW) / double(d.OW + (d.KW - 1) * d.DW);
  return current_isa() != Isa::baseline && d.Kg() > vl && lanes >= 1.2 * cols &&
         conv_algo_applies(ConvAlgo::direct_kvec, ConvDir::forward, d, elem_bytes);
}

// direct_batch for the data gradient of a stride-1 small-channel layer (instead of
// direct_small): when direct_small's padded correlation would multiply mostly zeros. It
// computes H x (W + (KW-1)*DW) positions with every tap where OH*OW positions x taps carry
// data; direct_batch pays only those, in lanes of images (used N / N rounded up to the block,
// batch_block()).
// direct_batch wins at low useful fractions (LeNet C3 N=64: 0.40; 12 px from 10 px 3x3
// 16->16: 0.60) and loses at high ones (32 px from 28 px 5x5 on 3 channels: 0.68; 'same' 5x5
// on 28 px: 0.88).
bool batch_data_preferred(const ConvDims& d, int64_t elem_bytes) {
  const int64_t blk = batch_block(elem_bytes, d.N);
  const double lanes = double(d.N) / double(ceil_div(d.N, blk) * blk);
  const double useful = double(d.OH * d.OW) / double(d.H * (d.W + (d.KW - 1) * d.DW));
  return d.N >= blk && useful < 0.6 * lanes &&
         conv_algo_applies(ConvAlgo::direct_batch, ConvDir::data, d, elem_bytes);
}

// direct_batch for the weight gradient of a layer on one input channel (instead of
// direct_small): its tiles multiply channels x taps of that one channel in lanes of images, every
// load a whole aligned vector, no junk columns, no padded taps (LeNet C1, Zen 4: 0.26 against
// direct_small's 0.30 ms at 1 thread with AVX-512, 0.34 against 0.61 with AVX2; 1->20 5x5 at
// 28 px, N=32: 0.30 against 0.36). Only when the batch fills the image lanes (N=8 of 16 lanes:
// 0.059 against direct_kvec's 0.056 ms) and there is no padding (it reads only valid taps).
// With more input channels direct_small and direct_kvec win (3->8 5x5 at 32 px: 0.89 against
// 0.80).
bool batch_weight_preferred(const ConvDims& d, int64_t elem_bytes) {
  const int64_t vl = elem_bytes == 4 ? direct_detail::direct_kernel<float>().vl
                                     : direct_detail::direct_kernel<double>().vl;
  return d.Cg() == 1 && current_isa() != Isa::baseline &&
         4 * d.N >= 3 * ceil_div(d.N, vl) * vl &&
         conv_algo_applies(ConvAlgo::direct_batch, ConvDir::weight, d, elem_bytes);
}

}  // namespace

bool conv_algo_applies(ConvAlgo a, ConvDir dir, const ConvDims& d, int64_t elem_bytes) {
  switch (a) {
    case ConvAlgo::naive: return true;
    case ConvAlgo::direct_depthwise: return d.Cg() == 1;
    case ConvAlgo::gemm_pointwise: return is_pointwise(d);
    case ConvAlgo::im2col_gemm: return im2col_fits(d, elem_bytes);
    case ConvAlgo::direct_small:
      return d.SH == 1 && d.SW == 1 && direct_channels(d, dir) <= kDirectLimitChannels &&
             (dir != ConvDir::weight || d.Kg() <= kDirectLimitChannels) &&
             direct_fits(d, dir, elem_bytes);
    case ConvAlgo::im2col_gemm_batch: return dir == ConvDir::weight && im2col_fits(d, elem_bytes);
    case ConvAlgo::winograd: return winograd_applicable(d, elem_bytes);
    case ConvAlgo::direct_kvec:
      return dir != ConvDir::data && kvec_fits(d, elem_bytes);
    case ConvAlgo::direct_batch: {  // one block of images of the source, transposed
      if (dir == ConvDir::weight)  // no padding: every tap of every position lies inside x;
        // x and dy transposed whole (N rounded up to a vector, channels up to a tile per group)
        return d.PH == 0 && d.PW == 0 && (d.OH - 1) * d.SH + (d.KH - 1) * d.DH < d.H &&
               (d.OW - 1) * d.SW + (d.KW - 1) * d.DW < d.W &&
               product_within(kMaxBlockBytes, {add_sat(mul_sat(d.C, d.H * d.W),
                                                       mul_sat(d.K + 8 * d.G, d.OH * d.OW)),
                                               add_sat(d.N, 16), elem_bytes});
      const bool data = dir == ConvDir::data;  // source dy (Kg, OH, OW), else x (Cg, H, W)
      return product_within(kMaxBlockBytes, {data ? d.Kg() : d.Cg(), data ? d.OH : d.H,
                                             data ? d.OW : d.W, batch_block(elem_bytes, d.N),
                                             elem_bytes});
    }
    case ConvAlgo::kCount: break;
  }
  return false;
}

// The heuristic (measured on 2-core Zen 1/Zen 3/Zen 4 machines and an AVX-512 Xeon against
// the alternatives, see the commit log):
//   depthwise (Cg == 1 with G > 1) and pointwise shapes have their own paths in every
//     direction (a single-channel input with G == 1, like LeNet's first layer, does not count
//     as depthwise: its dw would be K plane-sized dot products on one thread each);
//   weight, float with AVX2 or AVX-512, a whole channel tile, taps filling the tap tile, rows
//     >= 16 wide, few input channels or many summed positions: direct_kvec
//     (kvec_weight_preferred(); it beat
//     im2col_gemm_batch on VGG layers with AVX-512 at 1 and 2 threads, and with AVX2
//     direct_small on LeNet C3 and VGG 3->64 and im2col_gemm on VGG 64@32 and 7x7/2 RGB);
//   stride 1, at most kDirectMaxChannels input channels of that direction (forward and
//     weight Cg, data Kg; data also needs Cg >= 2): direct_small, except forward where the
//     output channels fill more than one of direct_kvec's vectors clearly better than
//     direct_small's rows are filled with valid columns (kvec_forward_preferred(): LeNet C3
//     with AVX2), data where the
//     padded correlation would multiply mostly zeros (batch_data_preferred(): LeNet C3) and
//     weight on one input channel (batch_weight_preferred(): LeNet C1): direct_batch;
//   3x3 stride-1 layers with enough channels and tiles: winograd (winograd_preferred() in
//     winograd.cpp holds the rule); the weight gradient on AVX-512 with more channels
//     (winograd_weight_preferred(), checked first) or where direct_kvec did not apply;
//   weight: im2col_gemm_batch once there are at least 2 images (chunks run in parallel and
//     each GEMM is deep), else im2col_gemm (channel-block tasks, GEMMs split over threads);
//   forward, strided, at most kDirectMaxChannels input channels per group: direct_kvec
//     (faster than im2col_gemm on 7x7/2 on RGB at 224 px with AVX-512 and AVX2);
//   im2col_gemm otherwise, naive when even one im2col block would be too big.
// Exact mode (set_conv_exact) skips winograd. Data-dependent exceptions: conv_algo_for_data below.
ConvAlgo choose_conv_algo(const ConvDims& d, int64_t elem_bytes, ConvDir dir) {
  if (d.Cg() == 1 && d.G > 1) return ConvAlgo::direct_depthwise;
  if (is_pointwise(d)) {
    if (dir == ConvDir::weight && d.N >= 2) return ConvAlgo::im2col_gemm_batch;
    return ConvAlgo::gemm_pointwise;
  }
  if (!im2col_fits(d, elem_bytes)) {
    const ConvAlgo direct = ConvAlgo::direct_small;
    return conv_algo_applies(direct, dir, d, elem_bytes) ? direct : ConvAlgo::naive;
  }
  if (dir == ConvDir::weight && !conv_exact() && winograd_weight_preferred(d, elem_bytes))
    return ConvAlgo::winograd;  // winograd.cpp
  if (dir == ConvDir::weight && kvec_weight_preferred(d, elem_bytes))
    return ConvAlgo::direct_kvec;
  // data with one output plane per group (Cg == 1): one accumulator row per tile, im2col wins.
  if (direct_channels(d, dir) <= kDirectMaxChannels && (dir != ConvDir::data || d.Cg() >= 2) &&
      conv_algo_applies(ConvAlgo::direct_small, dir, d, elem_bytes)) {
    if (dir == ConvDir::forward && kvec_forward_preferred(d, elem_bytes))
      return ConvAlgo::direct_kvec;
    if (dir == ConvDir::data && batch_data_preferred(d, elem_bytes))
      return ConvAlgo::direct_batch;
    if (dir == ConvDir::weight && batch_weight_preferred(d, elem_bytes))
      return ConvAlgo::direct_batch;
    return ConvAlgo::direct_small;
  }
  // Winograd where its weight-gradient rule (AVX-512) left the layer to a direct_kvec that does
  // not apply (fewer output channels than its tile: 32->16 at 16 px, N=32, 0.78 ms against
  // im2col_gemm_batch's 3.04; 64->16 at 8 px, N=8, 0.09 against 0.52).
  if (!conv_exact() && winograd_preferred(d, elem_bytes)) return ConvAlgo::winograd;
  if (dir == ConvDir::weight && d.N >= 2) return ConvAlgo::im2col_gemm_batch;
  // Strided layers on few input channels (a 7x7/2 first layer on RGB): the im2col matrix
  // (C*KH*KW rows of OH*OW) costs more than the GEMM it feeds.
  if (dir == ConvDir::forward && d.Cg() <= kDirectMaxChannels && (d.SH > 1 || d.SW > 1) &&
      conv_algo_applies(ConvAlgo::direct_kvec, dir, d, elem_bytes))
    return ConvAlgo::direct_kvec;
  return ConvAlgo::im2col_gemm;
}

const char* conv_algo_name(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::naive: return "naive";
    case ConvAlgo::direct_depthwise: return "direct_depthwise";
    case ConvAlgo::gemm_pointwise: return "gemm_pointwise";
    case ConvAlgo::im2col_gemm: return "im2col_gemm";
    case ConvAlgo::direct_small: return "direct_small";
    case ConvAlgo::im2col_gemm_batch: return "im2col_gemm_batch";
    case ConvAlgo::winograd: return "winograd";
    case ConvAlgo::direct_kvec: return "direct_kvec";
    case ConvAlgo::direct_batch: return "direct_batch";
    case ConvAlgo::kCount: break;
  }
  return "?";
}

const char* conv_dir_name(ConvDir dir) {
  switch (dir) {
    case ConvDir::forward: return "forward";
    case ConvDir::data: return "data";
    default: return "weight";
  }
}

void set_conv_exact(bool enabled) { g_exact.store(enabled, std::memory_order_relaxed); }
bool conv_exact() { return g_exact.load(std::memory_order_relaxed); }

// Winograd's transforms mix every input of a 6x6 patch into all 16 outputs of its tile, so one
// inf/NaN in x/dy or w reaches outputs the exact computation leaves finite. direct_small
// multiplies dy's zero padding by w (data) and x's junk columns by dy's zero columns (weight): an
// inf/NaN in w (data) or x (weight) makes NaN there; direct_batch's forward skips x's zero
// padding, which the reference multiplies by w, so an inf/NaN in w would leave finite what the
// reference makes NaN. Every other algorithm sums exactly the reference's products
// (direct_kvec reads only valid positions). The exact path replacing them:
// the im2col GEMM, naive when an im2col block would not fit.
ConvAlgo exact_conv_algo(ConvDir dir, const ConvDims& d, int64_t elem_bytes) {
  if (!im2col_fits(d, elem_bytes)) return ConvAlgo::naive;
  return dir == ConvDir::weight && d.N >= 2 ? ConvAlgo::im2col_gemm_batch : ConvAlgo::im2col_gemm;
}

template <typename T>
ConvAlgo conv_algo_for_data(ConvAlgo a, ConvDir dir, const ConvDims& d, const T* in, const T* w,
                            bool winograd_checks) {
  const bool wg = a == ConvAlgo::winograd && !winograd_checks, ds = a == ConvAlgo::direct_small;
  const bool bf = a == ConvAlgo::direct_batch && dir == ConvDir::forward;
  if (!wg && !ds && !bf) return a;
  const int64_t dy_size = d.N * d.K * d.OH * d.OW;
  const int64_t in_size = dir == ConvDir::data ? dy_size : d.N * d.C * d.H * d.W;
  // w: the filters (forward, data) or dy (weight: winograd's transforms mix dy's patches too)
  const int64_t w_size = dir == ConvDir::weight ? dy_size : d.K * d.Cg() * d.KH * d.KW;
  const bool check_in = wg || (ds && dir == ConvDir::weight);
  const bool check_w = wg || bf || (ds && dir == ConvDir::data);
  if ((!check_in || all_finite(in, in_size)) && (!check_w || all_finite(w, w_size))) return a;
  return exact_conv_algo(dir, d, sizeof(T));
}

template ConvAlgo conv_algo_for_data<float>(ConvAlgo, ConvDir, const ConvDims&, const float*,
                                            const float*, bool);
template ConvAlgo conv_algo_for_data<double>(ConvAlgo, ConvDir, const ConvDims&, const double*,
                                             const double*, bool);

}  // namespace convforge
