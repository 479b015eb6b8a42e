"""Layer fusion inside a Model: a BatchNormalization followed by a ReLU (its only consumer, not
a model output) runs as one pass, forward and backward, with the results of the unfused chain
of the same layers (run one by one) within float tolerance; gradients asked for (wrt) at the
fused intermediate are the ones before the ReLU; models where the pair may not fuse do not."""

from __future__ import annotations

import numpy as np
import pytest

from convforge import models, nn

from conftest import assert_same_bits, assert_within

pytestmark = pytest.mark.usefixtures("nn_backend")  # conftest: cpu, else reference
RNG_SEED = 7


def _cnn():
    return nn.Sequential([
        nn.Conv2D(6, 3, padding="same", input_shape=(3, 8, 8)),
        nn.BatchNormalization(momentum=0.5),
        nn.ReLU(),
        nn.Conv2D(4, 3, padding="same"),
        nn.BatchNormalization(),
        nn.Activation("relu"),
        nn.GlobalAveragePooling2D(),
        nn.Dense(3),
    ])


def _chain(layers, x, dy, training):
    """The layers one by one (no fusion): output, input gradient, parameter gradients."""
    h = x
    for la in layers:
        h = la.forward(h, training)
    y, g = h, dy
    for la in reversed(layers):
        g = la.backward(g)
    return y, g


@pytest.mark.parametrize("training", [True, False])
def test_fused_model_matches_the_unfused_chain(rng, training):
    model = _cnn()
    assert len(model._fused) == 2   # both BatchNormalization + ReLU pairs
    x = rng.standard_normal((5, 3, 8, 8)).astype(np.float32)
    dy = rng.standard_normal((5, 3)).astype(np.float32)
    moving = [p.data.copy() for p in model.params]
    y_fused = model.forward(x, training)
    dx_fused = model.backward(dy)
    grads_fused = [p.grad.copy() for p in model.trainable_params]
    for p, keep in zip(model.params, moving):   # the chain starts from the same state
        p.data[...] = keep
        p.grad = None
    y, dx = _chain(model.layers, x, dy, training)
    assert_within(y_fused, y, 1e-6, 1e-6, "y")
    assert_within(dx_fused, dx, 1e-5, 1e-6, "dx")
    for p, g in zip(model.trainable_params, grads_fused):
        assert_within(g, p.grad, 1e-5, 1e-6, f"grad of {p.name}")


def test_gradient_at_the_fused_intermediate_is_before_the_relu(rng):
    inp = nn.Input((3, 6, 6))
    h = nn.Conv2D(4, 3, padding="same")(inp)
    bn = nn.BatchNormalization()(h)
    out = nn.Dense(2)(nn.Flatten()(nn.ReLU()(bn)))
    model = nn.Model(inp, out)
    assert len(model._fused) == 1
    x = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    dy = rng.standard_normal((4, 2)).astype(np.float32)
    model.forward(x, True)
    g_bn, g_h = model.backward(dy, wrt=[bn, h])
    conv, norm, relu, flatten, dense = model.layers   # the unfused chain, one by one
    a = x
    for la in model.layers:
        a = la.forward(a, True)
    g_relu_in = relu.backward(flatten.backward(dense.backward(dy)))
    assert_within(g_bn, g_relu_in, 1e-6, 1e-7, "gradient w.r.t. the BatchNormalization output")
    assert_within(g_h, norm.backward(g_relu_in), 1e-5, 1e-6, "gradient w.r.t. the conv output")


def test_pairs_that_may_not_fuse():
    inp = nn.Input((3, 6, 6))
    bn = nn.BatchNormalization()(nn.Conv2D(4, 3)(inp))
    relu = nn.ReLU()(bn)
    assert nn.Model(inp, [bn, relu])._fused == {}        # the BN output is a model output
    other = nn.Activation("sigmoid")(bn)
    assert nn.Model(inp, [relu, other])._fused == {}     # a second consumer
    inp2 = nn.Input((3, 6, 6))
    bn2 = nn.BatchNormalization()(nn.Conv2D(4, 3)(inp2))
    assert nn.Model(inp2, nn.Activation("tanh")(bn2))._fused == {}


def test_vgg_small_fuses_every_pair():
    assert len(models.vgg_small()._fused) == 6


def _pool_relu_cnn():
    return nn.Sequential([
        nn.Conv2D(4, 3, padding="same", activation="relu", input_shape=(3, 8, 8)),
        nn.MaxPooling2D(2),                           # after a Conv2D's ReLU
        nn.Conv2D(6, 3, padding="same"),
        nn.BatchNormalization(),
        nn.ReLU(),
        nn.MaxPooling2D(3, strides=1, padding="same"),   # after BN + ReLU (fused), overlapping
        nn.Conv2D(5, 1),
        nn.ReLU(),
        nn.MaxPooling2D(2),                           # after a plain ReLU layer
        nn.Flatten(),
        nn.Dense(3),
    ])


def test_max_pool_does_the_relu_backward(rng):
    """Each max pool after a ReLU does that ReLU's backward (F.max_pool2d_backward(relu_y=)),
    and the layer before skips it: the same bits as the layers run one by one."""
    model = _pool_relu_cnn()
    assert len(model._pool_relu) == 3 and len(model._fused) == 1
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    dy = rng.standard_normal((4, 3)).astype(np.float32)
    y_fused = model.forward(x, True)
    dx_fused = model.backward(dy)
    grads_fused = [p.grad.copy() for p in model.trainable_params]
    for p in model.params:
        p.grad = None
    model2 = _pool_relu_cnn()
    model2.set_weights(model.get_weights())
    model2.build((3, 8, 8))
    for p, q in zip(model2.params, model.params):   # moving statistics as before the step
        p.data[...] = q.data
    y, dx = _chain(model2.layers, x, dy, True)
    assert_same_bits(y_fused, y, what="y")
    assert_same_bits(dx_fused, dx, what="dx")
    for g, p in zip(grads_fused, model2.trainable_params):
        assert_same_bits(g, p.grad, what=f"grad of {p.name}")


def test_pool_relu_pairs_that_may_not_fuse(rng):
    inp = nn.Input((3, 6, 6))
    h = nn.Conv2D(4, 3, activation="relu")(inp)
    assert nn.Model(inp, [h, nn.MaxPooling2D(2)(h)])._pool_relu == {}    # a model output
    assert nn.Model(inp, [nn.MaxPooling2D(2)(h), nn.Flatten()(h)])._pool_relu == {}
    assert nn.Model(inp, nn.AveragePooling2D(2)(h))._pool_relu == {}
    t = nn.Conv2D(4, 3, activation="tanh")(inp)
    assert nn.Model(inp, nn.MaxPooling2D(2)(t))._pool_relu == {}
    # the gradient asked for at the ReLU output is dL/d(relu output), not past the ReLU
    pooled = nn.MaxPooling2D(2)(h)
    model = nn.Model(inp, nn.Dense(2)(nn.Flatten()(pooled)))
    assert len(model._pool_relu) == 1
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    dy = rng.standard_normal((2, 2)).astype(np.float32)
    model.forward(x, True)
    (g_h,) = model.backward(dy, wrt=[h])
    conv, pool, flatten, dense = model.layers      # the chain one by one: the pool's plain dx
    a = x
    for la in model.layers:
        a = la.forward(a, True)
    assert_same_bits(g_h, pool.backward(flatten.backward(dense.backward(dy))),
                     what="gradient w.r.t. the ReLU output")
    assert (g_h[conv._cache[1] == 0] != 0).any()   # not masked: the ReLU is below h
