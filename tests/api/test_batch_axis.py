"""The batch axis: an empty batch (N = 0) gives correctly shaped empty results and zero
parameter gradients, and unbatched inputs ((C, H, W), PyTorch's convention) give exactly the
batched result without its batch axis, for every op on every backend under test."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import DTYPES, assert_exact, randint

X = (3, 7, 6)            # (C, H, W)
W = (4, 3, 3, 3)         # (K, C, KH, KW)
CONV = dict(stride=2, padding=1)
POOL = dict(kernel_size=3, stride=2, padding=1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_empty_batch(backend, dtype):
    x, w, b = np.zeros((0,) + X, dtype), np.ones(W, dtype), np.ones(4, dtype)
    y = backend("conv2d", x, w, b, **CONV)
    assert y.shape == (0, 4, 4, 3) and y.dtype == dtype
    dx, dw, db = backend("conv2d_backward", np.zeros((0, 4, 4, 3), dtype), x, w, **CONV)
    assert dx.shape == x.shape and dx.dtype == dtype
    assert_exact(dw, np.zeros(W, dtype), dtype, "dw")
    assert_exact(db, np.zeros(4, dtype), dtype, "db")
    assert backend("conv2d_backward", np.zeros((0, 4, 4, 3), dtype), x, w, bias=False,
                   **CONV)[2] is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_col2im_empty_batch(backend, dtype):
    cols = backend("im2col", np.zeros((0,) + X, dtype), 3, **CONV)
    assert cols.shape == (0, 27, 12) and cols.dtype == dtype
    x = backend("col2im", cols, (0,) + X, 3, **CONV)
    assert x.shape == (0,) + X and x.dtype == dtype


@pytest.mark.parametrize("mode", ["max", "min", "avg"])
def test_pool2d_empty_batch(backend, mode):
    x = np.zeros((0,) + X, np.float32)
    if mode == "avg":
        y = backend("avg_pool2d", x, **POOL)
    else:
        y, idx = backend(f"{mode}_pool2d", x, return_indices=True, **POOL)
        assert idx.shape == (0, 3, 4, 3) and idx.dtype == np.int64
    assert y.shape == (0, 3, 4, 3) and y.dtype == np.float32
    dx = backend(f"{mode}_pool2d_backward", np.zeros(y.shape, np.float32), x, **POOL)
    assert dx.shape == x.shape and dx.dtype == np.float32


def test_global_pool_empty_batch(backend):
    x = np.zeros((0,) + X, np.float64)
    y, idx = backend("global_max_pool2d", x, return_indices=True)
    assert y.shape == (0, 3) and idx.shape == (0, 3) and idx.dtype == np.int64
    assert backend("global_avg_pool2d", x).shape == (0, 3)
    for op in ("global_avg_pool2d_backward", "global_max_pool2d_backward"):
        assert backend(op, np.zeros((0, 3)), x).shape == x.shape


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_unbatched(backend, rng, dtype):
    x, w, b = randint(rng, X, dtype), randint(rng, W, dtype), randint(rng, (4,), dtype)
    y = backend("conv2d", x, w, b, **CONV)
    assert_exact(y, backend("conv2d", x[None], w, b, **CONV)[0], dtype, "y")
    dy = randint(rng, y.shape, dtype)
    got = backend("conv2d_backward", dy, x, w, **CONV)
    want = backend("conv2d_backward", dy[None], x[None], w, **CONV)
    assert_exact(got[0], want[0][0], dtype, "dx")
    assert_exact(got[1], want[1], dtype, "dw")
    assert_exact(got[2], want[2], dtype, "db")


def test_im2col_col2im_unbatched(backend, rng):
    x = randint(rng, X)
    cols = backend("im2col", x, 3, **CONV)
    assert_exact(cols, backend("im2col", x[None], 3, **CONV)[0], np.float64, "cols")
    assert_exact(backend("col2im", cols, X, 3, **CONV),
                 backend("col2im", cols[None], (1,) + X, 3, **CONV)[0], np.float64, "x")


@pytest.mark.parametrize("mode", ["max", "min", "avg"])
def test_pool2d_unbatched(backend, rng, mode):
    x = rng.permutation(int(np.prod(X))).reshape(X).astype(np.float32)
    if mode == "avg":
        y = backend("avg_pool2d", x, **POOL)
        assert_exact(y, backend("avg_pool2d", x[None], **POOL)[0], np.float32, "y")
        idx = None
    else:
        y, idx = backend(f"{mode}_pool2d", x, return_indices=True, **POOL)
        y1, idx1 = backend(f"{mode}_pool2d", x[None], return_indices=True, **POOL)
        assert_exact(y, y1[0], np.float32, "y")
        assert_exact(idx, idx1[0], np.int64, "indices")
    dy = randint(rng, y.shape, np.float32)
    extra = {} if idx is None else {"indices": idx}
    dx = backend(f"{mode}_pool2d_backward", dy, x, **POOL, **extra)
    extra1 = {} if idx is None else {"indices": idx[None]}
    assert_exact(dx, backend(f"{mode}_pool2d_backward", dy[None], x[None], **POOL, **extra1)[0],
                 np.float32, "dx")
    # the backward also takes the unbatched input's shape
    if mode == "avg":
        assert_exact(backend("avg_pool2d_backward", dy, X, **POOL), dx, np.float32, "dx(shape)")


def test_global_pool_unbatched(backend, rng):
    x = rng.permutation(int(np.prod(X))).reshape(X).astype(np.float64)
    y, idx = backend("global_max_pool2d", x, return_indices=True)
    assert y.shape == (3,) and idx.shape == (3,)
    assert_exact(y, x.reshape(3, -1).max(1), np.float64, "y")
    assert_exact(backend("global_avg_pool2d", x), backend("global_avg_pool2d", x[None])[0],
                 np.float64, "avg")
    dy = np.arange(1.0, 4.0)
    assert_exact(backend("global_max_pool2d_backward", dy, x),
                 backend("global_max_pool2d_backward", dy[None], x[None])[0], np.float64, "dx")
