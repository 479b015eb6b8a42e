"""PyTorch / torchvision weights into convforge models: load_torchvision.

Layouts: a torch Conv2d weight is OIHW (K, C/G, KH, KW) like convforge's Conv2D kernel (copied
as is); a Linear weight is (out, in) and becomes the Dense kernel (in, units) by a transpose. Both
libraries flatten NCHW activations in C, H, W order, so the first Dense after a Flatten needs no
permutation. BatchNorm2d: weight, bias, running_mean, running_var -> gamma, beta, moving_mean,
moving_variance (num_batches_tracked is skipped; the state dict does not hold eps: build the
BatchNormalization with epsilon=1e-5, torch's default, to match).

Sources: a mapping of names to arrays (NumPy arrays or torch tensors), or a path to .safetensors
(read by convforge.io.safetensors), .npz (np.load with allow_pickle=False) or .pth/.pt. A .pth is
a pickle: convforge never unpickles files itself, so it is read only through an installed torch
with torch.load(weights_only=True) (torch's restricted unpickler that builds tensors and plain
containers only); without torch, convert the file to .safetensors or .npz.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import Optional, Sequence, Union

import numpy as np

from ..nn.layers import Dense
from . import _convert
from .safetensors import open_safetensors

__all__ = ["load_torchvision", "read_state_dict"]

_BN_ROLES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
             "running_var": "moving_variance"}
_ROLES = {"weight": "kernel", "bias": "bias"}


def _torch_layout() -> _convert.Layout:
    def source_shape(layer, name, shape):
        return shape[::-1] if isinstance(layer, Dense) and name == "kernel" else shape

    def convert(layer, name, a):
        return a.T if isinstance(layer, Dense) and name == "kernel" else a

    return _convert.Layout(source_shape, convert, "torch layouts: Conv2d weight OIHW, Linear "
                                                  "weight (out, in); shapes below as stored")


def _tensor_to_numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):                         # a torch tensor
        t = t.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":         # NumPy has no bfloat16
            t = t.float()
        return t.numpy()
    a = np.asarray(t)
    if a.dtype.hasobject:
        raise TypeError("state dict values must be arrays or tensors, got an object array")
    return a


class _NpyMember:
    """One array of an .npz file: shape and dtype from its .npy header, data read on demand."""

    def __init__(self, path: str, member: str, key: str):
        self.path, self.member, self.key = path, member, key
        with zipfile.ZipFile(path) as z, z.open(member) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    def read(self) -> np.ndarray:
        with np.load(self.path, allow_pickle=False) as f:
            return f[self.key]


def _npz(path: str) -> dict:
    try:
        with zipfile.ZipFile(path) as z:
            members = [m for m in z.namelist() if m.endswith(".npy")]
        return {m[:-4]: _NpyMember(path, m, m[:-4]) for m in members}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path!r} is not a readable .npz file: {e}") from None


def _pth(path: str) -> dict:
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"reading {path!r} needs torch (torch.load(weights_only=True)); "
                          "convforge does not unpickle files itself: save the state dict as "
                          ".safetensors or .npz instead") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses any global outside tensors and plain containers
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path!r} is not a plain state dict: torch.load(weights_only=True) "
                         f"refused it ({first})") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path!r} holds a {type(obj).__name__}, not a state dict")
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]                      # a training checkpoint
    return {k: _convert.ArrayRef(_tensor_to_numpy(v)) for k, v in obj.items()}


def read_state_dict(source) -> tuple[dict, str]:
    """({name: array reference}, a description for messages) from a mapping or a path."""
    if isinstance(source, Mapping):
        refs = {}
        for k, v in source.items():
            if not isinstance(k, str):
                raise TypeError(f"state dict keys must be strings, got {k!r}")
            refs[k] = _convert.ArrayRef(_tensor_to_numpy(v))
        return refs, "the given state dict"
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"state_dict must be a mapping of names to arrays or a path, got "
                        f"{type(source).__name__}")
    path = os.fspath(source)
    if path.endswith(".safetensors"):
        return open_safetensors(path)[0], repr(path)
    if path.endswith(".npz"):
        return _npz(path), repr(path)
    if path.endswith((".pth", ".pt")):
        return _pth(path), repr(path)
    raise ValueError(f"path must end in .safetensors, .npz, .pth or .pt, got {path!r}")


def _tree_key(prefixes: Sequence[str]):
    """Sort key for module paths: numeric parts by value, named parts in order of first
    appearance. So 'features.10' follows 'features.2' even in files whose names were sorted as
    text (the safetensors package writes them so), and models keep registration order."""
    first: dict = {}
    for i, p in enumerate(prefixes):
        parts = p.split(".")
        for j, c in enumerate(parts):
            first.setdefault((tuple(parts[:j]), c), i)

    def key(p):
        parts = p.split(".")
        return tuple((0, int(c)) if c.isdigit() else (1, first[(tuple(parts[:j]), c)])
                     for j, c in enumerate(parts))
    return key


def _sources(refs: dict) -> list:
    """State-dict keys grouped by module ("features.0.weight" -> module "features.0")."""
    groups: dict = {}
    for k, ref in refs.items():
        prefix, _, role = k.rpartition(".")
        groups.setdefault(prefix, {})[role] = (k, ref)
    out = []
    for prefix in sorted(groups, key=_tree_key(list(groups))):
        roles = groups[prefix]
        weight = roles.get("weight", (None, None))[1]
        if "running_mean" in roles:
            kind, names = "bn", _BN_ROLES
            nbt = roles.get("num_batches_tracked")
            if nbt is not None and np.dtype(nbt[1].dtype).kind in "iu":
                del roles["num_batches_tracked"]
        elif weight is not None and len(weight.shape) in (2, 4):
            kind, names = ("dense" if len(weight.shape) == 2 else "conv"), _ROLES
        else:
            kind, names = None, {}
        arrays = {names.get(r, f"?{r}"): v for r, v in roles.items()}
        out.append(_convert.SourceLayer(prefix or "<root>", kind, arrays))
    return out


def _ignored(key: str, ignore: Sequence[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in ignore)


def load_torchvision(model, state_dict: Union[Mapping, str, "os.PathLike[str]"], *,
                     mapping: Optional[Mapping[str, str]] = None,
                     ignore: Sequence[str] = ()) -> None:
    """Loads PyTorch weights (a torchvision-style state dict) into a built convforge model.

    state_dict: {name: array or tensor}, or a path to .safetensors, .npz or .pth/.pt (see the
    module docstring). Modules pair with the model's Conv2D, Dense and BatchNormalization layers
    kind by kind in order (the i-th Conv2d with the i-th Conv2D, ...; module order is the
    state dict's, numeric parts sorted by value), or by `mapping` {torch module path:
    convforge layer name} when given. `ignore`: module paths (and everything under them, e.g.
    "classifier") to skip.

    Every name, dtype and shape is checked first; any missing, unexpected or mismatched entry
    raises one ValueError listing them (with shapes), and the model is left unchanged.
    """
    refs, desc = read_state_dict(state_dict)
    if isinstance(ignore, str):
        ignore = (ignore,)
    refs = {k: v for k, v in refs.items() if not _ignored(k, ignore)}
    sources = _sources(refs)
    layers = _convert.param_layers(model)
    paired = _convert.pair_in_order(layers, sources) if mapping is None else \
        _convert.pair_by_name(layers, sources, dict(mapping))
    _convert.assign(model, paired, _torch_layout(), desc)
