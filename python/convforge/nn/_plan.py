"""Step plans (issue #14): a training step of a chain model on the compiled core, replayed
without the graph walk and the per-op argument checks.

A plain training step (Model._train_step) walks the graph (nn/_graph.py), and every layer
call goes through Layer.forward / backward and convforge.functional, which check and
normalise their arguments on every call: about 0.4 ms of Python per LeNet-5 step, against
2.3 ms of kernels. A step plan does those checks once, for one batch shape: each layer of the
chain becomes a planned step holding its normalised arguments, whose forward and backward
call the cpu backend's functions (convforge.backends.cpu: the core calls the functional ops
make, with the same algorithm choice and autotuning) and the same NumPy expressions as the
layer's own code, in the same order. The results are bit for bit those of the plain step
(tests/nn/test_plan.py compares the weights after several steps).

A plan is made (plan_for) only where all of this holds, else the plain step runs:
- the model is a chain (each layer takes the previous layer's output) of the layer types in
  _PLANNERS with their supported options (a max pool with zero padding; no nested model, no
  BatchNormalization, no regularised parameter), and does not override forward or backward;
- the batch is a NumPy array of the model's dtype, on the cpu backend (the chosen backend
  when the step runs), and every parameter is a NumPy array;
- no data-parallel training (its per-layer gradient hooks run in the graph walk);
- CONVFORGE_STEP_PLAN is not set to an off word (0, false, no, off).
A plan is keyed by the batch shape and the trainable parameters and layers, and dropped when
the graph changes or the model is copied. It reads the layers' settings (activation, padding,
scale) when it is made, and their parameters at every step: set a layer's options before
training, as Keras does. It keeps what forward saves for backward in the step's own list (not
in the layers): a planned step leaves the layers' per-thread caches as they were.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

import numpy as np

from .. import backends as _backends
from .._env import flag
from .._shapes import conv_padding, pool_output_size
from ..backends import _autotune
from . import _buffers
from .activations import ACTIVATIONS
from .layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from .preprocessing import Rescaling

_MAX_PLANS = 4   # per model: batch shapes in use (fit's last, shorter batch makes a second);
                 # each compiled plan holds its own buffers


class _Planned:
    """One layer of a plan: forward(x) -> (y, saved) and backward(dy, saved, need_dx) -> dx
    (None when not need_dx), adding the parameter gradients as Layer.backward does."""

    relu_out = False   # its output is a ReLU's (a max pool after it may do the ReLU's backward)
    relu_done = False  # the max pool after it did its ReLU's backward (set by _make)
    layer: Any = None  # the layer, where forward reads its parameters

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, saved, need_dx: bool):
        raise NotImplementedError

    def spec(self, index) -> Optional[dict]:
        """This step as an op of the compiled engine (csrc/plan/step_plan.hpp, without the
        shapes and backward flags _make adds), {} for no op, or None where it has none.
        index(p): the position of Parameter p in the plan's parameter list."""
        return None


class _Rescaling(_Planned):
    def __init__(self, layer: Rescaling, shape, be):
        self.scale, self.offset = layer.scale, layer.offset

    def forward(self, x):
        return x * self.scale + self.offset, None

    def backward(self, dy, saved, need_dx):
        return dy * self.scale if need_dx else None

    def spec(self, index):
        return {"kind": "rescale", "scale": self.scale, "offset": self.offset}


class _Conv2D(_Planned):
    def __init__(self, layer: Conv2D, shape, be):
        c, h, w = shape
        kh, kw = layer.kernel_size
        self.layer, self.be = layer, be
        self.act = layer.activation
        self.relu_out = self.act == "relu"
        pad4 = conv_padding(layer.padding, (h, w), (kh, kw), layer.strides, layer.dilation_rate)
        self.args = (layer.strides, pad4, layer.dilation_rate, layer.groups)

    def forward(self, x):
        la = self.layer
        b = la.bias.data if la.use_bias else None
        if self.relu_out:
            y = self.be.conv2d(x, la.kernel.data, b, *self.args, relu=True)
        else:
            y = ACTIVATIONS[self.act][0](self.be.conv2d(x, la.kernel.data, b, *self.args))
        return y, (x, y)

    def backward(self, dy, saved, need_dx):
        la = self.layer
        x, y = saved
        dz = dy if self.relu_done else ACTIVATIONS[self.act][1](y, dy)
        skip = {k: False for k, need in (("need_dx", need_dx), ("need_dw", la.trainable))
                if not need}
        dx, dw, db = self.be.conv2d_backward(dz, x, la.kernel.data, *self.args, la.use_bias,
                                             **skip)
        if la.trainable:
            la.kernel.accumulate(dw)
            if la.use_bias:
                la.bias.accumulate(db)
        return dx

    def spec(self, index):
        la = self.layer
        if self.act not in ("linear", "relu"):
            return None
        stride, pad4, dilation, groups = self.args
        return {"kind": "conv", "w": index(la.kernel),
                "b": index(la.bias) if la.use_bias else -1, "stride": tuple(stride),
                "padding": tuple(pad4), "dilation": tuple(dilation), "groups": groups,
                "relu": self.relu_out, "relu_done": self.relu_done,
                "trainable": la.trainable}


