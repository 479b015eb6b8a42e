"""Optimiser updates as multi-tensor ops: sgd_update, adam_update, rmsprop_update. Each takes
lists of arrays, one entry per parameter (params, grads and the optimiser's state), and updates
params and the state arrays in place in one backend call: on the cpu backend one GIL release
and one OpenMP pass over every element of every parameter (csrc/optim/update.cpp).

Formulas (PyTorch's torch.optim with dampening 0, as in convforge.optim; g the gradient):

    SGD      d = g + wd*p;  momentum > 0: buf = d on the first step, else momentum*buf + d,
             d = d + momentum*buf if nesterov else buf;                       p -= lr*d
    Adam     p *= 1 - lr*wd if decoupled (AdamW), else d = g + wd*p (coupled L2 decay)
             m = b1*m + (1-b1)*d;  v = b2*v + (1-b2)*d^2;  amsgrad: v_max = max(v_max, v),
             used for v below;  p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
    RMSprop  d = g + wd*p;  sq = rho*sq + (1-rho)*d^2;  centered: ga = rho*ga + (1-rho)*d,
             den = sqrt(sq - ga^2) + eps, else sqrt(sq) + eps;
             momentum > 0: buf = momentum*buf + d/den, p -= lr*buf;  else p -= lr*d/den

Precision: float32 parameters are updated in float32 arithmetic, float64 ones in float64. The
scalars (lr, 1 - rho, lr/(1 - b1^t), sqrt(1 - b2^t), 1 - lr*wd, ...) are computed in Python
float64 and rounded once to the parameters' dtype: the same arithmetic as NumPy expressions with
Python-float scalars (the reference backend computes everything in float64 instead).

Arrays: entry i of every list has the shape and dtype of params[i] (float32 or float64; the
dtype may differ between entries, the op then runs once per dtype); all NumPy or all CuPy.
params and the state arrays are updated in place, so they must be C-contiguous and writeable;
grads are only read (copied once if not C-contiguous). Arrays must not overlap each other.
State arrays start as zeros (m, v, v_max, square_avg, grad_avg); SGD's momentum buffers are
overwritten on the first step (first_step=True), so they may start uninitialised. Zero-size
parameters and empty lists are accepted (nothing to update). Returns None.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np

from .. import backends as _backends
from .._array import FLOAT_DTYPES, is_cupy, is_int
from ._common import _backend

__all__ = ["sgd_update", "adam_update", "rmsprop_update"]

Arrays = Sequence  # a list (or tuple) of NumPy or CuPy arrays, one per parameter


def _scalar(v, name: str, lo: float = 0.0, below: Optional[float] = None) -> float:
    """v as a float >= lo (and < below when given); NaN is refused."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    v = float(v)
    if not v >= lo or (below is not None and not v < below):
        want = f">= {lo}" if below is None else f"in [{lo}, {below})"
        raise ValueError(f"{name} must be {want}, got {v!r}")
    return v


def _entry_error(name: str, i: int, what: str, a, p) -> str:
    return f"{name}[{i}] has {what} {getattr(a, what)} but params[{i}] has {what} " \
           f"{getattr(p, what)}"


def _all_ready(named: dict, inplace: tuple) -> bool:
    """The common call, in one pass: every list as long as params, every entry a C-contiguous
    NumPy array of its parameter's float dtype and shape, writeable where updated in place."""
    params = named["params"]
    if not isinstance(params, (list, tuple)):
        return False
    dtypes = [p.dtype if type(p) is np.ndarray else None for p in params]
    if not all(dt in FLOAT_DTYPES for dt in dtypes):
        return False
    for name, arrays in named.items():
        if arrays is None:
            continue
        if not isinstance(arrays, (list, tuple)) or len(arrays) != len(params):
            return False
        write = name in inplace
        for a, p, dt in zip(arrays, params, dtypes):
            if type(a) is not np.ndarray or a.dtype != dt or a.shape != p.shape:
                return False
            flags = a.flags
            if not flags.c_contiguous or (write and not flags.writeable):
                return False
    return True


def _numpy_lists(params) -> bool:
    """A list (or tuple) of NumPy arrays: the common call, which a backend that checks its lists
    itself (CHECKS_OPTIM_LISTS) may take as it is."""
    return isinstance(params, (list, tuple)) and len(params) > 0 \
        and all(type(p) is np.ndarray for p in params)


