"""DLPack at the boundary of convforge.functional: every public op also takes arrays of other
libraries (any object with __dlpack__: torch tensors, JAX arrays, ...) and answers in the
caller's library.

In: a CPU object becomes a NumPy array with np.from_dlpack (zero-copy: the same memory; a
non-contiguous view, e.g. a transposed tensor, is then copied once into C order by the op's
argument checks, as for NumPy), a CUDA one a CuPy array with cupy.from_dlpack (the cuda
backend; without CuPy a TypeError says so). Out: every array of the result goes back through
the caller library's from_dlpack (torch.from_dlpack, jax.numpy.from_dlpack): zero-copy again.
Ops that update their arguments in place (the optimiser updates) write through to the
caller's memory, since the arrays share it. NumPy and CuPy arrays pass untouched.
"""

from __future__ import annotations

import functools
import importlib

import numpy as np

from .._array import is_cupy

_DLPACK_CPU, _DLPACK_CUDA = 1, 2
# the function a library takes DLPack capsules back with, per root module name
_FROM_DLPACK = {"torch": ("torch", "from_dlpack"), "jax": ("jax.numpy", "from_dlpack"),
                "jaxlib": ("jax.numpy", "from_dlpack")}


def _foreign(a) -> bool:
    return hasattr(a, "__dlpack__") and not isinstance(a, np.ndarray) and not is_cupy(a)


def to_native(a):
    """(a NumPy or CuPy array sharing a's memory, the root name of a's library)."""
    device = int(a.__dlpack_device__()[0])
    lib = type(a).__module__.split(".")[0]
    if device == _DLPACK_CPU:
        try:
            return np.from_dlpack(a), lib
        except (RuntimeError, BufferError, TypeError) as e:   # e.g. a tensor requiring grad
            raise TypeError(f"cannot take a {type(a).__name__} through DLPack: {e}") from None
    if device == _DLPACK_CUDA:
        try:
            import cupy
        except ImportError:
            raise TypeError(f"a CUDA {type(a).__name__} needs CuPy for the cuda backend "
                            "(pip install 'convforge[cuda]')") from None
        return cupy.from_dlpack(a), lib
    raise TypeError(f"{type(a).__name__} lives on DLPack device type {device}: convforge "
                    "takes CPU arrays (NumPy) and CUDA arrays (CuPy)")


def back(out, lib: str):
    """The result `out` (an array, None, a number or a tuple/list of them) in library `lib`."""
    if isinstance(out, (tuple, list)):
        return type(out)(back(o, lib) for o in out)
    if not (isinstance(out, np.ndarray) or is_cupy(out)) or lib not in _FROM_DLPACK:
        return out
    module, fn = _FROM_DLPACK[lib]
    return getattr(importlib.import_module(module), fn)(out)


def _convert(v, libs: list):
    if _foreign(v):
        native, lib = to_native(v)
        libs.append(lib)
        return native
    if isinstance(v, list) and any(_foreign(e) for e in v):   # the optimisers' lists
        return [_convert(e, libs) for e in v]
    return v


# argument types that are never foreign arrays: the common calls skip the conversion at once
_PLAIN = frozenset({np.ndarray, int, float, bool, str, tuple, type(None)})
_NUMPY = frozenset({np.ndarray})


def _maybe_foreign(v) -> bool:
    if type(v) in _PLAIN:
        return False
    if isinstance(v, list):   # the optimisers' lists: usually all NumPy
        return not _NUMPY.issuperset(map(type, v)) and any(map(_foreign, v))
    return _foreign(v)


def dlpack_in_out(fn):
    """fn taking foreign arrays (see the module docstring); NumPy/CuPy calls go straight through
    after one scan of the argument types."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        if (_PLAIN.issuperset(map(type, args)) and _PLAIN.issuperset(map(type, kwargs.values()))
                or not (any(map(_maybe_foreign, args))
                        or any(map(_maybe_foreign, kwargs.values())))):
            return fn(*args, **kwargs)
        libs: list = []
        args = tuple(_convert(a, libs) for a in args)
        kwargs = {k: _convert(v, libs) for k, v in kwargs.items()}
        out = fn(*args, **kwargs)
        return back(out, libs[0]) if libs else out
    return call
