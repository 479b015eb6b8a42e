"""Numba kernels of the numba backend: im2col/col2im, conv2d forward/backward, pooling.

Layouts: activations NCHW, weights OIHW (K, C/G, KH, KW), all C-contiguous, float32 or float64
(one compiled version per dtype; loaded from numba's on-disk cache when it is writable).
Arguments: outputs first (overwritten, never accumulated into), then inputs, then int64 dims.
R = C/G*KH*KW (one group's unfolded rows), L = OH*OW.

Parallel axes, chosen so that every output element is written by exactly one prange iteration
and summed in one fixed order (results do not depend on the thread count; no atomics, no
parallel reductions, no fastmath):
  im2col / col2im / pooling   over the N*C planes
  conv2d forward             per chunk of images: unfold (over planes), then GEMM tiles
                             y[n, k block, l block] (over image, group, k block, l block)
  conv2d backward            dw: tiles dw[k block, r block] (over group, k block, r block), each
                             summing images n = 0..N-1, then positions l = 0..L-1, in order;
                             dx: per plane (image, channel), its dcols rows (GEMM), then
                             fold them.
Conv sums run in the input dtype; pooling averages sum in float64 like the reference.
"""

from __future__ import annotations

import os
import tempfile

import numba
import numpy as np
from numba import prange


def _cache_writable() -> bool:
    """True when numba can write its on-disk cache for this file. Numba tries $NUMBA_CACHE_DIR,
    then this file's __pycache__, then the user-wide cache dir; we check the same, once."""
    dirs = [numba.config.CACHE_DIR] if numba.config.CACHE_DIR else []
    dirs.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__"))
    try:
        from numba.misc.appdirs import AppDirs
    except ImportError:  # numba moved an internal module: skip the user-wide directory
        AppDirs = None
    if AppDirs is not None:
        dirs.append(AppDirs(appname="numba", appauthor=False).user_cache_dir)
    for d in dirs:
        try:
            os.makedirs(d, exist_ok=True)
            tempfile.TemporaryFile(dir=d).close()
            return True
        except OSError:
            continue
    return False


CACHE = _cache_writable()
# error_model="numpy": no ZeroDivisionError checks (no divisor here can be zero), so loops
# vectorise; integer // and % keep Python's floor semantics for negative numbers.
_helper = numba.njit(error_model="numpy")
_kernel = numba.njit(parallel=True, cache=CACHE, error_model="numpy")

AVG, MAX, MIN = 0, 1, 2      # pooling modes
TI, TJ = 8, 256              # GEMM tile: TI output rows x TJ output columns (<= 16 KiB float64)


# --------------------------------------------------------------------------- helpers (serial)
# Innermost loops run over slices starting at 0: numba then drops its negative-index checks and
# LLVM can vectorise them.

