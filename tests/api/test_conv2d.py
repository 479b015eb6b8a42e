"""conv2d and conv2d_backward (dx, dw, db) on every backend under test, float32 and float64,
compared element-wise to the float64 oracle on a shape grid; small-integer inputs compared
exactly; NaN propagation; every CPU instruction-set path."""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Tuple, Union

import numpy as np
import pytest

from conftest import (
    DTYPES,
    ISAS,
    assert_close,
    assert_exact,
    assert_same_bits,
    available_isas,
    randint,
    randn,
    ref,
)

Pad = Union[int, str, Tuple[int, ...]]


@dataclass(frozen=True)
class ConvCase:
    id: str
    x: Tuple[int, int, int, int]          # (N, C, H, W)
    w: Tuple[int, int, int, int]          # (K, C/G, KH, KW)
    stride: Union[int, Tuple[int, int]] = 1
    padding: Pad = 0
    dilation: Union[int, Tuple[int, int]] = 1
    groups: int = 1
    bias: bool = True

    def kw(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)

    @property
    def red_forward(self) -> int:
        """Terms summed per output: C/G * KH * KW."""
        return self.w[1] * self.w[2] * self.w[3]

    @property
    def red_dx(self) -> int:
        """Upper bound of the terms summed per dx element: K/G * KH * KW."""
        return self.w[0] // self.groups * self.w[2] * self.w[3]


CASES = [
    ConvCase("n1_c1_k1", (1, 1, 5, 5), (1, 1, 3, 3)),
    ConvCase("odd_nonsquare", (2, 3, 7, 10), (4, 3, 3, 2), bias=False),
    ConvCase("1x1", (2, 5, 6, 4), (7, 5, 1, 1)),
    ConvCase("1x1_stride2", (2, 4, 7, 5), (3, 4, 1, 1), stride=2, bias=False),
    ConvCase("kernel_eq_input", (2, 3, 5, 4), (2, 3, 5, 4)),
    ConvCase("kernel_eq_padded_input", (1, 2, 3, 4), (3, 2, 5, 6), padding=1),
    ConvCase("stride_hw", (2, 3, 11, 9), (4, 3, 3, 3), stride=(2, 3), padding=(1, 2)),
    ConvCase("dilation_hw", (2, 2, 9, 8), (3, 2, 3, 2), padding=(2, 1), dilation=(2, 3),
             bias=False),
    ConvCase("pad4", (2, 3, 6, 7), (2, 3, 3, 3), padding=(0, 2, 1, 3)),
    ConvCase("pad_gt_kernel", (1, 2, 4, 4), (2, 2, 2, 2), padding=(3, 2, 2, 3), bias=False),
    ConvCase("same_odd", (2, 3, 7, 6), (4, 3, 3, 5), padding="same"),
    ConvCase("same_even_stride2", (2, 2, 9, 8), (3, 2, 4, 2), stride=2, padding="same",
             bias=False),
    ConvCase("same_dilated", (1, 2, 8, 9), (2, 2, 3, 3), padding="same", dilation=2),
    ConvCase("valid_stride2", (2, 3, 9, 10), (5, 3, 3, 3), stride=2, padding="valid"),
    ConvCase("groups2", (2, 4, 6, 7), (6, 2, 3, 3), padding=1, groups=2),
    ConvCase("groups3_nobias", (2, 6, 5, 5), (3, 2, 2, 3), groups=3, bias=False),
    ConvCase("depthwise", (2, 5, 8, 7), (5, 1, 3, 3), padding=1, groups=5),
    ConvCase("depthwise_x2", (2, 3, 6, 6), (6, 1, 3, 3), stride=2, groups=3, bias=False),
    ConvCase("everything", (3, 4, 10, 9), (6, 2, 3, 2), stride=(2, 1), padding=(1, 0, 2, 1),
             dilation=(1, 2), groups=2),
    ConvCase("wide_channels", (2, 19, 5, 6), (13, 19, 3, 3), padding=1),
]

# Network layer shapes (small N): LeNet-5 and VGG on CIFAR-size inputs.
LAYER_CASES = [
    ConvCase("lenet_c1", (2, 1, 32, 32), (6, 1, 5, 5)),
    ConvCase("lenet_c2", (2, 6, 14, 14), (16, 6, 5, 5)),
    ConvCase("vgg_3_64_32px", (2, 3, 32, 32), (64, 3, 3, 3), padding=1),
    ConvCase("vgg_64_64_32px", (2, 64, 32, 32), (64, 64, 3, 3), padding=1),
    ConvCase("vgg_256_256_8px", (2, 256, 8, 8), (256, 256, 3, 3), padding=1),
    ConvCase("vgg_512_512_4px", (1, 512, 4, 4), (512, 512, 3, 3), padding=1),
    ConvCase("vgg_512_512_2px", (2, 512, 2, 2), (512, 512, 3, 3), padding=1),
]

