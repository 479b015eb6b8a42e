"""Backward does only the work someone uses: a training step does not compute the gradient of
the model input (the first Conv2D/Dense is asked for need_dx=False), frozen layers compute no
weight gradients, and below the lowest trainable layer nothing runs. The parameters' gradients
are the same bits as with the full backward."""

from __future__ import annotations

import numpy as np
import pytest

import convforge.functional as F
from convforge import nn

from conftest import assert_same_bits

pytestmark = pytest.mark.usefixtures("nn_backend")  # conftest: cpu, else reference


def _cnn():
    nn.set_seed(3)
    return nn.Sequential([
        nn.Conv2D(4, 3, padding="same", activation="relu", input_shape=(2, 8, 8)),
        nn.MaxPooling2D(2),
        nn.Conv2D(6, 3, padding="same"),
        nn.BatchNormalization(),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dense(5, activation="relu"),
        nn.Dense(3),
    ])


def _batch(rng):
    return rng.standard_normal((6, 2, 8, 8)).astype(np.float32), rng.integers(0, 3, 6)


@pytest.fixture
def conv_calls(monkeypatch):
    """Records (need_dx, need_dw) of every F.conv2d_backward call."""
    calls, real = [], F.conv2d_backward

    def spy(*args, need_dx=True, need_dw=True, **kw):
        calls.append((need_dx, need_dw))
        return real(*args, need_dx=need_dx, need_dw=need_dw, **kw)
    monkeypatch.setattr(F, "conv2d_backward", spy)
    return calls


def _grads(model, x, y, input_grad):
    model.compile("sgd", "sparse_categorical_crossentropy")
    params = model.trainable_params
    model.optimizer.zero_grad(params)
    out = model.forward(x, training=True)
    _, dout = model.loss.forward_backward(y, out)
    dx = model.backward(dout, input_grad=input_grad)
    return dx, [p.grad.copy() for p in params]


def test_training_step_skips_the_input_gradient(rng, conv_calls):
    x, y = _batch(rng)
    dx_full, full = _grads(_cnn(), x, y, input_grad=True)
    assert conv_calls == [(True, True), (True, True)]
    conv_calls.clear()
    dx, skipped = _grads(_cnn(), x, y, input_grad=False)
    assert dx is None and dx_full.shape == x.shape
    assert conv_calls == [(True, True), (False, True)]      # reversed order: the first conv last
    for a, b in zip(skipped, full):
        assert_same_bits(a, b, what="parameter gradient")


def test_train_on_batch_matches_the_full_backward(rng):
    x, y = _batch(rng)
    m1, m2 = _cnn(), _cnn()
    m1.compile("adam", "sparse_categorical_crossentropy")
    m2.compile("adam", "sparse_categorical_crossentropy")
    for _ in range(2):
        m1.train_on_batch(x, y)
        params = m2.trainable_params
        m2.optimizer.zero_grad(params)
        _, dout = m2.loss.forward_backward(y, m2.forward(x, training=True))
        m2.backward(dout)                                    # input gradient computed too
        m2.optimizer.step(params)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        assert_same_bits(a, b, what="weights after two steps")


def test_frozen_base_runs_no_backward_below_the_head(rng, conv_calls):
    x, y = _batch(rng)
    model = _cnn()
    for layer in model.layers[:5]:            # both convs and the BatchNormalization
        layer.trainable = False
    _, grads = _grads(model, x, y, input_grad=False)
    assert conv_calls == []                   # nothing below the Dense head needs a gradient
    assert len(grads) == 4                    # the two Dense layers' kernels and biases
    model.layers[2].trainable = True          # the second conv: its dw, and no dx below it
    conv_calls.clear()
    _grads(model, x, y, input_grad=False)
    assert conv_calls == [(False, True)]


def test_frozen_layer_still_passes_its_input_gradient(rng, conv_calls):
    x, y = _batch(rng)
    model = _cnn()
    model.layers[2].trainable = False         # a frozen conv between trainable layers
    _, _ = _grads(model, x, y, input_grad=False)
    assert conv_calls == [(True, False), (False, True)]
