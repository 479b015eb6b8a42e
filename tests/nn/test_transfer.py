"""Transfer learning: a Model used as a layer (functional call with training=False, or inside
Sequential), frozen bases (no weight gradients, no backward below the head, BatchNormalization
in inference mode), head gradients equal to the unfrozen run's, and raw activations through
Model.extract_features or Keras' Model(inputs, base.get_layer(name).output)."""

from __future__ import annotations

import numpy as np
import pytest

import convforge.functional as F
from convforge import nn

from conftest import assert_same_bits, assert_within

pytestmark = pytest.mark.usefixtures("nn_backend")  # conftest: cpu, else reference


def _base():
    nn.set_seed(5)
    inp = nn.Input((3, 8, 8))
    h = nn.Conv2D(4, 3, padding="same", name="conv_a")(inp)
    h = nn.BatchNormalization(name="bn_a")(h)
    h = nn.ReLU()(h)
    h = nn.MaxPooling2D(2)(h)
    h = nn.Conv2D(6, 3, padding="same", activation="relu", name="conv_b")(h)
    return nn.Model(inp, h, name="base")


def _head_model(base, training=False):
    inp = nn.Input((3, 8, 8))
    h = base(inp, training=training)
    out = nn.Dense(3, name="head")(nn.Flatten()(h))
    return nn.Model(inp, out, name="outer")


def _data(rng):
    return rng.standard_normal((5, 3, 8, 8)).astype(np.float32), rng.integers(0, 3, 5)


def _bn_state(base):
    return [p.data.copy() for p in base.get_layer("bn_a").params]


def test_model_as_a_layer_runs_the_inner_graph(rng):
    base = _base()
    outer = _head_model(base)
    x, _ = _data(rng)
    assert [la.name for la in outer.layers] == ["base", "flatten", "head"]
    assert outer.count_params() == base.count_params() + outer.get_layer("head").count_params()
    want = outer.get_layer("head").forward(base.forward(x).reshape(5, -1))
    assert_same_bits(outer.forward(x), want, what="outer forward")
    seq = nn.Sequential([base, nn.Flatten(), nn.Dense(3)])
    assert seq.forward(x).shape == (5, 3)


def test_frozen_base_trains_only_the_head(rng, monkeypatch):
    base = _base()
    outer = _head_model(base, training=None)   # frozen BatchNormalization: inference mode anyway
    base.trainable = False
    assert not base.trainable and len(outer.trainable_params) == 2
    outer.compile("adam", "sparse_categorical_crossentropy")
    x, y = _data(rng)
    before, bn = base.get_weights(), _bn_state(base)
    calls = []
    real = F.conv2d_backward
    monkeypatch.setattr(F, "conv2d_backward", lambda *a, **k: calls.append(k) or real(*a, **k))
    head = outer.get_layer("head").get_weights()
    outer.train_on_batch(x, y)
    assert calls == []                          # no backward below the head: forward only
    for a, b in zip(base.get_weights(), before):
        assert_same_bits(a, b, what="frozen base weights")
    for a, b in zip(_bn_state(base), bn):
        assert_same_bits(a, b, what="moving statistics of a frozen BatchNormalization")
    assert not np.array_equal(outer.get_layer("head").get_weights()[0], head[0])


def test_head_gradients_equal_the_unfrozen_runs(rng):
    x, y = _data(rng)
    grads = []
    for frozen in (False, True):
        base = _base()
        outer = _head_model(base, training=False)
        base.trainable = not frozen
        outer.compile("sgd", "sparse_categorical_crossentropy")
        params = outer.trainable_params
        outer.optimizer.zero_grad(params)
        _, dout = outer.loss.forward_backward(y, outer.forward(x, training=True))
        outer.backward(dout, input_grad=False)
        head = outer.get_layer("head")
        grads.append([p.grad.copy() for p in head.params])
        if not frozen:
            assert all(p.grad is not None for p in base.trainable_params)
    for a, b in zip(*grads):
        assert_same_bits(a, b, what="head gradient, frozen vs unfrozen base")


def test_unfrozen_nested_model_matches_the_flat_one(rng):
    x, y = _data(rng)
    base = _base()
    outer = _head_model(base, training=None)
    flat = nn.Sequential([nn.Input((3, 8, 8))] + [la for la in base.layers] +
                         [nn.Flatten(), outer.get_layer("head")])
    dy = rng.standard_normal((5, 3)).astype(np.float32)
    for m in (outer, flat):
        m.forward(x, training=True)
    g_outer = outer.backward(dy)
    got = [p.grad.copy() for p in outer.trainable_params]
    for p in outer.params:
        p.grad = None
    for p, keep in zip(base.get_layer("bn_a").params, _bn_state(base)):
        p.data[...] = keep
    flat.forward(x, training=True)
    g_flat = flat.backward(dy)
    assert_within(g_outer, g_flat, 1e-6, 1e-6, "input gradient")
    for a, p in zip(got, flat.trainable_params):
        assert_within(a, p.grad, 1e-6, 1e-6, f"grad of {p.name}")


def test_extract_features_and_the_keras_pattern(rng):
    base = _base()
    x, _ = _data(rng)
    bn = base.extract_features(x, "bn_a")       # before the ReLU that follows (no fusion)
    h = x
    for la in base.layers[:2]:
        h = la.forward(h, training=False)
    assert_same_bits(bn, h, what="BatchNormalization output")
    assert (bn < 0).any()
    sub = nn.Model(base.input, base.get_layer("conv_b").output)
    assert_same_bits(sub.predict(x), base.extract_features(x, "conv_b"), what="Keras pattern")
    assert_same_bits(base.extract_features(x, 4), base.predict(x), what="last layer by index")
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        base.extract_features(x, "nope")
