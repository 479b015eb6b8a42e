"""Public API behaviour: backend registry and choice (available, set_backend, use_backend,
CONVFORGE_BACKEND, backend=), convforge.info(), the F alias; non-contiguous, Fortran-order and
read-only inputs give the same results; inputs are never modified."""

from __future__ import annotations

import numpy as np
import pytest

import convforge
import convforge.backends
import convforge.backends.reference
from convforge import functional as F

from conftest import assert_exact, randn

# --------------------------------------------------------------------------- backend choice

def test_available():
    names = convforge.backends.available()
    assert isinstance(names, list)
    assert "reference" in names
    assert set(names) <= set(convforge.backends.NAMES)
    assert names == [n for n in convforge.backends.NAMES if n in names]   # preference order
    assert convforge.available() == names


def test_f_alias_and_exports():
    assert convforge.F is convforge.functional
    for name in ("conv2d", "conv2d_backward", "im2col", "col2im", "max_pool2d",
                 "max_pool2d_backward", "min_pool2d", "min_pool2d_backward", "avg_pool2d",
                 "avg_pool2d_backward", "global_avg_pool2d", "global_avg_pool2d_backward",
                 "global_max_pool2d", "global_max_pool2d_backward", "conv_output_size",
                 "pool_output_size"):
        assert callable(getattr(F, name)), name
    for name in ("available", "set_backend", "use_backend", "set_num_threads",
                 "get_num_threads", "info", "__version__"):
        assert hasattr(convforge, name), name


@pytest.fixture
def spy(monkeypatch):
    """Records which backends' conv2d ran: wraps every available NumPy backend's conv2d."""
    calls = []
    for name in convforge.backends.available():
        if name == "cuda":
            continue
        mod = convforge.backends.get(name)

        def wrapped(*args, _name=name, _orig=mod.conv2d):
            calls.append(_name)
            return _orig(*args)

        monkeypatch.setattr(mod, "conv2d", wrapped)
    return calls


def _conv(**kw):
    return F.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), **kw)


def _automatic() -> str:
    for n in ("cpu", "numba"):
        if n in convforge.backends.available():
            return n
    return "reference"


def test_automatic_choice(spy, monkeypatch):
    monkeypatch.delenv("CONVFORGE_BACKEND", raising=False)
    assert convforge.backends.chosen(on_gpu=False) == _automatic()
    assert convforge.backends.chosen(on_gpu=True) == "cuda"
    _conv()
    assert spy == [_automatic()]


def test_set_backend(spy, monkeypatch):
    monkeypatch.delenv("CONVFORGE_BACKEND", raising=False)
    convforge.set_backend("reference")
    _conv()
    assert spy == ["reference"]
    assert convforge.backends.chosen(False) == "reference"
    convforge.set_backend(None)
    assert convforge.backends.chosen(False) == _automatic()


def test_use_backend_nested_and_restores(spy, monkeypatch):
    monkeypatch.delenv("CONVFORGE_BACKEND", raising=False)
    other = _automatic()
    with convforge.use_backend("reference"):
        assert convforge.backends.chosen(False) == "reference"
        with convforge.use_backend(other):
            assert convforge.backends.chosen(False) == other
            _conv()
        assert convforge.backends.chosen(False) == "reference"
        _conv()
    assert convforge.backends.chosen(False) == _automatic()
    assert spy == [other, "reference"]


def test_use_backend_restores_after_exception(monkeypatch):
    monkeypatch.delenv("CONVFORGE_BACKEND", raising=False)
    with pytest.raises(RuntimeError):
        with convforge.use_backend("reference"):
            raise RuntimeError("boom")
    assert convforge.backends.chosen(False) == _automatic()


def test_precedence(spy, monkeypatch):
    """backend= beats use_backend(), which beats set_backend(), which beats $CONVFORGE_BACKEND."""
    other = _automatic()
    monkeypatch.setenv("CONVFORGE_BACKEND", "reference")
    assert convforge.backends.chosen(False) == "reference"
    _conv()
    convforge.set_backend(other)
    _conv()
    with convforge.use_backend("reference"):
        _conv()
        _conv(backend=other)
    assert spy == ["reference", other, "reference", other]


def test_env_var(spy, monkeypatch):
    monkeypatch.setenv("CONVFORGE_BACKEND", "reference")
    _conv()
    monkeypatch.delenv("CONVFORGE_BACKEND")
    _conv()
    assert spy == ["reference", _automatic()]


def test_backend_keyword_on_every_op(spy):
    x = np.ones((1, 2, 4, 4))
    _conv(backend="reference")
    assert spy == ["reference"]
    # every public op accepts backend= and runs on the named backend
    y, idx = F.max_pool2d(x, 2, return_indices=True, backend="reference")
    F.max_pool2d_backward(y, x, 2, indices=idx, backend="reference")
    F.min_pool2d_backward(F.min_pool2d(x, 2, backend="reference"), x, 2, backend="reference")
    F.avg_pool2d_backward(F.avg_pool2d(x, 2, backend="reference"), x, 2, backend="reference")
    g = F.global_avg_pool2d(x, backend="reference")
    F.global_avg_pool2d_backward(g, x, backend="reference")
    F.global_max_pool2d_backward(F.global_max_pool2d(x, backend="reference"), x,
                                 backend="reference")
    cols = F.im2col(x, 3, backend="reference")
    F.col2im(cols, x.shape, 3, backend="reference")
    F.conv2d_backward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)),
                      backend="reference")