ALL_CASES = [pytest.param(c, id=c.id) for c in CASES] + \
    [pytest.param(c, id=c.id, marks=pytest.mark.slow) for c in LAYER_CASES]
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


@functools.lru_cache(maxsize=None)
def _conv_data(case: ConvCase, dtype_name: str, integer: bool) -> SimpleNamespace:
    """Inputs (seeded by the case id) and the oracle's forward and backward results."""
    dtype = np.dtype(dtype_name)
    rng = np.random.default_rng(zlib.crc32(f"{case.id}/{dtype_name}/{integer}".encode()))
    make = randint if integer else randn
    x = make(rng, case.x, dtype)
    w = make(rng, case.w, dtype)
    b = make(rng, (case.w[0],), dtype) if case.bias else None
    y = ref("conv2d", x, w, b, **case.kw())
    dy = make(rng, y.shape, dtype)
    dx, dw, db = ref("conv2d_backward", dy, x, w, bias=case.bias, **case.kw())
    d = SimpleNamespace(x=x, w=w, b=b, dy=dy, y=y, dx=dx, dw=dw, db=db)
    for a in vars(d).values():
        if a is not None:
            a.flags.writeable = False
    return d


def conv_data(case: ConvCase, dtype, integer: bool = False) -> SimpleNamespace:
    """Fresh writable copies of the inputs (x, w, b, dy) and the cached expected results."""
    d = _conv_data(case, np.dtype(dtype).name, integer)
    copy = {k: (None if getattr(d, k) is None else getattr(d, k).copy())
            for k in ("x", "w", "b", "dy")}
    return SimpleNamespace(**{**vars(d), **copy})


def check_forward(be, case: ConvCase, dtype) -> None:
    d = conv_data(case, dtype)
    y = be("conv2d", d.x, d.w, d.b, **case.kw())
    assert_close(y, d.y, dtype, case.red_forward, what=f"{be.name} conv2d y")


def check_backward(be, case: ConvCase, dtype) -> None:
    d = conv_data(case, dtype)
    dx, dw, db = be("conv2d_backward", d.dy, d.x, d.w, bias=case.bias, **case.kw())
    n_out = d.dy.shape[0] * d.dy.shape[2] * d.dy.shape[3]
    assert_close(dx, d.dx, dtype, case.red_dx, what=f"{be.name} conv2d_backward dx")
    assert_close(dw, d.dw, dtype, n_out, what=f"{be.name} conv2d_backward dw")
    if case.bias:
        assert_close(db, d.db, dtype, n_out, what=f"{be.name} conv2d_backward db")
    else:
        assert db is None, f"db must be None when bias=False, got {type(db).__name__}"


@dtypes
@pytest.mark.parametrize("case", ALL_CASES)
def test_conv2d_forward(backend, case, dtype):
    check_forward(backend, case, dtype)


@dtypes
@pytest.mark.parametrize("case", ALL_CASES)
def test_conv2d_backward(backend, case, dtype):
    check_backward(backend, case, dtype)


@dtypes
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES] +
                         [pytest.param(LAYER_CASES[1], id=LAYER_CASES[1].id)])
def test_conv2d_integer_exact(backend, case, dtype):
    """Small-integer inputs: every partial sum is an integer below 2**24, so both dtypes must
    match the oracle bit for bit whatever the summation order."""
    d = conv_data(case, dtype, integer=True)
    y = backend("conv2d", d.x, d.w, d.b, **case.kw())
    assert_exact(y, d.y, dtype, what=f"{backend.name} conv2d y")
    dx, dw, db = backend("conv2d_backward", d.dy, d.x, d.w, bias=case.bias, **case.kw())
    assert_exact(dx, d.dx, dtype, what=f"{backend.name} conv2d_backward dx")
    assert_exact(dw, d.dw, dtype, what=f"{backend.name} conv2d_backward dw")
    if case.bias:
        assert_exact(db, d.db, dtype, what=f"{backend.name} conv2d_backward db")


