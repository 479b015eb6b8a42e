"""Step plans (nn/_plan.py): a chain model's training step replayed without the graph walk
gives bit for bit the weights, losses and metrics of the plain step (CONVFORGE_STEP_PLAN=0),
over the layer types and options it plans; models it does not plan still train; it leaves
the layers' caches alone, follows set_weights, trainable flags and batch shapes; its hold on
the step buffer cache ends with it."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import convforge
from convforge import models, nn
from convforge.nn import _buffers

from conftest import assert_same_bits

pytestmark = pytest.mark.skipif(_buffers._core() is None, reason="needs the compiled core")
RNG_SEED = 11


def _lenet():
    return models.lenet5()


def _varied():
    # every planned layer type and option: non-ReLU activations, strides, 'same' padding,
    # groups, no bias, a ReLU layer before a pool (fused) and one not before a pool, dropout
    return nn.Sequential([
        nn.Rescaling(0.5, offset=-1.0, input_shape=(4, 12, 12)),
        nn.Conv2D(6, 3, padding="same", activation="tanh"),
        nn.Conv2D(8, 3, strides=2, padding=1, groups=2, use_bias=False),
        nn.ReLU(),
        nn.MaxPooling2D(2, strides=1),
        nn.Conv2D(8, 2, dilation_rate=2, activation="sigmoid"),
        nn.Activation("relu"),
        nn.Dropout(0.3),
        nn.Flatten(),
        nn.Dense(7, activation="tanh"),
        nn.Dense(5, activation="relu"),
        nn.Dense(3),
    ])


def _frozen_first():
    m = models.lenet5()
    m.layers[1].trainable = False   # C1 frozen: backward stops at C3 (no dx for it)
    return m


def _frozen_middle():
    m = models.lenet5()
    m.layers[3].trainable = False   # C3 frozen: dx through it, no dw
    return m


def _relu_layers():
    # ReLU layers (one fused with the pool after it, one not), a rescale above the lowest
    # trainable layer (its backward runs), linear convs and dense layers: all compiled ops
    return nn.Sequential([
        nn.Conv2D(3, 3, padding=1, input_shape=(2, 9, 9)),
        nn.Rescaling(0.25, offset=0.5),
        nn.ReLU(),
        nn.MaxPooling2D(3, strides=2),
        nn.Conv2D(5, 2, strides=2, use_bias=False),
        nn.Activation("relu"),
        nn.Flatten(),
        nn.Dense(6),
        nn.Dense(4, activation="relu"),
        nn.Dense(3),
    ])


# name: (model, per-sample shape, classes, dtype, whether the compiled engine runs it)
CASES = {
    "lenet5": (_lenet, (1, 32, 32), 10, np.float32, True),
    "lenet5-f64": (lambda: models.lenet5(dtype="float64"), (1, 32, 32), 10, np.float64, True),
    "relu-layers": (_relu_layers, (2, 9, 9), 3, np.float32, True),
    "varied": (_varied, (4, 12, 12), 3, np.float32, False),   # tanh, sigmoid, dropout
    "frozen-first": (_frozen_first, (1, 32, 32), 10, np.float32, True),
    "frozen-middle": (_frozen_middle, (1, 32, 32), 10, np.float32, True),
}


def _train(monkeypatch, make, shape, classes, dtype, plan: bool, steps: int = 3,
           batch: int = 12, optimizer: str = "adam"):
    monkeypatch.setenv("CONVFORGE_STEP_PLAN", "1" if plan else "0")
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (batch,) + shape).astype(dtype)
    y = rng.integers(0, classes, batch)
    convforge.set_seed(2)
    m = make()
    m.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    logs = [m.train_on_batch(x, y) for _ in range(steps)]
    return m, logs


@pytest.mark.parametrize("case", sorted(CASES))
def test_planned_steps_are_bit_identical_to_the_graph_walk(monkeypatch, case):
    make, shape, classes, dtype, compiled = CASES[case]
    planned, logs_p = _train(monkeypatch, make, shape, classes, dtype, plan=True)
    assert planned._plans and all(p is not None for p in planned._plans.values())
    assert all((p.compiled is not None) == compiled for p in planned._plans.values())
    plain, logs = _train(monkeypatch, make, shape, classes, dtype, plan=False)
    assert not plain._plans
    assert logs_p == logs
    for a, b, p in zip(planned.get_weights(), plain.get_weights(), plain.params):
        assert_same_bits(a, b, p.name)


def test_sgd_momentum_and_fit_with_a_short_last_batch(monkeypatch):
    def fit(plan):
        monkeypatch.setenv("CONVFORGE_STEP_PLAN", "1" if plan else "0")
        rng = np.random.default_rng(8)
        x = rng.integers(0, 256, (50, 1, 32, 32)).astype(np.float32)
        y = rng.integers(0, 10, 50)
        convforge.set_seed(4)
        m = models.lenet5()
        m.compile(convforge.optim.SGD(0.05, momentum=0.9, nesterov=True),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
        hist = m.fit(x, y, batch_size=16, epochs=2, seed=3, verbose=0)
        return m, hist.history

    planned, h_p = fit(True)
    assert len(planned._plans) == 2   # batches of 16 and the last one of 2
    plain, h = fit(False)
    assert h_p == h
    for a, b in zip(planned.get_weights(), plain.get_weights()):
        assert_same_bits(a, b)


def _never_planned():
    reg = nn.Sequential([
        nn.Conv2D(4, 3, input_shape=(1, 8, 8), kernel_regularizer=nn.regularizers.L2(1e-3)),
        nn.Flatten(), nn.Dense(3)])
    bn = nn.Sequential([
        nn.Conv2D(4, 3, input_shape=(1, 8, 8)), nn.BatchNormalization(), nn.ReLU(),
        nn.Flatten(), nn.Dense(3)])
    same_pool = nn.Sequential([
        nn.Conv2D(4, 3, input_shape=(1, 8, 8)), nn.MaxPooling2D(2, padding="same"),
        nn.Flatten(), nn.Dense(3)])
    inp = nn.Input((1, 8, 8))
    a = nn.Conv2D(4, 3, padding="same")(inp)
    b = nn.Conv2D(4, 3, padding="same")(inp)
    branched = nn.Model(inp, nn.Dense(3)(nn.Flatten()(nn.Add()([a, b]))))
    return {"regularizer": reg, "batchnorm": bn, "same-pool": same_pool, "branched": branched}


@pytest.mark.parametrize("name", ["regularizer", "batchnorm", "same-pool", "branched"])
def test_models_it_does_not_plan_train_as_before(monkeypatch, name):
    x = np.random.default_rng(1).standard_normal((6, 1, 8, 8)).astype(np.float32)
    y = np.arange(6) % 3
    results = []
    for plan in (True, False):
        monkeypatch.setenv("CONVFORGE_STEP_PLAN", "1" if plan else "0")
        convforge.set_seed(0)
        m = _never_planned()[name]
        m.compile("adam", "sparse_categorical_crossentropy")
        logs = [m.train_on_batch(x, y) for _ in range(2)]
        assert all(p is None for p in m._plans.values())
        results.append((logs, m.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        assert_same_bits(a, b)


def test_numba_backend_takes_the_graph_walk(monkeypatch):
    pytest.importorskip("numba")
    monkeypatch.setenv("CONVFORGE_BACKEND", "numba")
    m = models.lenet5()
    m.compile("adam", "sparse_categorical_crossentropy")
    x = np.zeros((2, 1, 32, 32), np.float32)
    m.train_on_batch(x, np.array([1, 2]))
    assert all(p is None or not p.ready() for p in m._plans.values())


def test_plan_follows_set_weights_and_trainable(monkeypatch):
    monkeypatch.setenv("CONVFORGE_STEP_PLAN", "1")
    m, _ = _train(monkeypatch, _lenet, (1, 32, 32), 10, np.float32, plan=True, steps=1)
    x = np.ones((12, 1, 32, 32), np.float32)
    y = np.arange(12) % 10
    zeros = [np.zeros_like(w) for w in m.get_weights()]
    m.set_weights(zeros)                   # new arrays: the plan reads the layers' parameters
    m.layers[-1].trainable = False         # a new key: a second plan
    m.train_on_batch(x, y)
    assert len(m._plans) == 2
    w = m.get_weights()
    assert not w[-1].any() and not w[-2].any()       # the frozen Dense did not move
    assert any(a.any() for a in w[:-2])              # the others did (Adam from zero weights)


def test_planned_step_leaves_layer_caches_alone(monkeypatch):
    m, _ = _train(monkeypatch, _lenet, (1, 32, 32), 10, np.float32, plan=True, steps=1)
    x = np.zeros((3, 1, 32, 32), np.float32)
    m.forward(x, training=True)                    # caches of a batch of 3
    caches = [la._cache for la in m.layers]
    m.train_on_batch(np.ones((12, 1, 32, 32), np.float32), np.arange(12) % 10)
    assert all(la._cache is c for la, c in zip(m.layers, caches))
    assert m.backward(np.ones((3, 10), np.float32)).shape == (3, 1, 32, 32)


def test_plan_holds_the_buffer_cache_until_it_is_gone(monkeypatch):
    gc.collect()
    users = _buffers.stats()["users"]
    # the Python steps (dropout: not compiled) allocate the step's arrays
    m, _ = _train(monkeypatch, _varied, (4, 12, 12), 3, np.float32, plan=True, steps=2,
                  batch=64)
    assert _buffers.stats()["users"] == users + 1
    assert _buffers.stats()["held_bytes"] > 0      # the step's blocks wait for the next step
    hits = _buffers.stats()["hits"]
    m.train_on_batch(np.ones((64, 4, 12, 12), np.float32), np.arange(64) % 3)
    assert _buffers.stats()["hits"] > hits
    del m
    gc.collect()
    assert _buffers.stats()["users"] == users
    if users == 0:
        assert _buffers.stats()["held_bytes"] == 0


def test_a_model_subclass_with_its_own_forward_is_not_planned(monkeypatch):
    monkeypatch.setenv("CONVFORGE_STEP_PLAN", "1")

    class Counting(nn.Sequential):
        calls = 0

        def forward(self, x, training=False):
            type(self).calls += 1
            return super().forward(x, training)

    m = Counting([nn.Conv2D(4, 3, input_shape=(1, 8, 8)), nn.Flatten(), nn.Dense(3)])
    m.compile("sgd", "sparse_categorical_crossentropy")
    m.train_on_batch(np.ones((4, 1, 8, 8), np.float32), np.arange(4) % 3)
    assert Counting.calls == 1 and all(p is None for p in m._plans.values())


def test_a_loss_error_ends_the_compiled_step(monkeypatch):
    m, _ = _train(monkeypatch, _lenet, (1, 32, 32), 10, np.float32, plan=True, steps=1)
    x = np.ones((12, 1, 32, 32), np.float32)
    with pytest.raises(ValueError):
        m.train_on_batch(x, np.full(12, 99))        # a label outside the 10 classes
    plan = next(iter(m._plans.values()))
    assert plan.compiled is not None and not plan._lock.locked()
    m.train_on_batch(x, np.arange(12) % 10)


def test_compiled_plan_checks_its_ops_and_arrays():
    core = convforge._core
    dense = {"kind": "dense", "in": (4, 3), "out": (4, 2), "w": 0, "b": -1, "relu": False,
             "relu_done": False, "need_dx": False, "trainable": True, "backward": True}
    plan = core.StepPlan("float32", [dense], [(3, 2)])
    w = np.ones((3, 2), np.float32)
    y = plan.forward(np.ones((4, 3), np.float32), [w])
    assert y.shape == (4, 2) and (y == 3).all()
    with pytest.raises(ValueError, match="dense sizes"):
        core.StepPlan("float32", [dict(dense, out=(4, 5))], [(3, 2)])
    with pytest.raises(ValueError, match="parameter index"):
        core.StepPlan("float32", [dict(dense, w=3)], [(3, 2)])
    with pytest.raises(ValueError, match="does not take the size"):
        core.StepPlan("float32", [dense, dict(dense, **{"in": (4, 3)})], [(3, 2)])
    with pytest.raises(ValueError, match="conv output shape"):
        core.StepPlan("float32", [{"kind": "conv", "in": (1, 1, 5, 5), "out": (1, 2, 4, 4),
                                   "w": 0, "b": -1, "stride": (1, 1), "padding": (0, 0, 0, 0),
                                   "dilation": (1, 1), "groups": 1, "relu": False,
                                   "relu_done": False, "need_dx": False, "trainable": True,
                                   "backward": True}], [(2, 1, 3, 3)])
    with pytest.raises(ValueError, match="shape"):
        plan.forward(np.ones((5, 3), np.float32), [w])
    with pytest.raises(TypeError):
        plan.forward(np.ones((4, 3), np.float64), [w])
    with pytest.raises(TypeError, match="NumPy arrays"):
        plan.forward(np.ones((4, 3), np.float32), [[[1.0, 1.0]] * 3])
    fresh = plan.backward(np.ones((4, 2), np.float32), [w], [None])
    assert fresh[0].shape == (3, 2) and (fresh[0] == 4).all()   # x^T @ dy: 4 rows of ones


def test_a_copy_of_a_planned_model_trains_alike(monkeypatch):
    import copy

    m, _ = _train(monkeypatch, _lenet, (1, 32, 32), 10, np.float32, plan=True, steps=2)
    twin = copy.deepcopy(m)
    assert twin._plans == {} and m._plans
    x = np.random.default_rng(3).integers(0, 256, (12, 1, 32, 32)).astype(np.float32)
    y = np.arange(12) % 10
    assert m.train_on_batch(x, y) == twin.train_on_batch(x, y)
    assert twin._plans and all(p.compiled is not None for p in twin._plans.values())
    for a, b in zip(m.get_weights(), twin.get_weights()):
        assert_same_bits(a, b)


def test_dropout_rate_is_read_at_every_step(monkeypatch):
    # Dropout runs on the Python plan (no compiled op): a rate changed between steps applies
    def net():
        return nn.Sequential([nn.Conv2D(3, 3, input_shape=(1, 8, 8), activation="relu"),
                              nn.Flatten(), nn.Dropout(0.0), nn.Dense(3)])

    x = np.random.default_rng(2).standard_normal((16, 1, 8, 8)).astype(np.float32)
    y = np.arange(16) % 3
    results = []
    for plan in ("1", "0"):
        monkeypatch.setenv("CONVFORGE_STEP_PLAN", plan)
        convforge.set_seed(5)
        m = net()
        m.compile("sgd", "sparse_categorical_crossentropy")
        m.train_on_batch(x, y)
        m.layers[2].rate = 0.5
        m.train_on_batch(x, y)
        assert plan == "0" or all(p.compiled is None for p in m._plans.values())
        results.append(m.get_weights())
    for a, b in zip(*results):
        assert_same_bits(a, b)


def test_a_chain_without_parameters_runs_in_its_dtype(monkeypatch):
    # the compiled plan takes the batch's dtype (not a parameter's: there is none)
    monkeypatch.setenv("CONVFORGE_STEP_PLAN", "1")
    m = nn.Sequential([nn.Rescaling(0.5, input_shape=(3,)), nn.ReLU()], dtype="float64")
    m.compile("sgd", "sparse_categorical_crossentropy")
    logs = m.train_on_batch(np.ones((4, 3)), np.arange(4) % 3)
    assert np.isclose(logs["loss"], np.log(3))
    assert all(p.compiled is not None for p in m._plans.values())
