"""Weight regularisers (Keras names): penalties on a layer's kernel, added to the training loss.

    nn.Dense(10, kernel_regularizer=nn.regularizers.L2(0.01))   # or "l2", or 0.01 (an L2 factor)

L1(l1=0.01): l1 * sum(|w|), gradient l1 * sign(w);  L2(l2=0.01): l2 * sum(w^2), gradient
2 * l2 * w (Keras' convention: no 1/2);  L1L2(l1=0.0, l2=0.0): both.

A layer's regularised parameters add their penalty's gradient into `.grad` in the layer's
backward (while the layer is trainable), and `Layer.losses` / `Model.losses` list the penalties.
Model.fit, train_on_batch and evaluate add their sum to the reported loss, as Keras does (so
loss and val_loss both include it); the penalty of a training step is that of the weights the
step's forward used. Penalties are summed in the weights' dtype and array module.

Weight decay in the optimiser (weight_decay=) is the other way to the same end; see
convforge.optim for which parameters it skips.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from .._array import array_module, nonneg_float
from .._config import Configurable

__all__ = ["Regularizer", "L1", "L2", "L1L2", "get"]


class Regularizer(Configurable):
    """Base: `reg(w)` is the penalty (a 0-d array), `reg.grad(w)` its gradient (w's shape)."""

    def __call__(self, w):
        raise NotImplementedError

    def grad(self, w):
        raise NotImplementedError


class L1L2(Regularizer):
    """l1 * sum(|w|) + l2 * sum(w^2)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = nonneg_float(l1, "l1"), nonneg_float(l2, "l2")

    def __call__(self, w):
        xp = array_module(w)
        total = xp.zeros((), w.dtype)
        if self.l1:
            total = total + self.l1 * xp.abs(w).sum()
        if self.l2:
            total = total + self.l2 * (w * w).sum()
        return total

    def grad(self, w):
        xp = array_module(w)
        g = xp.zeros_like(w)
        if self.l1:
            g += self.l1 * xp.sign(w)
        if self.l2:
            g += (2.0 * self.l2) * w
        return g


class L1(L1L2):
    """l1 * sum(|w|); gradient l1 * sign(w) (0 at w = 0)."""

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(L1L2):
    """l2 * sum(w^2); gradient 2 * l2 * w."""

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}


_NAMES = {"l1": L1, "l2": L2, "l1_l2": L1L2}


def get(identifier: Union[None, str, float, Regularizer]) -> Optional[Regularizer]:
    """None, a Regularizer, a name ("l1", "l2" with Keras' default factor 0.01, "l1_l2"),
    or a number meaning an L2 factor."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _NAMES:
        return _NAMES[identifier.lower()]()
    if isinstance(identifier, (int, float, np.integer, np.floating)) and \
            not isinstance(identifier, bool):
        return L2(identifier)
    raise ValueError(f"a regularizer must be None, a Regularizer (nn.regularizers.L1, L2, "
                     f"L1L2), one of {sorted(_NAMES)} or a number (an L2 factor), got "
                     f"{identifier!r}")
