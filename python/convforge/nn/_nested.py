"""A Model used as a layer of another model: `base(x)` or `base(x, training=False)` on a symbolic
tensor, or a Model given to Sequential. The model keeps its own graph, fusions and parameters;
the outer model sees one layer whose parameters are the inner model's.

Frozen base (transfer learning): `base.trainable = False` freezes every inner layer (no weight
gradients; BatchNormalization then normalises with its moving statistics and leaves them alone,
as in Keras), and the outer backward asks it for no input gradient when nothing below needs one,
so a frozen base costs only its forward. `training=False` at the call pins the inner model to
inference mode (BatchNormalization, Dropout) whatever the outer model's mode.
"""

from __future__ import annotations

from typing import Optional

from .base import Layer, Parameter


class ModelLayer(Layer):
    """The layer standing for `model` in an outer graph (see the module docstring)."""

    _can_skip_dx = True

    def __init__(self, model, training: Optional[bool] = None):
        if model._multi_output:
            raise ValueError(f"model {model.name!r} has several outputs: it cannot be a layer")
        super().__init__(name=model.name, dtype=model.dtype)
        self.model = model
        self.training = training
        self.built = True
        self._built_shape = self.input_shape = tuple(model.input_shape)

    @classmethod
    def default_name(cls) -> str:
        return "model"

    @property
    def params(self) -> list[Parameter]:
        return self.model.params

    @property
    def trainable(self) -> bool:
        return self.model.trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self.model.trainable = value

    @property
    def trainable_params(self) -> list[Parameter]:
        return self.model.trainable_params

    def set_weights(self, weights) -> None:
        self.model.set_weights(weights)

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(self.model.output.shape)

    def flops(self, input_shape) -> int:
        return self.model.count_flops()

    def _forward(self, x, training):
        self._cache = True   # the inner layers keep what their backward needs
        return self.model.forward(x, training if self.training is None else self.training)

    def _backward(self, dy, need_dx: bool = True):
        return self.model.backward(dy, input_grad=need_dx)
