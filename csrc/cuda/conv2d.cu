// conv2d.cu: 2-D convolution (cross-correlation), forward and backward, for the CuPy backend.
//
// Layouts (all C-contiguous): x (N, C, H, W), w (K, C/G, KH, KW) (OIHW), b (K,),
// y and dy (N, K, OH, OW). With Cg = C/G, Kg = K/G and g = k / Kg (the group of channel k):
//   y[n,k,oh,ow] = b[k] + sum_{c<Cg, kh, kw} w[k,c,kh,kw] * x[n, g*Cg+c, ih, iw],
//   ih = oh*SH - PH + kh*DH,  iw = ow*SW - PW + kw*DW   (x is zero outside (H, W): padding).
// PH/PW are the top/left padding; bottom/right padding only shows in OH/OW.
//
// Kernels (T = float or double; accumulation in T; every output is overwritten; no atomics, so
// all results are deterministic):
//   conv2d_forward_*         implicit GEMM per group: Y_g (Kg, P) = W_g (Kg, R) . X_g (R, P) with
//                            P = N*OH*OW output pixels and R = Cg*KH*KW taps; X_g is the im2col
//                            matrix, read straight from x. One block per 64x64 tile of Y_g,
//                            looping over R in chunks of 16 staged in shared memory; each thread
//                            owns a 4x4 register tile. Bias fused.
//   conv2d_forward_naive_*   one thread per y element (for small Kg, where a 64-channel tile is
//                            mostly idle, and as a second reference for the tiled kernel).
//   conv2d_backward_data_*   one thread per dx element; gathers over the (kh, kw, k) that read it.
//   conv2d_backward_weight_* one block per dw element: reduction over N*OH*OW (thread-strided,
//                            then a fixed-order shared-memory tree).
//   conv2d_backward_bias_*   one block per k, same reduction over dy[:, k].
//
// Entry points take outputs first, then inputs, then the dims N C H W K KH KW SH SW PH PW DH DW
// OH OW G as long long.
#include "common.cuh"

#define CF_TM 64  // output channels per forward tile
#define CF_TP 64  // output pixels per forward tile
#define CF_TR 16  // reduction taps per shared-memory chunk
// The forward tile kernel assumes CF_THREADS == 256 == 16 x 16 threads, 4 x 4 outputs each.

// ------------------------------------------------------------------------------ forward, tiled

