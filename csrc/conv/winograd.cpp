// Winograd F(4x4, 3x3) convolution (CPU, float and double): forward and backward data of
// 3x3 / stride 1 / dilation 1 / one-group layers.
//
// Layouts: x (N, C, H, W), w (K, C, 3, 3), b (K,), y and dy (N, K, OH, OW); outputs are
// OVERWRITTEN. Any padding per side (top/left enter as offsets, bottom/right through OH/OW),
// any H, W: edge tiles read zeros outside the input and store only their valid part.
//
// Algorithm (Lavin & Gray 2016, interpolation points 0, +-1, +-2, inf). Each 4x4 output tile
// needs a 6x6 input patch d; per channel pair (k, c)
//   Y = A^T [ (G g G^T) .* (B^T d B) ] A          (B^T 6x6, G 6x3, A^T 4x6)
// so with U[e] = (G g G^T)[e] (36 matrices (C, K)), V[e] = (B^T d B)[e] (36 matrices
// (C, tiles)), the sum over c becomes 36 independent GEMMs M[e] (tiles, K) = V[e]^T U[e], and
// the output transform Y = A^T m A (+ bias, fused at the store) maps M back to 4x4 tiles.
// Multiplies per output: 36*C*K/16 = 2.25*C*K vs 9*C*K direct (4x fewer).
//   1. weights: U (36, C, K), transformed in T (winograd_weights; in double it cost more time
//      for no measurable gain in accuracy: the errors below are the same either way).
//   2. tiles are numbered across the batch (t = (n*TH + th)*TW + tw) and processed in chunks
//      of TB tiles (chunk_tiles(): 48, or 16 / 32 when V + M would pass kChunkBytes):
//      V (36, C, TB) = input transform of the chunk; M (36, TB, K) = 36 calls of gemm()
//      (gemm.hpp; tiles are the rows, so few tiles waste little of a register tile, and U,
//      the big operand, is packed from contiguous rows); output transform of M into y.
//   The transforms are vectorised over 16 tiles / channels and compiled per ISA
//   (winograd_kernel.inc, winograd_avx2.cpp, winograd_avx512.cpp).
// Groups: G == 1 only (grouped layers keep im2col GEMM; depthwise has its own direct path).
// Backward data (stride 1): dx = correlation of dy with the 180-degree rotated filters, K and
// C swapped, padding (2 - PH) top and (2 - PW) left (bottom/right follow from the output size
// H x W); it runs through the same machinery with U'[e] (C, K) = G rot(w[k, c]) G^T. A
// negative padding (PH > 2) just crops, so every padding is handled.
//
// Parallelism: with at least one chunk per thread, tasks are chunks (each thread owns its own V
// and M, sequential GEMMs; when there are fewer than 2 chunks per thread the chunks are cut
// smaller, to a multiple of the thread count, if they keep >= kMinOuterTiles tiles); otherwise,
// and where the filters outweigh a chunk's tiles (every chunk streams all of U: 128->128 at
// 8 px), the chunks run in turn and each stage is split over the threads (input transform by
// channels, the 36 GEMMs by e, output transform by channels). The chunking never changes a
// result: each tile is transformed alone, and each GEMM element is summed over C in the
// GEMM's depth blocking, fixed per ISA and dtype, whatever the number of rows (tiles). So
// results are bit-identical for any thread count; they differ between ISAs (FMA contraction),
// never between runs.
//
// Workspace per call: U (36*K*C elements; applicability caps it at kMaxWeightBytes) plus V and M
// per thread (about kChunkBytes, at least 16 tiles; buffers are grow-only per thread and kept
// between calls, like the other conv algorithms'): VGG-16 64->64 at 224x224 float32: U 0.6 MB + 0.9 MB per
// thread (48 tiles); 512->512 at 14x14: U 37.7 MB + 2.4 MB (one chunk of 16 tiles). float64 512->512
// (U 75 MB) is over the cap: not applicable, im2col GEMM runs it.
//
// Non-finite values: a NaN/inf anywhere in a 6x6 patch would reach every output of the 4x4
// tile (the transforms mix the patch), unlike direct convolution. So the kernels check on their
// way (forward and data: each tile's transformed outputs before the crop, in the output
// transform; weight: dw) and return false when a value was not finite (an inf/NaN input, or an
// overflow in the transforms); the dispatch (conv2d.cpp) then runs the exact path, which
// overwrites every output. A scan of x/dy and w before the call (what conv_algo_for_data()
// reports through the conv2d_algorithm binding) would cost a pass over the input, from memory.
//
// Accuracy (float32, He-scaled weights, normal x; max |err| vs the float64 reference divided by
// max |reference|; AVX2 machine): Winograd forward / backward data vs the im2col GEMM path
//   N=4  64->64  32px: 7.4e-6 / 6.9e-6 vs 6.5e-7 / 2.2e-7
//   N=8 256->256  8px: 1.5e-5 / 1.2e-5 vs 4.2e-7 / 3.6e-7
//   N=8 512->512  4px: 8.3e-6 / 9.9e-6 vs 3.5e-7 / 3.0e-7
//   N=1  64->64 224px: 7.9e-6 / 7.8e-6 vs 5.5e-7 / 2.2e-7
//   N=1 512->512 14px: 8.9e-6 / 1.1e-5 vs 3.6e-7 / 3.5e-7
// i.e. 15-35x the GEMM path's error (the transforms' factors up to 8 and 1/24 amplify
// rounding), yet 10-20x inside the test bound 16 eps sqrt(9C) (|ref| + max |ref|).
// Speed: faster than the im2col GEMM path on VGG-like 3x3 layers (forward and backward data;
// figures in bench/ and the commit log). It loses where few tiles must pay the per-call weight
// transform (36*C*K values, written and re-read: about memory bound, and with big weights as
// costly as the tiles themselves): winograd_preferred() keeps layers of fewer than 16 tiles and
// big weights on im2col GEMM.
#include "winograd.hpp"

