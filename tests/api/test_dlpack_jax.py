"""DLPack at the functional boundary with JAX (issue #16 item 1): JAX arrays in, JAX arrays out,
the same bits as the NumPy call. Skips without jax (`pip install jax`: not in the test extra)."""

from __future__ import annotations

import numpy as np
import pytest

import convforge.functional as F

from conftest import assert_same_bits

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")


def test_ops_answer_in_jax_with_numpys_bits(rng):
    xn = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    wn = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    x, w = jnp.asarray(xn), jnp.asarray(wn)
    y = F.conv2d(x, w, padding=1, activation="relu")
    assert isinstance(y, jax.Array) and y.shape == (2, 4, 8, 8)
    assert_same_bits(np.asarray(y), F.conv2d(xn, wn, padding=1, activation="relu"), what="y")
    dx, dw, db = F.conv2d_backward(jnp.ones_like(y), x, w, padding=1)
    assert all(isinstance(g, jax.Array) for g in (dx, dw, db))
    dxn, dwn, _ = F.conv2d_backward(np.ones(y.shape, np.float32), xn, wn, padding=1)
    assert_same_bits(np.asarray(dx), dxn, what="dx")
    assert_same_bits(np.asarray(dw), dwn, what="dw")
    p = F.max_pool2d(y, 2)
    assert isinstance(p, jax.Array) and p.shape == (2, 4, 4, 4)
    assert_same_bits(np.asarray(p), F.max_pool2d(np.asarray(y), 2), what="pool")


def test_jax_view_is_copied_once(rng):
    xn = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    x = jnp.asarray(xn)[:, :, ::2, :]            # a strided slice (JAX materialises it)
    y = F.avg_pool2d(x, 2)
    assert isinstance(y, jax.Array)
    np.testing.assert_array_equal(np.asarray(y), F.avg_pool2d(xn[:, :, ::2, :], 2))
