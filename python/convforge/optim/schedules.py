"""Learning-rate schedules: callables `schedule(step) -> float`, given to an optimiser as its
learning rate (`Adam(learning_rate=CosineDecay(1e-3, 10_000))`, or `lr=`).

`step` counts optimiser steps (iterations, not epochs) from 0, as in Keras: the optimiser's
first update uses schedule(0), its k-th (0-based) schedule(k); `optimizer.learning_rate` is the
rate of the next update, schedule(optimizer.iterations). Names and arguments are Keras'
(keras.optimizers.schedules) where Keras has the schedule; each docstring gives the PyTorch
scheduler (torch.optim.lr_scheduler) with the same curve when `scheduler.step()` is called
after every `optimizer.step()`: torch's rate at its k-th step is then schedule(k).

    Constant(lr)                                   lr
    StepDecay(initial_lr, step_size, gamma=0.1)    initial_lr * gamma ** (step // step_size)
    ExponentialDecay(initial_lr, decay_steps, decay_rate, staircase=False)
                                                   initial_lr * decay_rate ** (step / decay_steps)
    CosineDecay(initial_lr, decay_steps, alpha=0.0, warmup_steps=0, warmup_target=None)
                                                   (linear warmup, then) cosine to alpha * peak
    OneCycle(max_lr, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4,
             anneal="cos")                         PyTorch OneCycleLR's rate curve

`get(name, **kw)` builds one by name ("constant", "step", "exponential", "cosine", "onecycle").
Any other callable taking the step works as a schedule too. The values are Python floats
computed in float64; the optimiser passes them on as its `lr` for that step.

For rates changed once per epoch from Python (schedule(epoch, lr)), or cut when a metric stops
improving, see the callbacks convforge.nn.LearningRateScheduler and ReduceLROnPlateau.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Union

import numpy as np

from .._array import nonneg_float
from .._config import Configurable

__all__ = ["LearningRateSchedule", "Constant", "StepDecay", "ExponentialDecay", "CosineDecay",
           "OneCycle", "get"]


def _positive(v, name: str, integer: bool = False) -> Union[int, float]:
    if integer:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        return int(v)
    v = nonneg_float(v, name)
    if v == 0.0:
        raise ValueError(f"{name} must be > 0, got {v!r}")
    return v


def _step(step) -> int:
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step must be an int >= 0 (optimiser steps from 0), got {step!r}")
    return int(step)


class LearningRateSchedule(Configurable):
    """Base class: `schedule(step) -> float` for step = 0, 1, 2, ... (optimiser steps)."""

    def __call__(self, step: int) -> float:
        return self._value(_step(step))

    def _value(self, step: int) -> float:
        raise NotImplementedError


class Constant(LearningRateSchedule):
    """The same rate at every step (what a float learning rate means)."""

    def __init__(self, learning_rate: float):
        self.learning_rate = nonneg_float(learning_rate, "learning_rate")

    def _value(self, step):
        return self.learning_rate


class StepDecay(LearningRateSchedule):
    """initial_lr * gamma ** (step // step_size): multiplied by gamma every step_size steps.
    PyTorch: StepLR(step_size, gamma); Keras: ExponentialDecay(initial_lr, step_size, gamma,
    staircase=True)."""

    def __init__(self, initial_lr: float, step_size: int, gamma: float = 0.1):
        self.initial_lr = nonneg_float(initial_lr, "initial_lr")
        self.step_size = _positive(step_size, "step_size", integer=True)
        self.gamma = nonneg_float(gamma, "gamma")

    def _value(self, step):
        return self.initial_lr * self.gamma ** (step // self.step_size)


class ExponentialDecay(LearningRateSchedule):
    """initial_lr * decay_rate ** (step / decay_steps), the exponent floored with staircase
    (Keras' ExponentialDecay). PyTorch: ExponentialLR(gamma) is decay_steps=1,
    decay_rate=gamma; with staircase it is StepLR(decay_steps, decay_rate)."""

    def __init__(self, initial_lr: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False):
        self.initial_lr = nonneg_float(initial_lr, "initial_lr")
        self.decay_steps = _positive(decay_steps, "decay_steps", integer=True)
        self.decay_rate = nonneg_float(decay_rate, "decay_rate")
        self.staircase = bool(staircase)

    def _value(self, step):
        p = step / self.decay_steps
        return self.initial_lr * self.decay_rate ** (math.floor(p) if self.staircase else p)


class CosineDecay(LearningRateSchedule):
    """Keras' CosineDecay: an optional linear warmup, then a cosine decay held at its end.

    Without warmup_target (the default): peak = initial_lr, and for step <= decay_steps
        lr = peak * (alpha + (1 - alpha) * (1 + cos(pi * step / decay_steps)) / 2),
    then alpha * peak from decay_steps on.
    With warmup_target: for step < warmup_steps the rate goes linearly from initial_lr to
    warmup_target (initial_lr + (warmup_target - initial_lr) * step / warmup_steps); then the
    cosine above runs from peak = warmup_target over step - warmup_steps. (Keras ignores
    warmup_steps when warmup_target is None; here that is refused, as a likely mistake.)

    PyTorch: CosineAnnealingLR(T_max=decay_steps, eta_min=alpha * peak), which agrees up to
    T_max and then rises again (a period of 2*T_max) where this one stays at its minimum; the
    warmup is LinearLR(start_factor=initial_lr / warmup_target, total_iters=warmup_steps)
    followed by that cosine through SequentialLR(milestones=[warmup_steps])."""

    def __init__(self, initial_lr: float, decay_steps: int, alpha: float = 0.0,
                 warmup_steps: int = 0, warmup_target: Optional[float] = None):
        self.initial_lr = nonneg_float(initial_lr, "initial_lr")
        self.decay_steps = _positive(decay_steps, "decay_steps", integer=True)
        self.alpha = nonneg_float(alpha, "alpha")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, (int, np.integer)) \
                or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
        self.warmup_steps = int(warmup_steps)
        self.warmup_target = None if warmup_target is None else \
            nonneg_float(warmup_target, "warmup_target")
        if self.warmup_steps and self.warmup_target is None:
            raise ValueError("warmup_steps > 0 needs warmup_target (the rate reached at the end "
                             "of the warmup, from initial_lr)")

    def _value(self, step):
        peak = self.initial_lr if self.warmup_target is None else self.warmup_target
        if step < self.warmup_steps:
            return self.initial_lr + (peak - self.initial_lr) * (step / self.warmup_steps)
        done = min(step - self.warmup_steps, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * done))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)


class OneCycle(LearningRateSchedule):
    """The learning-rate curve of PyTorch's OneCycleLR (Smith & Topal; two phases): from
    max_lr / div_factor up to max_lr over the first pct_start * total_steps - 1 steps, then
    down to max_lr / div_factor / final_div_factor at step total_steps - 1, each phase
    annealed by `anneal` ("cos" or "linear"). PyTorch: OneCycleLR(max_lr, total_steps,
    pct_start, anneal_strategy=anneal, div_factor, final_div_factor) with its formulas; its
    momentum cycling (cycle_momentum) is not part of this schedule. Past total_steps - 1 the
    rate stays at its final value (PyTorch raises past total_steps)."""

    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, anneal: str = "cos"):
        self.max_lr = nonneg_float(max_lr, "max_lr")
        self.total_steps = _positive(total_steps, "total_steps", integer=True)
        self.pct_start = nonneg_float(pct_start, "pct_start")
        if self.pct_start > 1.0:
            raise ValueError(f"pct_start must be in [0, 1], got {pct_start!r}")
        self.div_factor = _positive(div_factor, "div_factor")
        self.final_div_factor = _positive(final_div_factor, "final_div_factor")
        if anneal not in ("cos", "linear"):
            raise ValueError(f"anneal must be 'cos' or 'linear', got {anneal!r}")
        self.anneal = anneal

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal == "cos":   # PyTorch's _annealing_cos, term for term
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _value(self, step):
        step = min(step, self.total_steps - 1)
        initial = self.max_lr / self.div_factor
        phases = ((float(self.pct_start * self.total_steps) - 1, initial, self.max_lr),
                  (self.total_steps - 1, self.max_lr, initial / self.final_div_factor))
        start_step = 0.0
        for i, (end_step, lo, hi) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                span = end_step - start_step
                # a phase of zero length (PyTorch divides by zero there) is at its end value
                pct = (step - start_step) / span if span > 0 else 1.0
                return self._anneal(lo, hi, pct)
            start_step = end_step
        raise AssertionError("unreachable")


_NAMES = {"constant": Constant, "step": StepDecay, "exponential": ExponentialDecay,
          "cosine": CosineDecay, "onecycle": OneCycle}


def get(name: Union[str, Callable[[int], float]], **kw) -> Callable[[int], float]:
    """A schedule from its name and constructor arguments, e.g.
    get("cosine", initial_lr=1e-3, decay_steps=1000); a schedule (or any callable) is returned
    as it is."""
    if callable(name) and not kw:
        return name
    if isinstance(name, str) and name.lower() in _NAMES:
        return _NAMES[name.lower()](**kw)
    raise ValueError(f"schedule must be one of {sorted(_NAMES)} (with its arguments) or a "
                     f"callable schedule(step), got {name!r}")
