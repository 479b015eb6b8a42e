"""The golden examples of the lecture material: small conv and pooling cases whose exact results
are written out below, reproduced exactly on every backend under test, in float32 and float64.
(The LeNet-5 parameter count belongs to the nn suite.)"""

from __future__ import annotations

import numpy as np
import pytest

from convforge.functional import conv_output_size

from conftest import DTYPES, assert_exact

dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


def img(rows, dtype) -> np.ndarray:
    """A 2-D list -> (1, 1, H, W) array."""
    return np.array(rows, dtype)[None, None]


def conv(be, x, k, dtype, **kw) -> np.ndarray:
    """Single-channel cross-correlation of 2-D lists; returns the 2-D result."""
    return be("conv2d", img(x, dtype), img(k, dtype), **kw)[0, 0]


def check(actual, expected, dtype, what) -> None:
    assert_exact(actual, np.array(expected, dtype), dtype, what=what)


@dtypes
def test_vertical_edge(backend, dtype):
    x = [[10, 10, 10, 0, 0, 0]] * 6
    k = [[1, 0, -1]] * 3
    check(conv(backend, x, k, dtype), [[0, 30, 30, 0]] * 4, dtype, "vertical edge detector")


@dtypes
def test_sobel(backend, dtype):
    x = [[3, 2, 1], [1, 2, 3], [1, 1, 1]]
    k = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    check(conv(backend, x, k, dtype), [[2]], dtype, "Sobel")


@dtypes
def test_binary_image(backend, dtype):
    x = [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
    k = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    check(conv(backend, x, k, dtype), [[4, 3, 4], [2, 4, 3], [2, 3, 4]], dtype, "binary image")


X5 = [[1, 2, 0, 3, 1], [1, 0, 0, 2, 2], [2, 1, 2, 1, 1], [0, 0, 1, 0, 0], [1, 2, 1, 1, 1]]
K3 = [[-1, 1, 2], [1, 1, 0], [-1, -2, 0]]


@dtypes
def test_5x5_valid_stride_same(backend, dtype):
    check(conv(backend, X5, K3, dtype), [[-2, -1, 3], [2, 5, 8], [-2, 0, -1]], dtype,
          "valid, stride 1")
    check(conv(backend, X5, K3, dtype, stride=2), [[-2, 3], [-2, -1]], dtype, "stride 2")
    for padding in (1, "same"):
        y = conv(backend, X5, K3, dtype, padding=padding)
        assert y.shape == (5, 5)
        check(y[0], [-1, 2, 2, -1, -2], dtype, f"padding={padding!r}, first row")


def pools(be, x, dtype, k, stride=None):
    xa = img(x, dtype)
    return (be("max_pool2d", xa, k, stride)[0, 0], be("avg_pool2d", xa, k, stride)[0, 0])


@dtypes
def test_pool_4x4_signed(backend, dtype):
    x = [[2, 1, 0, -1], [-3, 8, 2, 5], [1, -1, 3, 4], [0, 1, 1, -2]]
    mx, avg = pools(backend, x, dtype, 2)
    check(mx, [[8, 5], [1, 4]], dtype, "max 2x2/2")
    check(avg, [[2, 1.5], [0.25, 1.5]], dtype, "avg 2x2/2")
    check(backend("global_avg_pool2d", img(x, dtype)), [[1.3125]], dtype, "global average")


@dtypes
def test_pool_4x4_max_and_avg_stride1(backend, dtype):
    x = [[1, 4, 2, 1], [5, 8, 3, 4], [7, 6, 4, 5], [1, 3, 1, 2]]
    mx, _ = pools(backend, x, dtype, 2)
    check(mx, [[8, 4], [7, 5]], dtype, "max 2x2/2")
    _, avg = pools(backend, x, dtype, 2, stride=1)
    check(avg, [[4.5, 4.25, 2.5], [6.5, 5.25, 4], [4.25, 3.5, 3]], dtype, "avg 2x2 stride 1")


@dtypes
def test_max_pool_3x3_stride1(backend, dtype):
    x = [[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]]
    mx, _ = pools(backend, x, dtype, 3, stride=1)
    check(mx, [[3, 3, 3], [3, 3, 3], [3, 2, 3]], dtype, "max 3x3 stride 1")


@dtypes
def test_pool_4x4_positive(backend, dtype):
    x = [[4, 3, 1, 5], [1, 3, 4, 8], [4, 5, 4, 3], [6, 5, 9, 4]]
    mx, avg = pools(backend, x, dtype, 2)
    check(mx, [[4, 8], [6, 9]], dtype, "max 2x2/2")
    check(avg, [[2.75, 4.5], [5, 5]], dtype, "avg 2x2/2")


def test_output_size_formula():
    """floor((n + 2p - f)/s) + 1 for a 125x49 input, 5x5 filter, s=2.

    DESIGN.md quotes 62x24 for p=2, but its own formula gives (124//2 + 1, 48//2 + 1) = 63x25
    at p=2 (as PyTorch does); 62x24 is what it gives at p=1. Both readings are pinned here."""
    assert conv_output_size((125, 49), (5, 5), (2, 2), (2, 2, 2, 2), (1, 1)) == (63, 25)
    assert conv_output_size((125, 49), (5, 5), (2, 2), (1, 1, 1, 1), (1, 1)) == (62, 24)


@dtypes
def test_output_size_through_conv2d(backend, dtype):
    x = np.zeros((1, 1, 125, 49), dtype)
    w = np.zeros((1, 1, 5, 5), dtype)
    assert backend("conv2d", x, w, stride=2, padding=2).shape == (1, 1, 63, 25)
    assert backend("conv2d", x, w, stride=2, padding=1).shape == (1, 1, 62, 24)


def three_channel_example(dtype):
    """A 3-channel 3x3 input and kernel whose per-channel sums of products are 308, -498, 164
    (small integers, fixed seed; one entry per channel set to hit the target)."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 10, (1, 3, 3, 3)).astype(np.int64)
    w = rng.integers(-5, 6, (1, 3, 3, 3)).astype(np.int64)
    for c, target in enumerate((308, -498, 164)):
        x[0, c, 0, 0] = 1
        w[0, c, 0, 0] = 0
        w[0, c, 0, 0] = target - int((x[0, c] * w[0, c]).sum())
    return x.astype(dtype), w.astype(dtype), np.array([1], dtype)


@dtypes
def test_three_channels(backend, dtype):
    x, w, b = three_channel_example(dtype)
    per_channel = backend("conv2d", x, w.reshape(3, 1, 3, 3), groups=3)     # depthwise
    check(per_channel.reshape(3), [308, -498, 164], dtype, "per-channel sums")
    check(backend("conv2d", x, w, b).reshape(()), -25, dtype, "sum of channels + bias")
