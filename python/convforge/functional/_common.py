"""What every public op shares: the argument checks (array kind, dtype, rank, batch axis,
shapes given as tuples) and the backend choice. See the package docstring for the contract."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .. import backends as _backends
from .._array import FLOAT_DTYPES, array_module, int64, is_cupy
from .._shapes import checked_size

IntPair = Union[int, Sequence[int]]
Padding = Union[int, str, Sequence[int]]


# --------------------------------------------------------------------------- array checks

def _array(a, name: str, ndim: int, layout: str, batch: bool = False):
    """Checks type, dtype and rank; returns a C-contiguous array (one copy only if needed).
    batch: axis 0 is the batch axis, which may be empty (N = 0); other axes may not."""
    if not (isinstance(a, np.ndarray) or is_cupy(a)):
        raise TypeError(f"{name} must be a numpy.ndarray or cupy.ndarray, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have dtype float32 or float64, got {a.dtype} with shape {tuple(a.shape)}"
        )
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {tuple(a.shape)}")
    if 0 in a.shape[1 if batch else 0:]:
        raise ValueError(f"{name} has a zero-size dimension: shape {tuple(a.shape)}")
    return a if a.flags.c_contiguous else array_module(a).ascontiguousarray(a)


def _same_dtype(named: dict):
    """All given arrays share one dtype and one device kind; returns whether they are CuPy."""
    items = [(k, v) for k, v in named.items() if v is not None]
    k0, v0 = items[0]
    gpu0 = is_cupy(v0)
    for k, v in items[1:]:
        if v.dtype != v0.dtype:
            raise TypeError(f"{k} has dtype {v.dtype} but {k0} has dtype {v0.dtype}; "
                            "cast one of them explicitly")
        if is_cupy(v) != gpu0:
            raise TypeError(f"{k} and {k0} must both be NumPy or both be CuPy arrays")
    return gpu0


def _backend(name: Optional[str], on_gpu: bool):
    """The backend module for this call; checks it takes this kind of array."""
    chosen = _backends.chosen(on_gpu) if name is None else name
    mod = _backends.get(chosen)
    if (chosen == "cuda") != on_gpu:
        kind = "CuPy" if on_gpu else "NumPy"
        raise TypeError(
            f"backend {chosen!r} cannot take {kind} arrays: the cuda backend takes CuPy arrays, "
            "the others NumPy arrays"
        )
    return mod


def _zeros(like, shape, dtype=None):
    """Zeros of `shape` on the device of `like` (the results of ops on an empty batch)."""
    return array_module(like).zeros(shape, like.dtype if dtype is None else dtype)


def _with_batch(a, ndim: int):
    """(a, False), or (a with a leading batch axis of 1, True) when a is given without it: an
    array (or, for the arguments that take one, a shape tuple) one axis short of ndim, PyTorch's
    unbatched (C, H, W) convention. None passes through."""
    if isinstance(a, tuple):
        return ((1,) + a, True) if len(a) == ndim - 1 else (a, False)
    if getattr(a, "ndim", None) == ndim - 1:
        return a[None], True
    return a, False


def _with_batch_all(named: dict, ndim: dict):
    """_with_batch of each argument ({name: value}, None skipped); they must all agree.
    Returns ({name: value with the batch axis}, whether they were unbatched)."""
    out, flags = {}, set()
    for k, v in named.items():
        out[k], unbatched = _with_batch(v, ndim[k])
        if v is not None:
            flags.add(unbatched)
    if len(flags) > 1:
        shapes = ", ".join(f"{k} {tuple(getattr(v, 'shape', v))}" for k, v in named.items()
                           if v is not None)
        raise ValueError(f"either every argument has the batch axis or none has: got {shapes}")
    return out, True in flags


def _shape4(x, name: str) -> Tuple[int, int, int, int]:
    """A forward input given as an array or as its shape (for backward ops); N may be 0."""
    if hasattr(x, "shape"):
        shape = tuple(int(s) for s in x.shape)
    else:
        shape = tuple(int64(s, name) for s in x)
    if len(shape) != 4 or min(shape[1:]) < 1 or shape[0] < 0:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {shape}")
    checked_size(shape, name)
    return shape  # type: ignore[return-value]
