"""nn.Normalization and nn.Rescaling (nn/preprocessing.py)."""

from __future__ import annotations

import numpy as np
import pytest

from convforge import nn

from conftest import assert_within


def test_normalization_per_channel_and_scalar(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    y = nn.Normalization((1.0, 2.0, 3.0), (0.5, 2.0, 4.0), dtype="float64")(x)
    want = (x - np.array([1.0, 2.0, 3.0])[:, None, None]) / np.array([0.5, 2.0, 4.0])[:, None,
                                                                                      None]
    assert_within(y, want, 1e-15, 0, "per-channel")
    y = nn.Normalization(2.0, 4.0, dtype="float64")(x)
    assert_within(y, (x - 2.0) / 4.0, 1e-15, 0, "scalar")
    flat = rng.standard_normal((3, 2))                       # (N, C) inputs too
    assert_within(nn.Normalization((1.0, -1.0), 2.0, dtype="float64")(flat),
                  (flat - [1.0, -1.0]) / 2.0, 1e-15, 0, "(N, C)")


def test_normalization_bgr_reverses_channels_first(rng):
    x = rng.standard_normal((2, 3, 2, 2))
    y = nn.Normalization((10.0, 20.0, 30.0), 1.0, bgr=True, dtype="float64")(x)
    assert np.array_equal(y[:, 0], x[:, 2] - 10.0)           # mean in B, G, R order
    assert np.array_equal(y[:, 2], x[:, 0] - 30.0)
    layer = nn.Normalization(0.0, (1.0, 2.0, 4.0), bgr=True, dtype="float64")
    layer.forward(x, training=True)
    dy = rng.standard_normal(x.shape)
    dx = layer.backward(dy)
    want = (dy / np.array([1.0, 2.0, 4.0])[:, None, None])[:, ::-1]
    assert_within(dx, want, 1e-15, 0, "bgr backward")
    assert dx.flags.c_contiguous


def test_normalization_float32_and_uint8_inputs():
    x = np.arange(2 * 3 * 2 * 2, dtype=np.uint8).reshape(2, 3, 2, 2)
    y = nn.Normalization((1.0, 2.0, 3.0), 2.0)(x)
    assert y.dtype == np.float32
    assert_within(y, (x.astype(np.float64) - [[[1.0]], [[2.0]], [[3.0]]]) / 2.0, 1e-6, 0,
                  "uint8 in")


@pytest.mark.parametrize("kwargs,shape,match", [
    (dict(mean=(1.0, 2.0)), (3, 4, 4), "mean has 2 values but the input has 3 channels"),
    (dict(std=(1.0, 2.0, 3.0, 4.0)), (3, 4, 4), "std has 4 values"),
    (dict(bgr=True), (1, 4, 4), "bgr=True needs 3 channels"),
])
def test_normalization_shape_errors(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        nn.Normalization(**kwargs)(np.zeros((1,) + shape, np.float32))


@pytest.mark.parametrize("kwargs,match", [
    (dict(std=0.0), "std must be non-zero"),
    (dict(std=(1.0, 0.0, 1.0)), "std must be non-zero"),
    (dict(mean=[[1.0]]), "mean must be"),
    (dict(mean=()), "mean must be"),
    (dict(std=float("nan")), "std must be"),
])
def test_normalization_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.Normalization(**kwargs)


def test_rescaling_still_importable_from_layers():
    from convforge.nn.layers import Rescaling

    assert Rescaling is nn.Rescaling
    assert nn.Rescaling(0.5, 1.0)(np.full((1, 2), 4.0, np.float32)).tolist() == [[3.0, 3.0]]


# --------------------------------------------------------------------------- vgg16 presets

def test_vgg16_torch_preprocessing_is_torchvisions_normalize(rng):
    """transforms.ToTensor() (x / 255) then transforms.Normalize(mean, std), in float64."""
    from convforge import models

    m = models.vgg16(input_shape=(3, 32, 32), preprocess="torch")
    assert [type(la).__name__ for la in m.layers[:3]] == ["Rescaling", "Normalization", "Conv2D"]
    raw = rng.integers(0, 256, (2, 3, 32, 32)).astype(np.uint8)
    got = m.layers[1](m.layers[0](raw))
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    assert got.dtype == np.float32
    assert_within(got, (raw / 255.0 - mean) / std, 1e-6, 1e-6, "torch preprocessing")


def test_vgg16_caffe_preprocessing_is_keras_preprocess_input(rng):
    """Keras' imagenet_utils.preprocess_input(mode="caffe") on channels-last images:
    x = x[..., ::-1]; x[..., 0] -= 103.939; x[..., 1] -= 116.779; x[..., 2] -= 123.68."""
    from convforge import models

    m = models.vgg16(input_shape=(3, 32, 32), preprocess="caffe")
    assert type(m.layers[0]).__name__ == "Normalization" and m.layers[0].bgr
    raw = rng.integers(0, 256, (2, 32, 32, 3)).astype(np.float64)          # NHWC
    want = raw[..., ::-1].copy()
    want[..., 0] -= 103.939
    want[..., 1] -= 116.779
    want[..., 2] -= 123.68
    got = m.layers[0](raw.transpose(0, 3, 1, 2).astype(np.float32))
    assert_within(got.transpose(0, 2, 3, 1), want, 1e-6, 1e-4, "caffe preprocessing")


def test_vgg16_without_preprocessing_starts_with_the_first_conv():
    from convforge import models

    m = models.vgg16(input_shape=(3, 32, 32), preprocess=None)
    assert m.layers[0].name == "block1_conv1" and m.input_shape == (3, 32, 32)
    with pytest.raises(ValueError, match="preprocess must be 'torch', 'caffe' or None"):
        models.vgg16(preprocess="tf")
