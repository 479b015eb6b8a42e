"""Winograd F(4x4, 3x3) kernels of the compiled core (csrc/conv/winograd.cpp, run through the
conv2d bindings with algo="winograd") against the float64 reference: forward, backward data and
backward weight on a grid of shapes and per-side paddings, float32 and float64, bias or not,
every ISA path this CPU has; thread-count invariance; applicability; that choose_conv_algo picks
Winograd for VGG layers and the public functional API still agrees with the reference there."""

from __future__ import annotations

import numpy as np
import pytest

import convforge
from convforge import functional as F

from conftest import assert_close, assert_exact, available_isas, randint, randn, run_python

core = pytest.importorskip("convforge._core")

RNG_SEED = 20241201   # the seed of the `rng` fixture (conftest) in this module

AVAILABLE_ISAS = available_isas(core)
DTYPES = (np.float32, np.float64)

# (N, C, K, H, W, padding (top, bottom, left, right))
GRID = [
    (1, 1, 1, 3, 3, (0, 0, 0, 0)),        # one output
    (1, 3, 4, 3, 3, (1, 1, 1, 1)),        # 3x3 image, padded: one partial tile
    (2, 5, 7, 5, 7, (2, 0, 1, 2)),        # uneven padding per side
    (3, 16, 8, 13, 9, (0, 0, 0, 0)),      # odd, non-square, no padding
    (2, 8, 8, 32, 32, (1, 1, 1, 1)),      # whole tiles
    (1, 4, 6, 6, 6, (3, 3, 3, 3)),        # padding > 2: backward data crops
    (5, 33, 17, 9, 11, (1, 1, 1, 1)),     # tiles across images, several chunks of lanes
    (1, 64, 64, 16, 16, (1, 1, 1, 1)),    # wide channels
    (2, 20, 24, 7, 30, (0, 2, 2, 0)),     # wide image, one-sided padding
]
IDS = [f"N{c[0]}-C{c[1]}-K{c[2]}-{c[3]}x{c[4]}-p{c[5]}".replace(" ", "") for c in GRID]


S1 = D1 = (1, 1)   # Winograd's stride and dilation


def wg_forward(x, w, b, pad):
    return core.conv2d_forward(x, w, b, S1, pad, D1, 1, algo="winograd")


def wg_backward_data(dy, w, x_shape, pad):
    return core.conv2d_backward_data(dy, w, x_shape, S1, pad, D1, 1, algo="winograd")


def applicable(x_shape, w_shape, pad, dtype):
    return "winograd" in core.conv2d_algorithms(x_shape, w_shape, S1, pad, D1, 1, dtype,
                                                "forward")


def out_hw(h, w, pad):
    return h + pad[0] + pad[1] - 2, w + pad[2] + pad[3] - 2


def problem(rng, case, dtype):
    n, c, k, h, w, pad = case
    oh, ow = out_hw(h, w, pad)
    return (randn(rng, (n, c, h, w), dtype), randn(rng, (k, c, 3, 3), dtype),
            randn(rng, (k,), dtype), randn(rng, (n, k, oh, ow), dtype))


def reference(x, w, b, dy, pad):
    f64 = [None if a is None else a.astype(np.float64) for a in (x, w, b, dy)]
    y = F.conv2d(f64[0], f64[1], f64[2], padding=pad, backend="reference")
    dx, dw, db = F.conv2d_backward(f64[3], f64[0], f64[1], padding=pad, backend="reference")
    return y, dx, dw, db


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", GRID, ids=IDS)
def test_forward_and_backward_data(rng, restore_core, case, dtype):
    x, w, b, dy = problem(rng, case, dtype)
    pad = case[5]
    c = case[1]
    for with_bias in (True, False):
        want_y, want_dx, want_dw, want_db = reference(x, w, b if with_bias else None, dy, pad)
        for isa in AVAILABLE_ISAS:
            core.set_isa(isa)
            y = wg_forward(x, w, b if with_bias else None, pad)
            assert_close(y, want_y, dtype, c * 9, what=f"winograd y ({isa}, bias={with_bias})")
            dx = wg_backward_data(dy, w, x.shape, pad)
            assert_close(dx, want_dx, dtype, case[2] * 9, what=f"winograd dx ({isa})")
            dw, db = core.conv2d_backward_weight(dy, x, w.shape, S1, pad, D1, 1, with_bias,
                                                 algo="winograd")
            assert_close(dw, want_dw, dtype, dy.shape[0] * dy.shape[2] * dy.shape[3],
                         what=f"winograd dw ({isa})")
            assert (db is None) != with_bias
            if with_bias:
                assert_close(db, want_db, dtype, dy.size // dy.shape[1], what=f"db ({isa})")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_bias_is_added_once(rng, dtype):
    """Integer data: y(b) - y(None) is b broadcast, to rounding of the Winograd sums."""
    x, w, b = randint(rng, (2, 8, 9, 10), dtype), randint(rng, (6, 8, 3, 3), dtype), \
        randint(rng, (6,), dtype)
    diff = wg_forward(x, w, b, (1, 1, 1, 1)) - \
        wg_forward(x, w, None, (1, 1, 1, 1))
    assert_close(diff, np.broadcast_to(b[None, :, None, None], diff.shape), dtype, 8 * 9,
                 scale=float(np.abs(x).max() * np.abs(w).max() * 8 * 9))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", [GRID[6], GRID[7], (4, 32, 48, 40, 36, (1, 1, 1, 1))],
                         ids=["small", "wide", "many-chunks"])
