"""Building blocks shared by every layer: Parameter, Layer, symbolic tensors and Input.

Data is channels-first: a batch is (N, C, H, W) or (N, features); shapes written without the
batch axis are "per-sample" shapes, e.g. (C, H, W). The code is array-module agnostic: the module
(NumPy or CuPy) comes from the input array, and parameters move to it on first use.

A layer's parameters are created when it is built (from the first input shape it sees) but their
values are drawn lazily, on first access, from a seed taken at creation from the global
generator (`set_seed`). So architectures (e.g. VGG-16 at 224x224) can be summarised and counted
without allocating their weights, and the values never depend on the order of access.

Threads: what a forward keeps for backward (`Layer._cache`) is stored per thread, and nothing
at all is kept inside `inference()` (Model.predict / evaluate run there). So predict/evaluate
in one thread never disturb a fit running in another on the same model; see Model's docstring.
"""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from .._array import array_module, is_cupy, is_int, xp_of
from . import initializers, regularizers

__all__ = ["Parameter", "Layer", "SymbolicTensor", "Input", "set_seed", "inference",
           "array_module", "to_host", "to_numpy"]

_global_rng = np.random.default_rng()
_seed_lock = threading.Lock()   # draws from _global_rng come one at a time, in call order
_NOT_RUN = object()
_tls = threading.local()        # .no_record: True inside inference() on this thread


def set_seed(seed: Optional[int]) -> None:
    """Seeds the generator behind weight initialisation, Dropout masks and fit's default
    shuffling/augmentation seed (None: fresh entropy). convforge.set_seed calls it."""
    global _global_rng
    if seed is not None and (not is_int(seed) or seed < 0):
        raise ValueError(f"seed must be None or an int >= 0, got {seed!r}")
    with _seed_lock:
        _global_rng = np.random.default_rng(None if seed is None else int(seed))


def _new_seed() -> int:
    """A seed for one consumer (a parameter, a Dropout layer, a fit call) from the global
    generator: after set_seed(s) the same sequence of model building and fit calls gets the
    same seeds."""
    with _seed_lock:
        return int(_global_rng.integers(2**63 - 1))


@contextlib.contextmanager
def inference():
    """Within this block (on this thread), layer forwards keep nothing for backward: nothing
    is written on the layers, so concurrent training on another thread is not disturbed.
    Model.predict and Model.evaluate run in it."""
    old = getattr(_tls, "no_record", False)
    _tls.no_record = True
    try:
        yield
    finally:
        _tls.no_record = old


def to_host(a) -> np.ndarray:
    """A NumPy view/copy of a NumPy or CuPy array, or of a list of 0-d arrays / numbers
    (stacked on their device first, so the list costs one copy).

    The one place where the nn code brings device values to the host: on CuPy it is a
    device-to-host copy that waits for every queued kernel. Training keeps the loss and metrics
    on the device and calls this once per epoch (fit), once per evaluate and once per
    train_on_batch, never per batch or per layer (tests/cuda/test_cuda_train.py counts the calls).
    """
    if isinstance(a, (list, tuple)):
        xp = xp_of(*a)
        if xp is not np:
            a = xp.stack([xp.asarray(v, dtype=xp.float64) for v in a])
        else:
            a = np.array([np.asarray(v, dtype=np.float64) for v in a])
    return a.get() if is_cupy(a) else np.asarray(a)


def to_numpy(a) -> np.ndarray:
    """A NumPy view/copy of a NumPy or CuPy array (through to_host)."""
    return to_host(a)


def _to_module(a, xp):
    """`a` moved to array module xp (no copy when it is already there)."""
    if array_module(a) is xp:
        return a
    return xp.asarray(a) if xp is not np else a.get()


def _float_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


# --------------------------------------------------------------------------- parameters

