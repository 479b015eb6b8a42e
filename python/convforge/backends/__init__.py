"""Backend registry: one signature set, several implementations.

Every backend module (cpu, cuda, numba, reference) defines the same functions on *normalised*
arguments (contiguous arrays of one float dtype, tuples of ints, checked by convforge.functional).

The contract (see convforge.functional's docstring): functional normalises and validates once;
backends trust what they receive and do not validate it again. A backend checks only what its
kernels' memory safety needs beyond that (the numba backend: max/min pool backward indices; the
cpu backend: the compiled bindings' buffer checks). `CHECKS_INDICES = True` in a backend tells
functional that the backend checks the pool backward index range itself; `CHECKS_LABELS = True`,
that it checks the softmax cross-entropy's class ids itself.

The functions:

    conv2d(x, w, b, stride, padding, dilation, groups, relu=False) -> y   relu: max(y, 0)
        x (N, C, H, W), w (K, C/G, KH, KW), b (K,) or None, stride (SH, SW),
        padding (PT, PB, PL, PR), dilation (DH, DW), groups G -> y (N, K, OH, OW)
    conv2d_backward(dy, x, w, stride, padding, dilation, groups, bias, need_dx=True,
                    need_dw=True) -> (dx, dw, db), each None when not needed (db: bias=False)
    im2col(x, kernel_size, stride, padding, dilation) -> cols (N, C*KH*KW, OH*OW)
    col2im(cols, input_shape, kernel_size, stride, padding, dilation) -> x (N, C, H, W)
    pool2d(x, mode, kernel_size, stride, padding, out_size, count_include_pad) -> (y, indices)
        mode 'max' | 'min' | 'avg'; padding (PH, PW) symmetric; out_size (OH, OW) already has
        ceil_mode applied; indices int64 (N, C, OH, OW) holding ih*W + iw of the chosen element
        (first occurrence; a NaN wins and the last NaN is kept, as in PyTorch), None for 'avg'
    pool2d_backward(dy, indices, input_shape, mode, kernel_size, stride, padding,
                    count_include_pad, relu_y=None) -> dx   relu_y ('max' only): the forward's
        y over x = relu(z); dy passes only where y > 0 (dx is then the gradient w.r.t. z)
    global_pool2d(x, mode) -> (y (N, C), indices (N, C) int64 or None)    mode 'max' | 'avg'
    global_pool2d_backward(dy, indices, input_shape, mode) -> dx
    batch_norm_stats(x) -> (mean, var)          x (N, C, HW); float64 (C,) each
    batch_norm(x, mean, inv_std, gamma, beta, relu) -> y (N, C, HW)
        mean, inv_std float64 (C,); gamma, beta (C,) of x's dtype or None (1, 0); relu: max(., 0)
    batch_norm_backward(dy, x, mean, inv_std, gamma, beta, relu, batch_stats, need_dx)
        -> (dx or None, dgamma float64 (C,), dbeta float64 (C,))
    dropout(x, seed, threshold, scale) -> y     any shape; x * scale where the counter-based
        hash of (seed, flat index) >= threshold (uint32), else 0 (convforge.functional.dropout)
    activation(x, kind) -> y; activation_backward(dy, y, kind) -> dx   any shape; kind 'linear'
        | 'relu' | 'sigmoid' | 'tanh'; the backward from the forward's output
    softmax_cross_entropy(logits, labels, label_smoothing, reduction) -> (loss, dlogits)
        logits (N, K), N >= 1; labels int64 (N,) class ids (checked to lie in [0, K) by
        functional for NumPy ids, unless the backend sets CHECKS_LABELS) or (N, K) soft labels
        of logits' dtype; label_smoothing float in [0, 1); reduction 'mean' | 'sum' | 'none';
        loss 0-d (mean, sum) or (N,) (none) in logits' dtype, dlogits (N, K)
    sgd_update(params, grads, bufs, lr, momentum, nesterov, weight_decay, first_step) -> None
    adam_update(params, grads, m, v, v_max, step_size, sqrt_bc2, beta_1, beta_2, epsilon,
                weight_decay, decay) -> None
    rmsprop_update(params, grads, square_avg, grad_avg, bufs, lr, rho, epsilon, momentum,
                   weight_decay) -> None
        optimiser steps (convforge.functional.optim): lists of C-contiguous arrays of one dtype,
        entry i of each of params[i]'s shape, none of zero size, updated in place (params and
        the state lists). Optional state lists are None when unused: bufs without momentum,
        v_max without AMSGrad, grad_avg when not centred. Scalars are Python floats; Adam's
        step_size (lr / (1 - beta_1^t)) and sqrt_bc2 (sqrt(1 - beta_2^t)) have one per tensor;
        weight_decay is the coupled (L2) decay, decay AdamW's factor 1 - lr*wd (1.0: none)

and `probe() -> str | None` (None when usable, else the reason it is not).
Backends are imported lazily: numba and cupy load only when used.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
from types import ModuleType
from typing import Iterator, Optional

NAMES = ("cpu", "cuda", "numba", "reference")
_modules: dict[str, ModuleType] = {}
_reasons: dict[str, Optional[str]] = {}
_global_choice: Optional[str] = None
_context_choice: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "convforge_backend", default=None
)


def _check_name(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"unknown backend {name!r}; choose one of {list(NAMES)}")
    return name


def unavailable_reason(name: str) -> Optional[str]:
    """None if backend `name` can run here, else why not (probed once, cached)."""
    _check_name(name)
    if name not in _reasons:
        try:
            mod = importlib.import_module(f"convforge.backends.{name}")
            reason = mod.probe()
            if reason is None:
                _modules[name] = mod
        except Exception as e:  # noqa: BLE001 - any import failure makes the backend unavailable
            reason = f"{type(e).__name__}: {e}"
        _reasons[name] = reason
    return _reasons[name]


def available() -> list[str]:
    """Backends usable on this machine, in order of preference."""
    return [n for n in NAMES if unavailable_reason(n) is None]


def get(name: str) -> ModuleType:
    """The backend module `name`; ValueError if unknown or not usable here."""
    mod = _modules.get(name)   # probed and usable: the common call
    if mod is not None:
        return mod
    reason = unavailable_reason(name)
    if reason is not None:
        raise ValueError(f"backend {name!r} is not available: {reason}")
    return _modules[name]


def set_backend(name: Optional[str]) -> None:
    """Choose the backend for every later call (None: back to automatic choice)."""
    global _global_choice
    if name is not None:
        get(name)
    _global_choice = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """`with use_backend("numba"): ...` runs the block's ops on that backend."""
    get(name)
    token = _context_choice.set(name)
    try:
        yield
    finally:
        _context_choice.reset(token)


def chosen(on_gpu: bool) -> str:
    """The backend a call uses when it passes no backend= keyword.

    Order: use_backend() block, set_backend(), $CONVFORGE_BACKEND, then automatic:
    cuda for CuPy inputs, else cpu, else numba, else reference.
    """
    name = _context_choice.get() or _global_choice or os.environ.get("CONVFORGE_BACKEND") or None
    if name:
        return _check_name(name)
    if on_gpu:
        return "cuda"
    for n in ("cpu", "numba"):
        if n in _modules or unavailable_reason(n) is None:
            return n
    return "reference"