class _MaxPool(_Planned):
    relu = False   # also does the backward of the ReLU before it (set by _make)

    def __init__(self, layer: MaxPooling2D, shape, be):
        c, h, w = shape
        self.be = be
        pad = layer._fn_padding()
        out = pool_output_size((h, w), layer.pool_size, layer.strides, pad, False)
        self.args = (layer.pool_size, layer.strides, pad)
        self.out = out

    def forward(self, x):
        y, idx = self.be.pool2d(x, "max", *self.args, self.out, False)
        return y, (x.shape, idx, y)

    def backward(self, dy, saved, need_dx):
        shape, idx, y = saved
        return self.be.pool2d_backward(dy, idx, shape, "max", *self.args, False,
                                       relu_y=y if self.relu else None)

    def spec(self, index):
        ks, st, pad = self.args
        return {"kind": "maxpool", "kernel_size": tuple(ks), "stride": tuple(st),
                "padding": (pad[0], pad[0], pad[1], pad[1]), "pool_relu": self.relu}


class _Flatten(_Planned):
    def __init__(self, layer: Flatten, shape, be):
        self.features = int(np.prod(shape, dtype=np.int64))

    def forward(self, x):
        return x.reshape(x.shape[0], self.features), x.shape

    def backward(self, dy, saved, need_dx):
        return dy.reshape(saved)

    def spec(self, index):
        return {}   # the engine's buffers are flat


class _Dense(_Planned):
    def __init__(self, layer: Dense, shape, be):
        self.layer = layer

    def forward(self, x):
        return self.layer._step_forward(x)

    def backward(self, dy, saved, need_dx):
        return self.layer._step_backward(dy, saved, need_dx)

    def spec(self, index):
        la = self.layer
        if la.activation not in ("linear", "relu") or len(self.in_shape) != 2:
            return None
        return {"kind": "dense", "w": index(la.kernel), "b": index(la.bias) if la.use_bias else -1,
                "relu": la.activation == "relu", "trainable": la.trainable}


class _Activation(_Planned):
    def __init__(self, layer: Activation, shape, be):
        self.fwd, self.bwd = ACTIVATIONS[layer.activation]
        self.relu_out = layer.activation == "relu"

    def forward(self, x):
        y = self.fwd(x)
        return y, y

    def backward(self, dy, saved, need_dx):
        return dy if self.relu_done else self.bwd(saved, dy)

    def spec(self, index):
        return {"kind": "relu", "relu_done": self.relu_done} if self.relu_out else None


class _Dropout(_Planned):
    def __init__(self, layer: Dropout, shape, be):
        self.layer = layer

    def forward(self, x):
        return self.layer._step_forward(x)

    def backward(self, dy, saved, need_dx):
        return self.layer._step_backward(dy, saved)

    # no compiled op: the rate is read at each step here (a compiled plan would fix it)


def _pool_supported(la) -> bool:
    return type(la) is MaxPooling2D and la.padding != "same" and not any(la._fn_padding())


# {layer type: (planner, whether this layer's options are supported)}; exact types: a subclass
# may change what forward does.
_PLANNERS: dict[type, tuple[Callable, Callable[[Any], bool]]] = {
    Rescaling: (_Rescaling, lambda la: True),
    Conv2D: (_Conv2D, lambda la: True),
    MaxPooling2D: (_MaxPool, _pool_supported),
    Flatten: (_Flatten, lambda la: True),
    Dense: (_Dense, lambda la: True),
    Activation: (_Activation, lambda la: True),
    Dropout: (_Dropout, lambda la: True),
}


def _planner(la):
    """The planner of layer la, or None."""
    from .layers import ReLU, Sigmoid

    kind = type(la)
    if kind in (ReLU, Sigmoid):   # fixed-activation subclasses: Activation's forward
        kind = Activation
    entry = _PLANNERS.get(kind)
    if entry is None or not entry[1](la):
        return None
    if any(p.regularizer is not None for p in la.params):
        return None
    return entry[0]


