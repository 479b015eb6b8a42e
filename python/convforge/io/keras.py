"""Keras weights (.h5 files, read with h5py) into convforge models: load_keras_h5.

Files: Keras 2 `save_weights(".h5")` (root attribute layer_names, one group per layer with
attribute weight_names such as "block1_conv1/kernel:0"), a full-model `model.save(".h5")` (the
same under "model_weights"), and Keras 3 `save_weights(".weights.h5")` (layers/<name>/vars/0,
1, ... with the layer's own name in the vars group's "name" attribute). Datasets are read only
after every shape fits the model.

Layouts: a Keras Conv2D kernel is HWIO (KH, KW, C/G, K) -> OIHW by transpose(3, 2, 0, 1). A
Dense kernel is (in, units) in both libraries, but a channels-last Keras model flattens
(H, W, C) while convforge flattens (C, H, W): the rows of a Dense kernel fed by a Flatten of a
(C, H, W) map are permuted from H, W, C to C, H, W order (data_format="channels_first" skips
this). BatchNormalization weights keep their names (gamma, beta, moving_mean,
moving_variance); Keras' default epsilon (1e-3) is convforge's too.
"""

from __future__ import annotations

import os
import re
from typing import Optional, Sequence, Union

import numpy as np

from ..nn.layers import Conv2D, Dense, Flatten
from . import _convert

__all__ = ["load_keras_h5"]

# Keras 3 files name each layer's group after its class: conv2d, conv2d_1, ...
_KERAS3_KINDS = {"conv2d": "conv", "dense": "dense", "batch_normalization": "bn"}


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _names(attr) -> list[str]:
    return [_text(v) for v in np.asarray(attr).reshape(-1)] if attr is not None else []


def _kind(roles: dict) -> Optional[str]:
    if "moving_mean" in roles:
        return "bn"
    kernel = roles.get("kernel")
    if kernel is not None and len(kernel[1].shape) in (2, 4):
        return "dense" if len(kernel[1].shape) == 2 else "conv"
    return None


class _H5Ref:
    def __init__(self, dataset):
        self.dataset = dataset
        self.shape, self.dtype = tuple(dataset.shape), dataset.dtype

    def read(self) -> np.ndarray:
        return np.asarray(self.dataset[()])


def _keras2_sources(root, path: str) -> list:
    out = []
    for lname in _names(root.attrs["layer_names"]):
        if lname not in root:
            raise ValueError(f"{path!r} lists layer {lname!r} but holds no group for it")
        g = root[lname]
        # weight names are "<layer>/<weight>:0"; a nested model's group holds several layers
        by_layer: dict = {}
        for wname in _names(g.attrs.get("weight_names")):
            if wname not in g:
                raise ValueError(f"{path!r}: layer {lname!r} lists weight {wname!r} but holds "
                                 "no dataset for it")
            prefix, _, last = wname.rpartition("/")
            role = last.split(":", 1)[0]                            # kernel:0 -> kernel
            by_layer.setdefault(prefix, {})[role] = (f"{lname}/{wname}", _H5Ref(g[wname]))
        for prefix, roles in by_layer.items():
            name = lname if len(by_layer) == 1 else prefix.rpartition("/")[2]
            out.append(_convert.SourceLayer(name, _kind(roles), roles))
    return out


def _keras3_sources(layers_group, where: str = "layers") -> list:
    def order(key):
        base, _, n = key.rpartition("_")
        return (base, int(n)) if n.isdigit() and base else (key, 0)

    out = []
    for key in sorted(layers_group, key=order):
        g = layers_group[key]
        if "layers" in g:                                           # a nested model
            out += _keras3_sources(g["layers"], f"{where}/{key}/layers")
        if "vars" not in g or not len(g["vars"]):
            continue
        v = g["vars"]
        name = _text(v.attrs.get("name", key))
        if not all(i.isdigit() for i in v):
            raise ValueError(f"{where}/{key}/vars holds {sorted(v)}: Keras 3 numbers "
                             "variables 0, 1, ...")
        arrays = {int(i): (f"{where}/{key}/vars/{i}", _H5Ref(v[i])) for i in v}
        base = re.sub(r"_\d+$", "", key)
        out.append(_convert.SourceLayer(name, _KERAS3_KINDS.get(base), arrays, positional=True))
    return out


