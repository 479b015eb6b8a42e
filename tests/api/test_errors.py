"""Bad input raises ValueError/TypeError whose message names the argument (and the shapes or
values involved), before any kernel runs, on every backend under test and on 'reference'."""

from __future__ import annotations

import re

import numpy as np
import pytest

import convforge
from convforge import functional as F

X = (2, 3, 6, 5)          # (N, C, H, W)
W = (4, 3, 3, 3)          # (K, C, KH, KW)


def z(shape, dtype=np.float64) -> np.ndarray:
    return np.zeros(shape, dtype)


def s(shape) -> str:
    """A shape as the messages print it, as a regex."""
    return re.escape(str(tuple(shape)))


def pool_idx(shape=(2, 3, 3, 2), value=0, dtype=np.int64) -> np.ndarray:
    return np.full(shape, value, dtype)


# (id, call(be), exception type, regexes that must all occur in the message)
CASES = [
    # rank
    ("conv_x_ndim", lambda be: be("conv2d", z(X[2:]), z(W)), ValueError, ["x", s(X[2:])]),
    ("conv_w_ndim", lambda be: be("conv2d", z(X), z(W[1:])), ValueError, ["w", s(W[1:])]),
    ("conv_b_ndim", lambda be: be("conv2d", z(X), z(W), z((4, 1))), ValueError,
     ["b", s((4, 1))]),
    ("pool_x_ndim", lambda be: be("max_pool2d", z((6, 5)), 2), ValueError, ["x", s((6, 5))]),
    ("global_x_ndim", lambda be: be("global_avg_pool2d", z((2, 3))), ValueError,
     ["x", s((2, 3))]),
    ("im2col_x_ndim", lambda be: be("im2col", z((6, 5)), 3), ValueError, ["x", s((6, 5))]),
    ("col2im_cols_ndim", lambda be: be("col2im", z((2, 27)), X, 3), ValueError,
     ["cols", s((2, 27))]),
    ("col2im_input_shape", lambda be: be("col2im", z((2, 27, 12)), (3, 6, 5), 3), ValueError,
     ["input_shape", s((3, 6, 5))]),
    ("col2im_input_shape_rank", lambda be: be("col2im", z((2, 27, 12)), (6, 5), 3), ValueError,
     ["input_shape", s((6, 5))]),
    ("unbatched_dy_batched_x", lambda be: be("conv2d_backward", z((4, 4, 3)), z(X), z(W)),
     ValueError, ["dy", "x", s((4, 4, 3)), s(X)]),
    ("zero_channels", lambda be: be("conv2d", z((2, 0, 6, 5)), z((4, 0, 3, 3))), ValueError,
     ["x", s((2, 0, 6, 5))]),
    ("zero_filters", lambda be: be("conv2d", z(X), z((0, 3, 3, 3))), ValueError,
     ["w", s((0, 3, 3, 3))]),
    # sizes beyond 64-bit indexing: a clear ValueError, never pybind's signature dump or a crash
    ("padding_2_63", lambda be: be("conv2d", z(X), z(W), padding=2**63), ValueError,
     ["padding", "64-bit"]),
    ("stride_2_64", lambda be: be("max_pool2d", z(X), 2, stride=2**64), ValueError,
     ["stride", "64-bit"]),
    ("padded_extent_overflow", lambda be: be("conv2d", z(X), z(W), padding=2**62,
                                             dilation=2**62), ValueError, ["padded input"]),
    ("im2col_padded_extent_overflow",
     lambda be: be("im2col", z(X), 3, padding=(2**62, 2**62, 0, 0)), ValueError,
     ["padded input height"]),
    # channels and groups
    ("channel_mismatch", lambda be: be("conv2d", z(X), z((4, 2, 3, 3))), ValueError,
     ["x", "w", s(X), s((4, 2, 3, 3))]),
    ("groups_not_dividing_c", lambda be: be("conv2d", z(X), z((4, 1, 3, 3)), groups=2),
     ValueError, ["groups", s(X), s((4, 1, 3, 3))]),
    ("groups_not_dividing_k", lambda be: be("conv2d", z((2, 4, 6, 5)), z((3, 2, 3, 3)),
                                             groups=2),
     ValueError, ["groups", s((2, 4, 6, 5)), s((3, 2, 3, 3))]),
    ("groups_zero", lambda be: be("conv2d", z(X), z(W), groups=0), ValueError, ["groups"]),
    ("groups_float", lambda be: be("conv2d", z(X), z(W), groups=1.0), (TypeError, ValueError),
     ["groups"]),
    ("bias_length", lambda be: be("conv2d", z(X), z(W), z((3,))), ValueError,
     ["b", s((3,)), s(W)]),
    # dtypes and kinds
    ("x_int", lambda be: be("conv2d", z(X, np.int64), z(W)), TypeError, ["x", "int64", s(X)]),
    ("w_float16", lambda be: be("conv2d", z(X), z(W, np.float16)), TypeError,
     ["w", "float16", s(W)]),
    ("pool_x_int32", lambda be: be("avg_pool2d", z(X, np.int32), 2), TypeError, ["x", "int32"]),
    ("mixed_x_w", lambda be: be("conv2d", z(X, np.float32), z(W)), TypeError,
     ["x", "w", "float32", "float64"]),
    ("mixed_b", lambda be: be("conv2d", z(X), z(W), z((4,), np.float32)), TypeError,
     ["b", "float32", "float64"]),
    ("mixed_dy", lambda be: be("conv2d_backward", z((2, 4, 4, 3), np.float32), z(X), z(W)),
     TypeError, ["dy", "float32", "float64"]),
    ("mixed_pool_dy_x", lambda be: be("max_pool2d_backward", z((2, 3, 3, 2), np.float32),
                                      z(X), 2),
     TypeError, ["x", "dy", "float32", "float64"]),
    ("mixed_avg_pool_dy_x", lambda be: be("avg_pool2d_backward", z((2, 3, 3, 2)),
                                          z(X, np.float32), 2),
     TypeError, ["x", "dy", "float32", "float64"]),
    ("mixed_global_dy_x", lambda be: be("global_max_pool2d_backward", z((2, 3), np.float32),
                                        z(X)),
     TypeError, ["x", "dy", "float32", "float64"]),
    ("x_list", lambda be: be("conv2d", np.zeros(X).tolist(), z(W)), TypeError, ["x", "list"]),
    ("w_tuple", lambda be: be("conv2d", z(X), (1.0, 2.0)), TypeError, ["w", "tuple"]),
    ("pool_x_scalar", lambda be: be("max_pool2d", 3.0, 2), TypeError, ["x", "float"]),
    # stride, dilation, padding
    ("stride_zero", lambda be: be("conv2d", z(X), z(W), stride=0), ValueError, ["stride", "0"]),
    ("stride_negative_hw", lambda be: be("conv2d", z(X), z(W), stride=(1, -1)), ValueError,
     ["stride", "-1"]),
    ("dilation_zero", lambda be: be("conv2d", z(X), z(W), dilation=(0, 1)), ValueError,
     ["dilation"]),
    ("stride_float", lambda be: be("conv2d", z(X), z(W), stride=1.5), TypeError,
     ["stride", "1.5"]),
    ("stride_str", lambda be: be("conv2d", z(X), z(W), stride="2"), TypeError, ["stride"]),
    ("stride_bool", lambda be: be("conv2d", z(X), z(W), stride=True), TypeError, ["stride"]),
    ("stride_len3", lambda be: be("conv2d", z(X), z(W), stride=(1, 1, 1)), ValueError,
     ["stride"]),
    ("dilation_float", lambda be: be("conv2d", z(X), z(W), dilation=(1, 2.0)), TypeError,
     ["dilation"]),
    ("padding_negative", lambda be: be("conv2d", z(X), z(W), padding=-1), ValueError,
     ["padding", "-1"]),
    ("padding4_negative", lambda be: be("conv2d", z(X), z(W), padding=(0, 1, -2, 0)),
     ValueError, ["padding", "-2"]),
    ("padding_len3", lambda be: be("conv2d", z(X), z(W), padding=(1, 1, 1)), ValueError,
     ["padding", re.escape("(1, 1, 1)")]),
    ("padding_float", lambda be: be("conv2d", z(X), z(W), padding=0.5), TypeError,
     ["padding"]),
    ("padding_unknown_str", lambda be: be("conv2d", z(X), z(W), padding="full"), ValueError,
     ["padding", "full"]),
    ("kernel_too_large", lambda be: be("conv2d", z(X), z((4, 3, 7, 3))), ValueError,
     ["kernel", "7x3", "6x5"]),
    ("dilated_kernel_too_large", lambda be: be("conv2d", z(X), z(W), dilation=(1, 3)),
     ValueError, ["kernel", "3x7", "6x5"]),
    ("im2col_kernel_too_large", lambda be: be("im2col", z(X), (3, 6)), ValueError,
     ["kernel", "6x5"]),
    ("im2col_kernel_zero", lambda be: be("im2col", z(X), 0), ValueError, ["kernel_size"]),
    # pooling arguments
    ("pool_padding_gt_half", lambda be: be("max_pool2d", z(X), 3, padding=2), ValueError,
     ["padding", s((2, 2)), s((3, 3))]),
    ("pool_padding_gt_half_hw", lambda be: be("avg_pool2d", z(X), (4, 2), padding=(2, 2)),
     ValueError, ["padding", s((4, 2))]),
    ("pool_padding_negative", lambda be: be("min_pool2d", z(X), 3, padding=-1), ValueError,
     ["padding"]),
    ("pool_kernel_too_large", lambda be: be("max_pool2d", z(X), 7), ValueError,
     ["kernel_size", s((7, 7))]),
    ("pool_stride_zero", lambda be: be("avg_pool2d", z(X), 2, stride=0), ValueError,
     ["stride"]),
    ("pool_kernel_float", lambda be: be("max_pool2d", z(X), 2.5), TypeError, ["kernel_size"]),
    # gradients of the wrong shape
    ("conv_dy_shape", lambda be: be("conv2d_backward", z((2, 4, 4, 4)), z(X), z(W)), ValueError,
     ["dy", s((2, 4, 4, 3)), s((2, 4, 4, 4))]),
    ("pool_dy_shape", lambda be: be("max_pool2d_backward", z((2, 3, 3, 3)), z(X), 2),
     ValueError, ["dy", s((2, 3, 3, 2)), s((2, 3, 3, 3))]),
    ("avg_pool_dy_shape", lambda be: be("avg_pool2d_backward", z((2, 3, 2, 2)), z(X), 2),
     ValueError, ["dy", s((2, 3, 3, 2))]),
    ("global_dy_shape", lambda be: be("global_avg_pool2d_backward", z((2, 4)), z(X)), ValueError,
     ["dy", s((2, 3)), s((2, 4))]),
    ("global_max_dy_ndim", lambda be: be("global_max_pool2d_backward", z((2, 3, 1)), z(X)),
     ValueError, ["dy", s((2, 3, 1))]),
    ("col2im_cols_shape", lambda be: be("col2im", z((2, 27, 13)), X, 3), ValueError,
     ["cols", s((2, 27, 12)), s((2, 27, 13))]),
    # pooling indices
    ("indices_out_of_range", lambda be: be("max_pool2d_backward", z((2, 3, 3, 2)), X, 2,
                                           indices=pool_idx(value=30)),
     ValueError, ["indices", "30"]),
    ("indices_negative", lambda be: be("min_pool2d_backward", z((2, 3, 3, 2)), X, 2,
                                       indices=pool_idx(value=-1)),
     ValueError, ["indices", "-1"]),
    ("indices_int32", lambda be: be("max_pool2d_backward", z((2, 3, 3, 2)), X, 2,
                                    indices=pool_idx(dtype=np.int32)),
     TypeError, ["indices", "int32"]),
    ("indices_float", lambda be: be("max_pool2d_backward", z((2, 3, 3, 2)), X, 2,
                                    indices=pool_idx(dtype=np.float64)),
     TypeError, ["indices", "float64"]),
    ("indices_shape", lambda be: be("max_pool2d_backward", z((2, 3, 3, 2)), X, 2,
                                    indices=pool_idx(shape=(2, 3, 2, 2))),
     ValueError, ["indices", s((2, 3, 3, 2)), s((2, 3, 2, 2))]),
    ("indices_list", lambda be: be("max_pool2d_backward", z((2, 3, 3, 2)), X, 2,
                                   indices=[0] * 36),
     TypeError, ["indices", "list"]),
    ("indices_missing", lambda be: be("max_pool2d_backward", z((2, 3, 3, 2)), X, 2), ValueError,
     ["indices"]),
    ("global_indices_out_of_range",
     lambda be: be("global_max_pool2d_backward", z((2, 3)), X, indices=pool_idx((2, 3), 30)),
     ValueError, ["indices", "30"]),
    ("global_indices_missing", lambda be: be("global_max_pool2d_backward", z((2, 3)), X),
     ValueError, ["indices"]),
    # backends
    ("unknown_backend", lambda be: F.conv2d(z(X), z(W), backend="tpu"), ValueError,
     ["backend", "tpu"]),
]