def test_info_keys():
    info = convforge.info()
    assert info["version"] == convforge.__version__
    assert info["backends"] == convforge.backends.available()
    if "cpu" in convforge.backends.available():
        assert info["isa"] in ("baseline", "avx2", "avx512")
        assert isinstance(info["has_openmp"], bool)
        assert isinstance(info["num_threads"], int) and info["num_threads"] >= 1


def test_num_threads_roundtrip():
    n = convforge.get_num_threads()
    assert isinstance(n, int) and n >= 1
    convforge.set_num_threads(1)
    try:
        if "cpu" in convforge.backends.available():
            assert convforge.get_num_threads() == 1
    finally:
        convforge.set_num_threads(n)


# --------------------------------------------------------------------------- memory layouts

def _layouts(xp, a):
    """The same values as `a` (NumPy or CuPy) in other memory layouts."""
    big = xp.zeros(tuple(2 * n for n in a.shape), a.dtype)
    every_other = tuple(slice(None, None, 2) for _ in a.shape)
    big[every_other] = a
    out = {
        "sliced": big[every_other],
        "negative_strides": xp.ascontiguousarray(a[..., ::-1])[..., ::-1],
    }
    if a.ndim >= 2:
        out["transposed"] = xp.ascontiguousarray(xp.swapaxes(a, -1, -2)).swapaxes(-1, -2)
        out["fortran"] = xp.asfortranarray(a)
    if xp is np:
        ro = a.copy()
        ro.flags.writeable = False
        out["read_only"] = ro
    for layout, v in out.items():
        assert bool((v == a).all())
        assert layout == "read_only" or not v.flags.c_contiguous, layout
    return out


def _ops(rng, dtype):
    """(name, function of (call, arrays), arrays) for every public op family."""
    x = randn(rng, (2, 3, 6, 7), dtype)
    w = randn(rng, (4, 3, 3, 2), dtype)
    b = randn(rng, (4,), dtype)
    dy = randn(rng, (2, 4, 3, 7), dtype)
    dyp = randn(rng, (2, 3, 3, 4), dtype)        # pool 3/2 pad 1 of 6x7
    dyg = randn(rng, (2, 3), dtype)
    cols = randn(rng, (2, 3 * 3 * 2, 3 * 7), dtype)
    conv_kw = dict(stride=(2, 1), padding=(1, 1, 0, 1))
    return [
        ("conv2d", lambda c, x, w, b: c("conv2d", x, w, b, **conv_kw), (x, w, b)),
        ("conv2d_backward", lambda c, dy, x, w: c("conv2d_backward", dy, x, w, **conv_kw),
         (dy, x, w)),
        ("im2col", lambda c, x: c("im2col", x, (3, 2), **conv_kw), (x,)),
        ("col2im", lambda c, cols: c("col2im", cols, x.shape, (3, 2), **conv_kw), (cols,)),
        ("max_pool2d", lambda c, x: c("max_pool2d", x, 3, 2, 1, return_indices=True), (x,)),
        ("min_pool2d_backward", lambda c, dy, x: c("min_pool2d_backward", dy, x, 3, 2, 1),
         (dyp, x)),
        ("avg_pool2d", lambda c, x: c("avg_pool2d", x, 3, 2, 1, count_include_pad=False), (x,)),
        ("avg_pool2d_backward", lambda c, dy: c("avg_pool2d_backward", dy, x.shape, 3, 2, 1),
         (dyp,)),
        ("global_max_pool2d", lambda c, x: c("global_max_pool2d", x, return_indices=True), (x,)),
        ("global_max_pool2d_backward", lambda c, dy, x: c("global_max_pool2d_backward", dy, x),
         (dyg, x)),
        ("global_avg_pool2d_backward", lambda c, dy: c("global_avg_pool2d_backward", dy, x.shape),
         (dyg,)),
    ]


def _flatten(r):
    return list(r) if isinstance(r, tuple) else [r]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_layouts_same_result_inputs_untouched(backend, dtype, rng):
    """Every op gives bit-identical results for any memory layout of its inputs (one argument
    re-laid out at a time), and never writes to its inputs."""
    for name, fn, arrays in _ops(rng, dtype):
        expected = _flatten(fn(backend, *arrays))
        for pos in range(len(arrays)):
            dev_arrays = [backend.dev(a) for a in arrays]
            xp = np if not backend.on_gpu else __import__("cupy")
            for layout, a in _layouts(xp, dev_arrays[pos]).items():
                args = list(dev_arrays)
                args[pos] = a
                before = [backend.host(v).copy() for v in args]
                got = _flatten(fn(backend, *args))
                for g, e in zip(got, expected):
                    if e is None:
                        assert g is None
                    else:
                        assert_exact(g, e, e.dtype, what=f"{backend.name} {name} with argument "
                                                         f"{pos} {layout}")
                for v, v0 in zip(args, before):
                    assert_exact(backend.host(v), v0, what=f"{backend.name} {name}: input "
                                                           f"modified ({layout})")
