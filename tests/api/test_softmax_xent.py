"""F.softmax_cross_entropy on every backend (reference, cpu, numba, cuda where available), float32
and float64, against a float64 NumPy formula written here: hard and soft labels, label
smoothing (also against PyTorch), every reduction, extreme logits (+-1e4, -inf, NaN),
finite-difference gradients, thread-count invariance (bit-identical), empty batches, bad
arguments; the compiled binding directly; the losses that call it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import convforge
from convforge import functional as F
from convforge import losses

from conftest import DTYPES, assert_close, assert_same_bits, fd_grad

RNG_SEED = 1414
REDUCTIONS = ("mean", "sum", "none")


def formula(z, labels, ls=0.0, reduction="mean"):
    """(loss, dlogits) in float64 from the textbook definitions."""
    z = np.asarray(z, np.float64)
    n, k = z.shape
    t = np.eye(k)[labels] if labels.ndim == 1 else np.asarray(labels, np.float64)
    t = (1 - ls) * t + ls / k
    m = z.max(axis=1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    rows = -(t * logp).sum(axis=1)
    grad = np.exp(logp) * t.sum(axis=1, keepdims=True) - t
    if reduction == "none":
        return rows, grad
    if reduction == "sum":
        return np.asarray(rows.sum()), grad
    return np.asarray(rows.mean()), grad / n


def soft_labels(rng, n, k, dtype, normalised=True):
    p = rng.random((n, k)) + 0.01
    return (p / p.sum(axis=1, keepdims=True) if normalised else 2 * p).astype(dtype)


# --------------------------------------------------------------------------- against the formula

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("k", [1, 2, 10, 1000])
@pytest.mark.parametrize("n", [1, 3, 64, 257])
def test_against_formula(any_backend, rng, n, k, dtype):
    z = (rng.standard_normal((n, k)) * 3).astype(dtype)
    ids = rng.integers(0, k, n)
    for labels in (ids, soft_labels(rng, n, k, dtype)):
        for reduction in REDUCTIONS:
            what = f"{'hard' if labels.ndim == 1 else 'soft'} {reduction}"
            loss, dz = any_backend("softmax_cross_entropy", z, labels, reduction=reduction)
            want_loss, want_dz = formula(z, labels, 0.0, reduction)
            assert loss.shape == (() if reduction != "none" else (n,)), what
            assert_close(loss, want_loss, dtype, k, what=f"{what} loss")
            assert_close(dz, want_dz, dtype, k, what=f"{what} dlogits")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_label_smoothing_and_unnormalised_soft_labels(any_backend, rng, dtype):
    z = (rng.standard_normal((33, 12)) * 2).astype(dtype)
    ids = rng.integers(0, 12, 33)
    for ls in (0.1, 0.5, 0.9):
        for labels in (ids, soft_labels(rng, 33, 12, dtype, normalised=False)):
            for reduction in REDUCTIONS:
                loss, dz = any_backend("softmax_cross_entropy", z, labels, label_smoothing=ls,
                                       reduction=reduction)
                want_loss, want_dz = formula(z, labels, ls, reduction)
                assert_close(loss, want_loss, dtype, 12, what=f"ls {ls} {reduction} loss")
                assert_close(dz, want_dz, dtype, 12, what=f"ls {ls} {reduction} dlogits")


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int32, np.uint64])
def test_any_integer_dtype_of_labels(any_backend, rng, label_dtype):
    z = rng.standard_normal((9, 5)).astype(np.float32)
    ids = rng.integers(0, 5, 9)
    want = any_backend("softmax_cross_entropy", z, ids)
    got = any_backend("softmax_cross_entropy", z, ids.astype(label_dtype))
    for a, b in zip(got, want):
        assert_same_bits(a, b, f"labels {np.dtype(label_dtype).name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_strided_inputs_are_read_as_given_and_not_modified(any_backend, rng, dtype):
    big = rng.standard_normal((10, 14)).astype(dtype)
    z = big[::2, 1::2]                                               # (5, 7), strided view
    soft = np.asfortranarray(soft_labels(rng, 5, 7, dtype))
    keep_z, keep_soft = z.copy(), soft.copy()
    for labels in (np.arange(5), soft):
        loss, dz = any_backend("softmax_cross_entropy", z, labels, reduction="none")
        want_loss, want_dz = formula(z, labels, 0.0, "none")
        assert_close(loss, want_loss, dtype, 7, what="loss")
        assert_close(dz, want_dz, dtype, 7, what="dlogits")
    assert np.array_equal(z, keep_z) and np.array_equal(soft, keep_soft)


# --------------------------------------------------------------------------- extreme values

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_extreme_logits(any_backend, dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0], [0.0, -np.inf, 5.0]], dtype)
    ids = np.array([1, 1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dz = any_backend("softmax_cross_entropy", z, ids, reduction="none")
        soft_loss, soft_dz = any_backend("softmax_cross_entropy", z, np.eye(3, dtype=dtype)[ids],
                                         reduction="none")
    want = [2e4, 0.0, 5.0 + np.log1p(np.exp(-5.0))]
    np.testing.assert_allclose(loss, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(soft_loss, want, rtol=1e-6, atol=1e-6)
    for g in (dz, soft_dz):
        assert np.all(np.isfinite(g)) and g[2, 1] == 0
        np.testing.assert_allclose(g[0], [1, -1, 0], atol=1e-6)
        np.testing.assert_allclose(g.sum(axis=1), 0, atol=1e-6)
    # label smoothing puts mass on the -inf class: an infinite loss, as in PyTorch
    smoothed, _ = any_backend("softmax_cross_entropy", z, ids, label_smoothing=0.1,
                              reduction="none")
    assert np.isfinite(smoothed[:2]).all() and smoothed[2] == np.inf


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_nan_propagates_to_its_row(any_backend, rng, dtype):
    z = rng.standard_normal((4, 6)).astype(dtype)
    for col in (0, 3):                                               # first and a later column
        zn = z.copy()
        zn[2, col] = np.nan
        for labels in (np.array([0, 1, 2, 3]), soft_labels(rng, 4, 6, dtype)):
            loss, dz = any_backend("softmax_cross_entropy", zn, labels, reduction="none")
            assert np.isnan(loss[2]) and np.isnan(dz[2]).all()
            assert np.isfinite(loss[[0, 1, 3]]).all() and np.isfinite(dz[[0, 1, 3]]).all()
            mean, _ = any_backend("softmax_cross_entropy", zn, labels)
            assert np.isnan(mean)


# --------------------------------------------------------------------------- PyTorch, gradients

@pytest.mark.parametrize("ls", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_against_torch(any_backend, rng, ls, reduction):
    torch = pytest.importorskip("torch")
    z = rng.standard_normal((17, 9)) * 2
    for labels in (rng.integers(0, 9, 17), soft_labels(rng, 17, 9, np.float64)):
        zt = torch.tensor(z, requires_grad=True)
        lt = torch.tensor(labels)
        want = torch.nn.functional.cross_entropy(zt, lt, label_smoothing=ls, reduction=reduction)
        want.sum().backward()
        loss, dz = any_backend("softmax_cross_entropy", z, labels, label_smoothing=ls,
                               reduction=reduction)
        np.testing.assert_allclose(loss, want.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dz, zt.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_by_finite_differences(any_backend, rng, reduction):
    z = rng.standard_normal((5, 7))
    for labels in (rng.integers(0, 7, 5), soft_labels(rng, 5, 7, np.float64, False)):
        for ls in (0.0, 0.2):
            _, dz = any_backend("softmax_cross_entropy", z, labels, label_smoothing=ls,
                                reduction=reduction)

            def f(labels=labels, ls=ls):
                loss, _ = any_backend("softmax_cross_entropy", z, labels, label_smoothing=ls,
                                      reduction=reduction)
                return float(np.sum(loss))

            np.testing.assert_allclose(dz, fd_grad(f, z, h=1e-5), rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------- threads, N = 0

@pytest.mark.parametrize("be", ["cpu", "numba"])
@pytest.mark.parametrize("shape", [(300, 1000), (5000, 10)], ids=str)
def test_thread_count_invariance(rng, restore_core, be, shape):
    if convforge.backends.unavailable_reason(be):
        pytest.skip(f"backend {be} not available")
    z = (rng.standard_normal(shape) * 3).astype(np.float32)
    ids = rng.integers(0, shape[1], shape[0])
    soft = soft_labels(rng, *shape, np.float32)
    results = []
    for threads in (1, 2, 3):
        convforge.set_num_threads(threads)
        results.append([F.softmax_cross_entropy(z, lab, label_smoothing=ls, reduction=r,
                                                backend=be)
                        for lab in (ids, soft) for ls in (0.0, 0.1) for r in REDUCTIONS])
    for res in results[1:]:
        for (loss, dz), (loss0, dz0) in zip(res, results[0]):
            assert_same_bits(loss, loss0, f"{be} loss")
            assert_same_bits(dz, dz0, f"{be} dlogits")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_empty_batch(any_backend, dtype):
    z = np.zeros((0, 4), dtype)
    for labels in (np.zeros(0, np.int64), np.zeros((0, 4), dtype)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = {r: any_backend("softmax_cross_entropy", z, labels, reduction=r)
                   for r in REDUCTIONS}
        for loss, dz in out.values():
            assert loss.dtype == dtype and dz.dtype == dtype and dz.shape == (0, 4)
        assert out["mean"][0].shape == () and np.isnan(out["mean"][0])
        assert out["sum"][0].shape == () and out["sum"][0] == 0
        assert out["none"][0].shape == (0,)


# --------------------------------------------------------------------------- bad arguments

def test_bad_labels_are_reported_on_every_backend(any_backend):
    z = np.zeros((5, 4), np.float32)
    msg = r"labels must hold class ids in \[0, K\) = \[0, 4\), got values in \[-1, 4\]"
    with pytest.raises(ValueError, match=msg):
        any_backend("softmax_cross_entropy", z, np.array([0, 1, -1, 4, 2]))
    with pytest.raises(ValueError, match=r"got values in \[0, 18446744073709551615\]"):
        any_backend("softmax_cross_entropy", z, np.array([0, 1, 2, 3, 2**64 - 1], np.uint64))


def test_bad_arguments():
    z = np.zeros((3, 4), np.float32)
    ids = np.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"logits must be 2-D \(N, K\), got shape \(4,\)"):
        F.softmax_cross_entropy(z[0], ids)
    with pytest.raises(ValueError, match=r"logits must be 2-D \(N, K\), got shape \(1, 3, 4\)"):
        F.softmax_cross_entropy(z[None], ids)
    with pytest.raises(ValueError, match="logits has a zero-size dimension"):
        F.softmax_cross_entropy(np.zeros((3, 0), np.float32), ids)
    with pytest.raises(TypeError, match="logits must have dtype float32 or float64"):
        F.softmax_cross_entropy(z.astype(np.int64), ids)
    with pytest.raises(TypeError, match="logits must be a numpy.ndarray"):
        F.softmax_cross_entropy(z.tolist(), ids)
    with pytest.raises(TypeError, match="labels must be a numpy.ndarray"):
        F.softmax_cross_entropy(z, [0, 1, 2])
    with pytest.raises(ValueError, match=r"labels of class ids must have shape \(N,\) = \(3,\) "
                                         r"for logits of shape \(3, 4\), got \(2,\)"):
        F.softmax_cross_entropy(z, ids[:2])
    with pytest.raises(ValueError, match=r"labels of class ids must have shape .* got \(3, 1\)"):
        F.softmax_cross_entropy(z, ids[:, None])
    with pytest.raises(ValueError, match=r"labels of probabilities must have the shape of "
                                         r"logits \(3, 4\), got \(3,\)"):
        F.softmax_cross_entropy(z, ids.astype(np.float32))
    with pytest.raises(ValueError, match=r"got \(3, 5\)"):
        F.softmax_cross_entropy(z, np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"got \(2, 4\)"):
        F.softmax_cross_entropy(z, np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="labels has dtype float64 but logits has dtype float32"):
        F.softmax_cross_entropy(z, np.zeros((3, 4)))
    with pytest.raises(TypeError, match="labels must be integer class ids .* got dtype bool"):
        F.softmax_cross_entropy(z, np.zeros(3, bool))
    with pytest.raises(ValueError, match=r"reduction must be one of \['mean', 'sum', 'none'\], "
                                         "got 'avg'"):
        F.softmax_cross_entropy(z, ids, reduction="avg")
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
            F.softmax_cross_entropy(z, ids, label_smoothing=bad)
    with pytest.raises(TypeError, match="label_smoothing must be a float"):
        F.softmax_cross_entropy(z, ids, label_smoothing="0.1")
    with pytest.raises((TypeError, ValueError), match="cannot take NumPy arrays|not available"):
        F.softmax_cross_entropy(z, ids, backend="cuda")


def test_binding_directly(rng):
    core = pytest.importorskip("convforge._core")
    z = rng.standard_normal((6, 5)).astype(np.float32)
    ids = np.array([0, 4, 2, 1, 3, 0])
    loss, dz = core.softmax_cross_entropy(z, ids, 0.0, "mean")
    want_loss, want_dz = formula(z, ids)
    assert_close(loss, want_loss, np.float32, 5, what="loss")
    assert_close(dz, want_dz, np.float32, 5, what="dlogits")
    with pytest.raises(ValueError, match=r"got values in \[0, 5\]"):
        core.softmax_cross_entropy(z, np.array([0, 4, 2, 1, 5, 0]), 0.0, "mean")
    with pytest.raises(TypeError, match="labels must be int64"):
        core.softmax_cross_entropy(z, ids.astype(np.int32), 0.0, "mean")
    with pytest.raises(ValueError, match=r"labels must have shape \(6,\)"):
        core.softmax_cross_entropy(z, ids[:5], 0.0, "mean")
    with pytest.raises(ValueError, match=r"labels must have shape \(6, 5\)"):
        core.softmax_cross_entropy(z, np.zeros((6, 4), np.float32), 0.0, "mean")
    with pytest.raises(TypeError, match="labels has dtype float64"):
        core.softmax_cross_entropy(z, np.zeros((6, 5)), 0.0, "mean")
    with pytest.raises(ValueError, match="logits must be 2-D"):
        core.softmax_cross_entropy(z[0], ids, 0.0, "mean")
    with pytest.raises(ValueError, match="reduction must be"):
        core.softmax_cross_entropy(z, ids, 0.0, "avg")
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        core.softmax_cross_entropy(z, ids, 1.0, "mean")


@pytest.mark.parametrize("name", ["numba", "reference"])
def test_backends_never_read_outside_a_row(name):
    """Called directly (functional would refuse them), ids out of range give NaN rows."""
    if convforge.backends.unavailable_reason(name):
        pytest.skip(f"backend {name} not available")
    be = convforge.backends.get(name)
    z = np.zeros((3, 4), np.float32)
    loss, dz = be.softmax_cross_entropy(z, np.array([1, 4, -9]), 0.0, "none")
    assert loss[0] == pytest.approx(np.log(4)) and np.isnan(loss[1:]).all()
    assert np.isfinite(dz[0]).all() and np.isnan(dz[1:]).all()


# --------------------------------------------------------------------------- the losses

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_losses_match_their_numpy_formulas(nn_backend, rng, dtype):
    """Sparse / categorical cross-entropy from logits: what losses.py computed before the fused
    op (log-softmax, exp, indexing, mean in the input dtype), to rounding."""
    z = (rng.standard_normal((65, 10)) * 3).astype(dtype)
    ids = rng.integers(0, 10, 65)
    s = z - z.max(axis=1, keepdims=True)
    logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    old_loss = -logp[np.arange(65), ids].mean()
    old_grad = np.exp(logp)
    old_grad[np.arange(65), ids] -= 1
    old_grad = old_grad / 65
    for loss, y in ((losses.SparseCategoricalCrossentropy(), ids),
                    (losses.SparseCategoricalCrossentropy(), ids[:, None]),
                    (losses.CategoricalCrossentropy(), np.eye(10)[ids])):
        value, grad = loss.forward_backward(y, z)
        assert value.shape == () and value.dtype == dtype and grad.dtype == dtype
        assert_close(value, old_loss, dtype, 10, what=f"{loss!r} loss")
        assert_close(grad, old_grad, dtype, 10, what=f"{loss!r} gradient")
        assert_same_bits(loss(y, z), value, f"{loss!r} call")


def test_numba_serial_and_parallel_kernels_agree(rng):
    """The numba backend runs small batches on the serial twin of its parallel kernel: the same
    rows, so the same bits."""
    if convforge.backends.unavailable_reason("numba"):
        pytest.skip("backend numba not available")
    from convforge.backends import _numba_kernels as k

    z = (rng.standard_normal((40, 30)) * 3).astype(np.float32)
    ids = rng.integers(0, 30, 40)
    soft = soft_labels(rng, 40, 30, np.float32)
    for hard, labels, target in ((True, ids, np.empty((0, 0), np.float32)),
                                 (False, np.empty(0, np.int64), soft)):
        out = []
        for kernel in (k.softmax_xent, k.softmax_xent_serial):
            rows, total, dz = np.empty(40), np.empty(1), np.empty_like(z)
            kernel(rows, total, dz, z, labels, target, hard, 0.1, 1 / 40)
            out.append((rows, total, dz))
        for a, b in zip(*out):
            assert_same_bits(a, b, f"hard={hard}")
