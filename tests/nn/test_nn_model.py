"""convforge.nn models: whole-model gradient checks (Sequential and a residual Model), fit /
evaluate / predict behaviour, callbacks, freezing, train/inference modes, weight files.
Tiny shapes and random data only (no datasets)."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from convforge import losses, nn, optim

from conftest import assert_within

pytestmark = pytest.mark.usefixtures("nn_backend")  # conftest: cpu, else reference
RNG_SEED = 2024   # the seed of conftest's `rng` (and of nn.set_seed) in this module


def gradcheck_model(model, x, y, loss, rng, training=True, entries=12):
    """Backward of loss(y, model(x)) vs central differences, for the input and a sample of
    every trainable parameter."""
    def f():
        return float(loss(y, model.forward(x, training=training)))

    for p in model.params:
        p.grad = None
    out = model.forward(x, training=training)
    _, dout = loss.forward_backward(y, out)
    dx = model.backward(dout)
    targets = [("x", x, dx)] + [(f"{la.name}/{p.name}", p.data, None)
                                for la in model.layers for p in la.trainable_params]
    for name, arr, grad in targets:
        if grad is None:
            la_name, p_name = name.split("/")
            grad = model.get_layer(la_name)._params[p_name].grad
            assert grad is not None, f"no gradient for {name}"
        flat = arr.reshape(-1)
        idx = rng.choice(flat.size, min(entries, flat.size), replace=False)
        for i in idx:
            old = flat[i]
            flat[i] = old + 1e-6
            fp = f()
            flat[i] = old - 1e-6
            fm = f()
            flat[i] = old
            num = (fp - fm) / 2e-6
            got = grad.reshape(-1)[i]
            assert abs(got - num) <= 1e-7 + 1e-5 * abs(num), \
                f"{name}[{i}]: backward {got!r} vs finite difference {num!r}"


def small_cnn(dtype="float32", dropout=0.0):
    layers = [nn.Conv2D(4, 3, padding="same", activation="relu", input_shape=(2, 6, 6)),
              nn.BatchNormalization(),
              nn.MaxPooling2D(2),
              nn.Conv2D(5, 2, use_bias=False),
              nn.AveragePooling2D(2, padding="same"),
              nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Dense(3))
    return nn.Sequential(layers, dtype=dtype)


def residual_model(dtype="float64"):
    x = nn.Input((2, 6, 6), dtype=dtype)
    a = nn.Conv2D(4, 3, padding="same", activation="relu")(x)
    a = nn.BatchNormalization()(a)
    a = nn.Conv2D(4, 3, padding="same")(a)
    s = nn.Conv2D(4, 1, use_bias=False)(x)                    # 1x1 projection shortcut
    h = nn.ReLU()(nn.Add()([a, s]))
    b = nn.Conv2D(4, 3, padding="same", activation="tanh")(h)
    h = nn.Add()([b, h])                                       # identity shortcut
    h = nn.GlobalAveragePooling2D()(h)
    return nn.Model(x, nn.Dense(3)(h), name="resnet_tiny")


# --------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("training", [True, False])
def test_sequential_gradients(training, rng):
    model = small_cnn("float64")
    x = rng.standard_normal((4, 2, 6, 6))
    y = np.array([0, 2, 1, 2])
    gradcheck_model(model, x, y, losses.SparseCategoricalCrossentropy(), rng, training)


def test_residual_model_gradients(rng):
    model = residual_model()
    x = rng.standard_normal((3, 2, 6, 6))
    y = np.eye(3)[[2, 0, 1]]
    gradcheck_model(model, x, y, losses.CategoricalCrossentropy(), rng)


@pytest.mark.parametrize("loss", [losses.BinaryCrossentropy(), losses.MeanSquaredError()])
def test_model_gradients_other_losses(loss, rng):
    x_in = nn.Input((3, 4, 4), dtype="float64")
    h = nn.Flatten()(nn.MinPooling2D(2)(nn.Conv2D(2, 3, padding=1, activation="sigmoid")(x_in)))
    model = nn.Model(x_in, nn.Dense(2)(h))
    x = rng.standard_normal((3, 3, 4, 4))
    y = rng.integers(0, 2, (3, 2)).astype(np.float64)
    gradcheck_model(model, x, y, loss, rng)


def test_backward_wrt_inner_tensor_and_multi_output(rng):
    """What Grad-CAM needs: an inner activation as a second output and its gradient."""
    model = residual_model()
    conv = model.layers[2]
    both = nn.Model(model.input, [conv.output, model.output])
    x = rng.standard_normal((2, 2, 6, 6))
    act, logits = both(x)
    assert act.shape == (2, 4, 6, 6) and np.array_equal(logits, model(x))
    dlogits = np.zeros_like(logits)
    dlogits[:, 1] = 1
    (dact,) = both.backward([None, dlogits], wrt=[conv.output])

    def score():
        return float(both(x)[1][:, 1].sum())

    # perturbing the conv bias shifts the activation uniformly: d score / d b = sum(dact)
    b = conv.bias.data
    b[0] += 1e-6
    up = score()
    b[0] -= 2e-6
    down = score()
    b[0] += 1e-6
    assert abs((up - down) / 2e-6 - dact[:, 0].sum()) < 1e-6


# --------------------------------------------------------------------------- graph building

def test_model_structure_and_summary(rng):
    model = residual_model("float32")
    names = [la.name for la in model.layers]
    assert names[:3] == ["conv2d", "batch_normalization", "conv2d_1"] and "add_1" in names
    text = model.summary(print_fn=None)
    assert "Connected to" in text and "input (InputLayer)" in text
    assert "add (Add)" in text and "conv2d_1, conv2d_2" in text
    assert f"Total params: {model.count_params():,}" in text
    assert model.count_params() == sum(w.size for w in model.get_weights())
    with pytest.raises(ValueError, match="more than once"):
        d = nn.Dense(6)
        t = nn.Input((6,))
        nn.Model(t, d(d(t)))
    with pytest.raises(ValueError, match="not the model's input"):
        nn.Model(nn.Input((4,)), nn.Dense(2)(nn.Input((4,))))
    with pytest.raises(ValueError, match="declared with input_shape"):
        model(nn.Input((2, 5, 5)))   # a model is a layer of another only on its input shape


def test_sequential_building_paths(rng):
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    lazy = nn.Sequential([nn.Conv2D(2, 3), nn.Flatten()])
    assert not lazy.built
    with pytest.raises(ValueError, match="not built"):
        lazy.summary()
    assert lazy(x).shape == (2, 18) and lazy.input_shape == (3, 5, 5)
    lazy.add(nn.Dense(4))
    assert lazy(x).shape == (2, 4) and [la.name for la in lazy.layers] == \
        ["conv2d", "flatten", "dense"]
    first = nn.Sequential([nn.Input((3, 5, 5)), nn.Conv2D(2, 3)])
    assert first.built and first.count_params() == 56
    built = nn.Sequential([nn.Conv2D(2, 3), nn.Flatten()])
    built.build((None, 3, 5, 5))
    assert built.output.shape == (18,)
    with pytest.raises(ValueError, match=r"expects input batches of shape \(None, 3, 5, 5\)"):
        built(np.zeros((1, 3, 6, 6), np.float32))
    with pytest.raises(ValueError, match="several inputs"):
        nn.Sequential([nn.Add()])
    assert built.pop().name == "flatten" and len(built.layers) == 1
    unbuilt = nn.Sequential([nn.Flatten(), nn.Dense(2)])              # fit builds it
    unbuilt.compile("sgd", "mse")
    unbuilt.fit(x, np.zeros((2, 2)), verbose=0)
    assert unbuilt.input_shape == (3, 5, 5) and unbuilt.count_params() == 152


# --------------------------------------------------------------------------- training

def test_overfits_64_random_samples(rng):
    model = nn.Sequential([
        nn.Conv2D(8, 3, padding="same", activation="relu", input_shape=(1, 8, 8)),
        nn.MaxPooling2D(2),
        nn.Flatten(),
        nn.Dense(32, activation="relu"),
        nn.Dense(4),
    ])
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    model.compile(optim.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    hist = model.fit(x, y, batch_size=16, epochs=40, verbose=0, seed=0)
    assert hist.history["loss"][0] > 1.0
    assert hist.history["loss"][-1] < 0.05, hist.history["loss"][-5:]
    res = model.evaluate(x, y)
    assert res["accuracy"] == 1.0 and res["loss"] < 0.05


def test_fit_history_validation_and_reproducibility(rng):
    x = rng.integers(0, 256, (20, 2, 6, 6)).astype(np.uint8)    # uint8: cast, not rescaled
    y = rng.integers(0, 3, 20)
    runs = []
    for _ in range(2):
        nn.set_seed(5)
        model = small_cnn(dropout=0.3)
        model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
        runs.append(model.fit(x, y, batch_size=8, epochs=3, validation_split=0.25, verbose=0,
                              seed=11))
    h = runs[0]
    assert h.epoch == [0, 1, 2]
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert h.history["learning_rate"] == [0.01] * 3
    assert all(len(v) == 3 for v in h.history.values())
    assert h.history == runs[1].history
    # validation_split holds out the last samples: val metrics equal evaluate on them
    assert model.evaluate(x[15:], y[15:])["loss"] == pytest.approx(h.history["val_loss"][-1],
                                                                     rel=1e-6)


def test_fit_with_batch_source_and_augment(rng):
    x = rng.standard_normal((12, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 12)

    class Source:
        def __init__(self):
            self.epochs = 0

        def __len__(self):
            return 3

        def __iter__(self):
            self.epochs += 1
            for i in range(0, 12, 4):
                yield x[i:i + 4], y[i:i + 4]

    seen = []

    def augment(xb, gen):
        assert isinstance(gen, np.random.Generator) and xb.dtype == np.float32
        seen.append(xb.shape)
        return xb + 0.0

    model = small_cnn()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    src = Source()
    h = model.fit(src, epochs=2, validation_data=Source(), verbose=0, augment=augment)
    assert src.epochs == 2 and len(seen) == 6 and seen[0] == (4, 2, 6, 6)
    assert len(h.history["val_accuracy"]) == 2
    assert set(model.evaluate(Source())) == {"loss", "accuracy"}
    assert model.predict(Source()).shape == (12, 3)
    with pytest.raises(ValueError, match="y must be None"):
        model.fit(Source(), y, verbose=0)


def test_fit_progress_output(rng, capsys):
    x = rng.standard_normal((8, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    model = small_cnn()
    model.compile("rmsprop", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x, y, epochs=1, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/1: loss " in out and ", accuracy " in out
    model.fit(x, y, epochs=1, verbose=1, validation_data=(x, y))
    out, err = capsys.readouterr()
    assert "Epoch 1/1" in err and "loss=" in err           # the bar
    lines = out.splitlines()                                # and the summary, in 80 columns
    assert "val_loss" in out and "val_accuracy" in out and max(map(len, lines)) <= 80
    model.fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr() == ("", "")


def test_evaluate_predict_and_errors(rng):
    x = rng.standard_normal((10, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    model = small_cnn()
    with pytest.raises(ValueError, match="compiled"):
        model.evaluate(x, y)
    raw = model.predict(x, batch_size=3)             # uncompiled: the raw outputs (logits)
    assert raw.shape == (10, 3) and raw.dtype == np.float32
    assert np.array_equal(raw, model(x))
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    p = model.predict(x, batch_size=3)               # compiled from logits: probabilities
    assert p.shape == (10, 3) and p.dtype == np.float32
    assert_within(p.sum(axis=1), np.ones(10), 1e-6, 0, "probabilities")
    assert np.array_equal(model.predict(x, batch_size=3, raw=True), raw)
    res = model.evaluate(x, y, batch_size=4)
    assert set(res) == {"loss", "accuracy"}
    logits = model(x)
    assert res["loss"] == pytest.approx(float(losses.SparseCategoricalCrossentropy()(y, logits)),
                                        rel=1e-5)
    assert res["accuracy"] == pytest.approx(float((logits.argmax(1) == y).mean()))
    assert model.evaluate(x, y, return_dict=False) == pytest.approx([res["loss"],
                                                                    res["accuracy"]], rel=1e-5)
    assert np.array_equal(p, model.predict(x, batch_size=3))  # inference is deterministic
    # Another batch size may round differently (NumPy's BLAS picks kernels by matrix size).
    assert_within(model.predict(x), p, 1e-6, 1e-6, "predict, default batch size")
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(x, y[:5], verbose=0)
    with pytest.raises(ValueError, match="y is required"):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 3\)"):
        model.fit(x, y + 3, verbose=0)
    with pytest.raises(ValueError, match="loss"):
        model.compile("sgd", "hinge")
    with pytest.raises(ValueError, match="optimizer"):
        model.compile("lbfgs", "mse")
    bce = nn.Sequential([nn.Flatten(input_shape=(2, 6, 6)), nn.Dense(1)])
    bce.compile("sgd", "binary_crossentropy", ["accuracy"])
    pb = bce.predict(x)
    assert pb.shape == (10, 1) and np.all((pb > 0) & (pb < 1))
    assert set(bce.evaluate(x, (y > 0).astype(np.float32))) == {"loss", "accuracy"}


def test_trainable_false_freezes(rng):
    x = rng.standard_normal((16, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = small_cnn()
    frozen = model.layers[0]
    frozen.trainable = False
    before = model.get_weights()
    model.compile(optim.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    after = model.get_weights()
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert frozen.kernel.grad is None
    assert not np.array_equal(before[-2], after[-2])            # the Dense kernel trained
    text = model.summary(print_fn=None)
    n_frozen = frozen.count_params()
    bn = model.layers[1]
    assert f"Non-trainable params: {n_frozen + 8:,}" in text and bn.count_params() == 16


def test_dropout_and_batchnorm_modes_in_fit(rng):
    x = rng.standard_normal((16, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = small_cnn(dropout=0.5)
    model.compile(optim.SGD(0.0), "sparse_categorical_crossentropy")   # lr 0: weights fixed
    bn = model.layers[1]
    model.build((2, 6, 6))
    mm0 = bn.moving_mean.data.copy()
    model.evaluate(x, y)
    model.predict(x)
    assert np.array_equal(bn.moving_mean.data, mm0)             # inference: stats untouched
    h = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert not np.array_equal(bn.moving_mean.data, mm0)         # training: batch statistics
    # training loss (dropout, batch stats) differs from the inference loss at equal weights
    bn.moving_mean.data[...] = mm0
    assert h.history["loss"][0] != pytest.approx(model.evaluate(x, y)["loss"], rel=1e-3)
    p1, p2 = model(x, training=True), model(x, training=True)
    assert not np.array_equal(p1, p2)                           # dropout draws new masks
    assert np.array_equal(model(x), model(x))


# --------------------------------------------------------------------------- callbacks

class _Dummy:
    def __init__(self):
        self.weights = [np.zeros(1)]
        self.stop_training = False
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, w):
        self.weights = [a.copy() for a in w]

    def save_weights(self, path):
        self.saved.append(path)


def test_early_stopping_logic():
    m = _Dummy()
    es = nn.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    es.set_model(m)
    es.on_train_begin()
    for epoch, v in enumerate([1.0, 0.5, 0.6, 0.55, 0.4]):
        m.weights = [np.array([float(epoch)])]
        es.on_epoch_end(epoch, {"val_loss": v})
        if m.stop_training:
            break
    assert epoch == 3 and es.stopped_epoch == 3 and es.best == 0.5 and es.best_epoch == 1
    es.on_train_end()
    assert m.weights[0][0] == 1.0                               # weights of the best epoch
    acc = nn.EarlyStopping(monitor="val_accuracy", patience=0, min_delta=0.05)
    acc.set_model(_Dummy())
    acc.on_train_begin()
    acc.on_epoch_end(0, {"val_accuracy": 0.5})
    acc.on_epoch_end(1, {"val_accuracy": 0.52})                 # below min_delta: no progress
    assert acc.model.stop_training and acc.mode == "max"
    with pytest.warns(UserWarning, match="not in the logs"):
        acc.on_epoch_end(2, {"loss": 1.0})


def test_early_stopping_in_fit(rng):
    x = rng.standard_normal((8, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    model = small_cnn()
    model.compile(optim.SGD(0.0), "sparse_categorical_crossentropy")   # loss never improves
    h = model.fit(x, y, epochs=10, verbose=0, validation_data=(x, y),
                  callbacks=[nn.EarlyStopping(monitor="val_loss", patience=2)])
    assert h.epoch == [0, 1, 2]


def test_model_checkpoint(tmp_path):
    m = _Dummy()
    ck = nn.ModelCheckpoint(str(tmp_path / "w-{epoch:02d}-{val_loss:.2f}.npz"),
                            monitor="val_loss", save_best_only=True)
    ck.set_model(m)
    ck.on_train_begin()
    for epoch, v in enumerate([1.0, 1.2, 0.7, 0.7]):
        ck.on_epoch_end(epoch, {"val_loss": v, "loss": 0.0})
    assert [os.path.basename(p) for p in m.saved] == ["w-01-1.00.npz", "w-03-0.70.npz"]
    every = nn.ModelCheckpoint(str(tmp_path / "sub" / "last.npz"))
    every.set_model(m)
    for epoch in range(2):
        every.on_epoch_end(epoch, {})
    assert m.saved[-2:] == [str(tmp_path / "sub" / "last.npz")] * 2


def test_checkpoint_and_csv_logger_in_fit(rng, tmp_path):
    x = rng.standard_normal((8, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    model = small_cnn()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    path = tmp_path / "log.csv"
    ck = tmp_path / "best.npz"
    model.fit(x, y, epochs=3, verbose=0, validation_data=(x, y),
              callbacks=[nn.CSVLogger(str(path)),
                         nn.ModelCheckpoint(str(ck), monitor="val_accuracy",
                                            save_best_only=True)])
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "learning_rate", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    assert all(np.isfinite(float(v)) for r in rows[1:] for v in r)
    assert ck.exists()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[nn.CSVLogger(str(path), append=True)])
    with open(path) as f:
        rows = list(csv.reader(f))
    assert len(rows) == 5 and rows[-1][0] == "0" and len(rows[-1]) == 4


# --------------------------------------------------------------------------- weight files

@pytest.mark.parametrize("ext", [".npz", ".safetensors"])
def test_save_load_round_trip(ext, rng, tmp_path):
    x = rng.standard_normal((6, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    nn.set_seed(1)
    a = small_cnn()
    a.compile("adam", "sparse_categorical_crossentropy")
    a.fit(x, y, epochs=1, verbose=0)                 # moving statistics move away from 0/1
    path = tmp_path / f"w{ext}"
    a.save_weights(path)
    nn.set_seed(2)
    b = small_cnn()
    b.build((2, 6, 6))
    assert not np.array_equal(a.get_weights()[0], b.get_weights()[0])
    b.load_weights(str(path))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert wa.dtype == wb.dtype and np.array_equal(wa, wb)
    assert np.array_equal(a.predict(x, raw=True), b.predict(x))   # b: uncompiled, raw
    names = [f"{la.name}/{p.name}" for la in b.layers for p in la.params]
    assert "batch_normalization/moving_mean" in names
    other = nn.Sequential([nn.Dense(3, input_shape=(4,))])
    with pytest.raises(ValueError, match="missing"):
        other.load_weights(str(path))
    with pytest.raises(ValueError, match=".npz or .safetensors"):
        a.save_weights(tmp_path / "w.h5")


def test_float64_model_round_trip(rng, tmp_path):
    a = residual_model("float64")
    a.save_weights(tmp_path / "r.npz")
    b = residual_model("float64")
    b.load_weights(tmp_path / "r.npz")
    x = rng.standard_normal((2, 2, 6, 6))
    assert a(x).dtype == np.float64 and np.array_equal(a(x), b(x))


# --------------------------------------------------------------------------- losses

LOSS_CASES = [
    (losses.SparseCategoricalCrossentropy(), "sparse"),
    (losses.SparseCategoricalCrossentropy(from_logits=False), "sparse"),
    (losses.CategoricalCrossentropy(), "onehot"),
    (losses.CategoricalCrossentropy(from_logits=False), "onehot"),
    (losses.BinaryCrossentropy(), "binary"),
    (losses.BinaryCrossentropy(from_logits=False), "binary"),
    (losses.MeanSquaredError(), "binary"),
]


@pytest.mark.parametrize("loss,kind", LOSS_CASES, ids=[repr(c[0]) for c in LOSS_CASES])
def test_loss_values_and_gradients(loss, kind, rng):
    z = rng.standard_normal((5, 4))
    if not loss.from_logits and not isinstance(loss, losses.MeanSquaredError):
        z = np.exp(z) / np.exp(z).sum(1, keepdims=True) if kind != "binary" \
            else 1 / (1 + np.exp(-z))
    labels = rng.integers(0, 4, 5)
    y = {"sparse": labels, "onehot": np.eye(4)[labels],
         "binary": rng.integers(0, 2, (5, 4)).astype(np.float64)}[kind]
    value, grad = loss.forward_backward(y, z)
    # value against the textbook formula
    if isinstance(loss, losses.MeanSquaredError):
        want = ((z - y) ** 2).mean()
    else:
        p = z
        if loss.from_logits:
            p = np.exp(z) / np.exp(z).sum(1, keepdims=True) if kind != "binary" \
                else 1 / (1 + np.exp(-z))
        if kind == "sparse":
            want = -np.log(p[np.arange(5), labels]).mean()
        elif kind == "onehot":
            want = -(y * np.log(p)).sum(1).mean()
        else:
            want = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    assert float(value) == pytest.approx(want, rel=1e-12)
    # gradient against central differences
    num = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        old = z[i]
        z[i] = old + 1e-6
        fp = float(loss(y, z))
        z[i] = old - 1e-6
        fm = float(loss(y, z))
        z[i] = old
        num[i] = (fp - fm) / 2e-6
    assert_within(grad, num, 1e-5, 1e-8, f"{loss!r} gradient")


def test_losses_are_stable_for_huge_logits():
    z = np.array([[1000.0, -1000.0, 0.0], [-1e4, 1e4, 3.0]], np.float32)
    value, grad = losses.SparseCategoricalCrossentropy().forward_backward(np.array([1, 1]), z)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert float(value) == pytest.approx(1000.0, rel=1e-6)       # -log softmax = 2000 / 2
    value, grad = losses.CategoricalCrossentropy().forward_backward(np.eye(3)[[0, 1]], z)
    assert float(value) == pytest.approx(0.0, abs=1e-6) and np.all(np.isfinite(grad))
    value, grad = losses.BinaryCrossentropy().forward_backward(np.array([[0.0], [1.0]]),
                                                              np.array([[1e4], [-1e4]],
                                                                       np.float32))
    assert float(value) == pytest.approx(1e4) and np.all(np.isfinite(grad))
    assert value.dtype == np.float32 and grad.dtype == np.float32


def test_loss_argument_checks():
    sce = losses.SparseCategoricalCrossentropy()
    z = np.zeros((3, 2))
    assert float(sce(np.array([[0], [1], [1]]), z)) == pytest.approx(np.log(2))
    assert float(sce(np.array([0.0, 1.0, 1.0]), z)) == pytest.approx(np.log(2))
    with pytest.raises(TypeError, match="integer class ids"):
        sce(np.array([0.5, 1.0, 1.0]), z)
    with pytest.raises(ValueError, match=r"y_true must have shape \(3,\)"):
        sce(np.array([0, 1]), z)
    with pytest.raises(ValueError, match="y_true must have the shape of y_pred"):
        losses.MeanSquaredError()(np.zeros(4), z)
    with pytest.raises(TypeError, match="float array"):
        losses.BinaryCrossentropy()(np.zeros(3), np.zeros(3, np.int64))
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert losses.get("binary_crossentropy").from_logits