class Parameter:
    """A weight array with its gradient. Layers add into `.grad`; optimisers update `.data` in
    place and zero `.grad`. `trainable=False` marks state such as BatchNorm moving statistics.
    `decay=False` exempts it from the optimiser's weight decay (layers set it on biases and
    BatchNorm's gamma and beta); `regularizer` (nn.regularizers) adds a penalty on it to the
    loss and the penalty's gradient to `.grad` in its layer's backward."""

    def __init__(self, name: str, shape: Sequence[int], dtype, initializer: Callable,
                 trainable: bool = True, decay: bool = True, regularizer=None):
        self.name = name
        self.shape = tuple(int(s) for s in shape)
        self.dtype = _float_dtype(dtype)
        self.trainable = bool(trainable)
        self.decay = bool(decay)
        self.regularizer = regularizer
        self.grad = None
        self._init = initializer
        self._seed = _new_seed()
        self._data = None

    @property
    def data(self):
        """The values (drawn on first access)."""
        if self._data is None:
            rng = np.random.default_rng(self._seed)
            value = np.asarray(self._init(self.shape, self.dtype, rng), dtype=self.dtype)
            if value.shape != self.shape:
                raise ValueError(f"initializer for {self.name!r} returned shape {value.shape}, "
                                 f"expected {self.shape}")
            self._data = np.ascontiguousarray(value)
        return self._data

    @data.setter
    def data(self, value) -> None:
        if tuple(value.shape) != self.shape:
            raise ValueError(f"parameter {self.name!r} has shape {self.shape}, got an array of "
                             f"shape {tuple(value.shape)}")
        if value.dtype != self.dtype:
            raise TypeError(f"parameter {self.name!r} has dtype {self.dtype}, got {value.dtype}")
        self._data = value

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def to(self, xp) -> None:
        """Moves the values (and gradient) to array module xp (numpy or cupy)."""
        self._data = _to_module(self.data, xp)
        if self.grad is not None:
            self.grad = _to_module(self.grad, xp)

    def accumulate(self, g) -> None:
        """grad += g (the first call stores a copy)."""
        if tuple(g.shape) != self.shape:
            raise ValueError(f"gradient for {self.name!r} has shape {tuple(g.shape)}, expected "
                             f"{self.shape}")
        if self.grad is None:
            self.grad = g.astype(self.dtype, copy=True)
        else:
            self.grad += g

    def __repr__(self) -> str:
        return (f"Parameter({self.name!r}, shape={self.shape}, dtype={self.dtype}, "
                f"trainable={self.trainable})")


# --------------------------------------------------------------------------- symbolic graph

class Node:
    """One layer call in a graph: layer(inputs) -> output."""

    def __init__(self, layer: Layer, inputs: list, output: SymbolicTensor):
        self.layer, self.inputs, self.output = layer, inputs, output


class SymbolicTensor:
    """A placeholder for a batch of per-sample shape `shape`, produced by Input or a layer call.
    Calling layers on these records the graph that `Model(inputs, outputs)` runs."""

    def __init__(self, shape: tuple, dtype, node: Optional[Node] = None, name: str = "input"):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.node = node
        self.name = name

    def __repr__(self) -> str:
        src = self.node.layer.name if self.node else self.name
        return f"SymbolicTensor(shape={(None,) + self.shape}, dtype={self.dtype}, from={src!r})"


def Input(shape: Sequence[int], dtype="float32", name: str = "input") -> SymbolicTensor:
    """The input of a functional Model: per-sample shape, e.g. Input((1, 28, 28))."""
    if not isinstance(shape, (tuple, list)) or not shape or \
            not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise ValueError(f"shape must be a non-empty tuple of positive ints (no batch axis), "
                         f"got {shape!r}")
    return SymbolicTensor(tuple(int(s) for s in shape), _float_dtype(dtype), None, name)