def test_bit_identical_for_any_thread_count(rng, restore_core, case, dtype):
    x, w, b, dy = problem(rng, case, dtype)
    pad = case[5]
    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        results = []
        for threads in (1, 2, 3):
            core.set_num_threads(threads)
            results.append((wg_forward(x, w, b, pad),
                            wg_backward_data(dy, w, x.shape, pad)))
        for threads, res in zip((2, 3), results[1:]):
            for name, a, r in zip(("y", "dx"), res, results[0]):
                assert_exact(a, r, dtype, what=f"{name} {isa} {threads} vs 1 thread")


def test_applicability(rng):
    assert applicable((1, 8, 10, 10), (8, 8, 3, 3), (1, 1, 1, 1), "float32")
    assert not applicable((1, 8, 10, 10), (8, 8, 5, 5), (2, 2, 2, 2), "float32")
    # transformed weights over the workspace cap: 36*512*512*8 bytes = 75 MB in float64
    assert applicable((1, 512, 14, 14), (512, 512, 3, 3), (1, 1, 1, 1), "float32")
    assert not applicable((1, 512, 14, 14), (512, 512, 3, 3), (1, 1, 1, 1),
                                        "float64")
    x = randn(rng, (1, 4, 8, 8), np.float32)
    w = randn(rng, (5, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match="algorithm 'winograd' does not apply"):
        wg_forward(x, randn(rng, (5, 4, 5, 5), np.float32), None, (0,) * 4)
    with pytest.raises(TypeError, match="w has dtype float64"):
        wg_forward(x, w.astype(np.float64), None, (1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"b must have shape \(5,\)"):
        wg_forward(x, w, np.zeros(4, np.float32), (1, 1, 1, 1))
    with pytest.raises(ValueError, match="input channels"):
        wg_forward(x, randn(rng, (5, 3, 3, 3), np.float32), None, (1,) * 4)
    with pytest.raises(ValueError, match=r"dy must have shape \(1, 5, 8, 8\)"):
        wg_backward_data(np.zeros((1, 5, 6, 6), np.float32), w, (1, 4, 8, 8),
                                           (1, 1, 1, 1))
    with pytest.raises(ValueError, match="C-contiguous"):
        wg_forward(np.asfortranarray(x), w, None, (1, 1, 1, 1))


VGG_LAYERS = [  # (x_shape, channels out)
    ((2, 64, 32, 32), 64),
    ((2, 128, 16, 16), 128),
    ((8, 256, 8, 8), 256),
]


@pytest.mark.parametrize("xs,k", VGG_LAYERS, ids=[f"C{x[1]}-{x[2]}px" for x, _ in VGG_LAYERS])
def test_vgg_layers_pick_winograd_and_match_reference(rng, xs, k):
    """choose_conv_algo picks Winograd for VGG 3x3 layers (forward, backward data and, from
    64 x 64 channels, backward weight) and the public API agrees with the reference."""
    ws = (k, xs[1], 3, 3)
    for direction in ("forward", "data", "weight"):
        assert core.conv2d_algorithm(xs, ws, (1, 1), (1, 1, 1, 1), (1, 1), 1, "float32",
                                     direction) == "winograd"
    # strided / dilated / grouped / 5x5 layers of the same size are not Winograd
    assert core.conv2d_algorithm(xs, ws, (2, 2), (1, 1, 1, 1), (1, 1), 1, "float32") != "winograd"
    assert core.conv2d_algorithm(xs, (k, xs[1] // 2, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2,
                                 "float32") != "winograd"
    x, w, b = randn(rng, xs, np.float32), randn(rng, ws, np.float32), randn(rng, (k,), np.float32)
    y = F.conv2d(x, w, b, padding=1, backend="cpu")
    want = F.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), padding=1,
                    backend="reference")
    assert_close(y, want, np.float32, xs[1] * 9, what="conv2d y (winograd)")
    dy = randn(rng, y.shape, np.float32)
    dx, dw, db = F.conv2d_backward(dy, x, w, padding=1, backend="cpu")
    rdx, rdw, rdb = F.conv2d_backward(dy.astype(np.float64), x.astype(np.float64),
                                      w.astype(np.float64), padding=1, backend="reference")
    assert_close(dx, rdx, np.float32, k * 9, what="conv2d dx (winograd)")
    assert_close(dw, rdw, np.float32, xs[0] * xs[2] * xs[3], what="conv2d dw")
    assert_close(db, rdb, np.float32, xs[0] * xs[2] * xs[3], what="conv2d db")


def test_small_layers_are_not_winograd():
    """Few channels, tiny images, or big weights over few tiles keep im2col GEMM."""
    algo = core.conv2d_algorithm
    assert algo((8, 3, 32, 32), (16, 3, 3, 3), (1, 1), (1,) * 4, (1, 1), 1, "float32") != "winograd"
    assert algo((8, 64, 2, 2), (64, 64, 3, 3), (1, 1), (1,) * 4, (1, 1), 1, "float32") != "winograd"
    assert algo((1, 512, 7, 7), (512, 512, 3, 3), (1, 1), (1,) * 4, (1, 1), 1,
                "float32") != "winograd"  # 4 tiles
    assert algo((2, 512, 8, 8), (512, 512, 3, 3), (1, 1), (1,) * 4, (1, 1), 1,
                "float32") != "winograd"  # 8 tiles
    assert algo((1, 512, 14, 14), (512, 512, 3, 3), (1, 1), (1,) * 4, (1, 1), 1,
                "float32") == "winograd"  # 16 tiles: VGG-16's last block at N=1


def test_public_api_thread_invariance_on_winograd_layer(rng, restore_core):
    x = randn(rng, (3, 32, 20, 18), np.float32)
    w = randn(rng, (32, 32, 3, 3), np.float32)
    dy = randn(rng, (3, 32, 20, 18), np.float32)
    assert core.conv2d_algorithm(x.shape, w.shape, (1, 1), (1,) * 4, (1, 1), 1) == "winograd"
    outs = []
    for threads in (1, 2, 3):
        convforge.set_num_threads(threads)
        outs.append((F.conv2d(x, w, None, padding=1, backend="cpu"),
                     F.conv2d_backward(dy, x, w, padding=1, backend="cpu")[0]))
    for res in outs[1:]:
        assert_exact(res[0], outs[0][0], np.float32, what="y")
        assert_exact(res[1], outs[0][1], np.float32, what="dx")


_GATHER_SCRIPT = """
import hashlib, numpy as np
from convforge import _core
h = hashlib.sha256()
rng = np.random.default_rng(3)
for (n, c, k, hh, ww, pad) in %r:
    x = rng.standard_normal((n, c, hh, ww)).astype(np.float32)
    w = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
    args = ((1, 1), pad, (1, 1), 1)
    y = _core.conv2d_forward(x, w, None, *args, algo="winograd")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    h.update(y.tobytes())
    h.update(_core.conv2d_backward_data(dy, w, x.shape, *args, algo="winograd").tobytes())
    h.update(_core.conv2d_backward_weight(dy, x, w.shape, *args, False, algo="winograd")[0]
             .tobytes())
print(_core.fast_gathers(), h.hexdigest())
"""


@pytest.mark.skipif("avx512" not in AVAILABLE_ISAS, reason="the gathers are AVX-512 code")
def test_gathered_and_copied_patches_give_the_same_bits():
    """The AVX-512 float kernels take their input patches with vector gathers (Intel) or scalar
    copies (AMD; cpu.hpp fast_gathers): both ways, CONVFORGE_GATHERS=1 / 0 in a fresh process,
    the forward, data and weight results have the same bits (borders, partial lane blocks)."""
    got = {}
    for flag in ("0", "1"):
        gathers, digest = run_python(_GATHER_SCRIPT % (GRID,), CONVFORGE_ISA="avx512",
                                     CONVFORGE_GATHERS=flag)
        assert gathers == ("True" if flag == "1" else "False")
        got[flag] = digest
    assert got["0"] == got["1"]
