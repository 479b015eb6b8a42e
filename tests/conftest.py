"""Shared fixtures and helpers of the cross-backend correctness suite.

Backends under test: cpu, numba and cuda, each skipped where `convforge.backends.available()`
lacks it. Every result is compared element-wise to the float64 oracle
(`convforge.backends.reference`, called on the same values cast to float64).

Choosing backends:
  CONVFORGE_TEST_BACKENDS=reference   (or --test-backends=reference) adds backends to the three
                                      above; 'reference' then checks the oracle against itself,
                                      which exercises the test logic on any machine.
  --only-backends=cpu,numba           restricts the run to these backends.

Helpers (import them with `from conftest import ...`):
  Backend        runs a public op on one backend (NumPy in/out; CuPy on the device for cuda)
  ref(op, ...)   the same op on the float64 oracle
  assert_close   element-wise comparison, tolerance scaled by dtype and reduction length,
                 prints the worst mismatch
  assert_exact   bit-for-bit comparison (NaN == NaN), prints the worst mismatch
  as_f64         a float array cast to float64 (what ref does to its arguments)
  ISAS, available_isas(core)   the compiled core's ISA levels, and those this machine runs
  run_python(code, **env)      the words a fresh Python process printed running `code` with
                               these environment variables added (load-time switches)
Fixtures: rng (seeded with the test module's RNG_SEED, else 20240607), restore_core (puts the
compiled core's ISA and thread count back), backend / any_backend (parametrized Backend).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

import convforge
import convforge.backends
from convforge import functional as F
from convforge._array import is_cupy

# The repository root (tests/ lies right under it); test modules import it from here.
REPO = Path(__file__).resolve().parents[1]

DEFAULT_BACKENDS = ("cpu", "numba", "cuda")
DTYPES = (np.float32, np.float64)
# Tolerance constant: |actual - expected| <= TOL_C * eps(dtype) * sqrt(red_len) * scale.
TOL_C = 16.0


# --------------------------------------------------------------------------- backend selection

def pytest_addoption(parser):
    parser.addoption("--test-backends", default=None,
                     help="comma-separated backends added to cpu,numba,cuda (e.g. 'reference'); "
                          "default: $CONVFORGE_TEST_BACKENDS")
    parser.addoption("--only-backends", default=None,
                     help="comma-separated backends: test only these")


def _names(text: str, what: str) -> list[str]:
    out = []
    for name in (n.strip() for n in text.split(",")):
        if not name:
            continue
        if name not in convforge.backends.NAMES:
            raise pytest.UsageError(f"{what}: unknown backend {name!r}; "
                                    f"choose from {list(convforge.backends.NAMES)}")
        out.append(name)
    return out


def backends_under_test(config) -> list[str]:
    """cpu, numba, cuda, plus --test-backends / $CONVFORGE_TEST_BACKENDS, cut by --only-backends."""
    extra = config.getoption("--test-backends")
    if extra is None:
        extra = os.environ.get("CONVFORGE_TEST_BACKENDS", "")
    names = list(DEFAULT_BACKENDS)
    for name in _names(extra, "CONVFORGE_TEST_BACKENDS"):
        if name not in names:
            names.append(name)
    only = config.getoption("--only-backends")
    if only:
        keep = _names(only, "--only-backends")
        names = [n for n in names if n in keep] + [n for n in keep if n not in names]
    return names


def pytest_generate_tests(metafunc):
    """Tests taking a `backend` fixture run once per backend under test; tests taking
    `any_backend` (argument checking) also run on 'reference', so they run on every machine."""
    # a test module defining its own `backend`/`any_backend` fixture keeps it untouched
    if "backend" in metafunc.fixturenames and not hasattr(metafunc.module, "backend"):
        metafunc.parametrize("backend", backends_under_test(metafunc.config), indirect=True)
    if "any_backend" in metafunc.fixturenames and not hasattr(metafunc.module, "any_backend"):
        names = ["reference"] + [n for n in backends_under_test(metafunc.config)
                                 if n != "reference"]
        metafunc.parametrize("any_backend", names, indirect=True)


def pytest_report_header(config):
    return f"convforge backends under test: {backends_under_test(config)} " \
           f"(available here: {convforge.backends.available()})"


class Backend:
    """One backend under test. `be("conv2d", x, w, ...)` calls `convforge.functional.conv2d` with
    backend=be.name, moving NumPy arguments to the device first (cuda) and every array result
    back to NumPy; it also checks the results come back as the right kind of array."""

    def __init__(self, name: str):
        self.name = name
        self.on_gpu = name == "cuda"

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"

    def dev(self, a):
        """NumPy array -> the array kind this backend takes (CuPy for cuda); others unchanged."""
        if self.on_gpu and isinstance(a, np.ndarray):
            import cupy

            return cupy.asarray(a)
        return a

    def host(self, a):
        """Results -> NumPy (recursing into tuples); checks the array kind."""
        if isinstance(a, (tuple, list)):
            return type(a)(self.host(v) for v in a)
        if a is None:
            return None
        if self.on_gpu:
            assert is_cupy(a), f"cuda backend returned {type(a).__name__}, want cupy.ndarray"
            return a.get()
        assert isinstance(a, np.ndarray), \
            f"{self.name} backend returned {type(a).__name__}, want numpy.ndarray"
        return a

    def __call__(self, op: str, *args, **kwargs):
        fn = getattr(F, op)
        args = [self.dev(a) for a in args]
        kwargs = {k: self.dev(v) for k, v in kwargs.items()}
        return self.host(fn(*args, backend=self.name, **kwargs))


@pytest.fixture
def backend(request) -> Backend:
    """One backend under test (skips where it is not available)."""
    return _available_backend(request.param)


@pytest.fixture
def any_backend(request) -> Backend:
    """'reference' or one backend under test (skips where it is not available)."""
    return _available_backend(request.param)


def _available_backend(name: str) -> Backend:
    reason = convforge.backends.unavailable_reason(name)
    if reason is not None:
        pytest.skip(f"backend {name!r} not available: {reason}")
    return Backend(name)


def as_f64(a):
    """A float array as float64 (other arguments unchanged): the reference runs in float64."""
    if isinstance(a, np.ndarray) and a.dtype.kind == "f":
        return a.astype(np.float64)
    return a


def ref(op: str, *args, **kwargs):
    """The op on the float64 oracle: float arguments cast to float64 (int arrays untouched)."""
    fn = getattr(F, op)
    return fn(*[as_f64(a) for a in args], backend="reference",
              **{k: as_f64(v) for k, v in kwargs.items()})


# --------------------------------------------------------------------------- data

@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """Dataset lookups see only tmp_path: own cache dir, no $CONVFORGE_DATA, no system dirs, no
    network (test modules of the data loaders and the CLI use it for every test)."""
    from convforge.data import datasets

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("CONVFORGE_DATA", raising=False)
    monkeypatch.setenv("CONVFORGE_NO_DOWNLOAD", "1")
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", (tmp_path / "system",))


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A fresh generator with a fixed seed for every test: the test module's RNG_SEED if it
    sets one (each module keeps the data its tolerances were written for), else 20240607.
    convforge.set_seed gets the same seed (layer weights, dropout, fit's shuffling)."""
    seed = getattr(request.module, "RNG_SEED", 20240607)
    convforge.set_seed(seed)
    return np.random.default_rng(seed)