template <typename T>
__device__ void conv2d_forward_tiled(T* __restrict__ y, const T* __restrict__ x,
                                     const T* __restrict__ w, const T* __restrict__ b,
                                     const ConvDims d) {
  // y: (N, K, OH, OW) out; x: (N, C, H, W); w: (K, Cg, KH, KW); b: (K,) or null.
  __shared__ T ws[CF_TR][CF_TM + 1];  // ws[r][m] = W_g[m0+m, r0+r]   (+1: no bank conflicts)
  __shared__ T xs[CF_TR][CF_TP];      // xs[r][p] = X_g[r0+r, p0+p]
  const i64 Cg = d.C / d.G, Kg = d.K / d.G;
  const i64 KK = d.KH * d.KW, R = Cg * KK;
  const i64 OHW = d.OH * d.OW, P = d.N * OHW;
  const i64 tiles_m = (Kg + CF_TM - 1) / CF_TM, tiles_p = (P + CF_TP - 1) / CF_TP;
  const int t = threadIdx.x;
  const int tx = t % 16, ty = t / 16;  // this thread's outputs: m = ty + 16*i, p = tx + 16*j
  const int lp = t % CF_TP;            // pixel this thread stages into xs (rows t/64 + 4*l)
  const int lr = t % CF_TR;            // tap this thread stages into ws (rows t/16 + 16*l)

  // tile: (G, tiles_m, tiles_p) flattened
  CF_BLOCK_STRIDE(tile, d.G * tiles_m * tiles_p) {
    const i64 g = tile / (tiles_m * tiles_p);
    const i64 m0 = (tile / tiles_p) % tiles_m * CF_TM;
    const i64 p0 = tile % tiles_p * CF_TP;

    // The staged pixel p0+lp is fixed for the whole tile: decode it once.
    const i64 p = p0 + lp;
    const bool p_ok = p < P;
    i64 n = 0, oh = 0, ow = 0;
    if (p_ok) {
      n = p / OHW;
      oh = p % OHW / d.OW;
      ow = p % d.OW;
    }
    const i64 ih0 = oh * d.SH - d.PH, iw0 = ow * d.SW - d.PW;
    const T* x_ng = x + (n * d.C + g * Cg) * d.H * d.W;  // x_ng: x[n, g*Cg:(g+1)*Cg] (Cg, H, W)
    const T* w_t = w + (g * Kg + m0) * R;                 // w_t: w rows k = g*Kg+m0.. (., R)

    T acc[4][4];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) acc[i][j] = T(0);

    // r0: chunk of R
    for (i64 r0 = 0; r0 < R; r0 += CF_TR) {
      // ws (TR, TM) <- W_g[m0:m0+TM, r0:r0+TR], zero outside (Kg, R)
      for (int l = 0; l < 4; ++l) {
        const int m = t / CF_TR + 16 * l;
        const i64 r = r0 + lr;
        ws[lr][m] = (m0 + m < Kg && r < R) ? w_t[m * R + r] : T(0);
      }
      // xs (TR, TP) <- X_g[r0:r0+TR, p0:p0+TP], zero outside (R, P) and in the padding
      for (int l = 0; l < 4; ++l) {
        const int rr = t / CF_TP + 4 * l;
        const i64 r = r0 + rr;
        T v = T(0);
        if (p_ok && r < R) {
          const i64 c = r / KK, kh = r % KK / d.KW, kw = r % d.KW;
          const i64 ih = ih0 + kh * d.DH, iw = iw0 + kw * d.DW;
          if (ih >= 0 && ih < d.H && iw >= 0 && iw < d.W) v = x_ng[(c * d.H + ih) * d.W + iw];
        }
        xs[rr][lp] = v;
      }
      __syncthreads();
      // acc (4, 4) += ws[:, ty+16i]^T xs[:, tx+16j]
      for (int r = 0; r < CF_TR; ++r) {
        T a[4], v[4];
        for (int i = 0; i < 4; ++i) a[i] = ws[r][ty + 16 * i];
        for (int j = 0; j < 4; ++j) v[j] = xs[r][tx + 16 * j];
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * v[j];
      }
      __syncthreads();
    }

    // y[n, g*Kg+m, q] for this thread's 4 x 4 (m, p)
    for (int j = 0; j < 4; ++j) {
      const i64 pj = p0 + tx + 16 * j;
      if (pj >= P) continue;
      const i64 nj = pj / OHW, qj = pj % OHW;
      for (int i = 0; i < 4; ++i) {
        const i64 m = m0 + ty + 16 * i;
        if (m >= Kg) continue;
        const i64 k = g * Kg + m;
        y[(nj * d.K + k) * OHW + qj] = b ? acc[i][j] + b[k] : acc[i][j];
      }
    }
  }
}

// ------------------------------------------------------------------------------ forward, naive

