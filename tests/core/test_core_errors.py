"""The compiled core's own argument checks (convforge._core, called directly): wrong dtypes,
ranks, layouts, shapes and algorithm names raise TypeError/ValueError naming the argument.
(The pooling bindings' checks are in test_cpu_pool_core.py.)
(Public ops validate before any binding runs: tests/api/test_errors.py.)"""

from __future__ import annotations

import numpy as np
import pytest

core = pytest.importorskip("convforge._core")


def test_validation_messages():
    x = np.zeros((2, 4, 6, 6), np.float32)
    w = np.zeros((3, 4, 3, 3), np.float32)
    args = ((1, 1), (0, 0, 0, 0), (1, 1), 1)
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        core.conv2d_forward(x.astype(np.float16), w, None, *args)
    with pytest.raises(TypeError, match="w has dtype float64 but x has dtype float32"):
        core.conv2d_forward(x, w.astype(np.float64), None, *args)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        core.conv2d_forward(x[..., ::2], w, None, *args)
    with pytest.raises(ValueError, match="w must be 4-D"):
        core.conv2d_forward(x, w[0], None, *args)
    with pytest.raises(ValueError, match=r"x \(2, 4, 6, 6\), w \(3, 2, 3, 3\)"):
        core.conv2d_forward(x, w[:, :2].copy(), None, *args)
    with pytest.raises(ValueError, match=r"b must have shape \(3,\), got \(4,\)"):
        core.conv2d_forward(x, w, np.zeros(4, np.float32), *args)
    with pytest.raises(ValueError, match="groups=2 must divide"):
        core.conv2d_forward(x, np.zeros((3, 2, 3, 3), np.float32), None, (1, 1), (0, 0, 0, 0),
                            (1, 1), 2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        core.conv2d_forward(x, np.zeros((3, 4, 7, 3), np.float32), None, *args)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        core.conv2d_forward(x, w, None, (0, 1), (0, 0, 0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match="zero-size"):
        core.conv2d_forward(np.zeros((0, 4, 6, 6), np.float32), w, None, *args)
    dy = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 4, 4\), got \(2, 3, 4, 5\)"):
        core.conv2d_backward_data(np.zeros((2, 3, 4, 5), np.float32), w, x.shape, *args)
    with pytest.raises(ValueError, match="x_shape must be positive"):
        core.conv2d_backward_data(dy, w, (2, 4, 0, 6), *args)
    with pytest.raises(TypeError, match="x has dtype float64 but dy has dtype float32"):
        core.conv2d_backward_weight(dy, x.astype(np.float64), w.shape, *args, True)
    with pytest.raises(ValueError, match=r"dy must have shape"):
        core.conv2d_backward_weight(dy[:1].copy(), x, w.shape, *args, True)
    with pytest.raises(ValueError, match=r"cols must have shape \(2, 36, 16\)"):
        core.col2im(np.zeros((2, 36, 15), np.float32), x.shape, (3, 3), (1, 1), (0, 0, 0, 0),
                    (1, 1))
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        core.im2col(x, (0, 3), (1, 1), (0, 0, 0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"op\(a\) is \(2, 3\) but op\(b\) is \(4, 5\)"):
        core.gemm(np.zeros((2, 3)), np.zeros((4, 5)))


def test_algo_errors():
    x = np.zeros((2, 4, 6, 6), np.float32)
    w = np.zeros((3, 4, 3, 3), np.float32)
    dy = np.zeros((2, 3, 4, 4), np.float32)
    args = ((1, 1), (0, 0, 0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match=r"unknown algorithm 'fastest'; choose one of 'auto'"):
        core.conv2d_forward(x, w, None, *args, algo="fastest")
    with pytest.raises(ValueError, match="unknown algorithm 'Naive'"):
        core.conv2d_backward_data(dy, w, x.shape, *args, algo="Naive")
    with pytest.raises(ValueError, match=(r"algorithm 'gemm_pointwise' does not apply to forward "
                                          r"of x \(2, 4, 6, 6\), w \(3, 4, 3, 3\)")):
        core.conv2d_forward(x, w, None, *args, algo="gemm_pointwise")
    with pytest.raises(ValueError, match="'direct_depthwise' does not apply to data of x"):
        core.conv2d_backward_data(dy, w, x.shape, *args, algo="direct_depthwise")
    with pytest.raises(ValueError, match=r"'direct_small' does not apply to weight of x"):
        core.conv2d_backward_weight(dy[..., :2].copy(), x, w.shape, (1, 2), (0, 0, 0, 0),
                                    (1, 1), 1, True, algo="direct_small")
    with pytest.raises(ValueError, match="'im2col_gemm_batch' does not apply to forward"):
        core.conv2d_forward(x, w, None, *args, algo="im2col_gemm_batch")
    with pytest.raises(ValueError,
                       match=r"'direct_small' does not apply to forward .*stride \(2, 1\)"):
        core.conv2d_forward(x, w, None, (2, 1), (0, 0, 0, 0), (1, 1), 1, algo="direct_small")
    with pytest.raises(ValueError, match=r"conv2d_backward \(weight_algo\): algorithm "
                                         r"'gemm_pointwise' does not apply"):
        core.conv2d_backward(dy, x, w, *args, True, weight_algo="gemm_pointwise")
    with pytest.raises(ValueError, match=r"conv2d_backward \(data_algo\): unknown algorithm"):
        core.conv2d_backward(dy, x, w, *args, True, data_algo="")
    with pytest.raises(TypeError):  # algo is keyword-only
        core.conv2d_forward(x, w, None, *args, "naive")
    with pytest.raises(ValueError, match="direction must be 'forward', 'data' or 'weight'"):
        core.conv2d_algorithms(x.shape, w.shape, *args, "float32", "backward")
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        core.conv2d_algorithms(x.shape, w.shape, *args, "float16", "forward")
    with pytest.raises(ValueError, match="larger than the padded input"):
        core.conv2d_algorithms(x.shape, (3, 4, 7, 7), *args, "float32", "forward")
    with pytest.raises(TypeError, match="x has dtype float64 but dy has dtype float32"):
        core.conv2d_backward(dy, x.astype(np.float64), w, *args, True)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 4, 4\)"):
        core.conv2d_backward(dy[:, :, :3].copy(), x, w, *args, True)
    assert core.conv2d_algorithms(x.shape, w.shape, *args, "float64", "weight") == [
        "naive", "im2col_gemm", "direct_small", "im2col_gemm_batch", "winograd", "direct_kvec",
        "direct_batch"]   # no padding: direct_batch's weight kernel applies
    assert core.conv2d_algorithms(x.shape, w.shape, (2, 2), *args[1:], "float64", "weight") == [
        "naive", "im2col_gemm", "im2col_gemm_batch", "direct_kvec", "direct_batch"]
    assert core.conv2d_algorithm(x.shape, w.shape, *args) == "direct_small"
