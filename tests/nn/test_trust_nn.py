"""Issue #11 on the nn side: seeding (convforge.set_seed), what predict returns, empty batches
(N = 0), inference beside training on another thread, atomic weight files and all-or-nothing
load_weights. Tiny shapes and random data only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import convforge
from convforge import losses, nn
from convforge.nn import metrics

pytestmark = pytest.mark.usefixtures("nn_backend")  # conftest: cpu, else reference


def cnn(dropout=0.25):
    """Conv + BatchNorm + Dropout: every kind of training state (caches, moving statistics,
    a random stream)."""
    return nn.Sequential([
        nn.Conv2D(4, 3, padding="same", activation="relu", input_shape=(1, 8, 8)),
        nn.BatchNormalization(),
        nn.MaxPooling2D(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Dense(3),
    ])


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, n)


def weights(model):
    return [w.copy() for w in model.get_weights()]


def same(a, b) -> bool:
    return len(a) == len(b) and all(x.dtype == y.dtype and np.array_equal(x, y)
                                    for x, y in zip(a, b))


# --------------------------------------------------------------------------- item 1: seeds

def test_set_seed_is_public_and_validates():
    assert "set_seed" in convforge.__all__
    for bad in (-1, 1.5, "0", True):
        with pytest.raises(ValueError, match="seed"):
            convforge.set_seed(bad)


def test_models_after_set_seed_do_not_depend_on_what_ran_before():
    convforge.set_seed(7)
    a = cnn()
    a.build((1, 8, 8))
    nn.Dense(5).build((9,))                 # unrelated draws from the global generator ...
    nn.Sequential([nn.Dense(4, input_shape=(3,)), nn.Dropout(0.5)]).get_weights()
    convforge.set_seed(7)
    b = cnn()
    assert same(weights(a), weights(b))
    convforge.set_seed(8)
    assert not same(weights(a), weights(cnn()))
    init = nn.initializers.get("glorot_uniform")      # called without an rng
    convforge.set_seed(5)
    first = init((3, 4))
    convforge.set_seed(5)
    assert np.array_equal(first, init((3, 4)))


def fit_run(seed, x, y):
    """set_seed, build, fit without seed= (shuffling, Dropout, augmentation all from it)."""
    convforge.set_seed(seed)
    m = cnn()
    m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    aug = convforge.data.Augment.from_spec("flip,shift=0.2,noise=0.1")
    h = m.fit(x, y, batch_size=8, epochs=2, verbose=0, augment=aug)
    return weights(m), h.history


def test_fit_after_set_seed_is_bit_identical():
    x, y = data()
    w1, h1 = fit_run(3, x, y)
    w2, h2 = fit_run(3, x, y)
    assert same(w1, w2) and h1 == h2
    w3, _ = fit_run(4, x, y)
    assert not same(w1, w3)


# --------------------------------------------------------------------------- item 2: predict

def test_predict_returns_feature_maps_unchanged():
    x = np.random.default_rng(0).standard_normal((3, 2, 6, 6)).astype(np.float32)
    m = nn.Sequential([nn.Conv2D(4, 3, input_shape=(2, 6, 6))])
    out = m.predict(x)
    assert out.shape == (3, 4, 4, 4)
    assert np.array_equal(out, m.forward(x, training=False))
    assert not np.allclose(out.sum(axis=1), 1.0)
    m.compile("adam", "categorical_crossentropy")    # compiled, but not (N, classes) outputs
    assert np.array_equal(m.predict(x), out)


def test_predict_softmax_only_for_compiled_classifiers():
    x = np.random.default_rng(0).standard_normal((5, 2, 6, 6)).astype(np.float32)
    m = nn.Sequential([nn.Flatten(input_shape=(2, 6, 6)), nn.Dense(3)])
    logits = m.forward(x)
    assert np.array_equal(m.predict(x), logits)      # uncompiled: what the model outputs
    m.compile("adam", "sparse_categorical_crossentropy")
    p = m.predict(x)
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-6) and np.all(p > 0)
    assert np.array_equal(m.predict(x, raw=True), logits)
    m.compile("adam", "mse")
    assert np.array_equal(m.predict(x), logits)


# --------------------------------------------------------------------------- item 3: N = 0

EMPTY_LAYERS = [
    (lambda: nn.Dense(3), (5,)),
    (lambda: nn.Dense(3, activation="softmax"), (2, 5)),
    (lambda: nn.Flatten(), (2, 3, 4)),
    (lambda: nn.Dropout(0.5), (2, 3, 4)),
    (lambda: nn.BatchNormalization(), (2, 3, 4)),
    (lambda: nn.BatchNormalization(), (4,)),
    (lambda: nn.Activation("tanh"), (3,)),
    (lambda: nn.Softmax(), (4,)),
    (lambda: nn.Rescaling(0.5, 1.0), (2, 3, 3)),
    (lambda: nn.Normalization((1.0, 2.0), 0.5), (2, 3, 3)),
    (lambda: nn.ZeroPadding2D(1), (2, 3, 3)),
]


@pytest.mark.parametrize("make,shape", EMPTY_LAYERS,
                         ids=lambda v: v if isinstance(v, tuple) else "")
@pytest.mark.parametrize("training", [False, True])
def test_layers_accept_an_empty_batch(make, shape, training):
    layer = make()
    layer.build(shape)
    layer.built = True
    state = [p.data.copy() for p in layer.params]
    x = np.zeros((0,) + shape, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # no 'mean of empty slice' and the like
        y = layer.forward(x, training=training)
        assert y.shape == (0,) + layer.compute_output_shape(shape)
        dx = layer.backward(np.zeros(y.shape, np.float32))
    assert dx.shape == x.shape
    for p, before in zip(layer.params, state):       # moving statistics untouched
        assert np.array_equal(p.data, before), p.name
    for p in layer.trainable_params:
        assert p.grad is not None and not p.grad.any(), p.name


def test_add_layer_accepts_an_empty_batch():
    layer = nn.Add()
    xs = [np.zeros((0, 3), np.float32)] * 2
    y = layer.forward(xs)
    assert y.shape == (0, 3)
    assert [d.shape for d in layer.backward(y)] == [(0, 3)] * 2


@pytest.mark.parametrize("make", [
    lambda: nn.Conv2D(4, 3, padding="same"), lambda: nn.MaxPooling2D(2),
    lambda: nn.AveragePooling2D(2, padding="same"), lambda: nn.MinPooling2D(2),
    lambda: nn.GlobalAveragePooling2D(), lambda: nn.GlobalMaxPooling2D()])
def test_conv_and_pool_layers_accept_an_empty_batch(make):
    """Needs convforge.functional to accept N = 0 (the lead's part of item 3)."""
    layer = make()
    x = np.zeros((0, 2, 6, 6), np.float32)
    y = layer.forward(x, training=True)
    assert y.shape == (0,) + layer.compute_output_shape((2, 6, 6))
    assert layer.backward(np.zeros(y.shape, np.float32)).shape == x.shape
    for p in layer.trainable_params:
        assert p.grad is not None and not p.grad.any()


@pytest.mark.parametrize("loss,y", [
    (losses.SparseCategoricalCrossentropy(), np.zeros(0, np.int64)),
    (losses.SparseCategoricalCrossentropy(from_logits=False), np.zeros(0, np.int64)),
    (losses.CategoricalCrossentropy(), np.zeros((0, 3))),
    (losses.CategoricalCrossentropy(from_logits=False), np.zeros((0, 3))),
    (losses.BinaryCrossentropy(), np.zeros((0, 3))),
    (losses.BinaryCrossentropy(from_logits=False), np.zeros((0, 3))),
    (losses.MeanSquaredError(), np.zeros((0, 3))),
], ids=lambda v: repr(v) if isinstance(v, losses.Loss) else "")
def test_losses_and_metrics_on_an_empty_batch(loss, y):
    z = np.zeros((0, 3), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = loss.forward_backward(y, z)
        acc = metrics.get("accuracy", loss)[1](y, z)
    assert np.isnan(value) and grad.shape == (0, 3) and grad.dtype == np.float32
    assert np.isnan(acc)


def test_model_calls_on_empty_arrays():
    x, y = data(12)
    m = cnn()
    empty = x[:0]
    assert m.predict(empty).shape == (0, 3)          # uncompiled and unbuilt-from-data
    m.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    p = m.predict(empty)
    assert p.shape == (0, 3) and p.dtype == np.float32
    with pytest.raises(ValueError, match="empty|no samples"):
        m.evaluate(empty, y[:0])
    with pytest.raises(ValueError, match="empty"):
        m.fit(empty, y[:0], verbose=0)
    before = weights(m)
    with pytest.raises(ValueError, match="non-empty batch"):
        m.train_on_batch(empty, y[:0])
    assert same(before, weights(m))


def test_empty_batches_from_a_source_are_skipped():
    x, y = data(12)

    class Source:
        def __iter__(self):
            yield x[:6], y[:6]
            yield x[:0], y[:0]
            yield x[6:], y[6:]

        def __len__(self):
            return 3

    m = cnn(dropout=0.0)
    m.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    h = m.fit(Source(), epochs=1, verbose=0, validation_data=Source())
    assert all(np.isfinite(v[0]) for v in h.history.values())
    res = m.evaluate(Source())
    assert np.isfinite(res["loss"]) and 0 <= res["accuracy"] <= 1
    assert m.predict(Source()).shape == (12, 3)


# --------------------------------------------------------------------------- item 7: threads

def test_inference_on_another_thread_leaves_fit_bit_identical():
    x, y = data(64)
    xq, yq = data(5, seed=1)

    def trained(concurrent: bool):
        nn.set_seed(11)
        m = cnn()
        m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
        m.predict(xq)                                # builds and draws the weights
        done, calls, errors = threading.Event(), [0], []

        def infer():
            try:
                while not done.is_set():
                    m.predict(xq, batch_size=5)      # other batch sizes than fit's 4
                    m.evaluate(xq[:3], yq[:3], batch_size=3)
                    calls[0] += 1
            except Exception as e:                   # reported below
                errors.append(e)

        t = threading.Thread(target=infer)
        if concurrent:
            t.start()
        try:
            m.fit(x, y, batch_size=4, epochs=3, seed=5, verbose=0)
        finally:
            done.set()
            if concurrent:
                t.join(30)
        assert not errors, errors
        return weights(m), calls[0]

    alone, _ = trained(False)
    beside, calls = trained(True)
    assert calls > 0
    assert same(alone, beside)


def test_forward_caches_are_per_thread():
    x, _ = data(4)
    m = cnn(dropout=0.0)
    out = m.forward(x, training=True)
    t = threading.Thread(target=lambda: m.forward(x[:1], training=True))
    t.start()
    t.join()
    # backward on this thread uses this thread's forward (batch 4), not the other's (batch 1)
    assert m.backward(np.ones_like(out)).shape == x.shape


# --------------------------------------------------------------------------- item 10: files

def test_write_error_leaves_previous_weights_file(tmp_path, monkeypatch):
    m = cnn()
    m.build((1, 8, 8))
    path = tmp_path / "w.npz"
    m.save_weights(path)
    before = path.read_bytes()

    def failing_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="No space"):
        m.save_weights(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.npz"]         # no temporary file left behind


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from convforge import nn
    m = nn.Sequential([nn.Dense(1024, input_shape=(1024,))])
    m.save_weights(sys.argv[1])
    print("ready", flush=True)
    while True:
        m.save_weights(sys.argv[1])
""")


def test_sigkill_during_overwrites_never_leaves_a_truncated_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(convforge.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    rng = np.random.default_rng(0)
    for attempt in range(3):
        p = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path)], env=env,
                             stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline().strip() == "ready"
            time.sleep(0.05 + 0.2 * rng.random())
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
            p.stdout.close()
        with np.load(path) as f:                      # a whole, readable file every time
            assert f["dense/kernel"].shape == (1024, 1024), attempt
            assert f["dense/bias"].shape == (1024,)


def saved_arrays(m, tmp_path):
    path = tmp_path / "w.npz"
    m.save_weights(path)
    with np.load(path) as f:
        return path, {k: f[k] for k in f.files}


@pytest.mark.parametrize("bad", ["text", "complex", "int", "shape"])
def test_load_weights_is_all_or_nothing(bad, tmp_path):
    nn.set_seed(0)
    m = cnn()
    m.build((1, 8, 8))
    path, arrays = saved_arrays(m, tmp_path)
    nn.set_seed(1)
    other = cnn()
    other.build((1, 8, 8))
    new = {k: np.asarray(v) for k, v in zip(arrays, other.get_weights())}
    last = list(new)[-1]                              # dense/bias, after every other array
    a = new[last]
    new[last] = {"text": np.full(a.shape, "x"), "complex": a.astype(np.complex64),
                 "int": a.astype(np.int32), "shape": a[:-1]}[bad]
    np.savez(path, **new)
    before = weights(m)
    with pytest.raises((ValueError, TypeError)) as err:
        m.load_weights(path)
    assert same(before, weights(m))                   # not one array replaced
    assert "dense/bias" in str(err.value)             # the message names the bad array


def test_load_weights_never_unpickles(tmp_path):
    m = nn.Sequential([nn.Dense(2, input_shape=(3,))])
    path = tmp_path / "w.npz"
    obj = np.empty(2, dtype=object)
    obj[:] = [1, 2]
    np.savez(path, **{"dense/kernel": np.zeros((3, 2), np.float32), "dense/bias": obj})
    with pytest.raises(ValueError, match="w.npz"):
        m.load_weights(path)
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        m.load_weights(tmp_path / "bad.npz")


def test_checkpoint_overwrites_atomically(tmp_path, monkeypatch):
    """ModelCheckpoint goes through save_weights: a failing save keeps the last checkpoint."""
    x, y = data(16)
    m = cnn()
    m.compile("sgd", "sparse_categorical_crossentropy")
    path = tmp_path / "best.npz"
    m.fit(x, y, epochs=1, verbose=0, callbacks=[nn.ModelCheckpoint(str(path))])
    before = path.read_bytes()
    monkeypatch.setattr(np, "savez", lambda f, **a: (f.write(b"x"), 1 / 0))
    with pytest.raises(ZeroDivisionError):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[nn.ModelCheckpoint(str(path))])
    assert path.read_bytes() == before
