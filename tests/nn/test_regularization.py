"""Kernel regularisers (nn.regularizers: the penalty in the reported loss, its gradient in
backward, checked by finite differences) and optimiser weight decay, which skips biases and
BatchNormalization's gamma and beta unless decay_all=True."""

from __future__ import annotations

import numpy as np
import pytest

from convforge import nn, optim

from conftest import assert_within, fd_grad

pytestmark = pytest.mark.usefixtures("nn_backend")  # conftest: cpu, else reference
RNG_SEED = 77


# --------------------------------------------------------------------------- regularizers

def test_regularizer_objects_and_get():
    reg = nn.regularizers
    w = np.array([[1.0, -2.0], [0.0, 3.0]])
    assert float(reg.L2(0.5)(w)) == 0.5 * 14.0
    assert float(reg.L1(0.1)(w)) == pytest.approx(0.6)
    assert float(reg.L1L2(0.1, 0.5)(w)) == pytest.approx(7.6)
    assert np.array_equal(reg.L2(0.5).grad(w), w)
    assert np.array_equal(reg.L1(2.0).grad(w), 2.0 * np.sign(w))
    assert reg.get(None) is None and isinstance(reg.get("l2"), reg.L2)
    assert reg.get("l2").l2 == 0.01 and reg.get(0.3).l2 == 0.3 and reg.get("L1").l1 == 0.01
    r = reg.L2(0.2)
    assert reg.get(r) is r and repr(r) == "L2(l2=0.2)"
    with pytest.raises(ValueError, match="regularizer"):
        reg.get("l3")
    with pytest.raises(ValueError, match="l2"):
        reg.L2(-1.0)
    with pytest.raises(ValueError, match="regularizer"):
        nn.Dense(2, kernel_regularizer="dropout")


def dense_model(spec, l2_units=3):
    nn.set_seed(RNG_SEED)
    m = nn.Sequential([nn.Dense(l2_units, activation="relu", input_shape=(5,), dtype="float64",
                                kernel_regularizer=spec),
                       nn.Dense(2, dtype="float64", kernel_regularizer=nn.regularizers.L2(0.2))])
    m.compile(optim.SGD(0.0), "sparse_categorical_crossentropy")
    return m


@pytest.mark.parametrize("spec,l2", [(nn.regularizers.L2(0.05), 0.05), ("l2", 0.01),
                                     (0.3, 0.3)])
def test_dense_penalty_in_the_loss_and_its_gradient(spec, l2, rng):
    m = dense_model(spec)
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 2, 6)
    k1, k2 = m.layers[0].kernel, m.layers[1].kernel
    penalty = l2 * (k1.data ** 2).sum() + 0.2 * (k2.data ** 2).sum()
    data_loss = float(m.loss(y, m.forward(x)))
    assert_within([float(v) for v in m.losses],
                  [l2 * (k1.data ** 2).sum(), 0.2 * (k2.data ** 2).sum()], 1e-14, 0, "losses")
    # reported losses: train_on_batch (lr 0: the weights stay), evaluate, fit
    assert m.train_on_batch(x, y)["loss"] == pytest.approx(data_loss + penalty, rel=1e-12)
    assert m.evaluate(x, y)["loss"] == pytest.approx(data_loss + penalty, rel=1e-12)
    h = m.fit(x, y, batch_size=6, epochs=1, verbose=0)
    assert h.history["loss"][0] == pytest.approx(data_loss + penalty, rel=1e-12)

    def total():
        return float(m.loss(y, m.forward(x))) + float(sum(m.losses))

    m.optimizer.zero_grad(m.trainable_params)
    _, dout = m.loss.forward_backward(y, m.forward(x, training=True))
    m.backward(dout, input_grad=False)
    for p in m.trainable_params:
        assert_within(p.grad, fd_grad(total, p.data, 1e-6), 1e-6, 1e-8, p.name)


def test_conv_kernel_gradient_gains_2_l2_w(rng):
    x = rng.standard_normal((2, 2, 5, 5))
    dy = rng.standard_normal((2, 3, 3, 3))
    grads = []
    for reg in (None, nn.regularizers.L2(0.25)):
        nn.set_seed(1)
        conv = nn.Conv2D(3, 3, dtype="float64", kernel_regularizer=reg)
        conv.forward(x, training=True)
        conv.backward(dy)
        grads.append((conv.kernel.grad.copy(), conv.bias.grad.copy(), conv.kernel.data))
    assert_within(grads[1][0], grads[0][0] + 0.5 * grads[1][2], 1e-14, 1e-14, "dkernel")
    assert np.array_equal(grads[1][1], grads[0][1])            # the bias is not regularised