def _read_sources(f, path: str) -> list:
    if "layer_names" in f.attrs:
        return _keras2_sources(f, path)
    if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
        return _keras2_sources(f["model_weights"], path)
    if "layers" in f:
        return _keras3_sources(f["layers"])
    raise ValueError(f"{path!r} is not a Keras weights file (no layer_names attribute, "
                     "model_weights group or layers group)")


def _flatten_inputs(model) -> dict:
    """{id(Dense layer): (C, H, W)} for Dense layers fed by a Flatten of a (C, H, W) map
    (through layers that keep the shape and hold no weights, such as Dropout)."""
    out = {}
    for node in _convert.all_nodes(model):
        if not isinstance(node.layer, Dense):
            continue
        t = node.inputs[0]
        while t.node is not None and not t.node.layer.multi_input and \
                not t.node.layer.params and not isinstance(t.node.layer, Flatten) and \
                t.node.inputs[0].shape == t.shape:
            t = t.node.inputs[0]
        if t.node is not None and isinstance(t.node.layer, Flatten) and \
                len(t.node.inputs[0].shape) == 3:
            out[id(node.layer)] = tuple(t.node.inputs[0].shape)
    return out


def _keras_layout(model, channels_last: bool) -> _convert.Layout:
    chw = _flatten_inputs(model) if channels_last else {}

    def source_shape(layer, name, shape):
        if isinstance(layer, Conv2D) and name == "kernel":
            k, c, kh, kw = shape
            return (kh, kw, c, k)
        return shape

    def convert(layer, name, a):
        if isinstance(layer, Conv2D) and name == "kernel":
            return a.transpose(3, 2, 0, 1)
        if name == "kernel" and id(layer) in chw:
            c, h, w = chw[id(layer)]
            # rows (h, w, c) -> (c, h, w)
            return a.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
        return a

    what = "Keras layouts: Conv2D kernel HWIO" + (", first Dense rows in H, W, C order"
                                                  if chw else "")
    return _convert.Layout(source_shape, convert, what + "; shapes below as stored")


def load_keras_h5(model, path: Union[str, "os.PathLike[str]"], *, by_name: bool = False,
                  ignore: Sequence[str] = (), data_format: str = "channels_last") -> None:
    """Loads the weights of a Keras .h5 file into a built convforge model (needs h5py:
    pip install 'convforge[keras]').

    Layers pair kind by kind in order (the i-th Keras Conv2D with the i-th convforge Conv2D, and
    so on: Keras' own default for .h5 files), or by layer name with by_name=True. `ignore`:
    Keras layer names to skip (e.g. ("fc1", "fc2", "predictions") for a model without the
    classifier). data_format: how the Keras model held its images ("channels_last", Keras'
    default, or "channels_first"). Every name and shape is checked first; any mismatch raises
    one ValueError listing them, and the model is left unchanged.
    """
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got "
                         f"{data_format!r}")
    try:
        import h5py
    except ImportError as e:
        raise ImportError("load_keras_h5 needs h5py: pip install 'convforge[keras]'") from e
    path = os.fspath(path)
    if isinstance(ignore, str):
        ignore = (ignore,)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        if not os.path.exists(path):
            raise FileNotFoundError(path) from e
        raise ValueError(f"{path!r} is not a readable HDF5 file: {e}") from None
    with f:
        sources = [s for s in _read_sources(f, path) if s.name not in set(ignore)]
        layers = _convert.param_layers(model)
        paired = _convert.pair_by_name(layers, sources) if by_name else \
            _convert.pair_in_order(layers, sources)
        _convert.assign(model, paired, _keras_layout(model, data_format == "channels_last"),
                        repr(path))
