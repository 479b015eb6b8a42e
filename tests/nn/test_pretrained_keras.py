"""convforge.io.load_keras_h5 and models.vgg16(weights="....h5").

Without Keras: files written here with h5py in each layout Keras uses (Keras 2 save_weights,
a full-model .h5, Keras 3 .weights.h5), checked against a channels-last forward pass written
out in NumPy (HWIO convolution, H, W, C flatten). With Keras 3 (torch backend): a real
keras.applications.VGG16(weights=None) at 64x64 (and, with CONVFORGE_RUN_SLOW=1, at 224x224)
saved both ways and compared logit for logit. Each part skips when h5py / keras / torch are
missing.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

from convforge import io, models, nn

from conftest import assert_within

h5py = pytest.importorskip("h5py")

EMPTY = np.array([], dtype=np.float64)   # what Keras writes for a layer without weights


def small_model(dtype="float64"):
    """conv 3x3 -> BN -> ReLU -> Flatten (4, 4, 3 map) -> Dropout -> Dense 5 ReLU -> Dense 3."""
    return nn.Sequential([
        nn.Conv2D(4, 3, input_shape=(3, 6, 5), name="conv"), nn.BatchNormalization(name="bn"),
        nn.ReLU(), nn.Flatten(), nn.Dropout(0.5), nn.Dense(5, activation="relu", name="dense"),
        nn.Dense(3, name="dense_1")], dtype=dtype)


def keras_weights(rng) -> dict:
    """Keras-layout weights of small_model: {layer: [(weight name, array)]}."""
    return {
        "conv": [("kernel", rng.standard_normal((3, 3, 3, 4))), ("bias", rng.standard_normal(4))],
        "bn": [("gamma", rng.uniform(0.5, 2, 4)), ("beta", rng.standard_normal(4)),
               ("moving_mean", rng.standard_normal(4)),
               ("moving_variance", rng.uniform(0.5, 2, 4))],
        "dense": [("kernel", rng.standard_normal((4 * 3 * 4, 5))),
                  ("bias", rng.standard_normal(5))],
        "dense_1": [("kernel", rng.standard_normal((5, 3))), ("bias", rng.standard_normal(3))],
    }


def keras_forward(w: dict, x_nhwc: np.ndarray) -> np.ndarray:
    """small_model in Keras' channels-last terms, in NumPy (float64)."""
    kernel, bias = (a for _, a in w["conv"])
    patches = np.lib.stride_tricks.sliding_window_view(x_nhwc, (3, 3), axis=(1, 2))
    y = np.einsum("nijcab,abck->nijk", patches, kernel) + bias             # (N, 4, 3, 4)
    gamma, beta, mm, mv = (a for _, a in w["bn"])
    y = np.maximum((y - mm) / np.sqrt(mv + 1e-3) * gamma + beta, 0)
    y = y.reshape(len(y), -1)                                               # H, W, C order
    k1, b1 = (a for _, a in w["dense"])
    k2, b2 = (a for _, a in w["dense_1"])
    return np.maximum(y @ k1 + b1, 0) @ k2 + b2


LAYER_NAMES = ["input_1", "conv", "bn", "re_lu", "flatten", "dropout", "dense", "dense_1"]
KERAS3_KEYS = {"conv": "conv2d", "bn": "batch_normalization", "dense": "dense",
               "dense_1": "dense_1"}


def write_keras(path, w: dict, layout: str, names=tuple(LAYER_NAMES)) -> str:
    with h5py.File(path, "w") as f:
        if layout == "keras3":                       # layers/<class name>/vars/<i>
            for lname, arrays in w.items():
                v = f.create_group(f"layers/{KERAS3_KEYS[lname]}/vars")
                v.attrs["name"] = lname
                for i, (_, a) in enumerate(arrays):
                    v.create_dataset(str(i), data=a)
            f.create_group("layers/flatten/vars")
            return str(path)
        root = f.create_group("model_weights") if layout == "model" else f
        root.attrs["layer_names"] = np.array([n.encode() for n in names])
        root.attrs["backend"], root.attrs["keras_version"] = b"tensorflow", b"2.15.0"
        for lname in names:
            g = root.create_group(lname)
            arrays = w.get(lname, [])
            g.attrs["weight_names"] = np.array([f"{lname}/{n}:0".encode() for n, _ in arrays]) \
                if arrays else EMPTY
            for n, a in arrays:
                g.create_dataset(f"{lname}/{n}:0", data=a)
    return str(path)


@pytest.mark.parametrize("layout", ["keras2", "model", "keras3"])
def test_keras_layouts_match_a_channels_last_forward(tmp_path, rng, layout):
    w = keras_weights(rng)
    path = write_keras(tmp_path / "w.h5", w, layout)
    m = small_model()
    io.load_keras_h5(m, path)
    x = rng.standard_normal((2, 6, 5, 3))
    assert_within(m(x.transpose(0, 3, 1, 2)), keras_forward(w, x), 1e-12, 1e-12, layout)
    # the conversions, written out: HWIO -> OIHW; the first Dense's rows from (h, w, c) to (c, h, w)
    assert np.array_equal(m.get_layer("conv").kernel.data, w["conv"][0][1].transpose(3, 2, 0, 1))
    dense = m.get_layer("dense").kernel.data
    for c, h, w_ in [(0, 0, 0), (3, 1, 2), (2, 3, 0)]:
        assert np.array_equal(dense[c * 12 + h * 3 + w_], w["dense"][0][1][h * 12 + w_ * 4 + c])
    assert np.array_equal(m.get_layer("dense_1").kernel.data, w["dense_1"][0][1])


