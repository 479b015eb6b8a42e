"""Optional PyTorch parity: conv2d (+ backward) and pooling against torch.nn.functional in
float64 on a few shapes with symmetric padding (torch's NCHW/OIHW layouts are ours). Runs on
'reference' too, which checks the oracle itself against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_close, assert_exact, randn

torch = pytest.importorskip("torch")
TF = torch.nn.functional

CONV = [
    pytest.param(dict(x=(2, 3, 7, 6), w=(4, 3, 3, 3), stride=1, padding=1, dilation=1, groups=1),
                 id="3x3_pad1"),
    pytest.param(dict(x=(2, 4, 9, 8), w=(6, 2, 3, 2), stride=(2, 1), padding=(1, 0),
                      dilation=(1, 2), groups=2), id="stride_dilation_groups"),
    pytest.param(dict(x=(1, 3, 6, 6), w=(3, 1, 3, 3), stride=2, padding=1, dilation=1,
                      groups=3), id="depthwise_s2"),
    pytest.param(dict(x=(2, 6, 14, 14), w=(16, 6, 5, 5), stride=1, padding=0, dilation=1,
                      groups=1), id="lenet_c2"),
]


def t(a: np.ndarray, grad: bool = False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize("case", CONV)
def test_conv2d_vs_torch(any_backend, case, rng):
    kw = {k: v for k, v in case.items() if k not in ("x", "w")}
    x, w, b = randn(rng, case["x"]), randn(rng, case["w"]), randn(rng, (case["w"][0],))
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    yt = TF.conv2d(xt, wt, bt, **kw)
    dy = randn(rng, tuple(yt.shape))
    yt.backward(t(dy))
    red = case["w"][1] * case["w"][2] * case["w"][3]
    y = any_backend("conv2d", x, w, b, **kw)
    assert_close(y, yt.detach().numpy(), np.float64, red, what=f"{any_backend.name} conv2d y")
    dx, dw, db = any_backend("conv2d_backward", dy, x, w, **kw)
    n_out = dy.shape[0] * dy.shape[2] * dy.shape[3]
    assert_close(dx, xt.grad.numpy(), np.float64, red, what=f"{any_backend.name} dx")
    assert_close(dw, wt.grad.numpy(), np.float64, n_out, what=f"{any_backend.name} dw")
    assert_close(db, bt.grad.numpy(), np.float64, n_out, what=f"{any_backend.name} db")


POOL = [
    pytest.param(dict(kernel_size=2, stride=2, padding=0, ceil_mode=False), id="k2s2"),
    pytest.param(dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), id="k3s2p1_ceil"),
    pytest.param(dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1), ceil_mode=True),
                 id="k3x2_s1x2_p1_ceil"),
    pytest.param(dict(kernel_size=3, stride=1, padding=1, ceil_mode=False), id="k3s1p1"),
]


@pytest.mark.parametrize("case", POOL)
def test_max_min_pool_vs_torch(any_backend, case, rng):
    x = randn(rng, (2, 3, 7, 8))
    for sign, op in ((1, "max_pool2d"), (-1, "min_pool2d")):     # min(x) = -max(-x)
        xt = t(x, True)
        yt, it = TF.max_pool2d(sign * xt, return_indices=True, **case)
        yt = sign * yt
        dy = randn(rng, tuple(yt.shape))
        yt.backward(t(dy))
        y, idx = any_backend(op, x, return_indices=True, **case)
        assert_exact(y, yt.detach().numpy(), np.float64, what=f"{any_backend.name} {op}")
        assert_exact(idx, it.numpy(), np.int64, what=f"{any_backend.name} {op} indices")
        dx = any_backend(op + "_backward", dy, x, **case)
        assert_close(dx, xt.grad.numpy(), np.float64, 9, what=f"{any_backend.name} {op} dx")


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", POOL)
def test_avg_pool_vs_torch(any_backend, case, count_include_pad, rng):
    x = randn(rng, (2, 3, 7, 8))
    xt = t(x, True)
    yt = TF.avg_pool2d(xt, count_include_pad=count_include_pad, **case)
    dy = randn(rng, tuple(yt.shape))
    yt.backward(t(dy))
    y = any_backend("avg_pool2d", x, count_include_pad=count_include_pad, **case)
    assert_close(y, yt.detach().numpy(), np.float64, 9, what=f"{any_backend.name} avg pool")
    dx = any_backend("avg_pool2d_backward", dy, x, count_include_pad=count_include_pad, **case)
    assert_close(dx, xt.grad.numpy(), np.float64, 9, what=f"{any_backend.name} avg pool dx")


def test_global_pools_vs_torch(any_backend, rng):
    x = randn(rng, (2, 5, 6, 7))
    dy = randn(rng, (2, 5))
    xt = t(x, True)
    yt = TF.adaptive_avg_pool2d(xt, 1).reshape(2, 5)
    yt.backward(t(dy))
    assert_close(any_backend("global_avg_pool2d", x), yt.detach().numpy(), np.float64, 42,
                 what=f"{any_backend.name} global avg")
    assert_close(any_backend("global_avg_pool2d_backward", dy, x), xt.grad.numpy(), np.float64,
                 1, what=f"{any_backend.name} global avg dx")
    xt = t(x, True)
    yt, it = TF.adaptive_max_pool2d(xt, 1, return_indices=True)
    yt.reshape(2, 5).backward(t(dy))
    y, idx = any_backend("global_max_pool2d", x, return_indices=True)
    assert_exact(y, yt.detach().numpy().reshape(2, 5), np.float64, what="global max")
    assert_exact(idx, it.numpy().reshape(2, 5), np.int64, what="global max indices")
    assert_exact(any_backend("global_max_pool2d_backward", dy, x), xt.grad.numpy(), np.float64,
                 what=f"{any_backend.name} global max dx")