template <typename T>
__device__ void conv2d_forward_naive(T* __restrict__ y, const T* __restrict__ x,
                                     const T* __restrict__ w, const T* __restrict__ b,
                                     const ConvDims d) {
  // y: (N, K, OH, OW) out, one thread per element; x: (N, C, H, W); w: (K, Cg, KH, KW)
  const i64 Cg = d.C / d.G, Kg = d.K / d.G;
  CF_GRID_STRIDE(i, d.N * d.K * d.OH * d.OW) {
    const i64 ow = i % d.OW, oh = i / d.OW % d.OH;
    const i64 k = i / (d.OH * d.OW) % d.K, n = i / (d.OH * d.OW * d.K);
    const i64 g = k / Kg;
    const T* x_ng = x + (n * d.C + g * Cg) * d.H * d.W;  // x_ng: (Cg, H, W)
    const T* w_k = w + k * Cg * d.KH * d.KW;             // w_k: w[k] (Cg, KH, KW)
    T acc = T(0);
    // (c, kh, kw): taps of w_k
    for (i64 c = 0; c < Cg; ++c) {
      for (i64 kh = 0; kh < d.KH; ++kh) {
        const i64 ih = oh * d.SH - d.PH + kh * d.DH;
        if (ih < 0 || ih >= d.H) continue;
        for (i64 kw = 0; kw < d.KW; ++kw) {
          const i64 iw = ow * d.SW - d.PW + kw * d.DW;
          if (iw < 0 || iw >= d.W) continue;
          acc += w_k[(c * d.KH + kh) * d.KW + kw] * x_ng[(c * d.H + ih) * d.W + iw];
        }
      }
    }
    y[i] = b ? acc + b[k] : acc;
  }
}

// ------------------------------------------------------------------------------ backward data

template <typename T>
__device__ void conv2d_backward_data(T* __restrict__ dx, const T* __restrict__ dy,
                                     const T* __restrict__ w, const ConvDims d) {
  // dx: (N, C, H, W) out, one thread per element; dy: (N, K, OH, OW); w: (K, Cg, KH, KW)
  // dx[n,c,ih,iw] = sum over (kh, kw) with oh = (ih + PH - kh*DH) / SH exact and in [0, OH)
  // (likewise ow), and over the Kg channels k of c's group, of w[k, c%Cg, kh, kw] dy[n,k,oh,ow].
  const i64 Cg = d.C / d.G, Kg = d.K / d.G;
  CF_GRID_STRIDE(i, d.N * d.C * d.H * d.W) {
    const i64 iw = i % d.W, ih = i / d.W % d.H;
    const i64 c = i / (d.H * d.W) % d.C, n = i / (d.H * d.W * d.C);
    const i64 g = c / Cg, cl = c % Cg;
    const T* dy_ng = dy + (n * d.K + g * Kg) * d.OH * d.OW;  // dy_ng: dy[n, g*Kg:] (Kg, OH, OW)
    const T* w_gc = w + (g * Kg * Cg + cl) * d.KH * d.KW;     // w_gc: w[g*Kg:, cl] stride Cg*KH*KW
    T acc = T(0);
    // (kh, kw): taps that can read x[n, c, ih, iw]
    for (i64 kh = 0; kh < d.KH; ++kh) {
      const i64 th = ih + d.PH - kh * d.DH;
      if (th < 0 || th % d.SH != 0 || th / d.SH >= d.OH) continue;
      const i64 oh = th / d.SH;
      for (i64 kw = 0; kw < d.KW; ++kw) {
        const i64 tw = iw + d.PW - kw * d.DW;
        if (tw < 0 || tw % d.SW != 0 || tw / d.SW >= d.OW) continue;
        const i64 ow = tw / d.SW;
        // m: output channel g*Kg + m
        for (i64 m = 0; m < Kg; ++m)
          acc += w_gc[(m * Cg * d.KH + kh) * d.KW + kw] * dy_ng[(m * d.OH + oh) * d.OW + ow];
      }
    }
    dx[i] = acc;
  }
}

// ------------------------------------------------------------------------------ backward weight