@dtypes
def test_conv2d_bias_adds_per_channel(backend, dtype, rng):
    """y(b) - y(None) is b[k] at every position of channel k."""
    x, w, b = randint(rng, (2, 3, 5, 6), dtype), randint(rng, (4, 3, 3, 3), dtype), \
        randint(rng, (4,), dtype)
    y_b = backend("conv2d", x, w, b, padding=1)
    y_0 = backend("conv2d", x, w, None, padding=1)
    assert_exact(y_b - y_0, np.broadcast_to(b[None, :, None, None], y_b.shape).astype(dtype),
                 dtype, what="y(b) - y(None)")


@dtypes
def test_conv2d_nan_propagates(backend, dtype, rng):
    """A NaN in x poisons exactly the outputs whose window holds it (padding included); a NaN
    in w poisons its whole output channel."""
    x, w = randn(rng, (2, 3, 7, 6), dtype), randn(rng, (4, 3, 3, 3), dtype)
    x[1, 2, 0, 3] = np.nan                                   # on the border: padded windows
    kw = dict(stride=(1, 2), padding=1)
    y = backend("conv2d", x, w, None, **kw)
    expected = ref("conv2d", x, w, None, **kw)
    assert np.isnan(expected).any() and not np.isnan(expected).all()
    assert_close(y, expected, dtype, 27, what=f"{backend.name} conv2d y with NaN in x")
    x = randn(rng, (2, 3, 7, 6), dtype)
    w[2, 1, 2, 0] = np.nan
    y = backend("conv2d", x, w, None)
    expected = ref("conv2d", x, w, None)
    assert np.isnan(expected[:, 2]).all() and not np.isnan(expected[:, [0, 1, 3]]).any()
    assert_close(y, expected, dtype, 27, what=f"{backend.name} conv2d y with NaN in w")


@pytest.mark.parametrize("isa", ISAS)
def test_conv2d_cpu_isa_paths(backend, restore_core, isa):
    """The cpu backend's kernels for every instruction set this CPU supports."""
    if backend.name != "cpu":
        pytest.skip("instruction-set dispatch exists only in the cpu backend")
    from convforge import _core

    if isa not in available_isas(_core):
        pytest.skip(f"this CPU does not support isa {isa!r}")
    _core.set_isa(isa)
    for case in (CASES[2], CASES[6], CASES[-2], LAYER_CASES[1]):
        for dtype in DTYPES:
            check_forward(backend, case, dtype)
            check_backward(backend, case, dtype)


@dtypes
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES[:4]])
def test_conv2d_backward_skips_what_is_not_needed(backend, case, dtype):
    """need_dx=False gives (None, dw, db) and need_dw=False (dx, None, None), each the same
    bits as the full call's (the directions are independent kernels)."""
    d = conv_data(case, dtype)
    dx, dw, db = backend("conv2d_backward", d.dy, d.x, d.w, bias=case.bias, **case.kw())
    no_dx = backend("conv2d_backward", d.dy, d.x, d.w, bias=case.bias, need_dx=False,
                    **case.kw())
    assert no_dx[0] is None
    assert_same_bits(no_dx[1], dw, what=f"{backend.name} dw without dx")
    if case.bias:
        assert_same_bits(no_dx[2], db, what=f"{backend.name} db without dx")
    no_dw = backend("conv2d_backward", d.dy, d.x, d.w, bias=case.bias, need_dw=False,
                    **case.kw())
    assert no_dw[1] is None and no_dw[2] is None
    assert_same_bits(no_dw[0], dx, what=f"{backend.name} dx without dw")
    empty = backend("conv2d_backward", d.dy[:0], d.x[:0], d.w, bias=case.bias, need_dx=False,
                    **case.kw())
    assert empty[0] is None and empty[1].shape == d.w.shape


@dtypes
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES[:4]])
def test_conv2d_relu_activation(backend, case, dtype):
    """activation='relu' is relu(conv2d(...)): the same bits on the cpu and numba backends (the
    epilogue / a pass over y), within rounding on the reference (ReLU before the cast)."""
    d = conv_data(case, dtype)
    got = backend("conv2d", d.x, d.w, d.b, activation="relu", **case.kw())
    want = backend("activation", backend("conv2d", d.x, d.w, d.b, **case.kw()), "relu")
    assert (got >= 0).all()
    assert_close(got, want, dtype, case.red_forward, what=f"{backend.name} conv2d relu")
    if backend.name in ("cpu", "numba"):
        assert_same_bits(got, want, what=f"{backend.name} conv2d relu")
    with pytest.raises(ValueError, match="activation must be"):
        backend("conv2d", d.x, d.w, d.b, activation="tanh", **case.kw())
