"""Numba kernels of the optimiser updates (twins of csrc/optim/update.cpp; formulas in
csrc/include/convforge/optim.hpp). Multi-tensor: each kernel takes typed lists of flat arrays
(one entry per parameter, one dtype) and a block table `blocks` (B, 3) int64 of rows (tensor,
begin, end), pieces of one tensor each (numba._optim_blocks), and runs one prange over the
blocks. Scalars arrive in the arrays' dtype. Each block's arrays are sliced to the block and
its loop runs from 0: LLVM vectorises that form, not a loop over [begin, end) of the whole
arrays. Each element's update touches only that element,
so results do not depend on the thread count. A state list that an option leaves unused is
passed as `params` (never read or written then): one compiled version per dtype."""

from __future__ import annotations

import numpy as np
from numba import prange

from ._numba_kernels import _kernel


@_kernel
def sgd_update(params, grads, bufs, blocks, lr, wd, mu, decay, momentum, nesterov, first):
    # params, grads, bufs: lists of (n_t,); decay / momentum / nesterov / first: the options
    for k in prange(blocks.shape[0]):
        t, lo, hi = blocks[k, 0], blocks[k, 1], blocks[k, 2]
        p, g, buf = params[t][lo:hi], grads[t][lo:hi], bufs[t][lo:hi]
        for i in range(p.shape[0]):
            d = g[i]
            if decay:
                d = d + wd * p[i]
            if momentum:
                b = d if first else mu * buf[i] + d
                buf[i] = b
                d = d + mu * b if nesterov else b
            p[i] = p[i] - lr * d


@_kernel
def adam_update(params, grads, m, v, v_max, blocks, step_size, sqrt_bc2, b1, c1, b2, c2, eps,
                wd, dec, decay, decoupled, amsgrad):
    # params, grads, m, v, v_max: lists of (n_t,); step_size, sqrt_bc2 (T,) per tensor;
    # c1 = 1 - b1, c2 = 1 - b2; dec: AdamW's factor; decay / decoupled / amsgrad: the options
    for k in prange(blocks.shape[0]):
        t, lo, hi = blocks[k, 0], blocks[k, 1], blocks[k, 2]
        p, g, mt, vt = params[t][lo:hi], grads[t][lo:hi], m[t][lo:hi], v[t][lo:hi]
        vm, s, sb = v_max[t][lo:hi], step_size[t], sqrt_bc2[t]
        for i in range(p.shape[0]):
            pi = p[i]
            if decoupled:
                pi = pi * dec
            d = g[i]
            if decay:
                d = d + wd * pi
            mi = b1 * mt[i] + c1 * d
            vi = b2 * vt[i] + c2 * d * d
            mt[i] = mi
            vt[i] = vi
            if amsgrad:
                w = vm[i]
                vi = vi if (vi > w or vi != vi) else w      # max, NaN propagating
                vm[i] = vi
            p[i] = pi - s * mi / (np.sqrt(vi) / sb + eps)


@_kernel
def rmsprop_update(params, grads, square_avg, grad_avg, bufs, blocks, lr, rho, c, eps, mu, wd,
                   decay, centered, momentum):
    # params, grads, square_avg, grad_avg, bufs: lists of (n_t,); c = 1 - rho;
    # decay / centered / momentum: the options
    for k in prange(blocks.shape[0]):
        t, lo, hi = blocks[k, 0], blocks[k, 1], blocks[k, 2]
        p, g, sq = params[t][lo:hi], grads[t][lo:hi], square_avg[t][lo:hi]
        ga, buf = grad_avg[t][lo:hi], bufs[t][lo:hi]
        for i in range(p.shape[0]):
            d = g[i]
            if decay:
                d = d + wd * p[i]
            s = rho * sq[i] + c * d * d
            sq[i] = s
            if centered:
                a = rho * ga[i] + c * d
                ga[i] = a
                den = np.sqrt(s - a * a) + eps
            else:
                den = np.sqrt(s) + eps
            if momentum:
                b = mu * buf[i] + d / den
                buf[i] = b
                p[i] = p[i] - lr * b
            else:
                p[i] = p[i] - lr * d / den
