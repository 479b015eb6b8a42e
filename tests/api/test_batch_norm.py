"""Batch normalisation ops (convforge.functional.batch_norm_stats / batch_norm /
batch_norm_backward) on every backend under test and both dtypes against the float64 oracle on
a shape grid, with and without the fused ReLU, batch or moving statistics; float64 finite
differences; statistics of data far from zero; thread-count invariance; bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import convforge
from convforge import functional as F

from conftest import DTYPES, assert_close, assert_exact, available_isas, fd_grad, randn, ref

RNG_SEED = 20261207

SHAPES = [(2, 3, 5, 7), (1, 1, 1, 1), (5, 4, 1, 1), (3, 8, 9, 4), (4, 6), (1, 3), (2, 16, 33, 3)]


def problem(rng, shape, dtype, offset=0.0):
    c = shape[1]
    x = (randn(rng, shape) * 2 + offset).astype(dtype)
    return (x, randn(rng, (c,), dtype), randn(rng, (c,), dtype), randn(rng, shape, dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_against_reference(backend, rng, shape, dtype):
    x, gamma, beta, dy = problem(rng, shape, dtype)
    m = x.size // shape[1]   # values per channel
    mean, var = backend("batch_norm_stats", x)
    want_mean, want_var = ref("batch_norm_stats", x)
    assert mean.dtype == var.dtype == np.float64
    assert_close(mean, want_mean, np.float64, m, what="mean")
    assert_close(var, want_var, np.float64, m, what="var")
    for relu in (False, True):
        for g, b in ((gamma, beta), (None, None)):
            args = (x, want_mean, want_var, g, b, 1e-3, relu)
            y = backend("batch_norm", *args)
            assert_close(y, ref("batch_norm", *args), dtype, 4, what=f"y relu={relu}")
            for stats in (True, False):
                got = backend("batch_norm_backward", dy, *args, stats)
                want = ref("batch_norm_backward", dy, *args, stats)
                for name, a, r in zip(("dx", "dgamma", "dbeta"), got, want):
                    # dx sums m terms through the statistics; the parameter grads m terms
                    assert_close(a, r.astype(dtype), dtype, m,
                                 what=f"{name} relu={relu} stats={stats} gamma={g is not None}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_array_module_version_on_numpy(rng, dtype):
    """backends/_xp_norm.py (the cuda backend's batch norm, written for any array module) run on
    NumPy arrays against the oracle: its formulas are checked here without a GPU."""
    from convforge.backends import _xp_norm, reference

    x, gamma, beta, dy = problem(rng, (3, 5, 4, 6), dtype, offset=10.0)
    x3, dy3 = x.reshape(3, 5, 24), dy.reshape(3, 5, 24)
    mean, var = _xp_norm.batch_norm_stats(x3)
    want_mean, want_var = reference.batch_norm_stats(x3.astype(np.float64))
    assert_close(mean, want_mean, np.float64, 72, what="mean")
    assert_close(var, want_var, np.float64, 72, what="var")
    inv = 1 / np.sqrt(want_var + 1e-3)
    for relu in (False, True):
        args = (x3, want_mean, inv, gamma, beta, relu)
        f64 = (x3.astype(np.float64), want_mean, inv, gamma.astype(np.float64),
               beta.astype(np.float64), relu)
        assert_close(_xp_norm.batch_norm(*args), reference.batch_norm(*f64), dtype, 4, what="y")
        for stats in (True, False):
            got = _xp_norm.batch_norm_backward(dy3, *args, stats, True)
            want = reference.batch_norm_backward(dy3.astype(np.float64), *f64, stats, True)
            assert_close(got[0], want[0], dtype, 72, what=f"dx relu={relu} stats={stats}")
            for a, r in zip(got[1:], want[1:]):
                assert_close(a, r, np.float64, 72, what="dgamma / dbeta")


def test_zero_samples(backend):
    x = np.zeros((0, 3, 4, 4), np.float32)
    stats = (np.zeros(3), np.ones(3))
    y = backend("batch_norm", x, *stats)
    assert y.shape == x.shape
    dx, dg, db = backend("batch_norm_backward", x, x, *stats, batch_stats=False)
    assert dx.shape == x.shape and np.all(dg == 0) and np.all(db == 0)
    with pytest.raises(ValueError, match="no samples"):
        backend("batch_norm_stats", x)
    with pytest.raises(ValueError, match="batch_stats=True needs a batch"):
        backend("batch_norm_backward", x, x, *stats)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(2, 2, 3, 2), (5, 3)], ids=str)
def test_finite_differences(any_backend, rng, shape, relu):
    """f = <batch_norm(x, stats(x), gamma, beta), g>: d/dx through the batch statistics."""
    x, gamma, beta, g = problem(rng, shape, np.float64)
    if relu:   # keep the pre-activations away from the kink
        beta = beta + np.sign(beta) * 0.5

    def f():
        mean, var = any_backend("batch_norm_stats", x)
        return float((any_backend("batch_norm", x, mean, var, gamma, beta, 1e-3, relu) * g).sum())

    mean, var = any_backend("batch_norm_stats", x)
    dx, dgamma, dbeta = any_backend("batch_norm_backward", g, x, mean, var, gamma, beta, 1e-3,
                                    relu, True)
    for a, analytic in ((x, dx), (gamma, dgamma), (beta, dbeta)):
        np.testing.assert_allclose(analytic, fd_grad(f, a, 1e-6), rtol=1e-5, atol=1e-6)


def test_statistics_far_from_zero(backend, rng):
    """float32 data of mean 1e4 and std 1: the shifted sums keep the variance (a naive
    E[x^2] - E[x]^2 in float32 would lose it entirely)."""
    x = (rng.standard_normal((8, 4, 16, 16)) + 1e4).astype(np.float32)
    mean, var = backend("batch_norm_stats", x)
    want_var = x.astype(np.float64).var(axis=(0, 2, 3))
    np.testing.assert_allclose(var, want_var, rtol=1e-9)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-12)


def test_nan_and_relu_mask(backend):
    """A NaN input stays NaN through the ReLU (as torch's relu) and gets no gradient."""
    x = np.array([[1.0, np.nan], [-1.0, 2.0], [3.0, 0.5]], np.float32)
    stats = (np.zeros(2), np.ones(2))
    y = backend("batch_norm", x, *stats, eps=1e-12, relu=True)
    assert np.isnan(y[0, 1]) and y[1, 0] == 0
    dx, _, _ = backend("batch_norm_backward", np.ones_like(x), x, *stats, eps=1e-12, relu=True,
                       batch_stats=False)
    np.testing.assert_array_equal(dx, [[1, 0], [0, 1], [1, 1]])


@pytest.mark.parametrize("be", ["cpu", "numba"])
def test_thread_count_invariance(rng, restore_core, be):
    if convforge.backends.unavailable_reason(be):
        pytest.skip(f"backend {be} not available")
    # cpu: 4 blocks of 2 channels, so 1 thread runs the backward's two passes block by block and
    # 2 or 3 threads plane by plane: the same bits either way.
    x, gamma, beta, dy = problem(rng, (6, 8, 40, 40), np.float32, offset=3.0)
    results = []
    for n in (1, 2, 3):
        convforge.set_num_threads(n)
        mean, var = F.batch_norm_stats(x, backend=be)
        results.append((mean, var, F.batch_norm(x, mean, var, gamma, beta, relu=True, backend=be),
                        *F.batch_norm_backward(dy, x, mean, var, gamma, beta, relu=True,
                                               backend=be)))
    for res in results[1:]:
        for a, b in zip(res, results[0]):
            assert_exact(a, b, what=f"{be} thread count")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
def test_every_isa_gives_the_same_bits(rng, restore_core, dtype, relu):
    """The cpu backend's plane kernels (one copy per ISA, compiled without FMA contraction) give
    the baseline's bits on every ISA: planes with and without a tail after the 32 lanes, and (N, C)
    inputs too."""
    core = pytest.importorskip("convforge._core")
    for shape in ((5, 7, 13, 11), (3, 5, 8, 8), (2, 3, 40, 40), (9, 6)):
        x, gamma, beta, dy = problem(rng, shape, dtype, offset=3.0)
        results = {}
        for isa in available_isas(core):
            core.set_isa(isa)
            mean, var = F.batch_norm_stats(x, backend="cpu")
            results[isa] = (mean, var, F.batch_norm(x, mean, var, gamma, beta, relu=relu,
                                                    backend="cpu"),
                            *F.batch_norm_backward(dy, x, mean, var, gamma, beta, relu=relu,
                                                   backend="cpu"),
                            F.batch_norm_backward(dy, x, mean, var, gamma, beta, relu=relu,
                                                  batch_stats=False, backend="cpu")[0])
        for isa, res in results.items():
            for a, b in zip(res, results["baseline"]):
                assert_exact(a, b, what=f"batch norm {isa} vs baseline {shape}")


def test_bad_arguments():
    x = np.zeros((2, 3, 4, 4), np.float32)
    mean, var = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, C, H, W\) or \(N, C\)"):
        F.batch_norm(np.zeros((2, 3, 4), np.float32), mean, var)
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        F.batch_norm([1.0], mean, var)
    with pytest.raises(ValueError, match=r"mean must have shape \(3,\)"):
        F.batch_norm(x, np.zeros(4), var)
    with pytest.raises(ValueError, match="var must be >= 0"):
        F.batch_norm(x, mean, -var)
    with pytest.raises(ValueError, match="eps must be > 0"):
        F.batch_norm(x, mean, var, eps=0.0)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        F.batch_norm(x, mean, var, gamma=np.ones(2, np.float32))
    with pytest.raises(TypeError, match="gamma has dtype float64 but x has dtype float32"):
        F.batch_norm(x, mean, var, gamma=np.ones(3))
    with pytest.raises(ValueError, match=r"dy must have the shape of x \(2, 3, 4, 4\)"):
        F.batch_norm_backward(x[:1], x, mean, var)
    with pytest.raises(TypeError, match="dy has dtype float64 but x has dtype float32"):
        F.batch_norm_backward(x.astype(np.float64), x, mean, var)
