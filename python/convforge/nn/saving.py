"""Model weights on disk: save_weights / load_weights (.npz or .safetensors, the latter through
convforge.io.safetensors: no extra package). Model.save_weights and Model.load_weights call
these.

Files are written atomically (convforge._io_atomic: temporary file in the same folder, fsync,
os.replace): a crash or a write error leaves the previous file whole. Loading never unpickles
(allow_pickle=False) and is all-or-nothing: every array is checked (name, shape, a real
floating dtype) and converted before the first parameter is replaced.
"""

from __future__ import annotations

import os
import zipfile
from typing import Union

import numpy as np

from .._array import array_module
from .._io_atomic import atomic_write
from .base import Parameter, to_numpy

__all__ = ["save_weights", "load_weights"]

PathLike = Union[str, "os.PathLike[str]"]


def weight_items(model) -> list[tuple[str, Parameter]]:
    """("<layer>/<param>", parameter) for every parameter, moving statistics included."""
    model._require_built()
    return [(f"{la.name}/{p.name}", p) for la in model.layers for p in la.params]


def _suffix(path: str) -> str:
    for ext in (".npz", ".safetensors"):
        if path.endswith(ext):
            return ext
    raise ValueError(f"path must end in .npz or .safetensors, got {path!r}")


def save_weights(model, path: PathLike) -> None:
    """Writes every parameter as "<layer>/<param>" arrays to `path` (.npz or .safetensors)."""
    path = os.fspath(path)
    ext = _suffix(path)
    tensors = {k: np.ascontiguousarray(to_numpy(p.data)) for k, p in weight_items(model)}
    if ext == ".npz":
        with atomic_write(path, "wb") as f:
            np.savez(f, **tensors)
        return
    from ..io.safetensors import write_safetensors  # here: convforge.io imports nn

    write_safetensors(path, tensors)


def _read(path: str) -> dict[str, np.ndarray]:
    """Every array of a weights file, read whole (so a damaged file fails here, before any
    parameter changes). Never unpickles."""
    if _suffix(path) == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                if not hasattr(f, "files"):
                    raise ValueError("it holds a single array, not named weights")
                return {k: f[k] for k in f.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise ValueError(f"{path!r} is not a readable .npz weights file: {e}") from None
    from ..io.safetensors import read_safetensors

    return read_safetensors(path)


def load_weights(model, path: PathLike) -> None:
    """Loads weights written by save_weights; names and shapes must match exactly and every
    array must hold real floating-point values (float16/32/64; complex, integer, bool and
    object arrays are refused). On any error the model is left unchanged."""
    path = os.fspath(path)
    tensors = _read(path)
    items = weight_items(model)
    names = {k for k, _ in items}
    missing, unexpected = sorted(names - set(tensors)), sorted(set(tensors) - names)
    if missing or unexpected:
        raise ValueError(f"weights in {path!r} do not match model {model.name!r}: missing "
                         f"{missing}, unexpected {unexpected}")
    for k, p in items:
        a = tensors[k]
        if a.dtype.kind != "f":
            raise TypeError(f"weight {k!r} in {path!r} has dtype {a.dtype}; weights must be "
                            "real floating-point arrays")
        if tuple(a.shape) != p.shape:
            raise ValueError(f"weight {k!r} has shape {tuple(a.shape)} in {path!r} but "
                             f"{p.shape} in the model")
    # Every array converted (and moved to its parameter's device) before the first assignment.
    new = []
    for k, p in items:
        xp = array_module(p._data) if p._data is not None else np
        new.append(xp.ascontiguousarray(xp.asarray(tensors[k]).astype(p.dtype)))
    for (_, p), value in zip(items, new):
        p.data = value
