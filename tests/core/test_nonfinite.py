"""Issue #11 item 12: non-finite values. Every conv algorithm (forced, as an autotuned winner
is, and the auto choice) puts NaN / +inf / -inf exactly where the float64 reference does, in
both dtypes and on every ISA path; Winograd and direct_small run the exact path on such inputs.
Max / min pooling windows with several NaNs return the index PyTorch returns (the last NaN)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from convforge.backends import reference as ref

from conftest import available_isas

core = pytest.importorskip("convforge._core")

AVAILABLE_ISAS = available_isas(core)

# (x_shape, w_shape, stride, padding (t, b, l, r), dilation, groups)
CASES = {
    "winograd": ((2, 32, 12, 12), (32, 32, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "small": ((2, 6, 9, 9), (16, 6, 5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),
    "strided": ((2, 3, 15, 15), (16, 3, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),
    "depthwise": ((2, 8, 9, 9), (8, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8),
    "pointwise": ((2, 8, 5, 5), (4, 8, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "batch": ((8, 6, 10, 10), (16, 6, 5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),
}
PREDS = (np.isnan, np.isposinf, np.isneginf)


def _problem(case, dtype, where):
    xs, ws, stride, pad, dil, _ = case
    rng = np.random.default_rng(11)
    x = rng.standard_normal(xs).astype(dtype)
    w = np.abs(rng.standard_normal(ws)).astype(dtype) + 0.1  # positive: +inf stays +inf
    y_shape = ref.conv2d(x, w, None, stride, pad, dil, case[5]).shape
    dy = rng.standard_normal(y_shape).astype(dtype)
    if where == "x":
        x[0, 0, 3, 4] = np.inf  # the issue: one +inf in x
    elif where == "x2":
        x[0, 0, 0, 1], x[-1, -1, -2, -1] = np.nan, -np.inf
    elif where == "w":
        w[0, 0, 0, 0], w[-1, -1, -1, -1] = np.inf, np.nan
    elif where == "dy":
        dy[0, 0, 1, 1], dy[-1, -1, -1, -1] = np.inf, np.nan
    return x, w, dy


def _same_pattern(got, want, msg):
    for pred in PREDS:
        np.testing.assert_array_equal(pred(got), pred(want), err_msg=f"{pred.__name__} {msg}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("where", ["x", "x2", "w", "dy"])
@pytest.mark.parametrize("name", list(CASES))
def test_conv_nonfinite_pattern_every_algorithm(restore_core, name, where, dtype):
    case = CASES[name]
    xs, ws, stride, pad, dil, g = case
    args = (stride, pad, dil, g)
    x, w, dy = _problem(case, dtype, where)
    f64 = [a.astype(np.float64) for a in (x, w, dy)]
    with np.errstate(invalid="ignore", over="ignore"):
        y_ref = ref.conv2d(f64[0], f64[1], None, *args)
        dx_ref, dw_ref, _ = ref.conv2d_backward(f64[2], f64[0], f64[1], *args, False)
    dt = np.dtype(dtype).name
    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        for algo in ["auto"] + core.conv2d_algorithms(xs, ws, *args, dt, "forward"):
            _same_pattern(core.conv2d_forward(x, w, None, *args, algo=algo), y_ref,
                          f"forward {algo} {isa} {name} {where}")
        for algo in ["auto"] + core.conv2d_algorithms(xs, ws, *args, dt, "data"):
            _same_pattern(core.conv2d_backward_data(dy, w, xs, *args, algo=algo), dx_ref,
                          f"data {algo} {isa} {name} {where}")
        for algo in ["auto"] + core.conv2d_algorithms(xs, ws, *args, dt, "weight"):
            got = core.conv2d_backward_weight(dy, x, ws, *args, False, algo=algo)[0]
            _same_pattern(got, dw_ref, f"weight {algo} {isa} {name} {where}")


def test_winograd_case_is_winograd():
    """The 'winograd' case above really exercises Winograd: auto picks it for finite inputs."""
    case = CASES["winograd"]
    for direction in ("forward", "data"):
        assert core.conv2d_algorithm(*case, "float32", direction) == "winograd"


@pytest.mark.parametrize("where", ["x", "w", "dy"])
def test_conv2d_algorithm_reports_what_auto_runs_on_the_data(where):
    """Given the arrays, conv2d_algorithm applies the data rule too, and auto's result is
    bit-identical to forcing the reported algorithm (Winograd on finite data, im2col_gemm on
    inf/NaN; direct_small data on a non-finite w, weight on a non-finite x)."""
    for name in ("winograd", "small"):
        case = CASES[name]
        xs, ws, *rest = case
        args = tuple(rest)
        x, w, dy = _problem(case, np.float32, where)
        clean = _problem(case, np.float32, None)
        for direction in ("forward", "data", "weight"):
            arrays = dict(x=x, w=w) if direction == "forward" else \
                dict(dy=dy, w=w) if direction == "data" else dict(x=x, dy=dy)
            clean_arrays = {k: clean["xwd".index(k[0])] for k in arrays}
            shapes_only = core.conv2d_algorithm(xs, ws, *args, "float32", direction)
            assert core.conv2d_algorithm(xs, ws, *args, "float32", direction,
                                         **clean_arrays) == shapes_only
            algo = core.conv2d_algorithm(xs, ws, *args, "float32", direction, **arrays)
            bad = {k for k, a in arrays.items() if not np.isfinite(a).all()}
            # Winograd mixes every operand; direct_small's padding multiplies w (data), x (weight)
            moves = bad and shapes_only == "winograd" or shapes_only == "direct_small" and (
                direction == "data" and "w" in bad or direction == "weight" and "x" in bad)
            if moves:
                assert algo in ("im2col_gemm", "im2col_gemm_batch"), (name, direction, where)
            else:
                assert algo == shapes_only, (name, direction, where)
            if direction == "forward":
                run = [core.conv2d_forward(x, w, None, *args, algo=a) for a in ("auto", algo)]
            elif direction == "data":
                run = [core.conv2d_backward_data(dy, w, xs, *args, algo=a) for a in ("auto", algo)]
            else:
                run = [core.conv2d_backward_weight(dy, x, ws, *args, True, algo=a)[0]
                       for a in ("auto", algo)]
            np.testing.assert_array_equal(run[0], run[1], err_msg=f"{name} {direction} {where}")
    with pytest.raises(ValueError, match="data rule reads dy and w"):
        core.conv2d_algorithm(xs, ws, *args, "float32", "data", dy=dy)
    with pytest.raises(TypeError, match="x has dtype float64 but dtype is 'float32'"):
        core.conv2d_algorithm(xs, ws, *args, "float32", "weight", x=x.astype(np.float64), dy=dy)
    with pytest.raises(ValueError, match="data rule reads x and dy"):
        core.conv2d_algorithm(xs, ws, *args, "float32", "weight", x=x)


def test_winograd_one_inf_like_torch():
    """The issue's count: one +inf in x gives 288 +inf outputs (PyTorch, direct convolution) and
    no NaN, not 512 NaN, forced or auto."""
    torch = pytest.importorskip("torch")
    x, w, _ = _problem(CASES["winograd"], np.float32, "x")
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()
    for algo in ("winograd", "auto"):
        got = core.conv2d_forward(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 1, algo=algo)
        assert np.isposinf(got).sum() == np.isposinf(want).sum() == 288
        assert not np.isnan(got).any()


@pytest.mark.parametrize("relu", [False, True])
def test_winograd_overflow_runs_the_exact_path(restore_core, relu):
    """Winograd finds an inf/NaN on its way (no scan before the call): a finite input whose
    transforms overflow (|x| 1e38: B^T d B multiplies by up to 25) runs the exact path, so every
    direction gives the exact path's finite result, forced or auto, on every ISA; the ReLU
    (which would drop a NaN) changes nothing. K = 20: the output transform's lanes past K
    (padding) are not checked."""
    xs, ws, stride, pad, dil, g = CASES["winograd"]
    ws = (20,) + ws[1:]
    args = (stride, pad, dil, g)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32) * np.float32(0.1)
    dy = rng.standard_normal((xs[0], ws[0]) + xs[2:]).astype(np.float32)
    x[1, 2, 7, 7] = 1e38     # first row and column of a tile's patch: B^T's factor 4, twice
    dy[0, 3, 5, 6] = -1e38
    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        for algo in ("winograd", "auto"):
            y = core.conv2d_forward(x, w, None, *args, algo=algo, activation="relu" if relu else
                                    "linear")
            want = core.conv2d_forward(x, w, None, *args, algo="im2col_gemm",
                                       activation="relu" if relu else "linear")
            assert np.isfinite(y).all(), (isa, algo)
            np.testing.assert_array_equal(y, want, err_msg=f"forward {isa} {algo}")
            dx = core.conv2d_backward_data(dy, w, xs, *args, algo=algo)
            assert np.isfinite(dx).all(), (isa, algo)
            np.testing.assert_array_equal(
                dx, core.conv2d_backward_data(dy, w, xs, *args, algo="im2col_gemm"))
            dw = core.conv2d_backward_weight(dy, x, ws, *args, True, algo=algo)[0]
            with np.errstate(over="ignore", invalid="ignore"):
                want_dw = core.conv2d_backward_weight(dy, x, ws, *args, True,
                                                      algo="im2col_gemm_batch")[0]
            np.testing.assert_array_equal(dw, want_dw, err_msg=f"weight {isa} {algo}")


# ---------------------------------------------------------------- pooling: NaN index vs torch

BACKENDS = ["cpu", "numba", "reference"]


def _backend_or_skip(name):
    import convforge

    if name not in convforge.backends.available():
        pytest.skip(f"backend {name} not available")


def _nan_input(dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 10)).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, 40, replace=False)] = np.nan  # several NaNs in many windows
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("be", BACKENDS)
@pytest.mark.parametrize("kw", [dict(kernel_size=3, stride=1, padding=1),
                                dict(kernel_size=2, stride=2),
                                dict(kernel_size=(3, 4), stride=(2, 3), ceil_mode=True),
                                dict(kernel_size=5, stride=1, padding=2)],
                         ids=["3s1p1", "2s2", "3x4ceil", "5s1p2"])
def test_pool_nan_index_like_torch(be, kw, dtype):
    torch = pytest.importorskip("torch")
    import convforge as cf

    _backend_or_skip(be)
    x = _nan_input(dtype)
    tk = dict(kw)
    want_y, want_i = torch.nn.functional.max_pool2d(torch.from_numpy(x), return_indices=True,
                                                    **tk)
    y, idx = cf.F.max_pool2d(x, return_indices=True, backend=be, **kw)
    np.testing.assert_array_equal(idx, want_i.numpy(), err_msg=f"max {be}")
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want_y.numpy()))
    # min pooling is max pooling of -x, indices included
    _, want_i = torch.nn.functional.max_pool2d(torch.from_numpy(-x), return_indices=True, **tk)
    _, idx = cf.F.min_pool2d(x, return_indices=True, backend=be, **kw)
    np.testing.assert_array_equal(idx, want_i.numpy(), err_msg=f"min {be}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("be", BACKENDS)
def test_global_max_nan_index_like_torch(be, dtype):
    torch = pytest.importorskip("torch")
    import convforge as cf

    _backend_or_skip(be)
    x = _nan_input(dtype)
    _, want = torch.nn.functional.adaptive_max_pool2d(torch.from_numpy(x), 1, return_indices=True)
    _, idx = cf.F.global_max_pool2d(x, return_indices=True, backend=be)
    np.testing.assert_array_equal(idx, want.numpy().reshape(idx.shape))


@pytest.mark.parametrize("isa", AVAILABLE_ISAS)
def test_cpu_pool_nan_index_every_isa(restore_core, isa):
    """The AVX2 sweeps and 2x2 kernels pick the same NaN as the baseline code and torch."""
    torch = pytest.importorskip("torch")
    import convforge as cf

    core.set_isa(isa)
    for dtype in (np.float32, np.float64):
        x = _nan_input(dtype)
        x = np.ascontiguousarray(np.concatenate([x] * 4, axis=3))  # rows of 40: vector sweeps
        for kw in (dict(kernel_size=2, stride=2), dict(kernel_size=3, stride=1),
                   dict(kernel_size=3, stride=2, padding=1)):
            _, want = torch.nn.functional.max_pool2d(torch.from_numpy(x), return_indices=True,
                                                     **kw)
            _, idx = cf.F.max_pool2d(x, return_indices=True, backend="cpu", **kw)
            np.testing.assert_array_equal(idx, want.numpy(), err_msg=f"{isa} {kw}")


@pytest.fixture
def exact_mode():
    import convforge

    yield convforge.set_conv_exact
    convforge.set_conv_exact(False)


def test_set_conv_exact_avoids_winograd(exact_mode, monkeypatch):
    """The exact path: with set_conv_exact(True) a Winograd layer runs the im2col GEMM path
    (bit-identical to forcing it), conv2d_algorithm says so, and autotune cannot bring Winograd
    back."""
    from convforge.backends import _autotune, cpu

    x, w, _ = _problem(CASES["winograd"], np.float32, None)
    args = ((1, 1), (1, 1, 1, 1), (1, 1), 1)
    gemm = core.conv2d_forward(x, w, None, *args, algo="im2col_gemm")
    assert not np.array_equal(core.conv2d_forward(x, w, None, *args), gemm)  # auto: Winograd
    exact_mode(True)
    assert core.conv_exact()
    for direction in ("forward", "data"):
        assert core.conv2d_algorithm(x.shape, w.shape, *args, "float32", direction) == \
            "im2col_gemm"
    monkeypatch.setattr(_autotune, "_enabled", True)
    np.testing.assert_array_equal(cpu.conv2d(x, w, None, *args), gemm)
    dy = np.random.default_rng(3).standard_normal(gemm.shape).astype(np.float32)
    dx = cpu.conv2d_backward(dy, x, w, *args, False)[0]
    np.testing.assert_array_equal(
        dx, core.conv2d_backward_data(dy, w, x.shape, *args, algo="im2col_gemm"))
    exact_mode(False)
    assert not core.conv_exact()


def test_conv_exact_from_the_environment():
    code = "import convforge._core as c, convforge; print(c.conv_exact())"
    for value, want in (("1", "True"), ("on", "True"), ("0", "False"), ("", "False")):
        env = dict(os.environ, CONVFORGE_CONV_EXACT=value)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        assert out == want, value
