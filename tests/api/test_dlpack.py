"""DLPack at the functional boundary (issue #16 item 1): torch tensors in, torch tensors out,
zero-copy both ways, the same bits as the NumPy call; non-contiguous views; in-place updates
write through; devices convforge does not take get a TypeError."""

from __future__ import annotations

import numpy as np
import pytest

import convforge.functional as F
from convforge.functional import _interop

from conftest import assert_same_bits

torch = pytest.importorskip("torch")


def _t(rng, shape):
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))


def test_ops_answer_in_torch_with_numpys_bits(rng):
    x, w, b = _t(rng, (2, 3, 8, 8)), _t(rng, (4, 3, 3, 3)), _t(rng, (4,))
    y = F.conv2d(x, w, b, padding=1)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 4, 8, 8)
    assert_same_bits(y.numpy(), F.conv2d(x.numpy(), w.numpy(), b.numpy(), padding=1), what="y")
    grads = F.conv2d_backward(torch.ones_like(y), x, w, padding=1)
    assert all(isinstance(g, torch.Tensor) for g in grads)
    p, idx = F.max_pool2d(y, 2, return_indices=True)
    assert isinstance(p, torch.Tensor) and idx.dtype == torch.int64
    mean, var = F.batch_norm_stats(y)
    assert mean.dtype == torch.float64
    loss, dlogits = F.softmax_cross_entropy(_t(rng, (5, 10)), torch.arange(5))
    assert loss.ndim == 0 and isinstance(dlogits, torch.Tensor)
    assert isinstance(F.dropout(x, 0.5, seed=3), torch.Tensor)
    mixed = F.conv2d(x.numpy(), w, padding=1)          # one torch argument is enough
    assert isinstance(mixed, torch.Tensor)


def test_zero_copy_both_ways(rng):
    x = _t(rng, (2, 3, 4, 4))
    native, lib = _interop.to_native(x)
    assert lib == "torch" and np.shares_memory(native, x.numpy())
    out = np.ones(3, np.float32)
    back = _interop.back((out, None, 3), "torch")
    assert back[0].data_ptr() == out.ctypes.data and back[1:] == (None, 3)


def test_non_contiguous_views(rng):
    x = _t(rng, (2, 3, 8, 6)).transpose(2, 3)          # strides, not C order
    assert not x.is_contiguous()
    got = F.max_pool2d(x, 2)
    assert_same_bits(got.numpy(), F.max_pool2d(np.ascontiguousarray(x.numpy()), 2),
                     what="pool of a transposed view")


def test_in_place_updates_write_through():
    p, g = [torch.zeros(4)], [torch.ones(4)]
    m, v = [torch.zeros(4)], [torch.zeros(4)]
    F.adam_update(p, g, m, v, lr=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=1)
    assert torch.allclose(p[0], torch.full((4,), -0.1)) and m[0].abs().sum() > 0


class _Device:
    """A DLPack producer on another device (no data: only the device query is reached)."""

    def __init__(self, kind):
        self.kind = kind

    def __dlpack__(self, **kw):
        raise AssertionError("never exported")

    def __dlpack_device__(self):
        return (self.kind, 0)


def test_devices_and_errors(monkeypatch):
    with pytest.raises(TypeError, match="DLPack device type 7"):
        F.activation(_Device(7))
    import builtins

    real_import = builtins.__import__

    def no_cupy(name, *a, **k):
        if name == "cupy":
            raise ImportError("no cupy")
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_cupy)
    with pytest.raises(TypeError, match="needs CuPy"):
        F.activation(_Device(2))
    monkeypatch.undo()
    with pytest.raises(TypeError, match="cannot take a Tensor through DLPack"):
        F.activation(torch.ones(3, requires_grad=True))
