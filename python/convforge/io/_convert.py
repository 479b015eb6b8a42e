"""What the pretrained-weight loaders share: the convforge layers that take weights, pairing them
with the layers of a source (a PyTorch state dict, a Keras file), and the all-or-nothing
assignment that checks every name, dtype and shape first and reports every mismatch at once.

A source layer holds references to arrays (shape and dtype known, data read on demand), so a
file's arrays are read only after they all fit the model: nothing larger than the model's own
weights is ever allocated, whatever sizes a damaged file claims.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Optional, Sequence

import numpy as np

from .._array import array_module
from ..nn._nested import ModelLayer
from ..nn.layers import BatchNormalization, Conv2D, Dense

# Layer classes that take pretrained weights, and the kind a source layer must have to fit.
KINDS = {Conv2D: "conv", Dense: "dense", BatchNormalization: "bn"}
_KIND_NAMES = {"conv": "Conv2D", "dense": "Dense", "bn": "BatchNormalization"}
_SHOW = 8   # list at most this many entries per kind of mismatch


class ArrayRef:
    """An array already in memory, behind the interface of the lazy file references
    (.shape, .dtype, .read())."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    @property
    def shape(self) -> tuple:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def read(self) -> np.ndarray:
        return self.array


class SourceLayer:
    """One layer of a weights source. `arrays`: {role: (source key, ref)}, where a role is the
    convforge parameter name (kernel, bias, gamma, ...) or, with positional=True (Keras 3
    files), the position of the variable, matched to the convforge layer's parameters in order.
    kind: "conv", "dense", "bn", or None for a layer convforge cannot take."""

    def __init__(self, name: str, kind: Optional[str], arrays: dict,
                 positional: bool = False):
        self.name, self.kind, self.arrays, self.positional = name, kind, arrays, positional

    def resolve(self, layer) -> tuple[dict, list]:
        """({param name: (key, ref)}, [(key, ref) the layer has no parameter for])."""
        if not self.positional:
            names = {p.name for p in layer.params}
            return ({r: v for r, v in self.arrays.items() if r in names},
                    [v for r, v in self.arrays.items() if r not in names])
        values = [self.arrays[i] for i in sorted(self.arrays)]
        params = layer.params
        return ({p.name: v for p, v in zip(params, values)}, values[len(params):])


class Layout:
    """How a source stores a parameter: source_shape(layer, name, shape) gives the shape the
    source must hold for a convforge parameter of `shape`; convert(layer, name, a) turns the
    source array into convforge's layout."""

    def __init__(self, source_shape: Callable, convert: Callable, description: str):
        self.source_shape, self.convert, self.description = source_shape, convert, description


def all_layers(model) -> list:
    """The model's layers in model order, those of nested models (ModelLayer) in their place."""
    model._require_built()
    out = []
    for la in model.layers:
        out += all_layers(la.model) if isinstance(la, ModelLayer) else [la]
    return out


def all_nodes(model) -> list:
    """The graph nodes of the model and of every nested model."""
    out = []
    for n in model._nodes:
        out += all_nodes(n.layer.model) if isinstance(n.layer, ModelLayer) else [n]
    return out


def param_layers(model) -> list:
    """The model's layers that hold parameters, in model order (nested models' in their
    place); only Conv2D, Dense and BatchNormalization can take pretrained weights."""
    layers = [la for la in all_layers(model) if la.params]
    other = [f"{la.name} ({type(la).__name__})" for la in layers if type(la) not in KINDS]
    if other:
        raise ValueError(f"model {model.name!r} has layers with parameters that pretrained "
                         f"weights cannot fill: {other}; supported: Conv2D, Dense, "
                         "BatchNormalization")
    return layers


def pair_in_order(layers: Sequence, sources: Sequence[SourceLayer]):
    """Per kind, the i-th convforge layer of that kind with the i-th source layer of that kind.
    Returns (pairs in model order, layers left without a source, sources left over, notes)."""
    mine, theirs = defaultdict(list), defaultdict(list)
    for la in layers:
        mine[KINDS[type(la)]].append(la)
    unexpected = []
    for s in sources:
        (theirs[s.kind] if s.kind else unexpected).append(s)
    pairs, missing, notes = [], [], []
    for kind in list(mine) + [k for k in theirs if k not in mine]:
        ls, ss = mine.get(kind, []), theirs.get(kind, [])
        if len(ls) != len(ss):
            notes.append(f"the model has {len(ls)} {_KIND_NAMES[kind]} layers, the source "
                         f"{len(ss)}")
        pairs += zip(ls, ss)
        missing += ls[len(ss):]
        unexpected += ss[len(ls):]
    order = {id(la): i for i, la in enumerate(layers)}
    pairs.sort(key=lambda p: order[id(p[0])])
    return pairs, missing, unexpected, notes


