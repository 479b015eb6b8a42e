"""The optimiser updates written once for any array module (NumPy or CuPy, `xp`): the cuda
backend's implementation, and the reference's (which runs them on float64 copies). Formulas:
csrc/include/convforge/optim.hpp (PyTorch's), in the arrays' dtype, with each scalar rounded
once to that dtype. Lists of arrays, one entry per parameter, updated in place; one tensor
after the other, a few array expressions each (no fused multi-tensor kernel)."""

from __future__ import annotations

import numpy as np

from .._array import array_module


def _scalars(dtype, *values):
    """Python floats (computed in float64) rounded once to `dtype`."""
    t = np.dtype(dtype).type
    return tuple(t(v) for v in values)


def sgd_update(params, grads, bufs, lr, momentum, nesterov, weight_decay, first_step):
    for i, (p, g) in enumerate(zip(params, grads)):
        lr_, mu, wd = _scalars(p.dtype, lr, momentum, weight_decay)
        d = g + wd * p if weight_decay else g
        if momentum:
            buf = bufs[i]
            if first_step:
                buf[...] = d
            else:
                buf *= mu
                buf += d
            d = d + mu * buf if nesterov else buf
        p -= lr_ * d


def adam_update(params, grads, m, v, v_max, step_size, sqrt_bc2, beta_1, beta_2, epsilon,
                weight_decay, decay):
    for i, (p, g) in enumerate(zip(params, grads)):
        xp = array_module(p)
        b1, c1, b2, c2, eps, wd, dec, s, sb = _scalars(
            p.dtype, beta_1, 1.0 - beta_1, beta_2, 1.0 - beta_2, epsilon, weight_decay, decay,
            step_size[i], sqrt_bc2[i])
        if decay != 1.0:
            p *= dec
        d = g + wd * p if weight_decay else g
        mi, vi = m[i], v[i]
        mi *= b1
        mi += c1 * d
        vi *= b2
        vi += c2 * d * d
        if v_max is not None:
            xp.maximum(v_max[i], vi, out=v_max[i])
            vi = v_max[i]
        p -= s * mi / (xp.sqrt(vi) / sb + eps)


def rmsprop_update(params, grads, square_avg, grad_avg, bufs, lr, rho, epsilon, momentum,
                   weight_decay):
    for i, (p, g) in enumerate(zip(params, grads)):
        xp = array_module(p)
        lr_, r, c, eps, mu, wd = _scalars(p.dtype, lr, rho, 1.0 - rho, epsilon, momentum,
                                          weight_decay)
        d = g + wd * p if weight_decay else g
        sq = square_avg[i]
        sq *= r
        sq += c * d * d
        if grad_avg is not None:
            ga = grad_avg[i]
            ga *= r
            ga += c * d
            den = xp.sqrt(sq - ga * ga) + eps
        else:
            den = xp.sqrt(sq) + eps
        if momentum:
            buf = bufs[i]
            buf *= mu
            buf += d / den
            p -= lr_ * buf
        else:
            p -= lr_ * d / den
