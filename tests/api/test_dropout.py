"""F.dropout: the counter-based mask is the definition's (golden hashes computed here in plain
Python integers), bit-identical on every backend and both dtypes, independent of the thread
count; its own gradient; the keep rate; bad arguments. The Dropout layer on top of it."""

from __future__ import annotations

import numpy as np
import pytest

import convforge
from convforge import functional as F
from convforge import nn

from conftest import DTYPES, assert_same_bits, available_isas

RNG_SEED = 31


def _mix(x: int) -> int:
    m = 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & m
    x ^= x >> 15
    x = (x * 0x846CA68B) & m
    return x ^ (x >> 16)


def py_hash(seed: int, i: int) -> int:
    """The definition in csrc/include/convforge/elementwise.hpp, in Python integers."""
    m = 0xFFFFFFFF
    return _mix(_mix((i & m) ^ (seed & m)) ^ (seed >> 32) ^ (i >> 32))


def expected(x, rate, seed):
    thr = int(rate * 2**32)
    flat = x.reshape(-1)
    keep = np.array([py_hash(seed, i) >= thr for i in range(flat.size)])
    scale = x.dtype.type(1.0 / (1.0 - rate))
    return np.where(keep, flat * scale, x.dtype.type(0)).reshape(x.shape)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.9])
def test_mask_is_the_definition_on_every_backend(backend, rng, dtype, rate):
    x = rng.standard_normal((3, 5, 7, 2)).astype(dtype)
    for seed in (0, 12345, 2**64 - 1, 0x1234567890ABCDEF):
        assert_same_bits(backend("dropout", x, rate, seed), expected(x, rate, seed),
                         f"{backend.name} rate={rate} seed={seed}")


def test_reference_hash_matches_the_definition():
    from convforge.backends import _xp_dropout

    seed = 0xDEADBEEF12345678
    got = _xp_dropout.dropout_hash(np, seed, 1000)
    assert got.dtype == np.uint32
    assert got.tolist() == [py_hash(seed, i) for i in range(1000)]


def test_gradient_is_the_same_op_and_rate(any_backend, rng):
    x = rng.standard_normal((64, 100)).astype(np.float32)
    y = any_backend("dropout", x, 0.3, 99)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_array_equal(y[kept], (x * np.float32(1 / 0.7))[kept])
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = any_backend("dropout", dy, 0.3, 99)
    np.testing.assert_array_equal(dx != 0, kept)     # the same mask


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_large_arrays_thread_counts_and_isas(rng, restore_core, dtype):
    """Several blocks (the C++ kernel's tasks), with NaN, inf and -0.0 (dropped: +0)."""
    x = rng.standard_normal((4, 300, 301)).astype(dtype)
    x.reshape(-1)[::97] = np.nan
    x.reshape(-1)[5::89] = -np.inf
    x.reshape(-1)[7::83] = -0.0
    want = F.dropout(x, 0.5, 7, backend="reference")
    for threads in (1, 2, 3):
        convforge.set_num_threads(threads)
        if convforge.backends.unavailable_reason("numba") is None:
            assert_same_bits(F.dropout(x, 0.5, 7, backend="numba"), want, f"numba {threads}")
        if convforge.backends.unavailable_reason("cpu") is None:
            from convforge import _core

            for isa in available_isas(_core):
                _core.set_isa(isa)
                assert_same_bits(F.dropout(x, 0.5, 7, backend="cpu"), want, f"{isa} {threads}")


def test_non_contiguous_and_empty():
    x = np.arange(24, dtype=np.float64).reshape(4, 6)[:, ::2]
    assert_same_bits(F.dropout(x, 0.5, 3), expected(np.ascontiguousarray(x), 0.5, 3), "view")
    assert F.dropout(np.zeros((0, 3), np.float32), 0.5, 1).shape == (0, 3)


def test_bad_arguments():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        F.dropout(x, 1.0, 0)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        F.dropout(x, 0.5, -1)
    with pytest.raises(TypeError, match="seed must be an int"):
        F.dropout(x, 0.5, 1.5)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        F.dropout(x.astype(np.int32), 0.5, 0)
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        F.dropout([1.0], 0.5, 0)


def test_dropout_layer_uses_the_same_mask_in_backward(rng):
    layer = nn.Dropout(0.4, seed=5)
    x = rng.standard_normal((8, 10)).astype(np.float32)
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(dx != 0, y != 0)
    assert np.array_equal(layer.forward(x, training=False), x)
    y2 = nn.Dropout(0.4, seed=5).forward(x, training=True)
    np.testing.assert_array_equal(y, y2)             # same layer seed, same masks