@pytest.mark.parametrize("call,exc,patterns", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_raises(any_backend, call, exc, patterns):
    with pytest.raises(exc) as info:
        call(any_backend)
    msg = str(info.value)
    missing = [p for p in patterns if not re.search(p, msg)]
    assert not missing, f"message {msg!r} lacks {missing}"


def test_unknown_backend_everywhere(monkeypatch):
    with pytest.raises(ValueError, match="tpu"):
        convforge.set_backend("tpu")
    with pytest.raises(ValueError, match="tpu"):
        with convforge.use_backend("tpu"):
            pass
    monkeypatch.setenv("CONVFORGE_BACKEND", "tpu")
    with pytest.raises(ValueError, match="tpu"):
        F.conv2d(z(X), z(W))
    with pytest.raises(ValueError, match="tpu"):
        convforge.backends.unavailable_reason("tpu")


def test_unavailable_backend_is_named():
    missing = [n for n in convforge.backends.NAMES if n not in convforge.backends.available()]
    if not missing:
        pytest.skip("every backend is available here")
    with pytest.raises(ValueError, match=f"{missing[0]}.*not available"):
        F.conv2d(z(X), z(W), backend=missing[0])


def test_array_kind_must_match_backend(any_backend):
    """The cuda backend takes only CuPy arrays, the others only NumPy arrays; mixing raises."""
    x, w = z(X), z(W)
    if any_backend.name == "cuda":
        with pytest.raises(TypeError, match="cuda"):
            F.conv2d(x, w, backend="cuda")
        with pytest.raises(TypeError, match="w"):
            F.conv2d(any_backend.dev(x), w, backend="cuda")
        with pytest.raises(TypeError, match="cpu|numba|reference"):
            F.conv2d(any_backend.dev(x), any_backend.dev(w), backend="reference")
        dy = any_backend.dev(z((2, 3, 3, 2)))
        with pytest.raises(TypeError, match="x"):
            F.max_pool2d_backward(dy, x, 2, backend="cuda")
        with pytest.raises(TypeError, match="x"):
            F.global_avg_pool2d_backward(any_backend.dev(z((2, 3))), x, backend="cuda")
    else:
        assert any_backend("conv2d", x, w).shape == (2, 4, 4, 3)


def test_inputs_untouched_by_failed_call(any_backend):
    x, w = np.ones(X), np.ones(W)
    with pytest.raises(ValueError):
        any_backend("conv2d", x, w, np.ones(3))
    assert (x == 1).all() and (w == 1).all()


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_set_num_threads_rejects(n):
    with pytest.raises(ValueError, match="n must be"):
        convforge.set_num_threads(n)
