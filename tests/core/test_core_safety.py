"""Issue #11 item 4: extreme sizes in the C++ core. Huge stride / padding / dilation must give
the reference's result (or a ValueError when a size does not fit in int64, MemoryError when an
output cannot be allocated), never a crash or a terabyte workspace. Each check runs in a
subprocess so that a segfault fails the test instead of killing pytest."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

core = pytest.importorskip("convforge._core")
from convforge.backends import reference as ref  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ALGOS = ("naive", "direct_depthwise", "gemm_pointwise", "im2col_gemm", "direct_small",
         "im2col_gemm_batch", "winograd", "direct_kvec", "direct_batch")
BIG = 2**61

# (x_shape, w_shape, stride, padding (t, b, l, r), dilation, groups): small outputs
EXTREME = [
    ((1, 1, 5, 6), (1, 1, 3, 3), (BIG, BIG), (BIG,) * 4, (1, 1), 1),            # issue: 3x3 out
    ((1, 1, 5, 6), (1, 1, 3, 3), (1, 1), (2**60,) * 4, (2**60, 2**60), 1),       # issue: 5x6 out
    ((2, 3, 5, 6), (4, 3, 3, 3), (2**62 - 1, 3), (2**61, 0, 1, 1), (1, 1), 1),
    ((2, 4, 4, 5), (4, 2, 2, 3), (1, 1), (2**40, 0, 7, 7), (2**40, 3), 2),        # dilation 2**40
    ((3, 2, 5, 5), (2, 1, 3, 3), (10**6, 1), (10**6, 10**6, 10**5, 10**5), (1, 10**5), 2),
    ((2, 16, 6, 6), (16, 16, 3, 3), (1, 1), (1000,) * 4, (1000, 1000), 1),       # mid-size pad
    ((1, 2, 3, 4), (3, 2, 1, 1), (2**62, 2**62), (2**61,) * 4, (1, 1), 1),       # 1x1 kernel
]
IDS = [f"case{i}" for i in range(len(EXTREME))]


def run_isolated(call: str, timeout: float = 120) -> str:
    """Runs `call` (an expression using this module as t) in a fresh interpreter; fails on a
    crash, a non-zero exit or a timeout."""
    code = f"import sys; sys.path.insert(0, {HERE!r}); import test_core_safety as t; {call}"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=timeout, env=os.environ.copy())
    assert p.returncode == 0, f"{call}: exit {p.returncode}\n{p.stdout}\n{p.stderr[-3000:]}"
    return p.stdout


def _close(name, got, want, dtype):
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=name)


def check_conv(i: int, dtype_name: str) -> None:
    """Every algorithm on EXTREME[i] (forced: a correct result or ValueError if it does not
    apply) and the auto choice, forward, data and weight, against the reference."""
    case = EXTREME[i]
    xs, ws, stride, pad, dil, g = case
    dtype = np.dtype(dtype_name).type
    rng = np.random.default_rng(i)
    x = rng.integers(-3, 4, xs).astype(dtype)
    w = rng.integers(-3, 4, ws).astype(dtype)
    b = rng.integers(-3, 4, ws[0]).astype(dtype)
    args = (stride, pad, dil, g)
    y_ref = ref.conv2d(x, w, b, *args)
    dy = rng.integers(-3, 4, y_ref.shape).astype(dtype)
    dx_ref, dw_ref, db_ref = ref.conv2d_backward(dy, x, w, *args, True)
    for direction in ("forward", "data", "weight"):
        listed = core.conv2d_algorithms(xs, ws, *args, dtype_name, direction)
        for algo in ("auto",) + ALGOS:
            tag = f"{direction} {algo} {dtype_name} case {i}"
            try:
                if direction == "forward":
                    _close(tag, core.conv2d_forward(x, w, b, *args, algo=algo), y_ref, dtype)
                elif direction == "data":
                    _close(tag, core.conv2d_backward_data(dy, w, xs, *args, algo=algo), dx_ref,
                           dtype)
                else:
                    dw, db = core.conv2d_backward_weight(dy, x, ws, *args, True, algo=algo)
                    _close(tag, dw, dw_ref, dtype)
                    _close(tag, db, db_ref, dtype)
            except ValueError as e:
                assert algo != "auto" and algo not in listed, f"{tag}: {e}"
            else:
                assert algo == "auto" or algo in listed, f"{tag} ran but is not listed"
    dx, dw, db = core.conv2d_backward(dy, x, w, *args, True)
    _close("conv2d_backward dx", dx, dx_ref, dtype)
    _close("conv2d_backward dw", dw, dw_ref, dtype)
    if g == 1:
        ks = ws[2:]
        cols = core.im2col(x, ks, stride, pad, dil)
        _close("im2col", cols, ref.im2col(x, ks, stride, pad, dil), dtype)
        _close("col2im", core.col2im(cols, xs, ks, stride, pad, dil),
               ref.col2im(cols, xs, ks, stride, pad, dil), dtype)
    print("OK")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("i", range(len(EXTREME)), ids=IDS)
def test_extreme_conv_like_reference(i, dtype):
    assert "OK" in run_isolated(f"t.check_conv({i}, {dtype!r})")


def check_issue_reproducers() -> None:
    import convforge as cf

    x, w = np.ones((1, 1, 5, 6), np.float32), np.ones((1, 1, 3, 3), np.float32)
    for kw in (dict(stride=2**61, padding=2**61), dict(dilation=2**60, padding=2**60)):
        s, p, d = kw.get("stride", 1), kw["padding"], kw.get("dilation", 1)
        want = ref.conv2d(x, w, None, (s, s), (p,) * 4, (d, d), 1)
        np.testing.assert_array_equal(cf.F.conv2d(x, w, **kw), want)
        dy = np.ones(want.shape, np.float32)
        got = cf.F.conv2d_backward(dy, x, w, **kw, bias=False)
        for a, r in zip(got, ref.conv2d_backward(dy, x, w, (s, s), (p,) * 4, (d, d), 1, False)):
            if r is not None:
                np.testing.assert_array_equal(a, r)
    for kw in (dict(dilation=2**62, padding=2**62), dict(stride=2**61, padding=2**63 - 2)):
        try:
            cf.F.conv2d(x, w, **kw)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{kw}: no ValueError")
    print("OK")


def test_issue_reproducers():
    """The issue's exact commands: 3x3 and 5x6 outputs like the reference, and a ValueError
    where the dilated kernel / padded extent does not fit in int64 (was a segfault / a silently
    wrong result)."""
    assert "OK" in run_isolated("t.check_issue_reproducers()")


def check_size_errors() -> None:
    one = np.ones((1, 1, 1, 1), np.float32)
    msgs = []
    for pad in ((2**31,) * 4, (2**62, 2**62, 0, 0)):  # output elements / padded height overflow
        try:
            core.conv2d_forward(one, one, None, (1, 1), pad, (1, 1), 1)
        except ValueError as e:
            msgs.append(str(e))
        else:
            raise AssertionError(f"padding {pad}: no ValueError")
    assert "does not fit in int64" in msgs[0] and "(1, 1, 1, 1)" in msgs[0], msgs
    try:  # fits int64 but not in memory: MemoryError, not an abort
        core.conv2d_forward(one, one, None, (1, 1), (2**20,) * 4, (1, 1), 1)
    except MemoryError:
        pass
    else:
        raise AssertionError("16 TiB output: no MemoryError")
    try:
        core.im2col(np.ones((1, 2**20, 1, 1), np.float32), (2**20, 2**20), (1, 1),
                    (2**20, 2**20, 2**20, 2**20), (1, 1))
    except ValueError as e:
        assert "does not fit in int64" in str(e), e
    else:
        raise AssertionError("im2col cols overflow: no ValueError")
    print("OK")


def test_size_errors():
    assert "OK" in run_isolated("t.check_size_errors()")


def check_pool(dtype_name: str) -> None:
    import convforge as cf

    dtype = np.dtype(dtype_name).type
    x = np.random.default_rng(3).integers(-9, 9, (2, 3, 5, 6)).astype(dtype)
    for kw in (dict(kernel_size=3, stride=2**62, padding=1),
               dict(kernel_size=(1, 2), stride=(2**40, 1)),
               dict(kernel_size=3, stride=2**62, padding=1, ceil_mode=True)):
        for op in ("max_pool2d", "min_pool2d", "avg_pool2d"):
            want = getattr(cf.F, op)(x, backend="reference", **kw)
            got = getattr(cf.F, op)(x, backend="cpu", **kw)
            np.testing.assert_array_equal(got, want, err_msg=f"{op} {kw}")
            dy = np.ones(want.shape, dtype)
            bw = getattr(cf.F, op + "_backward")
            got_dx, want_dx = (bw(dy, x, backend=b, **kw) for b in ("cpu", "reference"))
            np.testing.assert_array_equal(got_dx, want_dx, err_msg=f"{op} backward {kw}")
    print("OK")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_pool_like_reference(dtype):
    assert "OK" in run_isolated(f"t.check_pool({dtype!r})")