def _lists(named: dict, inplace: tuple) -> tuple:
    """Checks the list arguments ({name: list or None}; 'params' first, 'grads' second) and
    returns (the lists with grads made C-contiguous, whether they are CuPy arrays)."""
    if _all_ready(named, inplace):
        return {k: None if v is None else list(v) for k, v in named.items()}, False
    params = named["params"]
    out, gpu = {}, False
    for name, arrays in named.items():
        if arrays is None:
            out[name] = None
            continue
        if not isinstance(arrays, (list, tuple)):
            raise TypeError(f"{name} must be a list of arrays (one per parameter), got "
                            f"{type(arrays).__name__}")
        if len(arrays) != len(params):
            raise ValueError(f"{name} has {len(arrays)} entries but params has {len(params)}")
        checked = []
        for i, a in enumerate(arrays):
            gpu_a = is_cupy(a)
            if not (gpu_a or isinstance(a, np.ndarray)):
                raise TypeError(f"{name}[{i}] must be a numpy.ndarray or cupy.ndarray, got "
                                f"{type(a).__name__}")
            if name == "params" and i == 0:
                gpu = gpu_a
            elif gpu_a != gpu:
                raise TypeError(f"{name}[{i}] and params[0] must both be NumPy or both be CuPy "
                                "arrays")
            p = params[i]
            if a.dtype not in FLOAT_DTYPES:
                raise TypeError(f"{name}[{i}] must have dtype float32 or float64, got {a.dtype} "
                                f"with shape {tuple(a.shape)}")
            if a.dtype != p.dtype:
                raise TypeError(_entry_error(name, i, "dtype", a, p))
            if a.shape != p.shape:
                raise ValueError(_entry_error(name, i, "shape", a, p))
            if name in inplace:
                if not a.flags.c_contiguous:
                    raise ValueError(f"{name}[{i}] (shape {tuple(a.shape)}) must be C-contiguous: "
                                     "it is updated in place")
                if not gpu_a and not a.flags.writeable:
                    raise ValueError(f"{name}[{i}] is read-only: it is updated in place")
            elif not a.flags.c_contiguous:
                a = a.copy() if gpu_a else np.ascontiguousarray(a)
            checked.append(a)
        out[name] = checked
    return out, gpu


def _backend_for(name: Optional[str], gpu: bool, params: list):
    """The backend module, or None for an empty call (nothing to update; a backend name given
    is still checked)."""
    if not params:
        if name is not None:
            _backends.get(name)
        return None
    return _backend(name, gpu)


def _run(fn, lists: dict, per_tensor: dict, args: tuple) -> None:
    """fn(*lists (None stays None), *per-tensor lists, *args) once per dtype, over the entries
    of that dtype that are not empty."""
    params = lists["params"]
    groups: dict = {}
    for i, p in enumerate(params):
        if p.size:
            groups.setdefault(p.dtype, []).append(i)
    for idx in groups.values():
        picked = [None if v is None else v if len(idx) == len(v) else [v[i] for i in idx]
                  for v in (*lists.values(), *per_tensor.values())]
        fn(*picked, *args)


def sgd_update(params: Arrays, grads: Arrays, momentum_buffers: Optional[Arrays], *, lr: float,
               momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
               first_step: bool = False, backend: Optional[str] = None) -> None:
    """One SGD step, in place (see the module docstring). momentum_buffers: a list when
    momentum > 0 (set to d when first_step, else updated), else ignored (None is fine)."""
    lr = _scalar(lr, "lr")
    momentum = _scalar(momentum, "momentum")
    weight_decay = _scalar(weight_decay, "weight_decay")
    if nesterov and momentum == 0.0:
        raise ValueError("nesterov=True needs momentum > 0")
    if momentum and momentum_buffers is None:
        raise ValueError("momentum_buffers are needed when momentum > 0")
    lists, gpu = _lists({"params": params, "grads": grads,
                         "momentum_buffers": momentum_buffers if momentum else None},
                        ("params", "momentum_buffers"))
    be = _backend_for(backend, gpu, lists["params"])
    if be is not None:
        _run(be.sgd_update, lists, {},
             (lr, momentum, bool(nesterov), weight_decay, bool(first_step)))