@pytest.fixture
def nn_backend():
    """The cpu backend for the test (the reference where the core does not load); for the
    layer and model tests, which run one backend (the ops' tests run them all)."""
    name = "cpu" if "cpu" in convforge.backends.available() else "reference"
    with convforge.use_backend(name):
        yield name


# --------------------------------------------------------------------------- compiled core

ISAS = ("baseline", "avx2", "avx512")   # the compiled core's ISA levels, lowest first


def available_isas(core) -> tuple[str, ...]:
    """The ISA levels this machine runs: those up to core.detected_isa()."""
    return ISAS[: ISAS.index(core.detected_isa()) + 1]


def run_python(code: str, **env: str) -> list[str]:
    """stdout, split into words, of `python -c code` in a fresh process with `env` added to the
    environment (for switches the core reads once, at load); fails the test on a non-zero exit."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


@pytest.fixture
def restore_core():
    """Put the compiled core's ISA, thread count and exact mode back after a test that changes
    them."""
    from convforge import _core as core

    isa, threads, exact = core.isa(), core.get_num_threads(), core.conv_exact()
    yield
    core.set_isa(isa)
    core.set_num_threads(threads)
    core.set_conv_exact(exact)


def randn(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def randint(rng: np.random.Generator, shape, dtype=np.float64, lo: int = -3,
            hi: int = 3) -> np.ndarray:
    """Small integers in [lo, hi] as floats: sums of products stay exact in float32 too."""
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


def distinct(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    """Values spaced >= 0.1 apart (no ties), for pooling tests where ties would blur the
    choice of the maximum."""
    n = int(np.prod(shape))
    v = (rng.permutation(n) - n / 2) * 0.1 + rng.uniform(0, 0.05, n)
    return v.reshape(shape).astype(dtype)


# --------------------------------------------------------------------------- comparisons

def _worst(actual: np.ndarray, expected: np.ndarray, bad: np.ndarray, err: np.ndarray,
           tol: np.ndarray, header: str) -> str:
    """Failure message: how many elements differ, and the worst one."""
    flat = np.where(bad.ravel(), np.nan_to_num(err.ravel(), nan=np.inf, posinf=np.inf), -1.0)
    i = int(np.argmax(flat))
    idx = np.unravel_index(i, actual.shape)
    a, e = actual.ravel()[i], expected.ravel()[i]
    abs_err = abs(float(a) - float(e))
    rel_err = abs_err / abs(float(e)) if e != 0 else math.inf
    return (f"{header}: {int(bad.sum())} of {bad.size} elements differ; worst at index "
            f"{tuple(int(j) for j in idx)}: actual {float(a)!r}, expected {float(e)!r}, "
            f"abs err {abs_err:.3e}, rel err {rel_err:.3e}, tolerance {float(tol.ravel()[i]):.3e}")


def _check_kind(actual, expected, dtype, what: str) -> None:
    assert isinstance(actual, np.ndarray), f"{what}: got {type(actual).__name__}, want ndarray"
    assert actual.shape == expected.shape, \
        f"{what}: shape {actual.shape}, expected {expected.shape}"
    if dtype is not None:
        assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype}, want {dtype}"


def assert_close(actual, expected, dtype, red_len: int, what: str = "result", *,
                 scale: Optional[float] = None) -> None:
    """Element-wise: |actual - expected| <= TOL_C * eps(dtype) * sqrt(red_len) * (|expected| +
    scale), scale defaulting to max |expected| (finite values; 1 when none is non-zero); NaNs must
    sit at the same places, equal values (infinities too) always pass. The check also needs
    actual.dtype == dtype and equal shapes."""
    _check_kind(actual, expected, dtype, what)
    act = actual.astype(np.float64)
    exp = np.asarray(expected, np.float64)
    if scale is None:
        finite = exp[np.isfinite(exp)]
        scale = float(np.abs(finite).max()) if finite.size else 1.0
        scale = scale or 1.0
    eps_term = TOL_C * float(np.finfo(dtype).eps) * math.sqrt(max(red_len, 1))
    tol = eps_term * (np.abs(np.nan_to_num(exp)) + scale)
    with np.errstate(invalid="ignore"):
        err = np.abs(act - exp)                                      # inf - inf: NaN
    nan_a, nan_e = np.isnan(act), np.isnan(exp)
    bad = (nan_a != nan_e) | (~nan_e & (act != exp) & ~(err <= tol))
    if bad.any():
        pytest.fail(_worst(act, exp, bad, err, tol,
                           f"{what} ({np.dtype(dtype).name}, reduction {red_len})"),
                    pytrace=False)


def assert_within(actual, expected, rtol: float, atol: float, what: str = "") -> None:
    """|actual - expected| <= atol + rtol |expected| element-wise, with explicit tolerances
    (layer/model tests whose tolerance is not a kernel's reduction bound)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    err = np.abs(actual - expected) - (atol + rtol * np.abs(expected))
    if err.size and err.max() > 0:
        i = np.unravel_index(np.argmax(err), err.shape)
        pytest.fail(f"{what}: worst mismatch at {i}: got {actual[i]!r}, expected {expected[i]!r} "
                    f"(|diff| {abs(actual[i] - expected[i]):.3e}, atol {atol}, rtol {rtol})")


def assert_exact(actual, expected, dtype=None, what: str = "result") -> None:
    """Bit-for-bit equal values (NaN matches NaN), equal shape, and dtype if given."""
    _check_kind(actual, expected, dtype, what)
    act = np.asarray(actual)
    exp = np.asarray(expected)
    if act.dtype.kind == "f" or exp.dtype.kind == "f":
        act, exp = act.astype(np.float64), exp.astype(np.float64)
        bad = ~((act == exp) | (np.isnan(act) & np.isnan(exp)))
    else:
        bad = act != exp
    if bad.any():
        err = np.abs(act.astype(np.float64) - exp.astype(np.float64))
        pytest.fail(_worst(act, exp, bad, err, np.zeros(bad.shape), f"{what} (exact)"),
                    pytrace=False)


def fd_grad(f, a: np.ndarray, h: float = 1e-4, index=None) -> np.ndarray:
    """Central differences (f(a + h e_i) - f(a - h e_i)) / 2h of the scalar f() w.r.t. array a,
    perturbed in place (and restored) one element at a time: at every element (a's shape), or
    at the flat positions `index` ((len(index),), float64)."""
    flat = a.reshape(-1)
    assert np.shares_memory(flat, a), "fd_grad needs a contiguous array to perturb in place"
    positions = range(flat.size) if index is None else index
    g = np.zeros(len(positions))
    for j, i in enumerate(positions):
        keep = flat[i]
        flat[i] = keep + h
        fp = f()
        flat[i] = keep - h
        fm = f()
        flat[i] = keep
        g[j] = (fp - fm) / (2 * h)
    return g.reshape(a.shape) if index is None else g


def assert_same_bits(actual, expected, what: str = "result") -> None:
    """Bit-for-bit identical arrays (shape, dtype and bytes: -0.0 differs from 0.0, NaN payloads
    count), for claims of bit-identical results (naive vs fast kernels, thread counts, ISAs)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, \
        f"{what}: got {actual.shape} {actual.dtype}, want {expected.shape} {expected.dtype}"
    if actual.tobytes() == expected.tobytes():
        return
    width = actual.dtype.itemsize
    differs = (actual.view(np.uint8).reshape(actual.shape + (width,)) !=
               expected.view(np.uint8).reshape(expected.shape + (width,))).any(-1)
    at = tuple(int(i) for i in np.argwhere(differs)[0])
    pytest.fail(f"{what}: {int(differs.sum())} elements differ in their bits; first at "
                f"{list(at)}: got {actual[at]!r}, want {expected[at]!r}", pytrace=False)


# --------------------------------------------------------------------------- global state

@pytest.fixture(autouse=True)
def _reset_backend_choice():
    """Tests that change the global backend choice cannot leak it into other tests."""
    yield
    convforge.set_backend(None)

