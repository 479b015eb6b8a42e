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
kept per parameter object (self._state[p]: a dict of arrays, and Adam's step count).

step() updates all parameters at once: one call of the multi-tensor ops of
convforge.functional.optim (sgd_update, adam_update, rmsprop_update) per array kind (NumPy /
CuPy; with weight decay, per decayed / not decayed too), on the backend the other ops use
(convforge.set_backend / use_backend / automatic).
Arithmetic is in the parameters' dtype: on the cpu backend the results are, bit for bit, those
of the formulas above written as NumPy expressions with Python-float scalars; the numba backend
may fuse multiply-adds; the reference backend computes in float64 (see functional.optim).
Parameter arrays must be C-contiguous (they are updated in place) and gradients of their dtype.

Learning rate: a float, or a schedule (convforge.optim.schedules, or any callable
schedule(step) -> float), given as `learning_rate=` or its alias `lr=`. Each step uses
schedule(iterations) with iterations counted before the step (Keras): the first update uses
schedule(0). `optimizer.learning_rate` reads the rate of the next step; assigning a float to it
(as the callbacks LearningRateScheduler and ReduceLROnPlateau do) is refused while a schedule
drives the rate (Keras does the same), assigning a schedule replaces the current one.

Weight decay skips biases and BatchNormalization's gamma and beta by default: parameters with
`decay = False` (nn layers set it on those) are updated with weight_decay 0. decay_all=True
decays every parameter (PyTorch's behaviour for a single parameter group). Objects without a
`decay` attribute are decayed.
"""

from __future__ import annotations

import inspect
import math
import weakref
from typing import Callable, Iterable, Optional, Union

from .. import functional as F
from .._array import array_module, is_cupy
from . import schedules

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "get", "schedules"]

Rate = Union[float, Callable[[int], float]]   # a learning rate or a schedule(step) -> float


def _nonneg(v, name: str) -> float:
    v = float(v)
    if not v >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {v!r}")
    return v


def _zeros(p):
    """Zeros of p.data's shape and dtype, C-contiguous, on its device."""
    return array_module(p.data).zeros(p.data.shape, p.data.dtype)


def _calls(params: list, split_decay: bool) -> list:
    """params (with gradients) split into the update calls of one step: one per array kind
    (NumPy / CuPy: one backend per call) and, with split_decay, per `decay` flag; items are
    (params, decayed). A parameter listed k times is updated k times, in turn, as by a loop
    over the list: its i-th occurrence goes to the i-th round of calls."""
    if not split_decay and len({id(p) for p in params}) == len(params):
        kinds = {is_cupy(p.data) for p in params}   # the common call: one list, one kind
        if len(kinds) <= 1:
            return [(list(params), True)] if params else []
    rounds: list = []
    seen: dict = {}
    for p in params:
        k = seen[id(p)] = seen.get(id(p), -1) + 1
        if k == len(rounds):
            rounds.append({})
        decayed = bool(getattr(p, "decay", True)) if split_decay else True
        rounds[k].setdefault((is_cupy(p.data), decayed), []).append(p)
    return [(group, key[1]) for r in rounds for key, group in r.items()]


class Optimizer:
    """Base: `step(params)` updates every parameter that has a gradient; `zero_grad(params)`
    sets the gradients to zero. Subclasses implement `_step_group(params, states, lr, wd)`:
    one step of a list of parameters of one array kind at learning rate lr and weight decay
    wd (states: their state dicts, filled in by it), or `_update(p, state, lr, wd)`: one
    parameter's step (the default _step_group calls it per parameter).

    learning_rate (alias lr): a float or a schedule(step) -> float (see the module docstring).
    weight_decay skips parameters marked `decay = False` (biases, BatchNorm gamma/beta) unless
    decay_all=True."""

    def __init__(self, learning_rate: Rate, weight_decay: float = 0.0, *,
                 lr: Optional[Rate] = None, decay_all: bool = False):
        if lr is not None:
            sig = inspect.signature(type(self).__init__).parameters.get("learning_rate")
            default = sig.default if sig is not None else inspect.Parameter.empty
            if learning_rate is not default and learning_rate != default:
                raise ValueError(f"give learning_rate or its alias lr, not both (got "
                                 f"learning_rate={learning_rate!r}, lr={lr!r})")
            learning_rate = lr
        self._learning_rate: Rate = 0.0
        self.learning_rate = learning_rate
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        self.decay_all = bool(decay_all)
        self.iterations = 0
        self._state: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # copy/deepcopy/pickle: the per-parameter state travels as (parameter, state) pairs, so a
    # deep copy of a model keys its optimiser's state by the copied parameters (a
    # WeakKeyDictionary's own deepcopy keeps the original keys: the copy then restarted Adam's
    # moments and step counts on its next step)
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_state"] = list(self._state.items())
        return state

    def __setstate__(self, state: dict) -> None:
        items = state.pop("_state", [])
        self.__dict__.update(state)
        self._state = weakref.WeakKeyDictionary(items)

    @property
    def schedule(self) -> Optional[Callable[[int], float]]:
        """The schedule driving the learning rate, or None for a constant rate."""
        return self._learning_rate if callable(self._learning_rate) else None

    @property
    def learning_rate(self) -> float:
        """The rate the next step uses: the constant, or schedule(iterations)."""
        return self._rate(self.iterations)

    @learning_rate.setter
    def learning_rate(self, value: Rate) -> None:
        if callable(value):
            self._learning_rate = value
            return
        if self.schedule is not None:
            raise TypeError(f"this optimizer's learning rate follows the schedule "
                            f"{self._learning_rate!r}, so it cannot be set to a number; "
                            "assign a schedule, or build it with a float learning_rate")
        self._learning_rate = _nonneg(value, "learning_rate")

    def _rate(self, step: int) -> float:
        """The learning rate of the step counted `step` (from 0)."""
        if not callable(self._learning_rate):
            return self._learning_rate
        value = self._learning_rate(step)
        try:
            rate = float(value)
        except (TypeError, ValueError):
            rate = math.nan
        if not (math.isfinite(rate) and rate >= 0.0):
            raise ValueError(f"the learning-rate schedule {self._learning_rate!r} gave {value!r} "
                             f"at step {step}: a finite number >= 0 is needed")
        return rate

    def zero_grad(self, params: Iterable) -> None:
        for p in params:
            if p.grad is not None:
                p.grad.fill(0)

    def step(self, params: Iterable) -> None:
        lr = self._rate(self.iterations)   # before the increment: the first step has schedule(0)
        self.iterations += 1
        ready = []
        for p in params:
            if p.grad is None:
                continue
            if p.grad.shape != p.data.shape:
                raise ValueError(f"gradient shape {tuple(p.grad.shape)} does not match the "
                                 f"parameter shape {tuple(p.data.shape)}")
            ready.append(p)
        split = bool(self.weight_decay) and not self.decay_all
        for group, decayed in _calls(ready, split):
            self._step_group(group, [self._state.setdefault(p, {}) for p in group], lr,
                             self.weight_decay if decayed else 0.0)

    def _step_group(self, params: list, states: list, lr: float, wd: float) -> None:
        for p, state in zip(params, states):
            self._update(p, state, lr, wd)

    def _update(self, p, state: dict, lr: float, wd: float) -> None:
        """One parameter's step (the default _step_group calls it for each parameter)."""
        if type(self)._step_group is Optimizer._step_group:
            raise NotImplementedError(f"{type(self).__name__} must implement _step_group or "
                                      "_update")
        self._step_group([p], [state], lr, wd)

    def _grad(self, p, wd: Optional[float] = None):
        """The gradient with coupled (L2) weight decay wd (default: weight_decay) added."""
        wd = self.weight_decay if wd is None else wd
        return p.grad + wd * p.data if wd else p.grad

    def __repr__(self) -> str:
        args = [f"learning_rate={self._learning_rate!r}"]
        args += [f"{k}={v!r}" for k, v in vars(self).items()
                 if not k.startswith("_") and k != "iterations"]
        return f"{type(self).__name__}({', '.join(args)})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    def __init__(self, learning_rate: Rate = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, *,
                 lr: Optional[Rate] = None, decay_all: bool = False):
        super().__init__(learning_rate, weight_decay, lr=lr, decay_all=decay_all)
        self.momentum = _nonneg(momentum, "momentum")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")

    def _step_group(self, params, states, lr, wd):
        kw = dict(lr=lr, momentum=self.momentum, nesterov=self.nesterov, weight_decay=wd)
        data, grads = [p.data for p in params], [p.grad for p in params]
        if not self.momentum:
            F.sgd_update(data, grads, None, **kw)
            return
        # parameters without a buffer yet take their first step (buf = d) in a call of their own
        first = [i for i, s in enumerate(states) if "momentum_buffer" not in s]
        if first:
            bufs = [array_module(params[i].data).empty_like(params[i].data, order="C")
                    for i in first]
            F.sgd_update([data[i] for i in first], [grads[i] for i in first], bufs,
                         first_step=True, **kw)
            for i, b in zip(first, bufs):      # stored once the update went through
                states[i]["momentum_buffer"] = b
        started = set(first)
        later = [i for i in range(len(params)) if i not in started]
        if later:
            F.sgd_update([data[i] for i in later], [grads[i] for i in later],
                         [states[i]["momentum_buffer"] for i in later], **kw)


class RMSprop(Optimizer):
    """RMSprop (rho is PyTorch's alpha); optional momentum and centering."""

    def __init__(self, learning_rate: Rate = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, weight_decay: float = 0.0, *,
                 lr: Optional[Rate] = None, decay_all: bool = False):
        super().__init__(learning_rate, weight_decay, lr=lr, decay_all=decay_all)
        self.rho, self.momentum = _nonneg(rho, "rho"), _nonneg(momentum, "momentum")
        self.epsilon, self.centered = _nonneg(epsilon, "epsilon"), bool(centered)

    def _step_group(self, params, states, lr, wd):
        names = ["square_avg"] + ["grad_avg"] * self.centered + \
            ["momentum_buffer"] * bool(self.momentum)
        new, lists = _state_lists(params, states, names)
        F.rmsprop_update([p.data for p in params], [p.grad for p in params],
                         lists["square_avg"], lr=lr, rho=self.rho,
                         epsilon=self.epsilon, momentum=self.momentum,
                         momentum_buffers=lists.get("momentum_buffer"), centered=self.centered,
                         grad_avg=lists.get("grad_avg"), weight_decay=wd)
        for s, n in zip(states, new):
            s.update(n)


def _state_lists(params, states, names) -> tuple:
    """(new, lists): new[i] holds zeros for each state array in `names` that parameter i lacks
    (the caller stores them once the update went through); lists[name] the arrays of every
    parameter, existing or new."""
    if all(k in s for s in states for k in names):   # every step after the first
        return [{}] * len(states), {k: [s[k] for s in states] for k in names}
    new = [{k: _zeros(p) for k in names if k not in s} for p, s in zip(params, states)]
    return new, {k: [n[k] if k in n else s[k] for s, n in zip(states, new)] for k in names}


class Adam(Optimizer):
    """Adam with bias correction (per-parameter step count), optional AMSGrad."""

    decoupled = False

    def __init__(self, learning_rate: Rate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, weight_decay: float = 0.0, *,
                 lr: Optional[Rate] = None, decay_all: bool = False):
        super().__init__(learning_rate, weight_decay, lr=lr, decay_all=decay_all)
        for name, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {b!r}")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon, self.amsgrad = _nonneg(epsilon, "epsilon"), bool(amsgrad)

    def _step_group(self, params, states, lr, wd):
        names = ["m", "v"] + ["v_max"] * self.amsgrad
        new, lists = _state_lists(params, states, names)
        steps = [s.get("step", 0) + 1 for s in states]
        same = all(t == steps[0] for t in steps)   # one count for all: passed as one int
        F.adam_update([p.data for p in params], [p.grad for p in params], lists["m"],
                      lists["v"], lr=lr, beta_1=self.beta_1,
                      beta_2=self.beta_2, epsilon=self.epsilon,
                      step=steps[0] if same and steps else steps,
                      weight_decay=wd, decoupled=self.decoupled,
                      v_max=lists.get("v_max"))
        for s, n, t in zip(states, new, steps):
            if n:
                s.update(n)
            s["step"] = t


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter; torch.optim.AdamW)."""

    decoupled = True

    def __init__(self, learning_rate: Rate = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, weight_decay: float = 0.01, *,
                 lr: Optional[Rate] = None, decay_all: bool = False):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, lr=lr,
                         decay_all=decay_all)


_NAMES = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get(optimizer: Union[str, Optimizer]) -> Optimizer:
    """A fresh optimiser with default settings from its name, or the given optimiser."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in _NAMES:
        return _NAMES[optimizer.lower()]()
    raise ValueError(f"optimizer must be an Optimizer or one of {sorted(_NAMES)}, got "
                     f"{optimizer!r}")