def test_keras_by_name_and_channels_first(tmp_path, rng):
    w = keras_weights(rng)
    path = write_keras(tmp_path / "w.h5", w, "keras2")
    m = small_model()
    io.load_keras_h5(m, path, by_name=True)
    w2 = dict(w, dense_9=w["dense"])
    del w2["dense"]
    path2 = write_keras(tmp_path / "w2.h5", w2, "keras2",
                        [n if n != "dense" else "dense_9" for n in LAYER_NAMES])
    before = m.get_weights()
    with pytest.raises(ValueError, match=r"(?s)missing:\n    dense \(Dense\): kernel \(48, 5\), "
                                         r"bias \(5,\).*unexpected:\n    dense_9/dense_9/kernel"):
        io.load_keras_h5(m, path2, by_name=True)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    io.load_keras_h5(m, path2)                   # in order, names need not match
    m2 = small_model()
    io.load_keras_h5(m2, path, data_format="channels_first")       # rows kept as stored
    assert np.array_equal(m2.get_layer("dense").kernel.data, w["dense"][0][1])


def test_keras_mismatches_leave_the_model_unchanged(tmp_path, rng):
    w = keras_weights(rng)
    w["conv"][0] = ("kernel", rng.standard_normal((3, 3, 2, 4)))        # 2 input channels
    path = write_keras(tmp_path / "w.h5", w, "keras2")
    m = small_model()
    with pytest.raises(ValueError, match=r"conv/conv/kernel:0 has shape \(3, 3, 2, 4\); "
                                         r"conv/kernel \(4, 3, 3, 3\) needs \(3, 3, 3, 4\)"):
        io.load_keras_h5(m, path)
    assert all(p._data is None for p in m.params)
    path3 = write_keras(tmp_path / "w3.h5", keras_weights(rng), "keras3")
    short = nn.Sequential([nn.Conv2D(4, 3, input_shape=(3, 6, 5), use_bias=False)])
    with pytest.raises(ValueError, match=r"(?s)unexpected:\n    layers/conv2d/vars/1 \(4,\)"):
        io.load_keras_h5(short, path3, ignore=["bn", "dense", "dense_1"])


def test_keras_file_errors(tmp_path, monkeypatch):
    m = small_model()
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    with pytest.raises(ValueError, match="not a Keras weights file"):
        io.load_keras_h5(m, empty)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        io.load_keras_h5(m, junk)
    with pytest.raises(FileNotFoundError):
        io.load_keras_h5(m, tmp_path / "none.h5")
    with pytest.raises(ValueError, match="data_format"):
        io.load_keras_h5(m, empty, data_format="NHWC")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"convforge\[keras\]"):
        io.load_keras_h5(m, empty)


# --------------------------------------------------------------------------- real Keras

# Keras 3.15 on NumPy 2 warns about __array__(copy=...) on every weight it converts.
quiet_keras = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def keras_or_skip():
    # Keras 3 runs on torch here (optional: skip without it) unless KERAS_BACKEND names another
    # backend (its NumPy backend needs jax and scipy, so it is no torch-free fallback).
    if os.environ.setdefault("KERAS_BACKEND", "torch") == "torch" and \
            importlib.util.find_spec("torch") is None:
        pytest.skip("Keras uses its torch backend here and torch is not installed")
    try:
        import keras
    except Exception as e:                       # not installed, or no usable backend
        pytest.skip(f"keras unavailable: {e}")
    return keras


def keras_vgg16(keras, size, classes, rng):
    km = keras.applications.VGG16(weights=None, input_shape=(size, size, 3), classes=classes,
                                  classifier_activation=None)
    for layer in km.layers:                      # random biases (Keras starts them at 0)
        if layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.uniform(-0.1, 0.1, bias.shape).astype(np.float32)])
    return km


def compare_with_keras(keras, tmp_path, rng, size, classes):
    km = keras_vgg16(keras, size, classes, rng)
    x = rng.standard_normal((2, size, size, 3)).astype(np.float32)
    want = keras.ops.convert_to_numpy(km(x, training=False))
    km.save_weights(str(tmp_path / "k.weights.h5"))                # Keras 3 layout
    km.save(str(tmp_path / "k.h5"))                                # legacy full-model .h5
    del km
    for name, by_name in [("k.weights.h5", False), ("k.weights.h5", True), ("k.h5", False)]:
        m = models.vgg16(num_classes=classes, input_shape=(3, size, size), preprocess=None)
        io.load_keras_h5(m, tmp_path / name, by_name=by_name)
        got = m(x.transpose(0, 3, 1, 2))
        err, scale = np.abs(got - want).max(), np.abs(want).max()
        print(f"{name} by_name={by_name}: max error / max |logit| = {err / scale:.2e}")
        assert err <= 1e-4 * scale, (name, by_name, err, scale)