def pair_by_name(layers: Sequence, sources: Sequence[SourceLayer],
                 mapping: Optional[dict] = None):
    """Pairs source layers with convforge layers by name: mapping[source name] -> convforge
    layer name, or equal names when mapping is None. Same return as pair_in_order."""
    by_name = {la.name: la for la in layers}
    pairs, unexpected, notes, used = [], [], [], set()
    for s in sources:
        target = s.name if mapping is None else mapping.get(s.name)
        la = by_name.get(target) if target is not None else None
        if la is None or id(la) in used:
            if mapping is not None and target is not None and la is None:
                notes.append(f"mapping names {target!r} for {s.name!r}, which the model "
                             "lacks (or holds no parameters)")
            unexpected.append(s)
            continue
        used.add(id(la))
        pairs.append((la, s))
    missing = [la for la in layers if id(la) not in used]
    order = {id(la): i for i, la in enumerate(layers)}
    pairs.sort(key=lambda p: order[id(p[0])])
    return pairs, missing, unexpected, notes


def _shape(t) -> str:
    return str(tuple(int(s) for s in t))


def _listing(title: str, items: list) -> str:
    more = f"\n    ... and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
    return f"\n  {title}:\n    " + "\n    ".join(items[:_SHOW]) + more


def assign(model, paired, layout: Layout, source: str) -> None:
    """Checks every pair (kind, names, dtype, shape), then reads, converts and assigns all the
    arrays; on any mismatch raises one ValueError naming each (the model is left unchanged)."""
    pairs, missing_layers, unexpected_sources, notes = paired
    missing = [f"{la.name} ({type(la).__name__}): " + ", ".join(
        f"{p.name} {_shape(p.shape)}" for p in la.params) for la in missing_layers]
    unexpected = [f"{k} {_shape(r.shape)}" for s in unexpected_sources
                  for k, r in s.arrays.values()]
    wrong = []
    todo = []   # (parameter, layer, ref)
    for la, s in pairs:
        kind = KINDS[type(la)]
        if s.kind != kind:
            wrong.append(f"{s.name} (a {s.kind or 'unsupported'} layer) cannot fill "
                         f"{la.name} ({type(la).__name__})")
            continue
        found, extra = s.resolve(la)
        unexpected += [f"{k} {_shape(r.shape)}" for k, r in extra]
        for p in la.params:
            if p.name not in found:
                missing.append(f"{la.name}/{p.name} {_shape(p.shape)} ({s.name} has none)")
                continue
            key, ref = found[p.name]
            want = tuple(layout.source_shape(la, p.name, p.shape))
            if np.dtype(ref.dtype).kind != "f":
                wrong.append(f"{key} has dtype {ref.dtype}; weights must be floating-point")
            elif tuple(ref.shape) != want:
                wrong.append(f"{key} has shape {_shape(ref.shape)}; {la.name}/{p.name} "
                             f"{_shape(p.shape)} needs {_shape(want)} there")
            else:
                todo.append((p, la, ref))
    if missing or unexpected or wrong:
        msg = (f"weights from {source} do not match model {model.name!r} ({layout.description}; "
               "nothing was loaded)")
        for title, items in (("missing", missing), ("unexpected", unexpected),
                             ("mismatched", wrong)):
            if items:
                msg += _listing(title, items)
        if notes:
            msg += _listing("note", notes)
        raise ValueError(msg)
    # Every array read and converted (and moved to its parameter's device) before the first
    # assignment, so a read error also leaves the model unchanged.
    new = []
    for p, la, ref in todo:
        # a fresh array: the model never shares memory with a caller's mapping
        a = np.array(layout.convert(la, p.name, np.asarray(ref.read())), dtype=p.dtype,
                     order="C")
        xp = array_module(p._data) if p._data is not None else np
        new.append((p, a if xp is np else xp.asarray(a)))
    for p, value in new:
        p.data = value
