"""Sequential: a plain stack of layers (a Model built from a list)."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from ._summary import _shape_str
from .base import Input, Layer, SymbolicTensor, _float_dtype, _snake, _unique_name
from .model import Model

__all__ = ["Sequential"]


class Sequential(Model):
    """A plain stack of layers. The input shape comes from the first layer's input_shape=, an
    Input(...) given as the first element, build(input_shape), or the first batch it sees.
    dtype (default float32, or the first layer's dtype) is the model's compute dtype."""

    def __init__(self, layers: Optional[Sequence[Union[Layer, SymbolicTensor]]] = None,
                 name: Optional[str] = None, dtype=None):
        self.name = name or "sequential"
        self._init_state()
        self._layers: list[Layer] = []
        self._input: Optional[SymbolicTensor] = None
        self._dtype = None if dtype is None else _float_dtype(dtype)
        for la in layers or []:
            self.add(la)

    def add(self, layer: Union[Layer, SymbolicTensor]) -> None:
        if isinstance(layer, SymbolicTensor):
            if self._layers or self._input is not None or layer.node is not None:
                raise ValueError("an Input may only be the first element of a Sequential")
            self._input = layer
            return
        if isinstance(layer, Model):   # a model as one layer (transfer learning: a base)
            from ._nested import ModelLayer

            layer = ModelLayer(layer)
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential takes layers, got {type(layer).__name__}")
        if layer.multi_input:
            raise ValueError(f"layer {layer.label} takes several inputs; use Model for it")
        if any(la is layer for la in self._layers):
            raise ValueError(f"layer {layer.label} is already in this model")
        if layer.name is not None and any(la.name == layer.name for la in self._layers):
            raise ValueError(f"two layers in one model are named {layer.name!r}")
        if layer.name is None:
            layer.name = _unique_name(_snake(layer.default_name()),
                                      {la.name for la in self._layers})
        self._layers.append(layer)
        if self._input is None and len(self._layers) == 1 and layer.input_shape is not None:
            self._input = Input(layer.input_shape, self._resolved_dtype())
        if self._input is not None:
            self._rebuild()

    def _resolved_dtype(self):
        if self._dtype is not None:
            return self._dtype
        if self._layers and self._layers[0].dtype is not None:
            return self._layers[0].dtype
        return np.dtype(np.float32)

    def _rebuild(self) -> None:
        t = self._input
        for la in self._layers:
            t = la(t)
        self._set_graph(self._input, t)

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        """Builds for per-sample input_shape (C, H, W) (a leading None batch axis is ignored)."""
        shape = tuple(input_shape)
        if shape and shape[0] is None:
            shape = shape[1:]
        if self._input is not None and self._input.shape != shape:
            raise ValueError(f"model {self.name!r} is built for {_shape_str(self._input.shape)}, "
                             f"not {_shape_str(shape)}")
        if not self._layers:
            raise ValueError("Sequential has no layers")
        self._input = self._input or Input(shape, self._resolved_dtype())
        self._rebuild()

    def _ensure_built_for(self, x) -> None:
        if not self.built:
            self.build(tuple(x.shape[1:]))

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def pop(self) -> Layer:
        """Removes and returns the last layer."""
        if not self._layers:
            raise ValueError("Sequential has no layers to pop")
        la = self._layers.pop()
        if self._input is not None and self._layers:
            self._rebuild()
        elif not self._layers:
            self.inputs, self.outputs, self._nodes = [], [], []
        return la
