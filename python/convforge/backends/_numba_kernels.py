"""Numba kernels of the numba backend: im2col/col2im, conv2d forward/backward, pooling (and,
re-exported from _numba_norm, batch normalisation).

Layouts: activations NCHW, weights OIHW (K, C/G, KH, KW), all C-contiguous, float32 or float64
(one compiled version per dtype; loaded from numba's on-disk cache when it is writable).
Arguments: outputs first (overwritten, never accumulated into), then inputs, then int64 dims.
R = C/G*KH*KW (one group's unfolded rows), L = OH*OW.

Parallel axes, chosen so that every output element is written by exactly one prange iteration
and summed in one fixed order (results do not depend on the thread count; no atomics, no
parallel reductions; fastmath only for fused multiply-adds, see _FLAGS):
  im2col / col2im / pooling   over the N*C planes
  conv2d_forward_panels      the fast path (also dx at stride 1, as the forward conv of dy with
                             flipped weights): tasks (group, NB columns of the batch's unfolded
                             x, KB rows of y), each packing its panel and running _gemm_panel
  conv2d_backward_weight_panels   dw^T tiles (over group, RB rows, NB columns), each summing
                             images n = 0..N-1, then positions l = 0..L-1, in order
  conv2d_forward (naive)     per chunk of images: unfold (over planes), then GEMM tiles
                             y[n, k block, l block] (over image, group, k block, l block)
  conv2d_backward (naive)    dw: tiles dw[k block, r block] (over group, k block, r block), each
                             summing images n = 0..N-1, then positions l = 0..L-1, in order;
                             dx: per plane (image, channel), its dcols rows (GEMM), then
                             fold them. Used for dx at stride > 1 and dw of < 32 channels.
The naive kernels stay as the fallback and as a second reference for the panel ones.
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
# fastmath={"contract"} only lets LLVM fuse a*b + c into one fused multiply-add (what GCC does by
# default for the C++ core); it allows no reordering of sums, so the order stays the one written.
_FLAGS = dict(error_model="numpy", fastmath={"contract"})
_helper = numba.njit(**_FLAGS)
_kernel = numba.njit(parallel=True, cache=CACHE, **_FLAGS)

AVG, MAX, MIN = 0, 1, 2      # pooling modes
TI, TJ = 8, 256              # naive GEMM tile: TI output rows x TJ output columns
# Packed-panel GEMM (_gemm_panel): NB columns per panel and C tile (the vectorised loop, a
# compile-time constant so the rows of a panel sit at constant offsets), MT rows per C tile
# (MT x NB: 12 KiB float32, 24 KiB float64, in L1), KB rows of y per forward task, RB rows of
# dw^T per weight-gradient task.
NB, MT, KB, RB = 128, 24, 96, 48


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
def _gemm_panel(ct, a, bp, P):
    """ct[r*NB + j] += sum_{p < P} a[r, p] * bp[p*NB + j] for r < a.shape[0], j < NB.

    ct: C tile (a.shape[0]*NB,) flat; a: (rows, >= P) any strides; bp: packed panel (P*NB,).
    Each element gets its terms in increasing p, one fused multiply-add each, whatever branch
    below runs it. Register use: 2 rows x 4 depths of a held in registers, 4 panel rows and
    2 tile rows streamed by the vectorised j loop (constant offsets: one alias check).
    """
    m = a.shape[0]
    for p in range(0, P - 3, 4):
        b0 = bp[p * NB:(p + 1) * NB]                                 # (NB,) panel rows p..p+3
        b1 = bp[(p + 1) * NB:(p + 2) * NB]
        b2 = bp[(p + 2) * NB:(p + 3) * NB]
        b3 = bp[(p + 3) * NB:(p + 4) * NB]
        for r in range(0, m - 1, 2):
            c0 = ct[r * NB:(r + 1) * NB]                             # (NB,) tile rows r, r+1
            c1 = ct[(r + 1) * NB:(r + 2) * NB]
            a00, a01, a02, a03 = a[r, p], a[r, p + 1], a[r, p + 2], a[r, p + 3]
            a10, a11, a12, a13 = a[r + 1, p], a[r + 1, p + 1], a[r + 1, p + 2], a[r + 1, p + 3]
            for j in range(NB):
                x0, x1, x2, x3 = b0[j], b1[j], b2[j], b3[j]
                c0[j] = c0[j] + a00 * x0 + a01 * x1 + a02 * x2 + a03 * x3
                c1[j] = c1[j] + a10 * x0 + a11 * x1 + a12 * x2 + a13 * x3
        if m % 2 == 1:                                               # last row when m is odd
            r = m - 1
            c0 = ct[r * NB:(r + 1) * NB]
            a00, a01, a02, a03 = a[r, p], a[r, p + 1], a[r, p + 2], a[r, p + 3]
            for j in range(NB):
                c0[j] = c0[j] + a00 * b0[j] + a01 * b1[j] + a02 * b2[j] + a03 * b3[j]
    for p in range(P - P % 4, P):                                    # last P % 4 depths
        b0 = bp[p * NB:(p + 1) * NB]
        for r in range(m):
            c0 = ct[r * NB:(r + 1) * NB]
            av = a[r, p]
            for j in range(NB):
                c0[j] = c0[j] + av * b0[j]


@_helper
def _unfold_panel(bp, x, cb, Cg, q0, q1, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW):
    """Columns [q0, q1) of the unfolded x of channels cb..cb+Cg, packed:
    bp[((c*KH + i)*KW + j)*NB + q - q0] = x[n, cb + c, oh*SH - PT + i*DH, ow*SW - PL + j*DW]
    for q = (n*OH + oh)*OW + ow, 0 outside x. Columns q - q0 in [q1 - q0, NB) are set to 0
    too: their results are never read, zeros only keep denormals and NaNs out of the loop."""
    # bp: (Cg*KH*KW*NB,) out; x: (N, C, H, W)
    H, W = x.shape[2], x.shape[3]
    L = OH * OW
    q = q0
    while q < q1:                                                    # runs: one output row
        n = q // L
        oh = (q - n * L) // OW
        ow0 = q - n * L - oh * OW
        ow1 = min(OW, ow0 + q1 - q)
        col = q - q0
        for c in range(Cg):
            xc = x[n, cb + c]                                        # (H, W)
            for i in range(KH):
                ih = oh * SH - PT + i * DH
                for j in range(KW):
                    r = (c * KH + i) * KW + j
                    dst = bp[r * NB + col: r * NB + col + ow1 - ow0]  # (ow1 - ow0,)
                    if ih < 0 or ih >= H:
                        dst[:] = 0.0
                        continue
                    off = j * DW - PL
                    lo, hi = _valid_range(off, SW, W, OW)
                    lo, hi = min(max(lo, ow0), ow1), max(min(hi, ow1), ow0)
                    dst[:lo - ow0] = 0.0
                    dst[hi - ow0:] = 0.0
                    mid = dst[lo - ow0:hi - ow0]                     # (hi - lo,)
                    src = xc[ih, lo * SW + off:]
                    if SW == 1:
                        for t in range(hi - lo):
                            mid[t] = src[t]
                    else:
                        for t in range(hi - lo):
                            mid[t] = src[t * SW]
        q += ow1 - ow0
    if q1 - q0 < NB:
        for r in range(Cg * KH * KW):
            bp[r * NB + q1 - q0:(r + 1) * NB] = 0.0


@_helper
def _pack_transposed(bp, a, k0, k1):
    """bp[l*NB + k - k0] = a[k, l] for k in [k0, k1); 0 for k - k0 in [k1 - k0, NB) (columns
    whose results are never read, see _unfold_panel)."""
    # bp: (L*NB,) out; a: (K, L)
    L = a.shape[1]
    for l in range(L):
        row = bp[l * NB:(l + 1) * NB]                                # (NB,)
        for k in range(k0, k1):
            row[k - k0] = a[k, l]
        row[k1 - k0:] = 0.0


@_helper
def _window_arg(xc, h0, h1, w0, w1, mode):
    """(value, ih*W + iw) of the max (mode MAX) or min of xc[h0:h1, w0:w1] in row-major scan:
    the first occurrence wins ties, a NaN wins over everything and the last NaN is kept (the
    index PyTorch picks)."""
    # xc: x[n, c] (H, W)
    W = xc.shape[1]
    best = xc[h0, w0]
    at = h0 * W + w0
    for ih in range(h0, h1):
        for iw in range(w0, w1):
            v = xc[ih, iw]
            if np.isnan(v) or ((v > best) if mode == MAX else (v < best)):
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
def conv2d_backward(dx, dw, dy, x, w, SH, SW, PT, PL, DH, DW, G, M, want_dx, want_dw):
    # dx (N, C, H, W), dw (K, C/G, KH, KW) out (each only when want_dx / want_dw);
    # dy (N, K, OH, OW); x (N, C, H, W); w (K, C/G, KH, KW); M: images unfolded at once
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
    for k in range(K if want_dw else 0):                             # serial: a parallel
        for r in range(R):                                           # region costs a barrier
            dw2[k, r] = 0.0
    cols_t = np.empty((M if want_dw else 0, L, C * KH * KW), x.dtype)  # (M, L, G*R): x unfolded
    dcols = np.empty((M if want_dx else 0, C * KH * KW, L), x.dtype)   # (M, G*R, L)
    nki, nrj = (Kg + TI - 1) // TI, (R + TJ - 1) // TJ
    for n0 in range(0, N, M):
        m_n = min(M, N - n0)
        rows_dw, tiles_dw = (m_n * OH, G * nki * nrj) if want_dw else (0, 0)
        planes_dx = m_n * C if want_dx else 0
        for t in prange(rows_dw):                                    # output rows (m, oh)
            m, oh = t // OH, t % OH
            _unfold_rows(cols_t[m], x[n0 + m], oh, KH, KW, SH, SW, PT, PL, DH, DW, OW)
        for t in prange(tiles_dw):                                   # dw tiles (g, ki, rj)
            g, rest = t // (nki * nrj), t % (nki * nrj)
            k0 = g * Kg + (rest // nrj) * TI
            k1 = min(k0 + TI, (g + 1) * Kg)
            r0 = (rest % nrj) * TJ
            r1 = min(r0 + TJ, R)
            for m in range(m_n):
                # dw[k, r] += sum_l dy[n, k, l] * cols_t[m, l, g*R + r]
                _gemm_acc(dw2, dy3[n0 + m], cols_t[m], k0, k1, r0, r1, 0, 0, 0, g * R, L)
        for t in prange(planes_dx):                                  # planes (m, c)
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


@_kernel
def conv2d_forward_panels(y, x, w, b, SH, SW, PT, PL, DH, DW, G):
    # y (N, K, OH, OW) out; x (N, C, H, W); w (K, C/G, KH, KW); b (K,) (zeros when no bias).
    # The unfolded x of the whole batch is the (G*R, N*L) matrix U, column q = n*L + l; task
    # (g, qb, kb) packs columns [qb*NB, +NB) of group g's rows of U into a panel and computes
    # y rows [kb*KB, +KB) of group g on them, MT rows at a time: y = b + w @ U, summed in r.
    N = x.shape[0]
    K, Cg, KH, KW = w.shape
    OH, OW = y.shape[2], y.shape[3]
    Kg, R, L = K // G, Cg * KH * KW, OH * OW
    Q = N * L
    y3 = y.reshape(N, K, L)                                          # (N, K, L)
    w2 = w.reshape(K, R)                                             # (K, R)
    nq, nk = (Q + NB - 1) // NB, (Kg + KB - 1) // KB
    for t in prange(G * nq * nk):                                    # tasks (g, qb, kb)
        g, qb, kb = t // (nq * nk), (t // nk) % nq, t % nk
        q0 = qb * NB
        q1 = min(q0 + NB, Q)
        bp = np.empty(R * NB, y.dtype)                               # panel (R, NB)
        _unfold_panel(bp, x, g * Cg, Cg, q0, q1, KH, KW, SH, SW, PT, PL, DH, DW, OH, OW)
        ct = np.empty(MT * NB, y.dtype)                              # C tile (MT, NB)
        k_end = min((g + 1) * Kg, g * Kg + (kb + 1) * KB)
        for k0 in range(g * Kg + kb * KB, k_end, MT):
            k1 = min(k0 + MT, k_end)
            for k in range(k0, k1):
                ct[(k - k0) * NB:(k - k0 + 1) * NB] = b[k]
            _gemm_panel(ct[:(k1 - k0) * NB], w2[k0:k1], bp, R)
            q = q0
            while q < q1:                                            # runs: one image
                n, l0 = q // L, q % L
                l1 = min(L, l0 + q1 - q)
                for k in range(k0, k1):
                    src = ct[(k - k0) * NB + q - q0:]
                    dst = y3[n, k, l0:l1]
                    for l in range(l1 - l0):
                        dst[l] = src[l]
                q += l1 - l0


@_kernel
def conv2d_backward_weight_panels(dw, dy, x, SH, SW, PT, PL, DH, DW, G, M):
    # dw (K, C/G, KH, KW) out; dy (N, K, OH, OW); x (N, C, H, W); M: images unfolded at once.
    # dw^T (R, Kg) of group g = sum over images n, then positions l, of U_n (R, L) @ dy_n^T,
    # U_n = x[n] unfolded (cols). Per chunk of images: unfold (over planes), pack dy_n^T's
    # column blocks as panels (over images and blocks), then task (g, rb, kb), owning dw^T rows
    # [rb*RB, +RB) x columns [kb*NB, +NB) in acc, adds the chunk's images in order.
    N, C = x.shape[0], x.shape[1]
    K, Cg, KH, KW = dw.shape
    OH, OW = dy.shape[2], dy.shape[3]
    Kg, R, L = K // G, Cg * KH * KW, OH * OW
    dy3 = dy.reshape(N, K, L)                                        # (N, K, L)
    nr, nk = (R + RB - 1) // RB, (Kg + NB - 1) // NB
    acc = np.zeros((G * nr * nk, RB * NB), dw.dtype)                 # dw^T tiles (RB, NB)
    cols = np.empty((M, C * KH * KW, L), x.dtype)                    # (M, G*R, L)
    panels = np.empty((M, G * nk, L * NB), x.dtype)                  # dy_n^T blocks (L, NB)
    for n0 in range(0, N, M):
        m_n = min(M, N - n0)
        for t in prange(m_n * C):                                    # planes (m, c)
            m, c = t // C, t % C
            _unfold_channel(cols[m], c * KH * KW, x[n0 + m, c],
                            KH, KW, SH, SW, PT, PL, DH, DW, OH, OW)
        for t in prange(m_n * G * nk):                               # panels (m, g, kb)
            m, gk = t // (G * nk), t % (G * nk)
            k0 = (gk // nk) * Kg + (gk % nk) * NB
            _pack_transposed(panels[m, gk], dy3[n0 + m], k0, min(k0 + NB, (gk // nk + 1) * Kg))
        for t in prange(G * nr * nk):                                # tasks (g, rb, kb)
            g, rb, kb = t // (nr * nk), (t // nk) % nr, t % nk
            r0, r1 = rb * RB, min(rb * RB + RB, R)
            for m in range(m_n):
                for s in range(r0, r1, MT):
                    e = min(s + MT, r1)
                    _gemm_panel(acc[t, (s - r0) * NB:(e - r0) * NB],
                                cols[m, g * R + s:g * R + e], panels[m, g * nk + kb], L)
    dw2 = dw.reshape(K, R)                                           # (K, R)
    for t in prange(G * nr * nk):
        g, rb, kb = t // (nr * nk), (t // nk) % nr, t % nk
        for r in range(rb * RB, min(rb * RB + RB, R)):
            for k in range(g * Kg + kb * NB, min(g * Kg + kb * NB + NB, (g + 1) * Kg)):
                dw2[k, r] = acc[t, (r - rb * RB) * NB + k - g * Kg - kb * NB]


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


# The elementwise, loss, batch normalisation and optimiser kernels live in their own files;
# re-exported so that the backend finds every kernel here (and its serial copies,
# numba._serial_kernels).

from ._numba_elementwise import (  # noqa: E402, F401 - re-exported
    ACTIVATION_CODES,
    activation_backward,
    activation_forward,
    dropout_apply,
)
from ._numba_loss import softmax_xent, softmax_xent_serial  # noqa: E402, F401 - re-exported
from ._numba_norm import (  # noqa: E402, F401 - re-exported
    bn_backward_dx,
    bn_backward_sums,
    bn_forward,
    bn_stats_sums,
)
from ._numba_optim import (  # noqa: E402, F401 - re-exported
    adam_update,
    rmsprop_update,
    sgd_update,
)