@_helper
def _valid_range(off, s, n, o):
    """[lo, hi): the outputs q in [0, o) whose input position q*s + off lies in [0, n)."""
    lo = max(0, (s - 1 - off) // s)          # ceil(-off / s)
    hi = min(o, (n - 1 - off) // s + 1)      # floor((n - 1 - off) / s) + 1
    return lo, max(lo, hi)


@_helper
def _unfold_channel(cols, r0, xc, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW):
    """cols[r0 + i*KW + j, oh*OW + ow] = xc[oh*SH - PT + i*DH, ow*SW - PL + j*DW], 0 outside."""
    # cols: (C*KH*KW, OH*OW) of one image; xc: x[n, c] (H, W)
    H, W = xc.shape
    for i in range(KH):
        for j in range(KW):
            off = j * DW - PL
            ow0, ow1 = _valid_range(off, SW, W, OW)
            for oh in range(OH):
                dst = cols[r0 + i * KW + j, oh * OW: (oh + 1) * OW]  # (OW,)
                ih = oh * SH - PT + i * DH
                if ih < 0 or ih >= H:
                    dst[:] = 0.0
                    continue
                dst[:ow0] = 0.0
                dst[ow1:] = 0.0
                src = xc[ih, ow0 * SW + off:]                        # (W - ow0*SW - off,)
                mid = dst[ow0:ow1]                                   # (ow1 - ow0,)
                for q in range(ow1 - ow0):
                    mid[q] = src[q * SW]


@_helper
def _fold_channel(xc, cols, r0, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW):
    """Adjoint of _unfold_channel: xc = sum over taps (i, j), in order, of the scattered rows."""
    # xc: dx[n, c] (H, W) overwritten; cols: (C*KH*KW, OH*OW) of one image
    xc[:, :] = 0.0
    H, W = xc.shape
    for i in range(KH):
        for j in range(KW):
            off = j * DW - PL
            ow0, ow1 = _valid_range(off, SW, W, OW)
            oh0, oh1 = _valid_range(i * DH - PT, SH, H, OH)
            for oh in range(oh0, oh1):
                dst = xc[oh * SH - PT + i * DH, ow0 * SW + off:]     # (W - ow0*SW - off,)
                src = cols[r0 + i * KW + j, oh * OW + ow0: oh * OW + ow1]  # (ow1 - ow0,)
                for q in range(ow1 - ow0):
                    dst[q * SW] += src[q]


@_helper
def _unfold_rows(ct, xn, oh, KH, KW, SH, SW, PT, PL, DH, DW, OW):
    """Transposed unfold of output row oh:
    ct[oh*OW + ow, (c*KH + i)*KW + j] = xn[c, oh*SH - PT + i*DH, ow*SW - PL + j*DW], 0 outside."""
    # ct: (OH*OW, C*KH*KW) of one image; xn: x[n] (C, H, W)
    C, H, W = xn.shape
    for ow in range(OW):
        dst = ct[oh * OW + ow]                                       # (C*KH*KW,)
        for c in range(C):
            for i in range(KH):
                ih = oh * SH - PT + i * DH
                for j in range(KW):
                    iw = ow * SW - PL + j * DW
                    inside = ih >= 0 and ih < H and iw >= 0 and iw < W
                    dst[(c * KH + i) * KW + j] = xn[c, ih, iw] if inside else 0.0


@_helper
def _gemm_acc(out, a, b, i0, i1, j0, j1, da, ca, rb, cb, P):
    """out[i, j] += sum_{p < P} a[i + da, ca + p] * b[rb + p, cb + j] for i in [i0, i1) and
    j in [j0, j1), p summed in increasing order. out, a, b: 2-D C-contiguous."""
    for p in range(P):
        brow = b[rb + p, cb + j0: cb + j1]                           # (j1 - j0,)
        for i in range(i0, i1):
            av = a[i + da, ca + p]
            orow = out[i, j0:j1]                                     # (j1 - j0,)
            for j in range(j1 - j0):
                orow[j] += av * brow[j]


@_helper
def _window_arg(xc, h0, h1, w0, w1, mode):
    """(value, ih*W + iw) of the max (mode MAX) or min of xc[h0:h1, w0:w1] in row-major scan:
    the first occurrence wins ties, the first NaN wins over everything."""
    # xc: x[n, c] (H, W)
    W = xc.shape[1]
    best = xc[h0, w0]
    at = h0 * W + w0
    for ih in range(h0, h1):
        for iw in range(w0, w1):
            v = xc[ih, iw]
            if np.isnan(v):
                return v, ih * W + iw
            if (v > best) if mode == MAX else (v < best):
                best = v
                at = ih * W + iw
    return best, at


@_helper
def _avg_gather(dxc, dyc, KH, KW, SH, SW, PH, PW, count_include_pad):
    """dxc[ih, iw] = sum of dyc[oh, ow] / div over the windows holding (ih, iw), in output
    order, in float64 (the reference's order)."""
    # dxc: dx[n, c] (H, W) overwritten; dyc: dy[n, c] (OH, OW)
    H, W = dxc.shape
    OH, OW = dyc.shape
    for ih in range(H):
        oh0, oh1 = _valid_range(KH - 1 - PH - ih, SH, KH, OH)        # oh*SH - PH <= ih < .. + KH
        for iw in range(W):
            ow0, ow1 = _valid_range(KW - 1 - PW - iw, SW, KW, OW)
            s = 0.0                                                  # float64 sum
            for oh in range(oh0, oh1):
                hs = oh * SH - PH
                h0, h1, hp = max(hs, 0), min(hs + KH, H), min(hs + KH, H + PH) - hs
                for ow in range(ow0, ow1):
                    ws = ow * SW - PW
                    w0, w1, wp = max(ws, 0), min(ws + KW, W), min(ws + KW, W + PW) - ws
                    div = hp * wp if count_include_pad else (h1 - h0) * (w1 - w0)
                    s += dyc[oh, ow] / div
            dxc[ih, iw] = s


# --------------------------------------------------------------------------- im2col / col2im

@_kernel
def im2col(cols, x, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW):
    # cols (N, C*KH*KW, OH*OW) out; x (N, C, H, W)
    N, C = x.shape[0], x.shape[1]
    for t in prange(N * C):                                          # planes (n, c)
        n, c = t // C, t % C
        _unfold_channel(cols[n], c * KH * KW, x[n, c], KH, KW, SH, SW, PT, PL, DH, DW, OH, OW)


@_kernel
def col2im(x, cols, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW):
    # x (N, C, H, W) out; cols (N, C*KH*KW, OH*OW)
    N, C = x.shape[0], x.shape[1]
    for t in prange(N * C):                                          # planes (n, c)
        n, c = t // C, t % C
        _fold_channel(x[n, c], cols[n], c * KH * KW, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW)


# --------------------------------------------------------------------------- conv2d

@_kernel
def conv2d_forward(y, x, w, b, SH, SW, PT, PL, DH, DW, G, M):
    # y (N, K, OH, OW) out; x (N, C, H, W); w (K, C/G, KH, KW); b (K,) (zeros when no bias);
    # M: images unfolded at once (size of the cols buffer)
    N, C = x.shape[0], x.shape[1]
    K, Cg, KH, KW = w.shape
    OH, OW = y.shape[2], y.shape[3]
    Kg, R, L = K // G, Cg * KH * KW, OH * OW
    y3 = y.reshape(N, K, L)                                          # (N, K, L)
    w2 = w.reshape(K, R)                                             # (K, R)
    cols = np.empty((M, C * KH * KW, L), x.dtype)                    # (M, G*R, L)
    nki, nlj = (Kg + TI - 1) // TI, (L + TJ - 1) // TJ
    for n0 in range(0, N, M):
        m_n = min(M, N - n0)
        for t in prange(m_n * C):                                    # planes (m, c)
            m, c = t // C, t % C
            _unfold_channel(cols[m], c * KH * KW, x[n0 + m, c],
                            KH, KW, SH, SW, PT, PL, DH, DW, OH, OW)
        for t in prange(m_n * G * nki * nlj):                        # y tiles (m, g, ki, lj)
            m, rest = t // (G * nki * nlj), t % (G * nki * nlj)
            g, rest = rest // (nki * nlj), rest % (nki * nlj)
            k0 = g * Kg + (rest // nlj) * TI
            k1 = min(k0 + TI, (g + 1) * Kg)
            l0 = (rest % nlj) * TJ
            l1 = min(l0 + TJ, L)
            yn = y3[n0 + m]                                          # (K, L)
            for k in range(k0, k1):
                for l in range(l0, l1):
                    yn[k, l] = b[k]
            # y[n, k, l] += sum_r w[k, r] * cols[m, g*R + r, l]
            _gemm_acc(yn, w2, cols[m], k0, k1, l0, l1, 0, 0, g * R, 0, R)


@_kernel
def conv2d_backward(dx, dw, dy, x, w, SH, SW, PT, PL, DH, DW, G, M):
    # dx (N, C, H, W), dw (K, C/G, KH, KW) out; dy (N, K, OH, OW); x (N, C, H, W);
    # w (K, C/G, KH, KW); M: images unfolded at once (size of the two buffers)
    N, C = x.shape[0], x.shape[1]
    K, Cg, KH, KW = w.shape
    OH, OW = dy.shape[2], dy.shape[3]
    Kg, R, L = K // G, Cg * KH * KW, OH * OW
    dy3 = dy.reshape(N, K, L)                                        # (N, K, L)
    w2 = w.reshape(K, R)                                             # (K, R)
    wT = np.empty((R, K), w.dtype)                                   # (R, K): w2 transposed
    for r in range(R):
        for k in range(K):
            wT[r, k] = w2[k, r]
    dw2 = dw.reshape(K, R)                                           # (K, R)
    for k in range(K):
        for r in range(R):
            dw2[k, r] = 0.0
    cols_t = np.empty((M, L, C * KH * KW), x.dtype)                  # (M, L, G*R): x unfolded
    dcols = np.empty((M, C * KH * KW, L), x.dtype)                   # (M, G*R, L)
    nki, nrj = (Kg + TI - 1) // TI, (R + TJ - 1) // TJ
    for n0 in range(0, N, M):
        m_n = min(M, N - n0)
        for t in prange(m_n * OH):                                   # output rows (m, oh)
            m, oh = t // OH, t % OH
            _unfold_rows(cols_t[m], x[n0 + m], oh, KH, KW, SH, SW, PT, PL, DH, DW, OW)
        for t in prange(G * nki * nrj):                              # dw tiles (g, ki, rj)
            g, rest = t // (nki * nrj), t % (nki * nrj)
            k0 = g * Kg + (rest // nrj) * TI
            k1 = min(k0 + TI, (g + 1) * Kg)
            r0 = (rest % nrj) * TJ
            r1 = min(r0 + TJ, R)
            for m in range(m_n):
                # dw[k, r] += sum_l dy[n, k, l] * cols_t[m, l, g*R + r]
                _gemm_acc(dw2, dy3[n0 + m], cols_t[m], k0, k1, r0, r1, 0, 0, 0, g * R, L)
        for t in prange(m_n * C):                                    # planes (m, c)
            m, c = t // C, t % C
            g = c // Cg
            r0, r1 = c * KH * KW, (c + 1) * KH * KW                  # rows of channel c
            dc = dcols[m]                                            # (G*R, L)
            for l0 in range(0, L, TJ):
                l1 = min(l0 + TJ, L)
                for r in range(r0, r1):
                    for l in range(l0, l1):
                        dc[r, l] = 0.0
                # dcols[m, g*R + r, l] = sum_k w[g*Kg + k, r] * dy[n, g*Kg + k, l]
                _gemm_acc(dc, wT, dy3[n0 + m], r0, r1, l0, l1, -g * R, g * Kg, g * Kg, 0, Kg)
            _fold_channel(dx[n0 + m, c], dc, r0, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW)


# --------------------------------------------------------------------------- pooling

@_kernel
def pool2d_forward(y, idx, x, mode, KH, KW, SH, SW, PH, PW, count_include_pad):
    # y (N, C, OH, OW) out; idx (N, C, OH, OW) int64 out, ih*W + iw (shape (0,0,0,0) for AVG);
    # x (N, C, H, W). Window (oh, ow): rows [oh*SH - PH, +KH), cols [ow*SW - PW, +KW), clipped
    # to the input; avg divides by the area clipped to the padded input (count_include_pad)
    # or by the number of input elements.
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for t in prange(N * C):                                          # planes (n, c)
        n, c = t // C, t % C
        xc, yc = x[n, c], y[n, c]                                    # (H, W), (OH, OW)
        for oh in range(OH):
            hs = oh * SH - PH
            h0, h1, hp = max(hs, 0), min(hs + KH, H), min(hs + KH, H + PH) - hs
            for ow in range(OW):
                ws = ow * SW - PW
                w0, w1, wp = max(ws, 0), min(ws + KW, W), min(ws + KW, W + PW) - ws
                if mode == AVG:
                    s = 0.0                                          # float64 sum
                    for ih in range(h0, h1):
                        for iw in range(w0, w1):
                            s += xc[ih, iw]
                    div = hp * wp if count_include_pad else (h1 - h0) * (w1 - w0)
                    yc[oh, ow] = s / div
                else:
                    v, at = _window_arg(xc, h0, h1, w0, w1, mode)
                    yc[oh, ow] = v
                    idx[n, c, oh, ow] = at


@_kernel
def pool2d_backward(dx, dy, idx, mode, KH, KW, SH, SW, PH, PW, count_include_pad):
    # dx (N, C, H, W) out; dy (N, C, OH, OW); idx (N, C, OH, OW) int64 (ignored for AVG).
    # max/min: dy scattered to idx in output order; avg: gathered (see _avg_gather).
    N, C, H, W = dx.shape
    for t in prange(N * C):                                          # planes (n, c)
        n, c = t // C, t % C
        dxc, dyc = dx[n, c], dy[n, c]                                # (H, W), (OH, OW)
        if mode != AVG:
            dxf = dxc.reshape(H * W)                                 # (H*W,)
            for i in range(H * W):
                dxf[i] = 0.0
            ic = idx[n, c]                                           # (OH, OW)
            for oh in range(ic.shape[0]):
                for ow in range(ic.shape[1]):
                    dxf[ic[oh, ow]] += dyc[oh, ow]
        else:
            _avg_gather(dxc, dyc, KH, KW, SH, SW, PH, PW, count_include_pad)