#include <algorithm>
#include <atomic>

#include "convforge/checked.hpp"
#include "convforge/conv2d.hpp"
#include "convforge/cpu.hpp"
#include "convforge/gemm.hpp"
#include "partials.hpp"
#include "runtime/finite.hpp"
#include "runtime/isa.hpp"
#include "runtime/tasks.hpp"

// Baseline copy of the tile transforms (the AVX2 / AVX-512 copies live in winograd_avx2.cpp
// and winograd_avx512.cpp).
#define CF_ISA baseline
#define CF_VEC_BYTES 16
#include "winograd_kernel.inc"
#undef CF_VEC_BYTES
#undef CF_ISA

namespace convforge {
namespace {

using winograd_detail::kLanes;
using winograd_detail::Transforms;
using winograd_detail::WgDims;

constexpr int64_t kMaxWeightBytes = int64_t(48) << 20;  // cap on U (36*K*C elements)
constexpr int64_t kChunkBytes = int64_t(6) << 20;       // target V + M per chunk
constexpr int64_t kRowChunk = 48;     // forward / data: most tiles per chunk (the GEMMs' rows: a
                                      // multiple of the lanes and of the GEMM tile's 12 or 6 rows)
constexpr int64_t kDepthChunk = 64;   // weight: most tiles per chunk (the GEMMs' depth), and
constexpr int64_t kDepthAlign = 32;   // a multiple of this
constexpr int64_t kMinOuterTiles = 32;                  // fewest tiles of a per-thread chunk
constexpr int64_t kMinChannels = 16;                    // heuristic: C and K at least this,
constexpr int64_t kMinTiles = 16;                       // and at least this many tiles in the
constexpr int64_t kSmallWeights = 128 * 128;            // batch unless C*K is at most this
constexpr int64_t kWeightMinRatio = 12;                 // weight gradient: C*K/(C+K) at least

// Stride between the 36 matrices of U, V or M: n elements rounded up to 16 plus 16, so the
// 36 rows a transform touches at once never share an L1 set (a power-of-two stride would put
// them all in one) and every matrix stays 64-byte aligned.
int64_t matrix_stride(int64_t n) { return ceil_div(n, 16) * 16 + 16; }

// The one place the transforms' instruction set is chosen (as select_kernel() for gemm).
template <typename T>
Transforms<T> select_transforms() {
  namespace wd = winograd_detail;
  return select_isa(&wd::baseline::transforms<T>, &wd::avx2::transforms<T>,
                    &wd::avx512::transforms<T>);
}

// scratch<T, Tag> and run_tasks: runtime/tasks.hpp. Tags: weights 0, V 1, M 2, packed weights
// 5 (weight gradient: V 3, D 4).

// Tiles per chunk: V (36, C, TB) + M (36, K, TB) of about kChunkBytes. Forward and backward
// data (the tiles are the rows of the GEMMs): kRowChunk, or a smaller multiple of the lanes for
// very wide layers; a row count the GEMM's register tile divides leaves no padded rows. Weight
// (the tiles are the GEMMs' depth, `weight`): a multiple of kDepthAlign up to kDepthChunk.
// Never more than the batch's tiles (rounded up to the lanes); winograd_run may cut it smaller
// to feed every thread.
int64_t chunk_tiles(const WgDims& s, int64_t elem_bytes, bool weight) {
  const int64_t per_tile = 36 * (s.C + s.K) * elem_bytes;
  const int64_t align = weight ? kDepthAlign : kLanes, most = weight ? kDepthChunk : kRowChunk;
  const int64_t tb = std::clamp<int64_t>(kChunkBytes / per_tile / align * align, align, most);
  const int64_t total = s.N * s.TH * s.TW;
  return std::min(tb, ceil_div(total, kLanes) * kLanes);
}

// U (36, C, K) with U[e] at U + e * ld_u: the transformed filters (winograd_kernel.inc), rows
// c split over the threads. rotate: backward data (w is the layer's (K_layer, C_layer, 3, 3),
// here K = C_layer and C = K_layer).
template <typename T>
void winograd_weights(T* U, int64_t ld_u, const T* w, int64_t K, int64_t C, bool rotate) {
  const Transforms<T> tr = select_transforms<T>();
  constexpr int64_t kRows = 16;  // rows c per task (the transforms take at most 16)
  run_tasks(ceil_div(C, kRows), true, [&](int64_t q) {
    tr.weights(U, ld_u, w, K, C, rotate, q * kRows, std::min(C, (q + 1) * kRows));
  });
}

// out = the correlation described by s (winograd.hpp) with the transformed filters U; false
// when a tile's outputs were not all finite (output transform, winograd_kernel.hpp).
template <typename T>
bool winograd_run(T* out, const T* in, const T* U, int64_t ld_u, const T* bias,
                  const WgDims& s) {
  const Transforms<T> tr = select_transforms<T>();
  const int64_t total = s.N * s.TH * s.TW, threads = max_threads();
  int64_t TB = chunk_tiles(s, sizeof(T), false), chunks = ceil_div(total, TB);
  // Filters outweighing a chunk's tiles (36 C K against 36 TB (C + K) values): each chunk
  // streams all of U, so the threads share each chunk (inner mode, the GEMMs split by e)
  // rather than each streaming U for chunks of its own.
  const bool heavy = s.C * s.K > TB * (s.C + s.K);
  if (threads > 1 && chunks < 2 * threads && !heavy) {
    // Few chunks: cut the tiles into a multiple of the thread count unless that makes chunks
    // smaller than kMinOuterTiles (the chunk size never changes a result, see above).
    const int64_t tb = ceil_div(ceil_div(total, ceil_div(chunks, threads) * threads), kLanes) *
                       kLanes;
    if (tb >= kMinOuterTiles) {
      TB = std::min(TB, tb);
      chunks = ceil_div(total, TB);
    }
  }
  const int64_t ld_v = matrix_stride(s.C * TB);    // V (36, C, TB), V[e] at V + e * ld_v
  const int64_t ld_t = ceil_div(s.K, kLanes) * kLanes;  // row stride of M[e] (TB, K)
  const int64_t ld_m = matrix_stride(TB * ld_t);   // M (36, TB, ld_t), M[e] at M + e * ld_m
  constexpr int64_t kChanBlock = 16;               // channels per transform task (inner mode)
  std::atomic<bool> finite{true};                  // cleared by any task that saw an inf/NaN
  // U[e] packed once as the GEMMs' B operand (every chunk multiplies by it; gemm() would pack
  // it again for each chunk): Up[e] at Up + e * ld_p.
  const GemmDims ud{0, s.K, s.C, 0, /*ldb*/ s.K, 0, false, false, false};
  const int64_t ld_p = matrix_stride(gemm_packed_b_size<T>(s.C, s.K));
  T* Up = scratch<T, 5>(36 * ld_p);
  run_tasks(36, true, [&](int64_t e) { gemm_pack_b(Up + e * ld_p, U + e * ld_u, ud); });

  // One chunk: tiles [q*TB, q*TB + tb). inner: split each stage over the threads.
  const auto chunk = [&](int64_t q, bool inner, T* V, T* M) {
    const int64_t t0 = q * TB, tb = std::min(TB, total - t0);
    run_tasks(inner ? ceil_div(s.C, kChanBlock) : 1, inner, [&](int64_t cb) {
      const int64_t c0 = inner ? cb * kChanBlock : 0;
      const int64_t c1 = inner ? std::min(s.C, c0 + kChanBlock) : s.C;
      tr.input(V, ld_v, TB, in, s, c0, c1, t0, tb);  // V[:, c0:c1, :tb]
    });
    run_tasks(36, inner, [&](int64_t e) {  // M[e] (tb, K) = V[e]^T (tb, C) . U[e] (C, K)
      const GemmDims gd{tb, s.K, s.C, /*lda*/ TB, /*ldb*/ s.K, /*ldc*/ ld_t, true, false, false};
      gemm_packed_b(M + e * ld_m, V + e * ld_v, Up + e * ld_p, static_cast<const T*>(nullptr),
                    gd);
    });
    run_tasks(inner ? ceil_div(s.K, kChanBlock) : 1, inner, [&](int64_t kb) {
      const int64_t k0 = inner ? kb * kChanBlock : 0;
      const int64_t k1 = inner ? std::min(s.K, k0 + kChanBlock) : s.K;
      if (!tr.output(out, M, ld_m, ld_t, bias, s, k0, k1, t0, tb))  // out for k in [k0, k1)
        finite.store(false, std::memory_order_relaxed);
    });
  };

  if (threads <= 1 || (chunks >= threads && !heavy)) {  // tasks: chunks, one thread each
    run_tasks(chunks, true, [&](int64_t q) {
      chunk(q, false, scratch<T, 1>(36 * ld_v), scratch<T, 2>(36 * ld_m));
    });
  } else {  // few chunks: in turn, each stage parallel (buffers of the calling thread)
    T* V = scratch<T, 1>(36 * ld_v);
    T* M = scratch<T, 2>(36 * ld_m);
    for (int64_t q = 0; q < chunks; ++q) chunk(q, true, V, M);
  }
  return finite.load(std::memory_order_relaxed);
}

}  // namespace

// ---------------------------------------------------------------- applicability / heuristic

bool winograd_applicable(const ConvDims& d, int64_t elem_bytes) {
  return d.KH == 3 && d.KW == 3 && d.SH == 1 && d.SW == 1 && d.DH == 1 && d.DW == 1 &&
         d.G == 1 && d.N >= 1 && d.C >= 1 && d.K >= 1 && d.OH >= 1 && d.OW >= 1 &&
         product_within(kMaxWeightBytes, {36, d.K, d.C, elem_bytes});
}

bool winograd_preferred(const ConvDims& d, int64_t elem_bytes) {
  if (!winograd_applicable(d, elem_bytes)) return false;
  if (d.C < kMinChannels || d.K < kMinChannels) return false;
  // Tiles must be mostly valid: at least 8 of a tile's 16 outputs inside on average (the
  // multiplies per tile are 36 against 9 per valid output for a direct method).
  const int64_t tiles = ceil_div(d.OH, 4) * ceil_div(d.OW, 4);
  if (d.OH * d.OW < 8 * tiles) return false;
  // The weight transform (36*C*K, per call) must be amortised over enough tiles: against
  // im2col_gemm, 512->512 layers won with 16 tiles in the batch (14 px N=1, 4 px N=16) and lost
  // with 8 (8 px N=2).
  return d.N * tiles >= kMinTiles || d.C * d.K <= kSmallWeights;
}

bool winograd_weight_preferred(const ConvDims& d, int64_t elem_bytes) {
  // Per tile the two transforms cost about (C + K) and the GEMMs C*K: with few channels the
  // transforms dominate where direct_kvec is strong, on AVX-512 (N = 32, 1 thread, Xeon, since
  // the gather plan is computed once per lane block: 16->32 at 32 px 2.50 ms against
  // direct_kvec's 2.39; 32->32 at 32 px 3.05 against 4.51, 32->64 at 16 px 1.38 against 2.43;
  // before, on Zen 5, 32->32 lost, 3.6 against 2.9); with AVX2 winograd won all of them (4.1
  // against 6.3 ms at 32->32, 32 px).
  return winograd_preferred(d, elem_bytes) &&
         (current_isa() != Isa::avx512 || d.C * d.K >= kWeightMinRatio * (d.C + d.K));
}

// ---------------------------------------------------------------- public kernels

template <typename T>
bool winograd_conv2d_forward(T* y, const T* x, const T* w, const T* b, const ConvDims& d,
                             bool relu) {
  const WgDims s{d.N, d.C, d.H, d.W, d.K, d.OH, d.OW, d.PH, d.PW, ceil_div(d.OH, 4),
                 ceil_div(d.OW, 4), relu};
  const int64_t ld_u = matrix_stride(d.K * d.C);
  T* U = scratch<T, 0>(36 * ld_u);
  winograd_weights(U, ld_u, w, d.K, d.C, false);
  return winograd_run(y, x, U, ld_u, b, s);
}

template <typename T>
bool winograd_conv2d_backward_data(T* dx, const T* dy, const T* w, const ConvDims& d) {
  // dx (N, C, H, W) = correlation of dy (N, K, OH, OW) with rot180(w) (C, K, 3, 3), top/left
  // padding 2 - PH / 2 - PW; the output size H x W fixes the bottom/right padding.
  const WgDims s{d.N, d.K, d.OH, d.OW, d.C, d.H, d.W, 2 - d.PH, 2 - d.PW, ceil_div(d.H, 4),
                 ceil_div(d.W, 4)};
  const int64_t ld_u = matrix_stride(d.K * d.C);
  T* U = scratch<T, 0>(36 * ld_u);
  winograd_weights(U, ld_u, w, d.C, d.K, true);
  return winograd_run(dx, dy, U, ld_u, static_cast<const T*>(nullptr), s);
}

// Weight gradient. With the forward Y = A^T [U .* V] A per tile, the loss sum dY .* Y =
// sum_e (A dY A^T)[e] U[e] V[e], so per tile dw = G^T [ (A dY A^T) .* (B^T d B) ] G (exact in
// exact arithmetic: the correlation of the 6x6 patch d with the 4x4 dY). Summed over tiles the
// product is 36 GEMMs M[e] (K, C) = sum_t D[e] (K, t) V[e]^T (t, C), D the transformed dY;
// then dw[k, c] = G^T M[., k, c] G. Multiplies per weight and tile: 36 against 9*16 direct.
// The batch is cut into dw_chunks() image chunks (run_dw_chunks, partials.hpp), each summing its
// tiles in sub-chunks of chunk_tiles() (fixed by the shapes: the GEMMs' depth blocking, and so
// the sums, never depend on the thread count) into its own M, added in chunk order at the end.
template <typename T>
bool winograd_conv2d_backward_weight(T* dw, T* db, const T* dy, const T* x, const ConvDims& d) {
  using conv_impl::add_db_partial;
  const Transforms<T> tr = select_transforms<T>();
  const WgDims s{d.N, d.C, d.H, d.W, d.K, d.OH, d.OW, d.PH, d.PW, ceil_div(d.OH, 4),
                 ceil_div(d.OW, 4)};
  const WgDims sg{d.N, d.K, d.OH, d.OW, d.C, d.OH, d.OW, 0, 0, s.TH, s.TW};  // dy as the plane
  const int64_t tpi = s.TH * s.TW, TB = chunk_tiles(s, sizeof(T), true);
  const int64_t ld_v = matrix_stride(s.C * TB), ld_d = matrix_stride(s.K * TB);
  const int64_t ld_k = ceil_div(s.C, kLanes) * kLanes;  // row stride of M[e] (K, C)
  const int64_t ld_m = matrix_stride(s.K * ld_k);        // M (36, K, ld_k), M[e] at M + e*ld_m
  constexpr int64_t kChanBlock = 16;                     // channels per transform task (inner)
  const int64_t nq = conv_impl::dw_chunks(d, 36 * ld_m);
  T* part = conv_impl::run_dw_chunks(
      db, d, nq, 36 * ld_m,
      [&](int64_t, int64_t n0, int64_t n1, T* M, double* db_q, bool inner) {
        if (db_q) add_db_partial(db_q, dy, n0, n1, d);
        T* V = scratch<T, 3>(36 * ld_v);  // V (36, C, TB): B^T d B of x's patches
        T* D = scratch<T, 4>(36 * ld_d);  // D (36, K, TB): A g A^T of dy's patches
        for (int64_t t0 = n0 * tpi; t0 < n1 * tpi; t0 += TB) {  // tiles [t0, t0 + tb)
          const int64_t tb = std::min(TB, n1 * tpi - t0);
          run_tasks(inner ? ceil_div(s.C, kChanBlock) : 1, inner, [&](int64_t cb) {
            const int64_t c0 = inner ? cb * kChanBlock : 0;
            tr.input(V, ld_v, TB, x, s, c0, inner ? std::min(s.C, c0 + kChanBlock) : s.C, t0, tb);
          });
          run_tasks(inner ? ceil_div(s.K, kChanBlock) : 1, inner, [&](int64_t kb) {
            const int64_t k0 = inner ? kb * kChanBlock : 0;
            tr.grad(D, ld_d, TB, dy, sg, k0, inner ? std::min(s.K, k0 + kChanBlock) : s.K, t0,
                    tb);
          });
          run_tasks(36, inner, [&](int64_t e) {  // M[e] (K, C) (+)= D[e] (K, tb) . V[e]^T
            const GemmDims gd{s.K, s.C, tb, /*lda*/ TB, /*ldb*/ TB, /*ldc*/ ld_k, false, true,
                              t0 != n0 * tpi};
            gemm(M + e * ld_m, D + e * ld_d, V + e * ld_v, static_cast<const T*>(nullptr), gd,
                 false);
          });
        }
      });
  run_tasks(36, true, [&](int64_t e) {  // part[0] += part[q], q = 1 .. nq-1 in order
    T* m0 = part + e * ld_m;
    for (int64_t q = 1; q < nq; ++q) {
      const T* mq = part + q * 36 * ld_m + e * ld_m;
      for (int64_t i = 0; i < s.K * ld_k; ++i) m0[i] += mq[i];
    }
  });
  constexpr int64_t kRows = 4;  // output channels k per task
  run_tasks(ceil_div(s.K, kRows), true, [&](int64_t q) {
    tr.wgrad_out(dw, part, ld_m, ld_k, s.C, q * kRows, std::min(s.K, (q + 1) * kRows));
  });
  // Each m[e] of M is a term of a corner of G^T m G (G's columns 0 and 2 cover its 6 rows), so
  // an inf/NaN in the transformed x or dy (carried by the GEMMs into M) leaves a dw not finite.
  return all_finite(dw, d.K * d.C * 9);
}

template bool winograd_conv2d_forward<float>(float*, const float*, const float*, const float*,
                                             const ConvDims&, bool);
template bool winograd_conv2d_forward<double>(double*, const double*, const double*,
                                              const double*, const ConvDims&, bool);
template bool winograd_conv2d_backward_data<float>(float*, const float*, const float*,
                                                   const ConvDims&);
template bool winograd_conv2d_backward_data<double>(double*, const double*, const double*,
                                                    const ConvDims&);

template bool winograd_conv2d_backward_weight<float>(float*, float*, const float*, const float*,
                                                     const ConvDims&);
template bool winograd_conv2d_backward_weight<double>(double*, double*, const double*,
                                                      const double*, const ConvDims&);

}  // namespace convforge