def _snake(name: str) -> str:
    """Class name -> default layer name: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    return re.sub(r"(?<=[a-z])([A-Z])", r"_\1", name).lower()


def _unique_name(base: str, used: set) -> str:
    """base, or base_1, base_2, ... : the first not in `used` (names models give layers)."""
    name, i = base, 0
    while name in used:
        i += 1
        name = f"{base}_{i}"
    return name


# --------------------------------------------------------------------------- layers

class Layer:
    """Base layer. Subclasses implement build(input_shape), compute_output_shape(input_shape),
    _forward(x, training) and _backward(dy) (per-sample shapes, arrays with the batch axis).

    `layer(x)` on a SymbolicTensor records a graph node; on an array it runs forward.
    forward caches what backward needs; backward returns dx and adds parameter gradients into
    `.grad` (only while `trainable`).
    """

    multi_input = False   # True for layers taking a list of tensors (Add)

    def __init__(self, name: Optional[str] = None, trainable: bool = True, dtype=None,
                 input_shape: Optional[Sequence[int]] = None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        self.name = name
        self._trainable = bool(trainable)
        self.dtype = None if dtype is None else _float_dtype(dtype)
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        self.built = False
        self._built_shape = None
        self._params: dict[str, Parameter] = {}
        self.input = None     # the SymbolicTensor(s) of the latest symbolic call
        self.output = None
        self._local = threading.local()   # .cache: what this thread's latest forward kept

    # ---- what forward keeps for backward: per thread, and nothing inside inference()
    @property
    def _cache(self) -> Any:
        return getattr(self._local, "cache", _NOT_RUN)

    @_cache.setter
    def _cache(self, value: Any) -> None:
        if not getattr(_tls, "no_record", False):
            self._local.cache = value

    def __getstate__(self) -> dict:
        # copy/deepcopy/pickle of a layer: the per-thread cache does not travel
        state = dict(self.__dict__)
        state.pop("_local", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    # ---- parameters
    def add_weight(self, name: str, shape: Sequence[int],
                   initializer: Union[str, Callable] = "zeros", trainable: bool = True,
                   regularizer=None, decay: bool = True) -> Parameter:
        """A new parameter; regularizer: None, a name, a factor or an nn.regularizers object;
        decay=False: no optimiser weight decay on it (biases, normalisation scales/shifts)."""
        p = Parameter(name, shape, self.dtype or np.float32, initializers.get(initializer),
                      trainable, decay, regularizers.get(regularizer))
        self._params[name] = p
        return p

    @property
    def losses(self) -> list:
        """The regularisation penalties of the trainable parameters (0-d arrays; Keras'
        `layer.losses`). Model.fit adds their sum to the loss."""
        return [p.regularizer(p.data) for p in self.trainable_params
                if p.regularizer is not None]

    @property
    def params(self) -> list[Parameter]:
        """Every parameter (trainable ones and state such as moving statistics)."""
        return list(self._params.values())

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)

    @property
    def trainable_params(self) -> list[Parameter]:
        """Parameters the optimiser updates (none while the layer is frozen)."""
        return [p for p in self.params if p.trainable] if self._trainable else []

    def count_params(self) -> int:
        return sum(p.size for p in self.params)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the parameter values as NumPy arrays, in order."""
        return [to_numpy(p.data).copy() for p in self.params]

    def set_weights(self, weights: Sequence) -> None:
        params = self.params
        if len(weights) != len(params):
            raise ValueError(f"layer {self.label} has {len(params)} weights, got {len(weights)}")
        for p, w in zip(params, weights):
            xp = array_module(p._data) if p._data is not None else np
            w = w if hasattr(w, "dtype") else np.asarray(w)
            p.data = xp.ascontiguousarray(_to_module(w, xp).astype(p.dtype))

    # ---- shapes
    @classmethod
    def default_name(cls) -> str:
        """Base of the names models give unnamed layers (numbered: conv2d, conv2d_1, ...)."""
        return cls.__name__

    @property
    def label(self) -> str:
        return repr(self.name) if self.name else type(self).__name__

    def build(self, input_shape) -> None:
        """Creates the parameters for this per-sample input shape (default: none)."""

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    def flops(self, input_shape) -> int:
        """Forward floating-point operations per sample (multiply-adds count 2)."""
        return 0

    def _ensure_built(self, input_shape, dtype) -> None:
        if not self.built:
            self.dtype = self.dtype or _float_dtype(dtype)
            self.build(input_shape)
            self.built = True
            self._built_shape = input_shape
        elif self._built_shape is not None and input_shape != self._built_shape:
            raise ValueError(f"layer {self.label} was built for input shape "
                             f"{_fmt(self._built_shape)} but is called on {_fmt(input_shape)}")

    # ---- calls
    def __call__(self, inputs, training: bool = False):
        items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if any(isinstance(t, SymbolicTensor) for t in items):
            return self._call_symbolic(inputs)
        return self.forward(inputs, training)

    def _call_symbolic(self, inputs):
        if self.multi_input:
            if not isinstance(inputs, (list, tuple)) or \
                    not all(isinstance(t, SymbolicTensor) for t in inputs):
                raise TypeError(f"layer {self.label} takes a list of tensors")
            shape = [t.shape for t in inputs]
            dtype = inputs[0].dtype
        else:
            if not isinstance(inputs, SymbolicTensor):
                raise TypeError(f"layer {self.label} takes one tensor, got {type(inputs).__name__}")
            shape, dtype = inputs.shape, inputs.dtype
        if self.input_shape is not None and not self.multi_input and shape != self.input_shape:
            raise ValueError(f"layer {self.label} was declared with input_shape "
                             f"{self.input_shape} but is called on {_fmt(shape)}")
        self._ensure_built(shape, dtype)
        out = SymbolicTensor(self.compute_output_shape(shape), self.dtype, None)
        out.node = Node(self, list(inputs) if self.multi_input else [inputs], out)
        self.input, self.output = inputs, out
        return out

    def _prepare(self, x):
        """Builds the layer if needed, casts x to the layer dtype, moves parameters to x's
        array module."""
        xp = array_module(x)
        if x.dtype != (self.dtype or x.dtype) or x.dtype.kind != "f":
            x = x.astype(self.dtype or np.float32)
        self._ensure_built_from_array(tuple(x.shape[1:]), x.dtype)
        for p in self._params.values():
            if p._data is None or array_module(p._data) is not xp:
                p.to(xp)
        return x

    def _ensure_built_from_array(self, shape, dtype) -> None:
        if not self.built:
            self._ensure_built(shape, dtype)

    def forward(self, x, training: bool = False, **fused):
        """Runs the layer on a batch (arrays with the batch axis). `fused`: options of layers
        that can take over the next layer's work (BatchNormalization: relu=True), set by a
        Model that found such a pair (see Model._find_fusions)."""
        if self.multi_input:
            if not isinstance(x, (list, tuple)) or len(x) < 2:
                raise TypeError(f"layer {self.label} takes a list of at least two arrays")
            xs = [self._cast(a) for a in x]
            if not self.built:
                self._ensure_built([tuple(a.shape[1:]) for a in xs], xs[0].dtype)
            return self._forward(xs, training, **fused)
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"layer {self.label} takes an array, got {type(x).__name__}")
        return self._forward(self._prepare(x), training, **fused)

    def _cast(self, a):
        want = self.dtype or (a.dtype if a.dtype.kind == "f" else np.float32)
        return a if a.dtype == want else a.astype(want)

    # Layers whose _backward takes need_dx (and skips the input's gradient when it is False).
    _can_skip_dx = False

    def backward(self, dy, need_dx: bool = True, **fused):
        """Gradient of the loss w.r.t. the input, given dy w.r.t. the output. need_dx=False:
        nobody wants the input's gradient (a first layer, or a frozen part below): layers that
        can skip it (Conv2D, Dense) return None and only accumulate their parameters'.
        `fused`: options of a Model that found a fusion (MaxPooling2D: relu=True, the ReLU
        before it done by the pool; Conv2D, BatchNormalization: relu_done=True, dy already
        through their ReLU; see nn/_graph.py). Regularised parameters get their penalty's
        gradient added too."""
        if self._cache is _NOT_RUN:
            raise RuntimeError(f"layer {self.label}: backward called before forward (on this "
                               "thread, outside inference())")
        if not need_dx and self._can_skip_dx:
            fused["need_dx"] = False
        dx = self._backward(dy, **fused)
        # the gradient of the penalties in self.losses: of this layer's own parameters only
        # (the layers of a nested model, ModelLayer, add theirs in their own backward)
        for p in (self._params.values() if self._trainable else ()):
            if p.trainable and p.regularizer is not None:
                p.accumulate(p.regularizer.grad(p.data))
        return dx

    def _forward(self, x, training: bool):
        raise NotImplementedError

    def _backward(self, dy):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def layout_hint(shape) -> str:
    """A sentence for shape errors when a per-sample (C, H, W) shape looks channels-last."""
    shape = tuple(shape)
    if len(shape) == 3 and shape[2] in (1, 3, 4) and min(shape[:2]) > 4:
        h, w, c = shape
        return (f" convforge is channels-first (NCHW): {shape} looks like (H, W, C); use "
                f"input_shape=({c}, {h}, {w}) and put the channels of your batches first, "
                "x.transpose(0, 3, 1, 2).")
    return ""


def check_data_format(data_format, layer: str) -> None:
    """Keras' data_format argument: channels_first only (convforge is NCHW throughout)."""
    if data_format not in (None, "channels_first"):
        raise ValueError(f"{layer}: data_format={data_format!r} is not supported: convforge is "
                         "channels-first (NCHW); transpose NHWC batches with "
                         "x.transpose(0, 3, 1, 2) and give input_shape as (C, H, W)")


def _fmt(shape) -> str:
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_fmt(s) for s in shape)
    return str((None,) + tuple(shape))