template <typename T>
__device__ void conv2d_backward_weight(T* __restrict__ dw, const T* __restrict__ dy,
                                       const T* __restrict__ x, const ConvDims d) {
  // dw: (K, Cg, KH, KW) out, one block per element; dy: (N, K, OH, OW); x: (N, C, H, W)
  // dw[k,c,kh,kw] = sum_{n,oh,ow} dy[n,k,oh,ow] * x[n, g*Cg+c, ih, iw] (zero in the padding)
  __shared__ T red[CF_THREADS];
  const i64 Cg = d.C / d.G, Kg = d.K / d.G;
  const i64 OHW = d.OH * d.OW;
  CF_BLOCK_STRIDE(e, d.K * Cg * d.KH * d.KW) {
    const i64 kw = e % d.KW, kh = e / d.KW % d.KH;
    const i64 c = (e / (d.KH * d.KW)) % Cg, k = e / (Cg * d.KH * d.KW);
    const i64 xc = k / Kg * Cg + c;  // channel of x
    T acc = T(0);
    // q: (n, oh, ow) flattened over (N, OH, OW), strided over the block's threads
    for (i64 q = threadIdx.x; q < d.N * OHW; q += CF_THREADS) {
      const i64 n = q / OHW, oh = q % OHW / d.OW, ow = q % d.OW;
      const i64 ih = oh * d.SH - d.PH + kh * d.DH, iw = ow * d.SW - d.PW + kw * d.DW;
      if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
      acc += dy[(n * d.K + k) * OHW + q % OHW] * x[((n * d.C + xc) * d.H + ih) * d.W + iw];
    }
    acc = cf_block_sum(acc, red);
    if (threadIdx.x == 0) dw[e] = acc;
  }
}

template <typename T>
__device__ void conv2d_backward_bias(T* __restrict__ db, const T* __restrict__ dy,
                                     const ConvDims d) {
  // db: (K,) out, one block per k; db[k] = sum_{n,oh,ow} dy[n,k,oh,ow]; dy: (N, K, OH, OW)
  __shared__ T red[CF_THREADS];
  const i64 OHW = d.OH * d.OW;
  CF_BLOCK_STRIDE(k, d.K) {
    T acc = T(0);
    // q: (n, oh, ow) flattened
    for (i64 q = threadIdx.x; q < d.N * OHW; q += CF_THREADS)
      acc += dy[(q / OHW * d.K + k) * OHW + q % OHW];
    acc = cf_block_sum(acc, red);
    if (threadIdx.x == 0) db[k] = acc;
  }
}

// ------------------------------------------------------------------------------ entry points

#define CF_CONV_DIMS_PARAMS                                                                   \
  i64 N, i64 C, i64 H, i64 W, i64 K, i64 KH, i64 KW, i64 SH, i64 SW, i64 PH, i64 PW, i64 DH,  \
      i64 DW, i64 OH, i64 OW, i64 G
#define CF_CONV_DIMS ConvDims{N, C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, G}

#define CF_CONV_ENTRIES(T, SUFFIX)                                                            \
  extern "C" __global__ void __launch_bounds__(CF_THREADS) conv2d_forward_##SUFFIX(           \
      T* y, const T* x, const T* w, const T* b, CF_CONV_DIMS_PARAMS) {                        \
    conv2d_forward_tiled<T>(y, x, w, b, CF_CONV_DIMS);                                        \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(CF_THREADS) conv2d_forward_naive_##SUFFIX(     \
      T* y, const T* x, const T* w, const T* b, CF_CONV_DIMS_PARAMS) {                        \
    conv2d_forward_naive<T>(y, x, w, b, CF_CONV_DIMS);                                        \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(CF_THREADS) conv2d_backward_data_##SUFFIX(     \
      T* dx, const T* dy, const T* w, CF_CONV_DIMS_PARAMS) {                                  \
    conv2d_backward_data<T>(dx, dy, w, CF_CONV_DIMS);                                         \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(CF_THREADS) conv2d_backward_weight_##SUFFIX(   \
      T* dw, const T* dy, const T* x, CF_CONV_DIMS_PARAMS) {                                  \
    conv2d_backward_weight<T>(dw, dy, x, CF_CONV_DIMS);                                       \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(CF_THREADS) conv2d_backward_bias_##SUFFIX(     \
      T* db, const T* dy, CF_CONV_DIMS_PARAMS) {                                              \
    conv2d_backward_bias<T>(db, dy, CF_CONV_DIMS);                                            \
  }

CF_CONV_ENTRIES(float, f32)
CF_CONV_ENTRIES(double, f64)