def test_nested_model_penalty_counted_once(rng):
    nn.set_seed(5)
    inner = nn.Sequential([nn.Dense(3, input_shape=(4,), dtype="float64",
                                    kernel_regularizer=0.1)], name="inner")
    m = nn.Sequential([inner, nn.Dense(2, dtype="float64")])
    m.compile(optim.SGD(0.0), "sparse_categorical_crossentropy")
    x, y = rng.standard_normal((5, 4)), rng.integers(0, 2, 5)
    kernel = inner.layers[0].kernel
    assert len(m.losses) == 1 and float(m.losses[0]) == pytest.approx(
        0.1 * (kernel.data ** 2).sum(), rel=1e-14)

    def total():
        return float(m.loss(y, m.forward(x))) + float(sum(m.losses))

    m.optimizer.zero_grad(m.trainable_params)
    _, dout = m.loss.forward_backward(y, m.forward(x, training=True))
    m.backward(dout, input_grad=False)
    assert_within(kernel.grad, fd_grad(total, kernel.data, 1e-6), 1e-6, 1e-8, "inner kernel")


def test_frozen_layer_has_no_penalty(rng):
    m = dense_model(0.1)
    m.layers[0].trainable = False
    assert len(m.losses) == 1 and m.layers[0].losses == []


# --------------------------------------------------------------------------- weight decay

def bn_model():
    nn.set_seed(RNG_SEED)
    m = nn.Sequential([nn.Conv2D(2, 3, input_shape=(1, 5, 5), dtype="float64"),
                       nn.BatchNormalization(), nn.Flatten(), nn.Dense(2)])
    m.forward(np.ones((1, 1, 5, 5)))
    for p in m.params:        # distinct non-zero values everywhere, so decay would show
        p.data = p.data + 0.5
    return m


def test_parameter_decay_flags():
    m = bn_model()
    flags = {f"{la.name}/{p.name}": p.decay for la in m.layers for p in la.trainable_params}
    assert flags == {"conv2d/kernel": True, "conv2d/bias": False,
                     "batch_normalization/gamma": False, "batch_normalization/beta": False,
                     "dense/kernel": True, "dense/bias": False}


@pytest.mark.parametrize("make", [lambda **kw: optim.SGD(0.1, weight_decay=0.2, **kw),
                                  lambda **kw: optim.SGD(0.1, 0.9, weight_decay=0.2, **kw),
                                  lambda **kw: optim.Adam(0.1, weight_decay=0.2, **kw),
                                  lambda **kw: optim.RMSprop(0.1, weight_decay=0.2, **kw),
                                  lambda **kw: optim.AdamW(0.1, weight_decay=0.2, **kw)],
                         ids=["sgd", "sgd-momentum", "adam", "rmsprop", "adamw"])
def test_weight_decay_skips_biases_and_batch_norm(make):
    for decay_all in (False, True):
        m = bn_model()
        params = m.trainable_params
        before = [p.data.copy() for p in params]
        for p in params:                  # zero gradients: only weight decay moves a value
            p.grad = np.zeros_like(p.data)
        make(decay_all=decay_all).step(params)
        for p, b in zip(params, before):
            moved = not np.array_equal(p.data, b)
            assert moved == (decay_all or p.decay), \
                f"{p.name} (decay={p.decay}, decay_all={decay_all}) moved={moved}"


def test_sgd_weight_decay_values_and_plain_objects():
    m = bn_model()
    kernel, bias = m.layers[0].kernel, m.layers[0].bias
    k0, b0 = kernel.data.copy(), bias.data.copy()
    for p in (kernel, bias):
        p.grad = np.zeros_like(p.data)
    optim.SGD(0.1, weight_decay=0.2).step([kernel, bias])
    assert_within(kernel.data, k0 * (1 - 0.1 * 0.2), 1e-15, 0, "kernel")
    assert np.array_equal(bias.data, b0)

    class P:                               # no `decay` attribute: decayed (as before)
        data, grad = np.ones(2), np.zeros(2)

    optim.SGD(0.5, weight_decay=0.1).step([P])
    assert_within(P.data, [0.95, 0.95], 1e-15, 0)
