"""convforge.viz.grad_cam / show_grad_cam / resize_bilinear and `convforge viz`.

Grad-CAM maps are checked against PyTorch autograd on the same small CNNs (weights copied), at
plain layers and at the intermediates a Model fuses (BatchNormalization + ReLU, a max pool
taking over a ReLU's backward); on a planted-feature task (a tiny net trained to find a bright
square beside a bright distractor bar: the heatmap peaks on the square); and for leaving the
model's training state alone (weights, moving statistics, .grad, later training steps)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import convforge
from convforge import cli, nn, optim, viz

from conftest import REPO

pytestmark = pytest.mark.usefixtures("nn_backend")  # conftest: cpu, else reference
RNG_SEED = 11


def is_png(path) -> bool:
    return Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- small models

def _cnn(head: str, dtype: str) -> nn.Sequential:
    """Conv-ReLU, max pool, conv-ReLU, then a GAP / Flatten head; 'bn_softmax' has a
    Conv -> BatchNormalization -> ReLU -> MaxPool block (both fusions) and ends in Softmax."""
    if head == "bn_softmax":
        layers = [nn.Conv2D(4, 3, padding="same", input_shape=(2, 12, 12)),
                  nn.BatchNormalization(), nn.ReLU(), nn.MaxPooling2D(2),
                  nn.Conv2D(6, 3, activation="relu"), nn.Flatten(), nn.Dense(5), nn.Softmax()]
    else:
        layers = [nn.Conv2D(4, 3, activation="relu", input_shape=(2, 12, 12)),
                  nn.MaxPooling2D(2), nn.Conv2D(6, 3, padding="same", activation="relu")]
        layers += ([nn.GlobalAveragePooling2D(), nn.Dense(5)] if head == "gap" else
                   [nn.Flatten(), nn.Dense(8, activation="relu"), nn.Dense(5)])
    model = nn.Sequential(layers, dtype=dtype)
    rng = np.random.default_rng(3)
    for la in model.layers:   # non-trivial moving statistics and affine parameters
        if isinstance(la, nn.BatchNormalization):
            c = la.gamma.shape[0]
            la.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c),
                            rng.normal(0, 0.3, c), rng.uniform(0.5, 2.0, c)])
    return model


def torch_grad_cam(model, x, layer: str, class_index=None) -> np.ndarray:
    """Grad-CAM of the same network in float64 PyTorch, gradients by autograd."""
    import torch
    import torch.nn.functional as tf

    def t(a):
        return torch.tensor(np.asarray(a, dtype=np.float64))

    h, feat, logits = t(x).requires_grad_(), None, None
    for la in model.layers:
        if isinstance(la, nn.Conv2D):
            pad = la.kernel_size[0] // 2 if la.padding == "same" else 0
            h = tf.conv2d(h, t(la.kernel.data), t(la.bias.data), padding=pad)
            h = torch.relu(h) if la.activation == "relu" else h
        elif isinstance(la, nn.BatchNormalization):
            gamma, beta, mean, var = (t(w) for w in la.get_weights())
            h = tf.batch_norm(h, mean, var, gamma, beta, training=False, eps=la.epsilon)
        elif isinstance(la, nn.MaxPooling2D):
            h = tf.max_pool2d(h, la.pool_size)
        elif isinstance(la, nn.Activation) and la.activation == "softmax":
            logits, h = h, torch.softmax(h, dim=1)
        elif isinstance(la, nn.Activation):
            h = torch.relu(h)
        elif isinstance(la, nn.GlobalAveragePooling2D):
            h = h.mean(dim=(2, 3))
        elif isinstance(la, nn.Flatten):
            h = h.reshape(len(h), -1)
        elif isinstance(la, nn.Dense):
            h = h @ t(la.kernel.data) + t(la.bias.data)   # kernel (in, units) = Linear.weight.T
            h = torch.relu(h) if la.activation == "relu" else h
        else:
            raise AssertionError(f"no torch twin for {la}")
        if la.name == layer:
            h.retain_grad()
            feat = h
    score = h if logits is None else logits
    idx = score.argmax(dim=1) if class_index is None else torch.as_tensor(class_index)
    score.gather(1, idx.reshape(-1, 1)).sum().backward()
    weights = feat.grad.mean(dim=(2, 3))                                   # (N, K)
    cam = torch.relu((weights[:, :, None, None] * feat).sum(dim=1))        # (N, h, w)
    up = tf.interpolate(cam[:, None], size=tuple(x.shape[2:]), mode="bilinear",
                        align_corners=False)[:, 0]
    peak = up.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, up / peak, torch.zeros_like(up)).detach().numpy()


def _assert_maps(got, want, tol):
    err = np.abs(got.astype(np.float64) - want)
    worst = np.unravel_index(err.argmax(), err.shape)
    assert err.max() <= tol, f"worst |diff| {err.max():.3g} at {worst}: {got[worst]} vs " \
                             f"{want[worst]}"


CASES = [("gap", "conv2d"), ("gap", "max_pooling2d"), ("gap", "conv2d_1"),
         ("flatten", "conv2d"), ("flatten", "conv2d_1"),
         ("bn_softmax", "batch_normalization"), ("bn_softmax", "relu"),
         ("bn_softmax", "max_pooling2d"), ("bn_softmax", "conv2d_1")]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("head, layer", CASES)
def test_matches_pytorch_autograd(head, layer, dtype, rng):
    pytest.importorskip("torch")
    model = _cnn(head, dtype)
    if head == "bn_softmax":   # the model fuses these pairs; grad_cam must see through them
        assert model._fused and model._pool_relu
    x = rng.standard_normal((4, 2, 12, 12))
    tol = 1e-5 if dtype == "float32" else 1e-6   # maps come back float32
    got = viz.grad_cam(model, x, layer)
    assert got.shape == (4, 12, 12) and got.dtype == np.float32
    _assert_maps(got, torch_grad_cam(model, x, layer), tol)
    classes = [0, 4, 2, 2]
    _assert_maps(viz.grad_cam(model, x, layer, classes),
                 torch_grad_cam(model, x, layer, classes), tol)


def test_resize_bilinear_matches_torch(rng):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as tf

    for (h, w), size in [((5, 5), (12, 12)), ((3, 7), (10, 4)), ((8, 8), (3, 5)),
                         ((1, 1), (4, 4)), ((6, 6), (6, 6))]:
        a = rng.standard_normal((2, 3, h, w))
        want = tf.interpolate(torch.tensor(a), size=size, mode="bilinear",
                              align_corners=False).numpy()
        got = viz.resize_bilinear(a, size)
        assert got.shape == (2, 3) + size
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="size"):
        viz.resize_bilinear(np.zeros((3, 3)), (0, 4))
    with pytest.raises(ValueError, match="h, w"):
        viz.resize_bilinear(np.zeros(3), (2, 2))


# --------------------------------------------------------------------------- planted feature

def _planted(rng, n, square):
    """Noise in [0, 0.5] with a bright 1x8 bar in every image (the distractor) and, where
    `square`, a bright 4x4 square beside it (not touching it). -> x (N, 1, 16, 16), top-left
    corners (N, 2) of the squares."""
    x = rng.uniform(0.0, 0.5, size=(n, 1, 16, 16))
    corner = np.zeros((n, 2), np.int64)
    for i in range(n):
        while True:
            r, c = rng.integers(0, 13, 2)
            br, bc = rng.integers(0, 16), rng.integers(0, 9)
            apart = not (r - 1 <= br <= r + 4 and bc - 1 <= c + 3 and c - 1 <= bc + 7)
            if apart or not square[i]:
                break
        x[i, 0, br, bc:bc + 8] = 1.0
        if square[i]:
            x[i, 0, r:r + 4, c:c + 4] = 1.0
            corner[i] = r, c
    return x.astype(np.float32), corner


def _peak_on_square(model, x, corner) -> np.ndarray:
    heat = viz.grad_cam(model, x, "conv2d_1", class_index=1)
    peaks = np.array([np.unravel_index(m.argmax(), m.shape) for m in heat])
    return np.all((peaks >= corner - 1) & (peaks <= corner + 4), axis=1)   # on it or next to it


def test_planted_square_is_where_the_heatmap_peaks(rng):
    model = nn.Sequential([
        nn.Conv2D(4, 3, padding="same", activation="relu", input_shape=(1, 16, 16)),
        nn.Conv2D(8, 3, padding="same", activation="relu"),
        nn.GlobalAveragePooling2D(), nn.Dense(2)])
    x_test, corner = _planted(np.random.default_rng(1), 32, np.ones(32, bool))
    untrained = _peak_on_square(model, x_test, corner).mean()
    model.compile(optim.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    for _ in range(300):
        y = rng.integers(0, 2, 32)
        x, _ = _planted(rng, 32, y == 1)
        model.train_on_batch(x, y)
    assert (model.predict(x_test).argmax(axis=1) == 1).mean() >= 0.9
    hits = _peak_on_square(model, x_test, corner).mean()
    assert hits >= 0.9, f"peak on the square in {hits:.0%} of the images (untrained " \
                        f"{untrained:.0%})"


# --------------------------------------------------------------------------- training state

def _vgg_like():
    return nn.Sequential([
        nn.Conv2D(4, 3, padding="same", use_bias=False, input_shape=(3, 8, 8)),
        nn.BatchNormalization(momentum=0.5), nn.ReLU(), nn.MaxPooling2D(2), nn.Dropout(0.3),
        nn.Conv2D(6, 3, padding="same", activation="relu"),
        nn.Flatten(), nn.Dense(8, activation="relu"), nn.Dropout(0.3), nn.Dense(3)])


def test_training_state_is_left_alone(rng):
    x = rng.uniform(0, 1, (6, 3, 8, 8))
    y = rng.integers(0, 3, 6)
    models = []
    for _ in range(2):   # twins: same seeds, same steps; only one runs grad_cam in between
        convforge.set_seed(5)
        m = _vgg_like()
        m.compile(optim.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
        m.train_on_batch(x, y)
        models.append(m)
    model, twin = models
    weights = model.get_weights()                      # moving statistics included
    grads = [(p, p.grad, p.grad.copy()) for p in model.trainable_params]
    fused = (dict(model._fused), dict(model._pool_relu))
    before = model.predict(x)

    for layer in ("batch_normalization", "relu", "conv2d_1"):
        viz.grad_cam(model, x, layer)
    for a, b in zip(model.get_weights(), weights):
        assert np.array_equal(a, b)
    for p, g, values in grads:   # the same arrays, the same values
        assert p.grad is g and np.array_equal(g, values), p.name
    assert (dict(model._fused), dict(model._pool_relu)) == fused
    assert np.array_equal(model.predict(x), before)

    model.train_on_batch(x, y)   # later training steps as if grad_cam never ran
    twin.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        assert np.array_equal(a, b)


def test_fresh_model_gradients_stay_unset(rng):
    model = _cnn("gap", "float32")
    viz.grad_cam(model, rng.standard_normal((2, 2, 12, 12)), "conv2d_1")
    assert all(p.grad is None for p in model.params)


# --------------------------------------------------------------------------- shapes, errors

def test_shapes_range_and_class_choice(rng):
    model = _cnn("gap", "float32")
    x = rng.standard_normal((3, 2, 12, 12)).astype(np.float32)
    heat = viz.grad_cam(model, x, 2)                      # index = "conv2d_1"
    assert np.array_equal(heat, viz.grad_cam(model, x, "conv2d_1"))
    assert heat.shape == (3, 12, 12) and heat.min() >= 0 and np.allclose(heat.max((1, 2)), 1)
    one = viz.grad_cam(model, x[1], "conv2d_1")           # one image -> (H, W)
    assert one.shape == (12, 12)
    np.testing.assert_allclose(one, heat[1], atol=1e-6)
    top = model.predict(x).argmax(axis=1)                 # None: each sample's top class
    np.testing.assert_allclose(viz.grad_cam(model, x, "conv2d_1", top), heat, atol=1e-6)
    per = viz.grad_cam(model, x, "conv2d_1", np.array([4, 0, 1]))
    for i, k in enumerate([4, 0, 1]):
        np.testing.assert_allclose(per[i], viz.grad_cam(model, x[i], "conv2d_1", k), atol=1e-6)
    assert viz.grad_cam(model, x[:0], "conv2d_1").shape == (0, 12, 12)


def test_all_zero_map_stays_zero(rng):
    model = _cnn("gap", "float32")
    dense = model.get_layer("dense")
    kernel, bias = dense.get_weights()
    dense.set_weights([-np.abs(kernel), bias])   # every channel lowers every score
    heat = viz.grad_cam(model, rng.standard_normal((2, 2, 12, 12)), "conv2d_1")
    assert np.isfinite(heat).all() and not heat.any()


def test_errors(rng):
    model = _cnn("gap", "float32")
    x = rng.standard_normal((2, 2, 12, 12))
    with pytest.raises(ValueError, match=r"'conv9' not found; layers are \['conv2d', "):
        viz.grad_cam(model, x, "conv9")
    with pytest.raises(ValueError, match="out of range"):
        viz.grad_cam(model, x, 7)
    with pytest.raises(ValueError, match="class_index 5 is out of range .* 5 classes"):
        viz.grad_cam(model, x, "conv2d", 5)
    with pytest.raises(ValueError, match="class_index -1 is out of range"):
        viz.grad_cam(model, x, "conv2d", [0, -1])
    with pytest.raises(ValueError, match="one per sample"):
        viz.grad_cam(model, x, "conv2d", [0, 1, 2])
    with pytest.raises(ValueError, match="one per sample"):
        viz.grad_cam(model, x, "conv2d", 1.5)
    with pytest.raises(ValueError, match="feature map"):
        viz.grad_cam(model, x, "dense")
    with pytest.raises(ValueError, match="feature map"):
        viz.grad_cam(model, x, "global_average_pooling2d")
    with pytest.raises(ValueError, match=r"\(C, H, W\) or a batch"):
        viz.grad_cam(model, x[0, 0], "conv2d")
    with pytest.raises(ValueError, match="expects input batches"):
        viz.grad_cam(model, x[:, :1], "conv2d")
    with pytest.raises(TypeError, match="Model or Sequential"):
        viz.grad_cam(object(), x, "conv2d")
    conv_out = nn.Sequential([nn.Conv2D(2, 3, input_shape=(1, 6, 6))])
    with pytest.raises(ValueError, match=r"class scores \(N, classes\)"):
        viz.grad_cam(conv_out, np.zeros((1, 1, 6, 6)), 0)


def test_show_grad_cam_writes_png(tmp_path, rng):
    pytest.importorskip("matplotlib")
    heat = rng.uniform(0, 1, (10, 12))
    grey = rng.integers(0, 256, (1, 10, 12), dtype=np.uint8)
    colour = rng.uniform(0, 1, (3, 10, 12))
    assert is_png(viz.show_grad_cam(grey, heat, tmp_path / "g.png"))
    p = viz.show_grad_cam(colour, heat, tmp_path / "sub" / "c.png", alpha=1.0, title="t")
    assert p == tmp_path / "sub" / "c.png" and is_png(p)
    assert is_png(viz.show_grad_cam(grey[0].astype(float), heat, tmp_path / "h.png", 0))
    with pytest.raises(ValueError, match=r"\(H, W\) = \(10, 12\)"):
        viz.show_grad_cam(grey, heat.T, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="alpha"):
        viz.show_grad_cam(grey, heat, tmp_path / "bad.png", alpha=1.5)
    with pytest.raises(ValueError, match="NaN"):
        viz.show_grad_cam(grey, np.full((10, 12), np.nan), tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        viz.show_grad_cam(np.zeros((2, 10, 12)), heat, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


# --------------------------------------------------------------------------- convforge viz

def _mnist_root():
    env = os.environ.get("CONVFORGE_DATA")
    roots = ([Path(p).resolve() for p in env.split(os.pathsep) if p] if env
             else [REPO.parent / "shared" / "data"])
    return next((r for r in roots if (r / "mnist").is_dir()), None)


_MNIST = _mnist_root()   # read before isolated_data hides $CONVFORGE_DATA


@pytest.fixture
def trained_lenet5(tmp_path, monkeypatch, isolated_data, capsys):
    if _MNIST is None:
        pytest.skip("MNIST not found ($CONVFORGE_DATA or ../shared/data)")
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("CONVFORGE_DATA", str(_MNIST))
    run = tmp_path / "run"
    rc = cli.main(["train", "lenet5", "--limit", "64", "--epochs", "1", "--val-split", "0",
                   "--test-limit", "16", "--out", str(run), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    return run


def test_cli_writes_filters_activations_gradcam(trained_lenet5, tmp_path, capsys):
    figs = tmp_path / "figs"
    rc = cli.main(["viz", "filters", "activations", "gradcam", "--weights",
                   str(trained_lenet5 / "weights.npz"), "--out", str(figs), "--index", "3"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    names = ["filters_conv2d.png", "activations_conv2d.png", "gradcam_conv2d_1.png"]
    assert out.split() == [str(figs / n) for n in names]
    assert all(is_png(figs / n) for n in names)

    # a PNG file (28x28: padded to 32 as in training), the model named, a chosen class/layer
    from PIL import Image

    from convforge.data import load_mnist

    (x, _), _ = load_mnist()
    Image.fromarray(x[0, 0]).save(tmp_path / "digit.png")
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "w.npz").write_bytes((trained_lenet5 / "weights.npz").read_bytes())
    args = ["viz", "gradcam", "--weights", str(alone / "w.npz"), "--image",
            str(tmp_path / "digit.png"), "--layer", "max_pooling2d", "--class-index", "3"]
    assert cli.main(args) == 2   # no metrics.json beside the weights: --model needed
    assert "give --model" in capsys.readouterr().err
    assert cli.main(args + ["--model", "lenet5"]) == 0
    assert capsys.readouterr().out.split() == [str(alone / "gradcam_max_pooling2d.png")]
    assert is_png(alone / "gradcam_max_pooling2d.png")


@pytest.mark.parametrize("extra, message", [
    (["--layer", "conv9"], "'conv9' not found; layers are ['rescaling', 'conv2d'"),
    (["--layer", "dense"], "feature map"),
    (["--class-index", "10"], "class_index 10 is out of range"),
    (["--index", "10000"], "--index must be in 0..9999"),
])
def test_cli_errors(trained_lenet5, extra, message, capsys):
    rc = cli.main(["viz", "gradcam", "--weights", str(trained_lenet5 / "weights.npz")] + extra)
    assert rc == 2
    assert message in capsys.readouterr().err


def test_cli_bad_weights(tmp_path, capsys):
    assert cli.main(["viz", "filters", "--weights", str(tmp_path / "none.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "w.npz"
    np.savez(bad, x=np.zeros(3))
    assert cli.main(["viz", "filters", "--weights", str(bad), "--model", "lenet5"]) == 1
    assert "does not fit lenet5 for mnist" in capsys.readouterr().err


def test_cli_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["viz", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--class-index" in text and "default 0.4" in text and "predicted class" in text
