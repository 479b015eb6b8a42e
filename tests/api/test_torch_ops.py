"""convforge.torch (issue #16 item 2): the torch.library custom ops pass torch.library.opcheck
(schema, fake kernels, autograd registration, AOT dispatch with dynamic shapes), their
gradients pass torch.autograd.gradcheck in float64, torch.compile(fullgraph=True) of a small
CNN gives the eager result, and patch(model) keeps the weights and gives torch's outputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cft = pytest.importorskip("convforge.torch")
nn = torch.nn
TF = torch.nn.functional
ops = torch.ops.convforge


def _r(*shape, grad=False, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed + len(shape) + sum(shape))
    return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(grad)


CONV = [  # x, w, stride, padding (t, b, l, r), dilation, groups
    ((2, 3, 7, 6), (4, 3, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((2, 4, 9, 8), (6, 2, 3, 2), [2, 2], [1, 1, 2, 2], [2, 2], 2),
    ((1, 3, 6, 6), (3, 1, 3, 3), [2, 1], [0, 1, 1, 0], [1, 1], 3),
]
POOL = [  # x, kernel, stride, padding, ceil_mode
    ((2, 3, 7, 6), [2, 2], [2, 2], [0, 0], False),
    ((1, 2, 9, 8), [3, 3], [2, 2], [1, 1], True),
    ((2, 2, 5, 7), [3, 2], [1, 2], [1, 0], False),
]


# --------------------------------------------------------------------------- opcheck

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CONV)
def test_opcheck_conv2d(case, dtype):
    xs, ws, st, pad, dil, g = case
    x, w, b = _r(*xs, grad=True, dtype=dtype), _r(*ws, grad=True, dtype=dtype), \
        _r(ws[0], grad=True, dtype=dtype)
    torch.library.opcheck(ops.conv2d, (x, w, b, st, pad, dil, g))
    torch.library.opcheck(ops.conv2d, (x, w, None, st, pad, dil, g))
    y = ops.conv2d(x, w, b, st, pad, dil, g)
    dy = _r(*y.shape, dtype=dtype)
    for mask in ([True, True, True], [False, True, False], [True, False, False]):
        torch.library.opcheck(ops.conv2d_backward,
                              (dy, x.detach(), w.detach(), st, pad, dil, g, True, mask))
    torch.library.opcheck(ops.conv2d_backward, (dy, x.detach(), w.detach(), st, pad, dil, g,
                                                False, [True, True, True]))


@pytest.mark.parametrize("case", POOL)
def test_opcheck_pools(case):
    xs, ks, st, pad, ceil = case
    # distinct values: no ties, so the max/min and their indices are well defined
    x = (torch.randperm(int(np.prod(xs)), generator=torch.Generator().manual_seed(1))
         .reshape(xs).double().requires_grad_(True))
    for op in (ops.max_pool2d, ops.min_pool2d):
        torch.library.opcheck(op, (x, ks, st, pad, ceil))
        y, idx = op(x, ks, st, pad, ceil)
        bwd = ops.max_pool2d_backward if op is ops.max_pool2d else ops.min_pool2d_backward
        torch.library.opcheck(bwd, (_r(*y.shape), x.detach(), idx, ks, st, pad, ceil))
    for cip in (True, False):
        torch.library.opcheck(ops.avg_pool2d, (x, ks, st, pad, ceil, cip))
        y = ops.avg_pool2d(x, ks, st, pad, ceil, cip)
        torch.library.opcheck(ops.avg_pool2d_backward,
                              (_r(*y.shape), x.detach(), ks, st, pad, ceil, cip))
    torch.library.opcheck(ops.global_avg_pool2d, (x,))
    torch.library.opcheck(ops.global_max_pool2d, (x,))
    dy = _r(*xs[:2])
    torch.library.opcheck(ops.global_avg_pool2d_backward, (dy, x.detach()))
    torch.library.opcheck(ops.global_max_pool2d_backward,
                          (dy, x.detach(), ops.global_max_pool2d(x)[1]))


# --------------------------------------------------------------------------- gradcheck

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONV)
def test_gradcheck_conv2d(case, bias):
    xs, ws, st, pad, dil, g = case
    x, w = _r(*xs, grad=True), _r(*ws, grad=True)
    b = _r(ws[0], grad=True) if bias else None
    assert torch.autograd.gradcheck(lambda x, w, b: ops.conv2d(x, w, b, st, pad, dil, g),
                                    (x, w, b))


def test_conv2d_matches_torch_functional():
    x, w, b = _r(2, 4, 9, 9), _r(6, 2, 3, 3), _r(6)
    for kw in (dict(stride=2, padding=(1, 2), dilation=2, groups=2),
               dict(padding="same", groups=2), dict(padding="valid", stride=(1, 2), groups=2)):
        torch.testing.assert_close(cft.conv2d(x, w, b, **kw), TF.conv2d(x, w, b, **kw))
    torch.testing.assert_close(cft.conv2d(x[0], w, b, padding=1, groups=2),
                               TF.conv2d(x[0], w, b, padding=1, groups=2))


@pytest.mark.parametrize("case", POOL)
def test_gradcheck_pools(case):
    xs, ks, st, pad, ceil = case
    x = (torch.randperm(int(np.prod(xs)), generator=torch.Generator().manual_seed(2))
         .reshape(xs).double() / 7).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: ops.max_pool2d(x, ks, st, pad, ceil)[0], (x,))
    assert torch.autograd.gradcheck(lambda x: ops.min_pool2d(x, ks, st, pad, ceil)[0], (x,))
    for cip in (True, False):
        assert torch.autograd.gradcheck(
            lambda x, cip=cip: ops.avg_pool2d(x, ks, st, pad, ceil, cip), (x,))
    assert torch.autograd.gradcheck(ops.global_avg_pool2d, (x,))
    assert torch.autograd.gradcheck(lambda x: ops.global_max_pool2d(x)[0], (x,))


@pytest.mark.parametrize("case", POOL)
def test_pools_match_torch(case):
    xs, ks, st, pad, ceil = case
    x = _r(*xs)
    y, idx = cft.max_pool2d(x, ks, st, pad, ceil_mode=ceil, return_indices=True)
    ty, tidx = TF.max_pool2d(x, ks, st, pad, ceil_mode=ceil, return_indices=True)
    torch.testing.assert_close(y, ty)
    assert torch.equal(idx, tidx)
    torch.testing.assert_close(cft.min_pool2d(x, ks, st, pad, ceil_mode=ceil),
                               -TF.max_pool2d(-x, ks, st, pad, ceil_mode=ceil))
    for cip in (True, False):
        torch.testing.assert_close(cft.avg_pool2d(x, ks, st, pad, ceil, cip),
                                   TF.avg_pool2d(x, ks, st, pad, ceil, cip))
    torch.testing.assert_close(cft.global_avg_pool2d(x), x.mean((2, 3)))
    torch.testing.assert_close(cft.global_max_pool2d(x), x.amax((2, 3)))


def test_errors():
    with pytest.raises(TypeError, match="float32 or float64"):
        cft.conv2d(torch.zeros(1, 1, 4, 4, dtype=torch.float16),
                   torch.zeros(1, 1, 3, 3, dtype=torch.float16))
    with pytest.raises(TypeError, match="float32 or float64"):
        cft.max_pool2d(torch.zeros(1, 1, 4, 4, dtype=torch.int32), 2)
    with pytest.raises(ValueError, match="padding_mode"):
        cft.Conv2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="dilation"):
        cft.MaxPool2d(2, dilation=2)
    with pytest.raises(ValueError, match="divisor_override"):
        cft.AvgPool2d(2, divisor_override=3)
    with pytest.raises(ValueError, match="output_size"):
        cft.AdaptiveAvgPool2d(2)


def test_convforge_does_not_import_torch():
    code = ("import sys, convforge, convforge.functional, convforge.nn; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- modules, compile

def _small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2, bias=False), nn.ReLU(),
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
        nn.Conv2d(8, 16, 3, dilation=2, padding="same"), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(16, 5))


def test_patch_keeps_weights_and_matches_torch():
    model = _small_cnn()
    x = _r(4, 3, 16, 16, dtype=torch.float32)
    params = {k: v for k, v in model.named_parameters()}
    ref = model(x)
    ref.sum().backward()
    ref_grads = {k: v.grad.clone() for k, v in params.items()}
    model.zero_grad()
    assert cft.patch(model) is model
    assert [type(m) for m in model][:3] == [cft.Conv2d, nn.ReLU, cft.MaxPool2d]
    assert isinstance(model[7], cft.AdaptiveAvgPool2d) and isinstance(model[5], cft.AvgPool2d)
    assert all(v is params[k] for k, v in model.named_parameters())
    y = model(x)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    y.sum().backward()
    for k, v in params.items():
        torch.testing.assert_close(v.grad, ref_grads[k], rtol=1e-4, atol=1e-5)
    assert set(model.state_dict()) == set(params)


def test_patch_leaves_unsupported_modules():
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"),
                          nn.AdaptiveAvgPool2d(2))
    with pytest.warns(UserWarning, match="stays torch's"):
        cft.patch(model)
    assert type(model[0]) is nn.Conv2d and type(model[1]) is nn.AdaptiveAvgPool2d


def test_modules_construct_like_torch():
    torch.manual_seed(3)
    a = nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2)
    torch.manual_seed(3)
    b = cft.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    x = _r(2, 4, 8, 8, dtype=torch.float32)
    torch.testing.assert_close(b(x), a(x))
    y, idx = cft.MaxPool2d(2, return_indices=True)(x)
    assert torch.equal(idx, nn.MaxPool2d(2, return_indices=True)(x)[1])
    torch.testing.assert_close(cft.AdaptiveMaxPool2d(1)(x), nn.AdaptiveMaxPool2d(1)(x))


def test_torch_compile_fullgraph_matches_eager():
    model = cft.patch(_small_cnn())
    x = _r(2, 3, 16, 16, dtype=torch.float32)
    eager = model(x)
    eager.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True, backend="inductor")
    y = compiled(x)
    torch.testing.assert_close(y, eager, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    for p, g in zip(model.parameters(), grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- tiny LeNet-5

def _lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
        nn.ReLU(), nn.Linear(84, 10))


def _train(patched: bool, x, y):
    torch.manual_seed(0)
    model = _lenet()
    if patched:
        cft.patch(model)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for i in list(range(0, len(x), 32)) * 4:
        opt.zero_grad()
        loss = TF.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        opt.step()
    with torch.no_grad():
        return TF.cross_entropy(model(x), y).item()


def test_tiny_lenet_trains_like_torch():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (256,), generator=g)
    # a learnable synthetic task: each class brightens its own block of the 32x32 image
    x = torch.rand(256, 1, 32, 32, generator=g) * 0.3
    for c in range(10):
        r, col = divmod(c, 4)
        x[y == c, :, r * 10:r * 10 + 8, col * 8:col * 8 + 6] += 0.7
    ours, theirs = _train(True, x, y), _train(False, x, y)
    assert ours < 1.0 and abs(ours - theirs) < 1e-2 * max(1.0, theirs), (ours, theirs)


@pytest.mark.parametrize("case", CONV[:2])
def test_gradgradcheck_conv2d(case):
    """conv2d_backward's own autograd formula (double backward)."""
    xs, ws, st, pad, dil, g = case
    x, w, b = _r(*xs, grad=True), _r(*ws, grad=True), _r(ws[0], grad=True)
    assert torch.autograd.gradgradcheck(lambda x, w, b: ops.conv2d(x, w, b, st, pad, dil, g),
                                        (x, w, b))
    y = ops.conv2d(x, w, b, st, pad, dil, g)
    dy = _r(*y.shape, grad=True)
    torch.library.opcheck(ops.conv2d_backward, (dy, x, w, st, pad, dil, g, True,
                                                [True, True, True]))
