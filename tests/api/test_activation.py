"""F.activation / F.activation_backward (linear, relu, sigmoid, tanh) on every backend under test,
float32 and float64, against the float64 oracle; extreme inputs (no overflow in sigmoid, NaN
through relu), thread-count invariance, bad arguments; the layers that use them."""

from __future__ import annotations

import numpy as np
import pytest

import convforge
from convforge import functional as F
from convforge import nn

from conftest import DTYPES, assert_close, assert_exact, ref

RNG_SEED = 4242
KINDS = ["linear", "relu", "sigmoid", "tanh"]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (7,), (2, 100001)], ids=str)
def test_against_reference(backend, rng, kind, dtype, shape):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    y = backend("activation", x, kind)
    assert_close(y, ref("activation", x, kind), dtype, 4, what=f"{kind} y")
    dy = rng.standard_normal(shape).astype(dtype)
    dx = backend("activation_backward", dy, y, kind)
    assert_close(dx, ref("activation_backward", dy, y, kind), dtype, 4, what=f"{kind} dx")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_core_kernels_directly(rng, dtype):
    """The compiled kernels for every kind, also tanh (the cpu backend takes NumPy's SIMD tanh
    for the forward: faster than the C library's scalar one)."""
    core = pytest.importorskip("convforge._core")
    x = (rng.standard_normal((5, 1001)) * 6).astype(dtype)
    for kind in KINDS:
        assert_close(core.activation(x, kind), ref("activation", x, kind), dtype, 4, what=kind)
    with pytest.raises(ValueError, match="activation must be"):
        core.activation(x, "softplus")


def test_extremes(backend):
    x = np.array([-1e30, -800.0, -80.0, 0.0, 80.0, 800.0, 1e30, np.nan], np.float32)
    with np.errstate(over="raise"):
        s = backend("activation", x, "sigmoid")
    np.testing.assert_allclose(s[:7], [0, 0, 1.8e-35, 0.5, 1, 1, 1], atol=1e-34)
    assert np.isnan(s[7])
    r = backend("activation", x, "relu")
    np.testing.assert_array_equal(r[:7], np.maximum(x[:7], 0))
    assert np.isnan(r[7])
    dx = backend("activation_backward", np.ones_like(x), r, "relu")
    np.testing.assert_array_equal(dx, [0, 0, 0, 0, 1, 1, 1, 0])   # no gradient through NaN
    t = backend("activation", x, "tanh")
    np.testing.assert_array_equal(t[[0, 1, 5, 6]], [-1, -1, 1, 1])


@pytest.mark.parametrize("be", ["cpu", "numba"])
def test_thread_count_invariance(rng, restore_core, be):
    if convforge.backends.unavailable_reason(be):
        pytest.skip(f"backend {be} not available")
    x = rng.standard_normal((8, 64, 33, 33)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        convforge.set_num_threads(n)
        results.append([F.activation_backward(dy, F.activation(x, k, backend=be), k, backend=be)
                        for k in KINDS])
    for res in results[1:]:
        for a, b in zip(res, results[0]):
            assert_exact(a, b, what=f"{be} thread count")


def test_bad_arguments():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="activation must be one of"):
        F.activation(x, "gelu")
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        F.activation(x.astype(np.int64))
    with pytest.raises(ValueError, match=r"y must have the shape of dy \(2, 3\)"):
        F.activation_backward(x, x[:1])
    with pytest.raises(TypeError, match="y has dtype float64 but dy has dtype float32"):
        F.activation_backward(x, x.astype(np.float64))
    assert F.activation(np.zeros((0, 3), np.float32)).shape == (0, 3)
    assert np.array_equal(F.activation(x, None), x)


@pytest.mark.parametrize("kind", ["relu", "sigmoid", "tanh"])
def test_dense_and_conv_layers_use_them(nn_backend, rng, kind):
    """A Dense / Conv2D with an activation: output and input gradient as the ops give them."""
    x = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    conv = nn.Conv2D(5, 3, activation=kind)
    y = conv.forward(x, True)
    z = F.conv2d(x, conv.kernel.data, conv.bias.data)
    np.testing.assert_array_equal(y, F.activation(z, kind))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dz = F.activation_backward(dy, y, kind)
    np.testing.assert_array_equal(conv.backward(dy),
                                  F.conv2d_backward(dz, x, conv.kernel.data)[0])
