"""Optimisers. Update formulas are PyTorch's (torch.optim, with dampening 0 and maximize
False) so results can be checked against it step by step; default hyperparameters are Keras'.

    SGD      g = grad + wd*p;  buf = momentum*buf + g (buf = g on the first step)
             p -= lr * (g + momentum*buf if nesterov else buf)        (buf = g without momentum)
    RMSprop  g = grad + wd*p;  sq = rho*sq + (1-rho)*g^2
             centered: ga = rho*ga + (1-rho)*g,  denom = sqrt(sq - ga^2) + eps
             otherwise denom = sqrt(sq) + eps
             momentum > 0: buf = momentum*buf + g/denom, p -= lr*buf;  else p -= lr*g/denom
    Adam     g = grad + wd*p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2      (step t from 1)
             p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)     (amsgrad: v -> max v seen)
    AdamW    as Adam with decoupled decay: p *= 1 - lr*wd before the Adam step (no wd in g)

Weight decay in SGD/RMSprop/Adam is L2 added to the gradient (coupled). Note the epsilon
placement: PyTorch adds eps to sqrt(v) (Keras adds it to sqrt(v_hat) in Adam and inside the
sqrt in RMSprop), so with Keras' default eps=1e-7 results match Keras only up to eps effects.

Usage in a training step: zero_grad(params); forward; backward (layers add into .grad);
step(params). Parameters are objects with `.data` and `.grad` arrays (NumPy or CuPy); state is
kept per parameter object.
"""

from __future__ import annotations

import math
import weakref
from typing import Iterable, Union

from ._array import array_module

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "get"]


def _nonneg(v, name: str) -> float:
    v = float(v)
    if not v >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {v!r}")
    return v


class Optimizer:
    """Base: `step(params)` updates every parameter that has a gradient; `zero_grad(params)`
    sets the gradients to zero."""

    def __init__(self, learning_rate: float, weight_decay: float = 0.0):
        self.learning_rate = _nonneg(learning_rate, "learning_rate")
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        self.iterations = 0
        self._state: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def zero_grad(self, params: Iterable) -> None:
        for p in params:
            if p.grad is not None:
                p.grad.fill(0)

    def step(self, params: Iterable) -> None:
        self.iterations += 1
        for p in params:
            if p.grad is None:
                continue
            if p.grad.shape != p.data.shape:
                raise ValueError(f"gradient shape {tuple(p.grad.shape)} does not match the "
                                 f"parameter shape {tuple(p.data.shape)}")
            state = self._state.setdefault(p, {})
            self._update(p, state)

    def _update(self, p, state: dict) -> None:
        raise NotImplementedError

    def _grad(self, p):
        """The gradient with coupled (L2) weight decay added."""
        return p.grad + self.weight_decay * p.data if self.weight_decay else p.grad

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if not k.startswith("_") and k != "iterations")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(learning_rate, weight_decay)
        self.momentum = _nonneg(momentum, "momentum")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")

    def _update(self, p, state):
        g = self._grad(p)
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= self.momentum
                buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p.data -= self.learning_rate * g


class RMSprop(Optimizer):
    """RMSprop (rho is PyTorch's alpha); optional momentum and centering."""

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, weight_decay: float = 0.0):
        super().__init__(learning_rate, weight_decay)
        self.rho, self.momentum = _nonneg(rho, "rho"), _nonneg(momentum, "momentum")
        self.epsilon, self.centered = _nonneg(epsilon, "epsilon"), bool(centered)

    def _update(self, p, state):
        xp = array_module(p.data)
        g = self._grad(p)
        if not state:
            state["square_avg"] = xp.zeros_like(p.data)
            if self.centered:
                state["grad_avg"] = xp.zeros_like(p.data)
            if self.momentum:
                state["momentum_buffer"] = xp.zeros_like(p.data)
        sq = state["square_avg"]
        sq *= self.rho
        sq += (1 - self.rho) * g * g
        if self.centered:
            ga = state["grad_avg"]
            ga *= self.rho
            ga += (1 - self.rho) * g
            denom = xp.sqrt(sq - ga * ga) + self.epsilon
        else:
            denom = xp.sqrt(sq) + self.epsilon
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g / denom
            p.data -= self.learning_rate * buf
        else:
            p.data -= self.learning_rate * g / denom


class Adam(Optimizer):
    """Adam with bias correction (per-parameter step count), optional AMSGrad."""

    decoupled = False

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, weight_decay: float = 0.0):
        super().__init__(learning_rate, weight_decay)
        for name, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {b!r}")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon, self.amsgrad = _nonneg(epsilon, "epsilon"), bool(amsgrad)

    def _update(self, p, state):
        xp = array_module(p.data)
        if not state:
            state["step"] = 0
            state["m"] = xp.zeros_like(p.data)
            state["v"] = xp.zeros_like(p.data)
            if self.amsgrad:
                state["v_max"] = xp.zeros_like(p.data)
        if self.decoupled:
            g = p.grad
            if self.weight_decay:
                p.data *= 1 - self.learning_rate * self.weight_decay
        else:
            g = self._grad(p)
        state["step"] += 1
        t = state["step"]
        m, v = state["m"], state["v"]
        m *= self.beta_1
        m += (1 - self.beta_1) * g
        v *= self.beta_2
        v += (1 - self.beta_2) * g * g
        if self.amsgrad:
            xp.maximum(state["v_max"], v, out=state["v_max"])
            v = state["v_max"]
        bc1 = 1 - self.beta_1 ** t
        bc2 = 1 - self.beta_2 ** t
        denom = xp.sqrt(v) / math.sqrt(bc2) + self.epsilon
        p.data -= (self.learning_rate / bc1) * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter; torch.optim.AdamW)."""

    decoupled = True

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, weight_decay: float = 0.01):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay)


_NAMES = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get(optimizer: Union[str, Optimizer]) -> Optimizer:
    """A fresh optimiser with default settings from its name, or the given optimiser."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in _NAMES:
        return _NAMES[optimizer.lower()]()
    raise ValueError(f"optimizer must be an Optimizer or one of {sorted(_NAMES)}, got "
                     f"{optimizer!r}")