class StepPlan:
    """The planned layers of a chain model for one batch shape (see the module docstring)."""

    def __init__(self, steps: list, params: list, lowest: int, dtype):
        self.steps = steps
        self.params = params   # every Parameter the steps read: NumPy arrays when it runs
        # backward runs from the last step down to the lowest one with trainable parameters,
        # which does not compute its input's gradient (as run_backward in nn/_graph.py does
        # for Model.backward(input_grad=False))
        self.lowest = lowest
        self.compiled = _compile(steps, params, lowest, dtype)
        # Run layer by layer, the step allocates its arrays: train_on_batch calls are separate
        # reuse_step_buffers() blocks, and without a holder the cache would free its blocks at
        # the end of each, the next step's arrays coming back as fresh pages (LeNet-5's Python
        # plan: 2.5 ms steps with, 3.9-4.1 ms without). The compiled plan owns its buffers.
        self._hold = _buffers.hold() if self.compiled is None else None
        self._lock = threading.Lock()   # the compiled plan's buffers: one step at a time

    def ready(self) -> bool:
        """Whether the plan may run now: the cpu backend chosen, the parameters on the host."""
        return (_backends.chosen(on_gpu=False) == "cpu"
                and all(type(p._data) is np.ndarray for p in self.params))

    def forward(self, x):
        """(output, saved): saved is what backward needs, and finish() must follow."""
        if (self.compiled is not None and not _autotune.autotune_enabled()
                and self._lock.acquire(blocking=False)):
            try:
                y = self.compiled.forward(x, [p._data for p in self.params])
            except BaseException:
                self._lock.release()
                raise
            return y, _COMPILED
        saved = []
        for s in self.steps:
            x, keep = s.forward(x)
            saved.append(keep)
        return x, saved

    def backward(self, dy, saved) -> None:
        if saved is _COMPILED:
            params = self.params
            fresh = self.compiled.backward(dy, [p._data for p in params],
                                           [p.grad for p in params])
            for p, g in zip(params, fresh):   # Parameter.accumulate's first call: a copy
                if g is not None:
                    p.grad = g
            return
        for i in range(len(self.steps) - 1, self.lowest - 1, -1):
            dy = self.steps[i].backward(dy, saved[i], i > self.lowest)

    def finish(self, saved) -> None:
        """Ends the step that forward began (also when the loss between them raised)."""
        if saved is _COMPILED:
            self._lock.release()


_COMPILED = object()   # StepPlan.forward's saved state when the compiled plan ran


def _compile(steps: list, params: list, lowest: int, dtype):
    """The compiled engine of these steps (_core.StepPlan) for batches of `dtype`, or None
    where a step has no op. The steps' in_shape / out_shape are batch shapes."""
    index = {id(p): i for i, p in enumerate(params)}
    ops = []
    for i, st in enumerate(steps):
        spec = st.spec(lambda p: index[id(p)])
        if spec is None:
            return None
        if not spec:
            continue   # Flatten: no op
        ops.append(dict(spec, **{"in": st.in_shape, "out": st.out_shape,
                                 "backward": i >= lowest, "need_dx": i > lowest,
                                 "relu": spec.get("relu", False),
                                 "relu_done": spec.get("relu_done", False),
                                 "trainable": spec.get("trainable", False)}))
    if not ops:
        return None
    from .. import _core

    return _core.StepPlan(np.dtype(dtype).name, ops, [tuple(p.shape) for p in params])


def plan_for(model, xb, trainable: list) -> Optional[StepPlan]:
    """The model's plan for batches like xb (made on first use), or None where a plan does not
    apply (see the module docstring). trainable: model.trainable_params now (with the layers'
    trainable flags, they fix which layers compute gradients)."""
    if type(xb) is not np.ndarray or getattr(model, "_dist", None) is not None \
            or model._multi_output or flag("CONVFORGE_STEP_PLAN") is False:
        return None
    key = (xb.shape, xb.dtype, tuple(map(id, trainable)),
           tuple(n.layer._trainable for n in model._nodes))
    plans = model._plans
    if key in plans:
        return plans[key]
    plan = _make(model, xb)
    if len(plans) >= _MAX_PLANS:
        plans.clear()
    plans[key] = plan
    return plan


def _make(model, xb) -> Optional[StepPlan]:
    from .model import Model

    if type(model).forward is not Model.forward or type(model).backward is not Model.backward:
        return None   # a subclass's own forward / backward runs in the plain step
    nodes = model._nodes
    if not nodes or xb.dtype != model.dtype or tuple(xb.shape[1:]) != model.inputs[0].shape \
            or _backends.chosen(on_gpu=False) != "cpu":
        return None
    prev = model.inputs[0]
    for n in nodes:   # a chain: each node takes the previous one's output
        if len(n.inputs) != 1 or n.inputs[0] is not prev:
            return None
        prev = n.output
    if prev is not model.outputs[0] or model._fused:
        return None
    be = _backends.get("cpu")
    steps, params = [], []
    shape = tuple(xb.shape[1:])
    for n in nodes:
        make = _planner(n.layer)
        if make is None or not n.layer.built or n.layer.dtype != xb.dtype:
            return None
        st = make(n.layer, shape, be)
        st.in_shape, st.out_shape = (len(xb),) + shape, (len(xb),) + tuple(n.output.shape)
        steps.append(st)
        params += list(n.layer.params)
        shape = tuple(n.output.shape)
    # The max pool of a ReLU's output does that ReLU's backward (find_pool_relu in
    # nn/_graph.py: in a chain the pool is the ReLU output's only consumer).
    for i, n in enumerate(nodes):
        if i > 0 and id(n) in model._pool_relu and steps[i - 1].relu_out:
            steps[i].relu = True
            steps[i - 1].relu_done = True
    trainable = [i for i, n in enumerate(nodes) if n.layer.trainable_params]
    return StepPlan(steps, params, trainable[0] if trainable else len(steps), xb.dtype)
