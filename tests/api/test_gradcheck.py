"""Finite-difference gradient checks in float64, through the public API, on every backend under
test: conv2d (dx, dw, db) and every pooling op. For a random cotangent g the scalar
f = <op(inputs), g> has gradient op_backward(g, ...); central differences check it element by
element on tiny shapes, and along random directions on a larger one."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import distinct, fd_grad, randn

H = 1e-4        # step; every f here is piecewise linear, so central differences are exact
RTOL = 1e-7     # up to rounding


def check_grad(analytic: np.ndarray, numeric: np.ndarray, what: str) -> None:
    scale = max(float(np.abs(numeric).max()), 1.0)
    err = np.abs(analytic - numeric)
    i = np.unravel_index(int(np.argmax(err)), err.shape)
    assert err[i] <= RTOL * scale, (
        f"{what}: analytic {analytic[i]!r} vs finite difference {numeric[i]!r} at index "
        f"{tuple(int(j) for j in i)} (abs err {err[i]:.3e}, {int((err > RTOL * scale).sum())} "
        f"of {err.size} elements off)")


CONV_CASES = [
    pytest.param(dict(x=(1, 2, 5, 4), w=(3, 2, 3, 2), stride=(2, 1), padding=(1, 0, 2, 1),
                      dilation=(1, 2)), id="stride_pad4_dilation"),
    pytest.param(dict(x=(2, 4, 4, 4), w=(4, 2, 2, 2), padding="same", groups=2), id="groups_same"),
    pytest.param(dict(x=(1, 3, 5, 5), w=(3, 1, 3, 3), stride=2, padding=1, groups=3),
                 id="depthwise"),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_gradients(backend, case, rng):
    kw = {k: v for k, v in case.items() if k not in ("x", "w")}
    x, w = randn(rng, case["x"]), randn(rng, case["w"])
    b = randn(rng, (case["w"][0],))
    g = randn(rng, backend("conv2d", x, w, b, **kw).shape)

    def f():
        return float(np.vdot(backend("conv2d", x, w, b, **kw), g))

    dx, dw, db = backend("conv2d_backward", g, x, w, bias=True, **kw)
    check_grad(dx, fd_grad(f, x, H), f"{backend.name} conv2d dx")
    check_grad(dw, fd_grad(f, w, H), f"{backend.name} conv2d dw")
    check_grad(db, fd_grad(f, b, H), f"{backend.name} conv2d db")


def test_conv2d_gradients_random_directions(backend, rng):
    """Larger shape: directional derivatives along 3 random directions per argument."""
    kw = dict(stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2)
    x, w, b = randn(rng, (2, 4, 9, 8)), randn(rng, (6, 2, 3, 3)), randn(rng, (6,))
    g = randn(rng, backend("conv2d", x, w, b, **kw).shape)
    dx, dw, db = backend("conv2d_backward", g, x, w, **kw)

    def f(x_, w_, b_):
        return float(np.vdot(backend("conv2d", x_, w_, b_, **kw), g))

    for _ in range(3):
        vx, vw, vb = randn(rng, x.shape), randn(rng, w.shape), randn(rng, b.shape)
        for name, grad, plus, minus, v in [
            ("dx", dx, (x + H * vx, w, b), (x - H * vx, w, b), vx),
            ("dw", dw, (x, w + H * vw, b), (x, w - H * vw, b), vw),
            ("db", db, (x, w, b + H * vb), (x, w, b - H * vb), vb),
        ]:
            numeric = (f(*plus) - f(*minus)) / (2 * H)
            analytic = float(np.vdot(grad, v))
            assert abs(numeric - analytic) <= 1e-6 * max(abs(numeric), 1.0), \
                f"{backend.name} conv2d {name}: <grad, v> = {analytic!r}, finite difference " \
                f"{numeric!r}"


POOL_CASES = [
    pytest.param(dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), id="k3s2p1_ceil"),
    pytest.param(dict(kernel_size=2, stride=1), id="k2s1"),
    pytest.param(dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 0)), id="k2x3_s1x2_p1x0"),
]


@pytest.mark.parametrize("mode", ["max", "min", "avg", "avg_exclude_pad"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_gradients(backend, case, mode, rng):
    """Values spaced >= 0.05 apart: a step of 1e-4 never changes which element is the max."""
    x = distinct(rng, (1, 2, 5, 6))
    if mode in ("max", "min"):
        op, extra = f"{mode}_pool2d", {}
    else:
        op, extra = "avg_pool2d", dict(count_include_pad=(mode == "avg"))
    g = randn(rng, backend(op, x, **case, **extra).shape)

    def f():
        return float(np.vdot(backend(op, x, **case, **extra), g))

    dx = backend(op + "_backward", g, x, **case, **extra)
    check_grad(dx, fd_grad(f, x, H), f"{backend.name} {op}({mode}) dx")


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_global_pool_gradients(backend, mode, rng):
    x = distinct(rng, (2, 3, 3, 4))
    op = f"global_{mode}_pool2d"
    g = randn(rng, (2, 3))

    def f():
        return float(np.vdot(backend(op, x), g))

    dx = backend(op + "_backward", g, x)
    check_grad(dx, fd_grad(f, x, H), f"{backend.name} {op} dx")