@quiet_keras
def test_real_keras_vgg16_at_64px(tmp_path, rng):
    compare_with_keras(keras_or_skip(), tmp_path, rng, 64, 10)


@quiet_keras
@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("CONVFORGE_RUN_SLOW"),
                    reason="full-size Keras VGG-16; set CONVFORGE_RUN_SLOW=1")
def test_real_keras_vgg16_full_size(tmp_path, rng):
    compare_with_keras(keras_or_skip(), tmp_path, rng, 224, 1000)


@quiet_keras
def test_vgg16_weights_from_h5_and_caffe_preprocessing(tmp_path, rng):
    """models.vgg16(weights="x.h5") goes through load_keras_h5 (the classifier skipped without
    the top), and preprocess="caffe" equals Keras' preprocess_input formula."""
    keras = keras_or_skip()
    km = keras_vgg16(keras, 32, 10, rng)
    km.save_weights(str(tmp_path / "k.weights.h5"))
    feats = keras.Model(km.input, km.get_layer("block5_pool").output)
    raw = rng.integers(0, 256, (2, 32, 32, 3)).astype(np.float32)
    bgr = raw[..., ::-1] - np.array([103.939, 116.779, 123.68])     # mode="caffe", written out
    pre = keras.applications.vgg16.preprocess_input(raw.copy())
    assert_within(np.asarray(pre), bgr, 1e-6, 1e-4, "keras preprocess_input")
    want = keras.ops.convert_to_numpy(feats(bgr.astype(np.float32), training=False))
    m = models.vgg16(input_shape=(3, 32, 32), include_top=False, preprocess="caffe",
                     weights=tmp_path / "k.weights.h5")
    got = m(raw.transpose(0, 3, 1, 2))
    assert np.abs(got - want.transpose(0, 3, 1, 2)).max() <= 1e-4 * np.abs(want).max()


@quiet_keras
def test_real_keras_transfer_model_with_a_nested_base(tmp_path, rng):
    """Keras' Sequential([VGG16 base, Flatten, Dense]) saved both ways loads into convforge's
    Sequential([vgg16 base, Flatten, Dense]): nested models' layers in their place, and the
    outer Dense's rows permuted (a 2x2 map at 64x64)."""
    keras = keras_or_skip()
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    km = keras.Sequential([keras.Input((64, 64, 3)), base, keras.layers.Flatten(),
                           keras.layers.Dense(5)])
    x = rng.standard_normal((2, 64, 64, 3)).astype(np.float32)
    want = keras.ops.convert_to_numpy(km(x, training=False))
    km.save_weights(str(tmp_path / "t.weights.h5"))
    km.save(str(tmp_path / "t.h5"))
    for name in ("t.weights.h5", "t.h5"):
        cf_base = models.vgg16(include_top=False, input_shape=(3, 64, 64), preprocess=None)
        m = nn.Sequential([cf_base, nn.Flatten(), nn.Dense(5)])
        io.load_keras_h5(m, tmp_path / name)
        got = m(x.transpose(0, 3, 1, 2))
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), name


def test_keras2_group_of_a_nested_model(tmp_path, rng):
    """A Keras 2 file stores a nested model as one group whose weight names carry each inner
    layer's name ("conv_a/kernel:0", "conv_b/kernel:0", ...)."""
    ka = rng.standard_normal((3, 3, 2, 4))
    kb = rng.standard_normal((3, 3, 4, 3))
    with h5py.File(tmp_path / "n.h5", "w") as f:
        f.attrs["layer_names"] = np.array([b"inner", b"flatten", b"dense"])
        g = f.create_group("inner")
        names = [b"conv_a/kernel:0", b"conv_a/bias:0", b"conv_b/kernel:0", b"conv_b/bias:0"]
        g.attrs["weight_names"] = np.array(names)
        for n, a in zip(names, [ka, np.ones(4), kb, np.zeros(3)]):
            g.create_dataset(n.decode(), data=a)
        f.create_group("flatten").attrs["weight_names"] = EMPTY
        d = f.create_group("dense")
        d.attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/bias:0"])
        d.create_dataset("dense/kernel:0", data=rng.standard_normal((2 * 2 * 3, 2)))
        d.create_dataset("dense/bias:0", data=np.zeros(2))
    inner = nn.Sequential([nn.Conv2D(4, 3, input_shape=(2, 6, 6), name="conv_a"),
                           nn.Conv2D(3, 3, name="conv_b")], dtype="float64")
    m = nn.Sequential([inner, nn.Flatten(), nn.Dense(2, name="dense")], dtype="float64")
    io.load_keras_h5(m, tmp_path / "n.h5", by_name=True)
    assert np.array_equal(inner.get_layer("conv_b").kernel.data, kb.transpose(3, 2, 0, 1))
    assert np.array_equal(inner.get_layer("conv_a").bias.data, np.ones(4))
