"""Autotuning of the CPU conv algorithms (convforge.set_autotune / CONVFORGE_AUTOTUNE)."""

from __future__ import annotations

import time

import numpy as np
import pytest

import convforge
from convforge.backends import _autotune
from convforge.backends import reference as ref

from conftest import assert_close

pytestmark = pytest.mark.skipif("cpu" not in convforge.available(), reason="no compiled core")


@pytest.fixture
def autotune():
    _autotune.clear()
    convforge.set_autotune(True)
    yield
    convforge.set_autotune(False)
    _autotune.clear()


def test_off_by_default_and_in_info():
    assert not convforge.autotune_enabled()
    assert convforge.info()["autotune"] is False
    assert _autotune.pick("k", lambda: ["a", "b"], lambda a: pytest.fail("timed while off")) \
        == "auto"


def test_pick_times_candidates_and_remembers_the_fastest(autotune):
    cost = {"auto": 0.012, "im2col_gemm": 0.002, "winograd": 0.006}
    calls = []

    def call(algo):
        calls.append(algo)
        time.sleep(cost[algo])

    listed = lambda: ["naive", "direct_small", "im2col_gemm", "winograd"]  # noqa: E731
    assert _autotune.pick("key", listed, call) == "im2col_gemm"
    assert set(calls) == {"auto", "im2col_gemm", "winograd"}   # never naive or direct_small
    assert len(calls) == 3 * (1 + _autotune.REPEATS)           # warm-up + repeats each
    calls.clear()
    assert _autotune.pick("key", listed, call) == "im2col_gemm"  # remembered: no timing
    assert calls == []
    assert _autotune.winners() == {"key": "im2col_gemm"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_autotuned_conv_matches_reference(autotune, rng, dtype):
    # a 3x3 layer with several applicable algorithms (im2col_gemm, winograd, ...)
    x = rng.standard_normal((4, 24, 10, 9)).astype(dtype)
    w = rng.standard_normal((20, 24, 3, 3)).astype(dtype)
    b = rng.standard_normal(20).astype(dtype)
    y = convforge.F.conv2d(x, w, b, padding=1, backend="cpu")
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dw, db = convforge.F.conv2d_backward(dy, x, w, padding=1, backend="cpu")
    assert_close(y, ref.conv2d(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), 1), dtype, 24 * 9,
                 what="autotuned y")
    rdx, rdw, rdb = ref.conv2d_backward(dy, x, w, (1, 1), (1, 1, 1, 1), (1, 1), 1, True)
    assert_close(dx, rdx, dtype, 20 * 9, what="autotuned dx")
    assert_close(dw, rdw, dtype, 4 * 10 * 9, what="autotuned dw")
    assert_close(db, rdb, dtype, 4 * 10 * 9, what="autotuned db")
    keys = _autotune.winners()
    assert {k[0] for k in keys} == {"forward", "data", "weight"}
    for k, algo in keys.items():
        assert k[1:3] == ((4, 24, 10, 9), (20, 24, 3, 3))
        assert k[-1] == convforge.get_num_threads()               # thread count is in the key
        assert algo in _autotune.candidates(
            list(convforge._core.conv2d_algorithms(k[1], k[2], k[4], k[5], k[6], k[7], k[3],
                                                   k[0])))
    # later calls reuse the winners and give the same bits
    np.testing.assert_array_equal(convforge.F.conv2d(x, w, b, padding=1, backend="cpu"), y)
    assert _autotune.winners() == keys
