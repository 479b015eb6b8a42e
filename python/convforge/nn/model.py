"""Model (functional graph of layer calls) and Sequential, with compile / fit / evaluate /
predict / summary / save_weights / load_weights.

    x = Input((3, 32, 32))
    y = Conv2D(16, 3, padding="same", activation="relu")(x)
    s = Conv2D(16, 1)(x)                        # 1x1 projection
    y = Add()([y, s])
    model = Model(x, Dense(10)(Flatten()(y)))

A model has one input; it may have several outputs for forward/backward (e.g. an inner
activation and the logits, for Grad-CAM) but fit/evaluate/predict need exactly one. Each layer
may appear once in a model (shared layers are not supported). forward/__call__ return the raw
outputs. predict returns them too, except for a model compiled with a loss from logits: then
(N, classes) logits become softmax probabilities (categorical cross-entropies) and binary
cross-entropy logits sigmoid probabilities; predict(x, raw=True) always gives raw outputs.

Devices: batches go to the array module of the input (NumPy or CuPy); NumPy batches are moved
to the GPU when the cuda backend is chosen (set_backend/use_backend/$CONVFORGE_BACKEND), once
per batch, and parameters follow on first use. Nothing comes back per batch or per layer: the
loss and metrics are summed on the device and brought to the host (`to_host`) once per epoch,
once per evaluate and once per train_on_batch. Give fit CuPy arrays (or a batch source of them)
to keep the data itself on the GPU too.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from .. import losses as _losses
from .. import optim as _optim
from .._array import positive_int
from . import _buffers, _graph, _plan, _summary
from . import metrics as _metrics
from . import saving as _saving
from ._loop import (
    POSTFIX_SECONDS,
    RunningMeans,
    batches_and_count,
    check_xy,
    epoch_line,
    hold_out,
    is_batch_source,
    progress_class,
    wants_batch_logs,
)
from ._loop import (
    device_module as _device_module,  # a module attribute: tests patch it
)
from ._summary import _shape_str
from .base import (
    Layer,
    Parameter,
    SymbolicTensor,
    _new_seed,
    array_module,
    inference,
    layout_hint,
)
from .callbacks import Callback, History

__all__ = ["Model", "Sequential"]


class Model:
    """A graph of layer calls from one Input to one or more outputs.

    Threads: calls on different models are independent. On one model, predict and evaluate
    write nothing on it (no cached activations, no moving-statistic updates, no random draws),
    so any number of them may run at once, also beside a fit on another thread: they then see
    the weights as they are mid-training (possibly halfway through one optimiser step), and
    the fit gives bit for bit the weights it gives alone. What forward(x, training) keeps for
    backward is kept per thread. Two fits (or train_on_batch, load_weights, set_weights) on
    one model at the same time are not supported.
    """

    def __init__(self, inputs: Union[SymbolicTensor, Sequence[SymbolicTensor]],
                 outputs: Union[SymbolicTensor, Sequence[SymbolicTensor]],
                 name: Optional[str] = None):
        self.name = name or "model"
        self._init_state()
        self._set_graph(inputs, outputs)

    def _init_state(self) -> None:
        self.inputs: list[SymbolicTensor] = []
        self.outputs: list[SymbolicTensor] = []
        self._nodes: list = []
        self._multi_output = False
        self._fused: dict = {}
        self._pool_relu: dict = {}
        self._plans: dict = {}   # step plans by batch shape (nn/_plan.py)
        self.optimizer: Optional[_optim.Optimizer] = None
        self.loss: Optional[_losses.Loss] = None
        self.metrics: list[tuple[str, Callable]] = []
        self.stop_training = False
        self._dist = None   # convforge.distributed.data_parallel(model) sets it

    def __getstate__(self) -> dict:
        # copy/deepcopy/pickle of a model: its step plans (compiled buffers, a lock, the backend
        # module) do not travel; the copy makes its own on its first step
        state = dict(self.__dict__)
        state["_plans"] = {}
        return state

    # ------------------------------------------------------------------ graph
    def _set_graph(self, inputs, outputs) -> None:
        ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        for t in ins + outs:
            if not isinstance(t, SymbolicTensor):
                raise TypeError(f"Model inputs/outputs must be tensors from convforge.nn.Input "
                                f"and layer calls, got {type(t).__name__}")
        if len(ins) != 1 or ins[0].node is not None:
            raise ValueError("Model takes exactly one Input tensor as inputs")
        nodes = _graph.collect_nodes(ins[0], outs)
        layers = [n.layer for n in nodes]
        _graph.name_layers(layers)
        self.inputs, self.outputs, self._nodes = ins, outs, nodes
        self._multi_output = isinstance(outputs, (list, tuple))
        self._fused = _graph.find_fusions(nodes, outs)
        self._pool_relu = _graph.find_pool_relu(nodes, outs)
        self._plans = {}

    @property
    def built(self) -> bool:
        return bool(self.inputs)

    def _require_built(self) -> None:
        if not self.built:
            raise ValueError(f"model {self.name!r} is not built yet: give the first layer an "
                             "input_shape, call build(input_shape), or run it on data first")

    @property
    def layers(self) -> list[Layer]:
        return [n.layer for n in self._nodes]

    @property
    def input(self) -> SymbolicTensor:
        self._require_built()
        return self.inputs[0]

    @property
    def output(self):
        self._require_built()
        return self.outputs if self._multi_output else self.outputs[0]

    @property
    def input_shape(self) -> tuple:
        return self.input.shape

    @property
    def dtype(self) -> np.dtype:
        return self.input.dtype

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        if index is not None:
            return self.layers[index]
        for la in self.layers:
            if la.name == name:
                return la
        raise ValueError(f"no layer named {name!r}; layers: {[la.name for la in self.layers]}")

    # ------------------------------------------------------------------ parameters
    @property
    def params(self) -> list[Parameter]:
        return [p for la in self.layers for p in la.params]

    @property
    def trainable_params(self) -> list[Parameter]:
        return [p for la in self.layers for p in la.trainable_params]

    @property
    def trainable(self) -> bool:
        return any(la.trainable for la in self.layers)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        for la in self.layers:
            la.trainable = value

    def count_params(self) -> int:
        self._require_built()
        return sum(la.count_params() for la in self.layers)

    def count_flops(self) -> int:
        """Forward FLOPs per sample of the conv, dense and batch-norm layers (a multiply-add
        counts 2; pooling, activations and additions are not counted)."""
        self._require_built()
        return sum(n.layer.flops(n.inputs[0].shape) for n in self._nodes
                   if not n.layer.multi_input)

    def get_weights(self) -> list[np.ndarray]:
        return [w for la in self.layers for w in la.get_weights()]

    def set_weights(self, weights: Sequence) -> None:
        weights = list(weights)
        want = sum(len(la.params) for la in self.layers)
        if len(weights) != want:
            raise ValueError(f"model {self.name!r} has {want} weight arrays, got {len(weights)}")
        i = 0
        for la in self.layers:
            k = len(la.params)
            la.set_weights(weights[i:i + k])
            i += k

    # ------------------------------------------------------------------ forward / backward
    def _ensure_built_for(self, x) -> None:
        """Sequential builds itself from the first batch; a functional model is built."""
        self._require_built()

    def __call__(self, x, training: Optional[bool] = None):
        """On an array: forward(x, training). On a symbolic tensor: this model as one layer of
        an outer model (nn/_nested.py; training=False pins it to inference mode)."""
        if isinstance(x, SymbolicTensor):
            from ._nested import ModelLayer

            return ModelLayer(self, training)(x)
        return self.forward(x, bool(training))

    def forward(self, x, training: bool = False):
        """Runs the graph on a batch x (N, ...) -> output batch (a list for several outputs)."""
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"x must be a NumPy or CuPy array, got {type(x).__name__}")
        self._ensure_built_for(x)
        inp = self.inputs[0]
        if tuple(x.shape[1:]) != inp.shape:
            hint = layout_hint(x.shape[1:]) if layout_hint(inp.shape) == "" else ""
            raise ValueError(f"model {self.name!r} expects input batches of shape "
                             f"{_shape_str(inp.shape)}, got {tuple(x.shape)}.{hint}")
        if x.dtype != inp.dtype:
            x = x.astype(inp.dtype)
        values = _graph.run_forward(self._nodes, self._fused, {id(inp): x}, training)
        outs = [values[id(t)] for t in self.outputs]
        return outs if self._multi_output else outs[0]

    def extract_features(self, x, layer: Union[str, int, Layer]):
        """The raw output of `layer` (a name, index or layer of this model) for the batch x, in
        inference mode, with no fusion (a BatchNormalization's output before its ReLU); writes
        nothing on the model. Keras' Model(inputs, base.get_layer(name).output) works too."""
        la = layer if isinstance(layer, Layer) else (
            self.get_layer(index=layer) if isinstance(layer, int) else self.get_layer(layer))
        node = next((n for n in self._nodes if n.layer is la), None)
        if node is None:
            raise ValueError(f"layer {la.label} is not in model {self.name!r}")
        xb, _ = self._batch(x, None)
        with inference():
            values = _graph.run_forward(self._nodes[:self._nodes.index(node) + 1], {},
                                        {id(self.inputs[0]): xb}, False)
        return values[id(node.output)]

    def backward(self, dy, wrt: Optional[Sequence[SymbolicTensor]] = None, *,
                 input_grad: bool = True):
        """Back-propagates dy (w.r.t. the output; a list with None entries allowed for several
        outputs) through the latest forward. Parameter gradients are added into `.grad`.
        Returns dx w.r.t. the input, or with `wrt` the gradients w.r.t. those tensors;
        input_grad=False (a training step) returns None and skips every gradient that only
        the input's would need."""
        dys = list(dy) if self._multi_output else [dy]
        if len(dys) != len(self.outputs):
            raise ValueError(f"model {self.name!r} has {len(self.outputs)} outputs, got "
                             f"{len(dys)} gradients")
        keep = {id(t) for t in (wrt or [])}
        if wrt is None and input_grad:
            keep.add(id(self.inputs[0]))
        grads: dict[int, Any] = {}
        for t, g in zip(self.outputs, dys):
            if g is not None:
                _graph.add_grad(grads, t, g)
        dist = getattr(self, "_dist", None)   # data-parallel: gradients are sent as they come
        _graph.run_backward(self._nodes, self._fused, grads, keep, self._pool_relu,
                            dist and dist.layer_done)
        if wrt is not None:
            return [grads.get(id(t)) for t in wrt]
        return grads.get(id(self.inputs[0])) if input_grad else None

    # ------------------------------------------------------------------ training setup
    def compile(self, optimizer: Union[str, _optim.Optimizer] = "rmsprop",
                loss: Union[str, _losses.Loss, None] = None,
                metrics: Optional[Sequence[Union[str, Callable]]] = None) -> None:
        """Sets the optimiser, the loss (names: 'sparse_categorical_crossentropy',
        'categorical_crossentropy', 'binary_crossentropy' (from logits, or from probabilities
        when the model ends with a softmax / sigmoid, as a Keras model would: never applied
        twice), 'mse') and the metrics ('accuracy' or callables)."""
        if loss is None:
            raise ValueError("compile needs a loss")
        self.optimizer = _optim.get(optimizer)
        self.loss = _losses.get(loss)
        self._loss_by_name = isinstance(loss, str)
        self.metrics = [_metrics.get(m, self.loss) for m in (metrics or [])]
        names = [n for n, _ in self.metrics]
        if len(set(names)) != len(names) or "loss" in names:
            raise ValueError(f"metric names must be distinct and not 'loss', got {names}")

    def _require_compiled(self) -> None:
        if self.loss is None:
            raise ValueError(f"model {self.name!r} must be compiled (model.compile(optimizer, "
                             "loss, metrics)) before fit/evaluate/train_on_batch")
        self._match_loss_to_output()

    def _match_loss_to_output(self) -> None:
        last = self.outputs[0].node.layer if self.built and not self._multi_output else None
        self.loss = _losses.for_output(self.loss, getattr(last, "activation", None),
                                       getattr(self, "_loss_by_name", False), self.name)
        if self._multi_output:
            raise ValueError("fit/evaluate/predict need a model with a single output")

    def _batch(self, xb, yb):
        """Explicit cast of a batch to the model dtype (building a Sequential from it first)."""
        if not hasattr(xb, "shape"):
            xb = np.asarray(xb)
        self._ensure_built_for(xb)
        if xb.dtype != self.dtype:
            xb = xb.astype(self.dtype)
        return xb, yb

    def _to_device(self, xb, yb):
        """The batch on the device it runs on. Host labels are checked (loss.check_targets)
        before they move: the loss does not read labels already on the GPU, as that would
        synchronise every batch."""
        xp = _device_module(xb)
        if array_module(xb) is not xp:
            xb = xp.asarray(xb)
        if yb is not None and array_module(yb) is not xp:
            if self.loss is not None:
                yb = self.loss.check_targets(yb, self._out_shape())
            yb = xp.asarray(yb)
        return xb, yb

    def _out_shape(self):
        return self.outputs[0].shape if self.built and not self._multi_output else None

    def _check_device_targets(self, x, y) -> None:
        """Labels already on the GPU: checked once per fit/evaluate call (one synchronisation),
        since the loss does not check them per batch."""
        if y is not None and array_module(y) is not np:
            self._ensure_built_for(x)
            self.loss.check_targets(y, self._out_shape())

    def _step_values(self, loss, yb, out) -> list:
        """The batch loss and metrics, left where they are (device 0-d arrays on CuPy)."""
        return [loss] + [fn(yb, out) for _, fn in self.metrics]

    @property
    def losses(self) -> list:
        """The layers' regularisation penalties (Layer.losses): fit, train_on_batch and
        evaluate add their sum to the loss."""
        return [v for la in self.layers for v in la.losses]

    def _train_step(self, xb, yb):
        params = self.trainable_params
        self.optimizer.zero_grad(params)
        dist = getattr(self, "_dist", None)
        if dist is not None:   # data-parallel: gradients summed over the ranks in backward
            dist.begin_step(len(xb), params)
        plan = _plan.plan_for(self, xb, params) if dist is None else None
        if plan is not None and plan.ready():   # the same calls without the graph walk
            out, saved = plan.forward(xb)
            try:
                loss, dout = self.loss.forward_backward(yb, out)
                plan.backward(dout, saved)
            finally:
                plan.finish(saved)
        else:
            out = self.forward(xb, training=True)
            loss, dout = self.loss.forward_backward(yb, out)
            self.backward(dout, input_grad=False)   # regularised layers add their penalty's
            for v in self.losses:                # penalty of the weights this forward used
                loss = loss + v                  # (a planned model has none)
        if dist is not None:
            dist.finish_step()
        self.optimizer.step(params)
        return loss, out

    def train_on_batch(self, x, y) -> dict[str, float]:
        """One optimiser step on one batch; returns the batch loss and metrics."""
        self._require_compiled()
        xb, yb = self._to_device(*self._batch(x, y))
        if len(xb) == 0:
            raise ValueError(f"train_on_batch needs a non-empty batch, got x of shape "
                             f"{tuple(xb.shape)} (an optimiser step without data would still "
                             "move weights with momentum)")
        with _buffers.reuse_step_buffers():   # as fit: the step's arrays reuse memory
            loss, out = self._train_step(xb, yb)
        running = RunningMeans(["loss"] + [name for name, _ in self.metrics])
        running.add(self._step_values(loss, yb, out), len(xb))
        if getattr(self, "_dist", None) is not None:
            self._dist.reduce(running)   # over every rank's samples
        return running.means()

    # ------------------------------------------------------------------ fit
    @_buffers.reusing_step_buffers   # each step's arrays reuse the previous step's memory
    def fit(self, x, y=None, batch_size: int = 32, epochs: int = 1, validation_data=None,
            validation_split: float = 0.0, shuffle: bool = True,
            callbacks: Optional[Sequence[Callback]] = None, verbose: int = 1,
            augment: Optional[Callable] = None, seed: Optional[int] = None,
            initial_epoch: int = 0) -> History:
        """Trains for `epochs` epochs; returns a History (.history: per-epoch lists of loss,
        metrics, val_* values and learning_rate, the rate of the epoch's last optimiser step).
        The loss includes the layers' regularisation penalties (Model.losses), as in Keras.

        x: array (N, ...) of any numeric dtype (each batch is cast to the model dtype, not
        rescaled) with labels y, or a batch source (iterable of (xb, yb) per epoch with len()
        = number of batches; then y=None). validation_split holds out the last fraction of
        x (before shuffling). augment(x_batch, rng) runs on each training batch after the
        cast, with a Generator seeded from `seed` (which also seeds shuffling; None: a seed
        drawn from the generator that convforge.set_seed seeds, so runs after set_seed(s) are
        reproducible). Empty batches from a batch source are skipped.
        A stop requested mid-epoch (model.stop_training = True, e.g. by a callback or a signal
        handler) ends the epoch after the current batch, without validating that part-epoch.
        verbose: 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
        """
        self._require_compiled()
        batch_size = positive_int(batch_size, "batch_size")
        epochs = positive_int(epochs, "epochs")
        source = is_batch_source(x)
        if source:
            if y is not None:
                raise ValueError("y must be None when x is a batch source yielding (xb, yb)")
            if validation_split:
                raise ValueError("validation_split needs array data, not a batch source")
        else:
            x, y = check_xy(x, y)
            self._check_device_targets(x, y)
            x, y, validation_data = hold_out(x, y, validation_split, validation_data)
        if seed is None:
            seed = _new_seed()
        dist = getattr(self, "_dist", None)   # data-parallel: convforge.distributed
        if dist is not None:   # rank 0's seed (the same batch order), the other ranks quiet
            seed, verbose = dist.start_fit(seed, verbose)
        shuffle_rng, aug_rng = (np.random.default_rng(s)
                                for s in np.random.SeedSequence(seed).spawn(2))

        history = History()
        cbs = [history] + list(callbacks or [])
        for cb in cbs:
            cb.set_model(self)
        self.stop_training = False
        for cb in cbs:
            cb.on_train_begin({})
        bar_cls = progress_class(verbose)
        batch_cbs = [cb for cb in cbs if wants_batch_logs(cb)]
        names = ["loss"] + [name for name, _ in self.metrics]
        for epoch in range(initial_epoch, epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch, {})
            order = shuffle_rng.permutation(len(x)) if shuffle and not source else None
            batches, n_batches = batches_and_count(x, y, batch_size, order)
            bar = bar_cls(total=n_batches, desc=f"Epoch {epoch + 1}/{epochs}")
            live_bar = getattr(bar, "shows_postfix", True)
            shown = time.monotonic()
            running = RunningMeans(names)
            logs: dict[str, float] = {}
            cut_short = False   # stopped before the last batch: no validation of a part-epoch
            for i, (xb, yb) in enumerate(batches):
                xb, yb = self._batch(xb, yb)
                if len(xb) == 0:   # nothing to learn from (and no optimiser step)
                    continue
                if augment is not None:
                    xb = augment(xb, aug_rng)
                    if xb.dtype != self.dtype:
                        xb = xb.astype(self.dtype)
                if dist is not None:      # this rank's shard of the global batch
                    xb, yb = dist.shard(xb, yb, self)
                    if xb is None:        # fewer samples than ranks: skipped everywhere
                        continue
                xb, yb = self._to_device(xb, yb)
                loss, out = self._train_step(xb, yb)
                running.add(self._step_values(loss, yb, out), len(xb))
                # Host logs mid-epoch only for callbacks that ask for them (every batch) and
                # for a live progress bar (every POSTFIX_SECONDS): each is a GPU sync.
                if batch_cbs or (live_bar and time.monotonic() - shown >= POSTFIX_SECONDS):
                    logs = running.means()
                    bar.set_postfix(logs, refresh=False)  # drawn by update's rate limit
                    shown = time.monotonic()
                bar.update(1)
                for cb in batch_cbs:
                    cb.on_train_batch_end(i, logs)
                self.stop_training = dist.agree(self.stop_training) if dist else self.stop_training
                if self.stop_training:
                    cut_short = i + 1 < n_batches
                    break
            if running.count == 0:
                bar.close()
                raise ValueError("the training data yielded no batches")
            if dist is not None:
                dist.reduce(running)   # the epoch's means over every rank's samples
            logs = running.means()
            bar.set_postfix(logs, refresh=False)
            if validation_data is not None and not cut_short:
                val = self._evaluate(validation_data, batch_size)
                logs.update({f"val_{k}": v for k, v in val.items()})
                bar.set_postfix(logs)
            bar.close()
            # the rate the epoch's last step used (callbacks change it between epochs)
            logs["learning_rate"] = self.optimizer._rate(max(self.optimizer.iterations - 1, 0))
            if verbose in (1, 2):   # the summary, val_* included, in 80 columns
                print(epoch_line(epoch + 1, epochs, logs))
            for cb in cbs:
                cb.on_epoch_end(epoch, dict(logs))
            self.stop_training = dist.agree(self.stop_training) if dist else self.stop_training
            if self.stop_training:
                break
        for cb in cbs:
            cb.on_train_end({})
        return history

    # ------------------------------------------------------------------ evaluate / predict
    def _evaluate(self, data, batch_size: int, verbose: int = 0,
                  what: str = "x_val") -> dict[str, float]:
        """Loss and metrics over `data` ((x, y) arrays or a batch source), inference mode."""
        x, y = data, None
        if not is_batch_source(data):
            if not isinstance(data, (tuple, list)) or len(data) != 2:
                raise ValueError("validation_data must be (x, y) or a batch source")
            x, y = check_xy(*data, what=what)
            self._check_device_targets(x, y)
        dist = None if is_batch_source(x) else getattr(self, "_dist", None)
        if dist is not None:   # data-parallel: each rank evaluates its part of the arrays
            x, y = dist.shard_arrays((x, y))
        batches, total = batches_and_count(x, y, batch_size)
        bar = progress_class(verbose)(total=total, desc="evaluate")
        running = RunningMeans(["loss"] + [name for name, _ in self.metrics])
        with inference():   # writes nothing on the layers: safe beside a fit on another thread
            penalty = sum(self.losses)   # fixed weights: the same for every batch (or 0)
            for xb, yb in batches:
                xb, yb = self._to_device(*self._batch(xb, yb))
                bar.update(1)
                if len(xb) == 0:   # adds nothing to sample-weighted means (NaN * 0 would)
                    continue
                out = self.forward(xb, training=False)
                running.add(self._step_values(self.loss(yb, out) + penalty, yb, out), len(xb))
        bar.close()
        if dist is not None:
            dist.reduce(running)
        if running.count == 0:
            raise ValueError("the evaluation data holds no samples: a mean loss over zero "
                             "samples is undefined")
        return running.means()

    def evaluate(self, x, y=None, batch_size: int = 256, verbose: int = 0,
                 return_dict: bool = True):
        """Mean loss and metrics in inference mode: {"loss": ..., "accuracy": ...}, or
        [loss, *metrics] with return_dict=False. Zero samples raise ValueError (the mean of
        nothing is undefined). Writes nothing on the model (safe beside a running fit)."""
        self._require_compiled()
        batch_size = positive_int(batch_size, "batch_size")
        data = x if is_batch_source(x) else (x, y)
        if is_batch_source(x) and y is not None:
            raise ValueError("y must be None when x is a batch source")
        result = self._evaluate(data, batch_size, verbose, what="x")
        return result if return_dict else list(result.values())

    def predict(self, x, batch_size: int = 256, verbose: int = 0, raw: bool = False):
        """The model's outputs in inference mode, batch by batch, in the batches' array module.

        What comes back is what the model outputs (as in Keras), with one exception: a model
        compiled with a loss that takes logits returns that loss's predictions from (N, classes)
        logits, i.e. softmax probabilities for the categorical cross-entropies and the sigmoid
        for binary cross-entropy (any shape). Outputs of any other shape (feature maps of a
        Conv2D model, say), uncompiled models, MSE, and `raw=True` give the raw outputs; use
        `forward(x)` for one raw batch. x of N = 0 samples gives an empty (0, ...) array.
        Writes nothing on the model (safe beside a running fit; see the class docstring).
        """
        batch_size = positive_int(batch_size, "batch_size")
        if self._multi_output:
            raise ValueError("predict needs a model with a single output")
        if self.loss is not None:
            self._match_loss_to_output()
        link = self.loss.link if (self.loss is not None and not raw) else None
        if not is_batch_source(x) and not hasattr(x, "shape"):
            x = np.asarray(x)
        pairs, total = batches_and_count(x, None, batch_size)  # a source may yield xb alone
        batches = ((b[0] if isinstance(b, (tuple, list)) else b) for b in pairs)
        bar = progress_class(verbose)(total=total, desc="predict")
        outs = []
        with inference():   # writes nothing on the layers: safe beside a fit on another thread
            for xb in batches:
                xb, _ = self._to_device(*self._batch(xb, None))
                out = self.forward(xb, training=False)
                outs.append(out if link is None else link(out))
                bar.update(1)
        bar.close()
        if not outs:
            if hasattr(x, "shape"):   # N = 0: an empty batch of the output's shape
                self._ensure_built_for(x)
                xp = _device_module(x)
                return xp.empty((0,) + tuple(self.outputs[0].shape), self.outputs[0].dtype)
            raise ValueError("the batch source yielded no batches")
        return array_module(outs[0]).concatenate(outs, axis=0)

    # ------------------------------------------------------------------ summary
    def summary(self, print_fn: Optional[Callable[[str], Any]] = print) -> str:
        """Prints (with print_fn; None: no printing) and returns a table of layers, output
        shapes and parameter counts, with totals and forward FLOPs per sample."""
        return _summary.summary(self, print_fn)

    # ------------------------------------------------------------------ weights I/O
    def _weight_items(self) -> list[tuple[str, Parameter]]:
        return _saving.weight_items(self)

    def save_weights(self, path: Union[str, os.PathLike]) -> None:
        """Writes every parameter (moving statistics included) as "<layer>/<param>" arrays to
        a .npz or .safetensors file.
        The write is atomic: a crash or error leaves any previous file at `path` whole."""
        _saving.save_weights(self, path)

    def load_weights(self, path: Union[str, os.PathLike]) -> None:
        """Loads weights written by save_weights; names and shapes must match exactly and the
        arrays must be real floats. All or nothing: on any error the model is unchanged."""
        _saving.load_weights(self, path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, layers={len(self.layers)})"


from .sequential import Sequential  # noqa: E402  (Sequential subclasses Model)
