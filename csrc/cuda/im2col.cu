// im2col.cu: unfold (im2col) and its adjoint fold (col2im), for the CuPy backend.
//
// Layouts (all C-contiguous): x (N, C, H, W), cols (N, C*KH*KW, OH*OW) with
//   cols[n, (c*KH + kh)*KW + kw, oh*OW + ow] = x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]
// (zero where that falls in the padding). PH/PW are the top/left padding; bottom/right padding
// only shows in OH/OW.
//
// Kernels (outputs overwritten; no atomics):
//   im2col_*  one thread per cols element: a copy or a zero.
//   col2im_*  one thread per x element, gathering the cols entries that read it (the overlaps
//             are summed in (kh, kw) order in double, then rounded once to T: the same sums in
//             the same order as the float64 reference).
//
// Entry points take outputs first, then inputs, then the dims N C H W KH KW SH SW PH PW DH DW
// OH OW as long long (the conv dims order without K and G).
#include "common.cuh"

template <typename T>
__device__ void im2col_kernel(T* __restrict__ cols, const T* __restrict__ x, const ConvDims d) {
  // cols: (N, C*KH*KW, OH*OW) out, one thread per element; x: (N, C, H, W)
  const i64 KK = d.KH * d.KW, OHW = d.OH * d.OW;
  CF_GRID_STRIDE(i, d.N * d.C * KK * OHW) {
    const i64 q = i % OHW, r = i / OHW % (d.C * KK), n = i / (OHW * d.C * KK);
    const i64 c = r / KK, kh = r % KK / d.KW, kw = r % d.KW;
    const i64 ih = q / d.OW * d.SH - d.PH + kh * d.DH, iw = q % d.OW * d.SW - d.PW + kw * d.DW;
    cols[i] = (ih >= 0 && ih < d.H && iw >= 0 && iw < d.W)
                  ? x[((n * d.C + c) * d.H + ih) * d.W + iw]
                  : T(0);
  }
}

template <typename T>
__device__ void col2im_kernel(T* __restrict__ x, const T* __restrict__ cols, const ConvDims d) {
  // x: (N, C, H, W) out, one thread per element; cols: (N, C*KH*KW, OH*OW)
  const i64 KK = d.KH * d.KW, OHW = d.OH * d.OW;
  CF_GRID_STRIDE(i, d.N * d.C * d.H * d.W) {
    const i64 iw = i % d.W, ih = i / d.W % d.H, nc = i / (d.H * d.W);  // nc = n*C + c
    const T* cols_nc = cols + nc * KK * OHW;  // cols_nc: cols[n, c*KK:(c+1)*KK] (KK, OH*OW)
    double acc = 0.0;
    // (kh, kw): taps whose column reads x[n, c, ih, iw]
    for (i64 kh = 0; kh < d.KH; ++kh) {
      const i64 th = ih + d.PH - kh * d.DH;
      if (th < 0 || th % d.SH != 0 || th / d.SH >= d.OH) continue;
      for (i64 kw = 0; kw < d.KW; ++kw) {
        const i64 tw = iw + d.PW - kw * d.DW;
        if (tw < 0 || tw % d.SW != 0 || tw / d.SW >= d.OW) continue;
        acc += (double)cols_nc[(kh * d.KW + kw) * OHW + th / d.SH * d.OW + tw / d.SW];
      }
    }
    x[i] = (T)acc;
  }
}

#define CF_UNFOLD_DIMS_PARAMS                                                                 \
  i64 N, i64 C, i64 H, i64 W, i64 KH, i64 KW, i64 SH, i64 SW, i64 PH, i64 PW, i64 DH, i64 DW, \
      i64 OH, i64 OW
// K and G are unused by these kernels: an unfold is a conv with one group and K = C.
#define CF_UNFOLD_DIMS ConvDims{N, C, H, W, C, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, 1}

#define CF_IM2COL_ENTRIES(T, SUFFIX)                                                       \
  extern "C" __global__ void __launch_bounds__(CF_THREADS)                                 \
      im2col_##SUFFIX(T* cols, const T* x, CF_UNFOLD_DIMS_PARAMS) {                        \
    im2col_kernel<T>(cols, x, CF_UNFOLD_DIMS);                                             \
  }                                                                                        \
  extern "C" __global__ void __launch_bounds__(CF_THREADS)                                 \
      col2im_##SUFFIX(T* x, const T* cols, CF_UNFOLD_DIMS_PARAMS) {                        \
    col2im_kernel<T>(x, cols, CF_UNFOLD_DIMS);                                             \
  }

CF_IM2COL_ENTRIES(float, f32)
CF_IM2COL_ENTRIES(double, f64)