def _steps(step, n: int) -> list:
    """Adam's step count per parameter: one int >= 1 for all, or a list of them."""
    steps = [step] * n if is_int(step) else step
    if not isinstance(steps, (list, tuple)) or not all(is_int(t) for t in steps):
        raise TypeError(f"step must be an int or a list of ints, got {step!r}")
    if len(steps) != n:
        raise ValueError(f"step has {len(steps)} entries but params has {n}")
    if any(t < 1 for t in steps):
        raise ValueError(f"step must be >= 1 (the first step is 1), got {step!r}")
    return [int(t) for t in steps]


def adam_update(params: Arrays, grads: Arrays, m: Arrays, v: Arrays, *, lr: float,
                beta_1: float, beta_2: float, epsilon: float, step: Union[int, Sequence[int]],
                weight_decay: float = 0.0, decoupled: bool = False,
                v_max: Optional[Arrays] = None, backend: Optional[str] = None) -> None:
    """One Adam step, in place (see the module docstring). step: the step count t (from 1) of
    every parameter, an int or one per parameter (bias corrections 1 - beta^t). decoupled:
    AdamW (p *= 1 - lr*weight_decay first) instead of coupled L2 decay. v_max: a list of the
    largest v seen turns on AMSGrad."""
    lr = _scalar(lr, "lr")
    beta_1 = _scalar(beta_1, "beta_1", 0.0, 1.0)
    beta_2 = _scalar(beta_2, "beta_2", 0.0, 1.0)
    epsilon = _scalar(epsilon, "epsilon")
    weight_decay = _scalar(weight_decay, "weight_decay")
    decay = 1.0 - lr * weight_decay if decoupled and weight_decay else 1.0
    if backend is None and is_int(step) and step >= 1 and _numpy_lists(params):
        be = _backend(None, False)
        if getattr(be, "CHECKS_OPTIM_LISTS", False):   # the compiled core checks every entry
            n, t = len(params), int(step)
            try:
                be.adam_update(list(params), list(grads), list(m), list(v),
                               None if v_max is None else list(v_max),
                               [lr / (1 - beta_1 ** t)] * n, [math.sqrt(1 - beta_2 ** t)] * n,
                               beta_1, beta_2, epsilon, 0.0 if decoupled else weight_decay,
                               decay)
                return
            except (TypeError, ValueError):
                pass   # nothing was updated: the checks below name the argument and shape
    lists, gpu = _lists({"params": params, "grads": grads, "m": m, "v": v, "v_max": v_max},
                        ("params", "m", "v", "v_max"))
    steps = _steps(step, len(params))
    be = _backend_for(backend, gpu, lists["params"])
    if be is None:
        return
    # per tensor, in float64 as the formulas write them (rounded once by the kernels)
    step_size = [lr / (1 - beta_1 ** t) for t in steps]
    sqrt_bc2 = [math.sqrt(1 - beta_2 ** t) for t in steps]
    _run(be.adam_update, lists, {"step_size": step_size, "sqrt_bc2": sqrt_bc2},
         (beta_1, beta_2, epsilon, 0.0 if decoupled else weight_decay, decay))


def rmsprop_update(params: Arrays, grads: Arrays, square_avg: Arrays, *, lr: float, rho: float,
                   epsilon: float, momentum: float = 0.0,
                   momentum_buffers: Optional[Arrays] = None, centered: bool = False,
                   grad_avg: Optional[Arrays] = None, weight_decay: float = 0.0,
                   backend: Optional[str] = None) -> None:
    """One RMSprop step, in place (see the module docstring; rho is PyTorch's alpha).
    momentum_buffers: a list when momentum > 0; grad_avg: a list when centered."""
    lr = _scalar(lr, "lr")
    rho = _scalar(rho, "rho")
    epsilon = _scalar(epsilon, "epsilon")
    momentum = _scalar(momentum, "momentum")
    weight_decay = _scalar(weight_decay, "weight_decay")
    if momentum and momentum_buffers is None:
        raise ValueError("momentum_buffers are needed when momentum > 0")
    if centered and grad_avg is None:
        raise ValueError("grad_avg is needed when centered=True")
    lists, gpu = _lists({"params": params, "grads": grads, "square_avg": square_avg,
                         "grad_avg": grad_avg if centered else None,
                         "momentum_buffers": momentum_buffers if momentum else None},
                        ("params", "square_avg", "grad_avg", "momentum_buffers"))
    be = _backend_for(backend, gpu, lists["params"])
    if be is not None:
        _run(be.rmsprop_update, lists, {}, (lr, rho, epsilon, momentum, weight_decay))
