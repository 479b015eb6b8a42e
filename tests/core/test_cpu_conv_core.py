"""The compiled conv core (convforge._core) against the float64 reference, binding by binding.

Every conv binding (algo "auto" and "naive") and im2col/col2im are compared element-wise to
convforge.backends.reference on a grid of shapes, in float32 and float64, on every ISA path this
CPU has (baseline / avx2 / avx512 via _core.set_isa). Also: bit-identical results for 1 and 2
OpenMP threads, exact results for integer-valued inputs, NaN/inf placement. The bindings'
argument checks: test_core_errors.py; the GEMM: test_gemm.py.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from convforge.backends import reference as ref

from conftest import available_isas, run_python

core = pytest.importorskip("convforge._core")

RNG_SEED = 20240617   # the seed of the `rng` fixture (conftest) in this module

AVAILABLE_ISAS = available_isas(core)
DTYPES = (np.float32, np.float64)

# (x_shape, w_shape, stride, padding (top, bottom, left, right), dilation, groups)
GRID = [
    ((1, 1, 5, 5), (1, 1, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),          # one channel
    ((3, 3, 7, 9), (4, 3, 3, 2), (1, 2), (1, 0, 2, 1), (1, 1), 1),          # 4-sided pad
    ((1, 3, 6, 5), (5, 3, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),          # pointwise
    ((3, 8, 5, 7), (6, 8, 1, 1), (2, 1), (0, 0, 0, 0), (1, 1), 1),          # 1x1 strided
    ((2, 8, 5, 3), (4, 4, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 2),          # pointwise, groups
    ((1, 8, 7, 6), (4, 8, 7, 6), (1, 1), (0, 0, 0, 0), (1, 1), 1),          # kernel == input
    ((3, 3, 9, 8), (2, 3, 3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 1),          # dilation 2
    ((1, 8, 9, 6), (6, 4, 3, 3), (2, 1), (1, 1, 0, 2), (1, 1), 2),          # groups 2
    ((3, 8, 6, 6), (8, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8),          # depthwise
    ((1, 8, 7, 5), (16, 1, 3, 2), (2, 1), (0, 1, 2, 0), (1, 2), 8),         # depthwise x2
    ((3, 1, 8, 8), (4, 1, 5, 3), (1, 2), (2, 2, 1, 1), (1, 1), 1),          # C=1, K=4
    ((1, 3, 4, 4), (2, 3, 2, 2), (2, 2), (0, 1, 0, 1), (1, 1), 1),          # bottom/right pad
    ((1, 24, 10, 9), (21, 8, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 3),       # groups 3, odd K
    ((1, 32, 6, 7), (8, 32, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),        # R=288 > one KC slice
    ((2, 16, 12, 11), (32, 16, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),     # parallel GEMM tiles
    ((3, 3, 11, 13), (5, 3, 4, 5), (2, 3), (3, 0, 0, 4), (2, 1), 1),        # odd everything
    ((2, 3, 9, 17), (40, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),        # K=40: channel
                                                                            # blocks full and not
]
IDS = [f"x{s[0]}-w{s[1]}-s{s[2]}-p{s[3]}-d{s[4]}-g{s[5]}".replace(" ", "") for s in GRID]


def out_shape(xs, ws, stride, pad, dil):
    oh = (xs[2] + pad[0] + pad[1] - dil[0] * (ws[2] - 1) - 1) // stride[0] + 1
    ow = (xs[3] + pad[2] + pad[3] - dil[1] * (ws[3] - 1) - 1) // stride[1] + 1
    return (xs[0], ws[0], oh, ow)


def assert_within_mag(name, got, want, mag, n, dtype):
    """|got - want| <= 4 * eps(dtype) * (n + 2) * mag element-wise, where mag is the same op on
    absolute values (a bound on the sum of |terms|) and n the reduction length."""
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == dtype, f"{name}: dtype {got.dtype} != {dtype}"
    eps = np.finfo(dtype).eps
    allowed = 4 * eps * (n + 2) * np.asarray(mag, np.float64) + np.finfo(dtype).tiny
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    ratio = err / allowed
    i = np.unravel_index(np.argmax(ratio), ratio.shape)
    assert ratio[i] <= 1, (f"{name}: worst mismatch at {i}: got {got[i]!r}, want {want[i]!r}, "
                           f"|diff| {err[i]:.3g} > allowed {allowed[i]:.3g}")


def algo_mag(algo, mag):
    """The magnitude bound for an algorithm's error. Winograd's transforms mix the values of a
    whole 6x6 tile (factors up to 1/24 and back), so its error is bounded by the largest
    magnitude of the output, not element-wise (see winograd.cpp for the measured errors)."""
    return np.full_like(mag, mag.max()) if algo == "winograd" else mag


def make_problem(rng, case, dtype):
    xs, ws, stride, pad, dil, _ = case
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    dy = rng.standard_normal(out_shape(xs, ws, stride, pad, dil)).astype(dtype)
    return x, w, b, dy


def conv_bindings(naive):
    """The three conv bindings, running algo="naive" (the plain loops) or "auto"."""
    algo = "naive" if naive else "auto"
    return (functools.partial(core.conv2d_forward, algo=algo),
            functools.partial(core.conv2d_backward_data, algo=algo),
            functools.partial(core.conv2d_backward_weight, algo=algo))


def conv_results(x, w, b, dy, args, naive):
    """(y, dx, dw, db) of the three bindings (algo "naive" or "auto"); args: (stride, padding,
    dilation, groups)."""
    fwd, bwd_data, bwd_weight = conv_bindings(naive)
    return (fwd(x, w, b, *args), bwd_data(dy, w, x.shape, *args),
            *bwd_weight(dy, x, w.shape, *args, True))


def check_conv(case, dtype, x, w, b, dy, naive):
    xs, ws, stride, pad, dil, g = case
    fwd, bwd_data, bwd_weight = conv_bindings(naive)
    tag = f"{'naive' if naive else core.isa()} {np.dtype(dtype).name} {case}"
    args = (stride, pad, dil, g)
    ax, aw, ab, ady = (np.abs(a.astype(np.float64)) for a in (x, w, b, dy))

    y = fwd(x, w, b, *args)
    assert_within_mag(f"forward {tag}", y, ref.conv2d(x, w, b, *args),
                 ref.conv2d(ax, aw, ab, *args), ws[1] * ws[2] * ws[3] + 1, dtype)
    y_nb = fwd(x, w, None, *args)
    assert_within_mag(f"forward no bias {tag}", y_nb, ref.conv2d(x, w, None, *args),
                 ref.conv2d(ax, aw, None, *args), ws[1] * ws[2] * ws[3], dtype)

    dx_r, dw_r, db_r = ref.conv2d_backward(dy, x, w, *args, True)
    mdx, mdw, mdb = ref.conv2d_backward(ady, ax, aw, *args, True)
    dx = bwd_data(dy, w, xs, *args)
    assert_within_mag(f"backward data {tag}", dx, dx_r, mdx, (ws[0] // g) * ws[2] * ws[3], dtype)
    dw, db = bwd_weight(dy, x, ws, *args, True)
    n_sum = dy.shape[0] * dy.shape[2] * dy.shape[3]
    assert_within_mag(f"backward weight {tag}", dw, dw_r, mdw, n_sum, dtype)
    assert_within_mag(f"bias grad {tag}", db, db_r, mdb, n_sum, dtype)
    dw2, none = bwd_weight(dy, x, ws, *args, False)
    assert none is None
    np.testing.assert_array_equal(dw2, dw)


# ---------------------------------------------------------------- the shape grid


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", GRID, ids=IDS)
def test_conv_fast_every_isa(rng, restore_core, case, dtype):
    x, w, b, dy = make_problem(rng, case, dtype)
    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        check_conv(case, dtype, x, w, b, dy, naive=False)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", GRID, ids=IDS)
def test_conv_naive(rng, case, dtype):
    x, w, b, dy = make_problem(rng, case, dtype)
    check_conv(case, dtype, x, w, b, dy, naive=True)


def test_grid_covers_every_algorithm():
    algos = {core.conv2d_algorithm(*c, "float32", direction)
             for c in GRID + ALGO_GRID for direction in DIRECTIONS}
    assert algos >= {"im2col_gemm", "gemm_pointwise", "direct_depthwise", "direct_small",
                     "im2col_gemm_batch"}, algos


# ---------------------------------------------------------------- forced algorithms (algo=)

DIRECTIONS = ("forward", "data", "weight")

# Small-channel shapes around the direct_small threshold (16 input channels per group) and the
# strides, per-side padding, dilation, groups and N=1 cases every forced algorithm must handle.
ALGO_GRID = [
    ((3, 1, 12, 12), (6, 1, 5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),        # LeNet C1-like
    ((2, 6, 9, 9), (16, 6, 5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),         # LeNet C3-like
    ((1, 3, 11, 10), (5, 3, 3, 3), (1, 1), (1, 2, 0, 3), (1, 1), 1),        # N=1, per-side pad
    ((2, 16, 8, 7), (9, 16, 3, 2), (1, 1), (2, 0, 1, 1), (2, 1), 1),        # C=16, dilation
    ((2, 17, 7, 8), (12, 17, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),       # C=17: above 16
    ((2, 6, 10, 9), (4, 6, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),         # stride 2
    ((2, 12, 8, 8), (9, 4, 3, 3), (1, 1), (1, 0, 2, 1), (1, 2), 3),         # groups 3, dilation
    ((1, 6, 6, 6), (6, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 6),          # depthwise, N=1
    ((3, 4, 5, 6), (7, 4, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),          # pointwise
    ((2, 3, 5, 5), (2, 3, 1, 1), (1, 1), (2, 1, 0, 1), (1, 1), 1),          # 1x1, padded: crop
    ((9, 2, 6, 5), (3, 2, 2, 3), (1, 1), (0, 1, 1, 0), (1, 1), 1),          # N=9, small planes
    ((9, 3, 24, 24), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),        # dw: 5 chunks of 9
    ((5, 6, 23, 25), (6, 3, 3, 3), (1, 1), (1, 0, 1, 2), (1, 1), 2),        # dw: 2 chunks, G=2
    ((2, 3, 4, 40), (20, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),        # wide rows, K > 8
    ((3, 5, 13, 11), (18, 5, 3, 3), (2, 3), (1, 0, 2, 1), (1, 2), 1),       # strides 2x3, dil
    ((2, 3, 19, 18), (10, 3, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),       # 7x7/2 first layer
    ((64, 3, 7, 7), (4, 3, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),         # direct_batch: 4
    ((40, 2, 6, 5), (5, 2, 3, 2), (1, 1), (1, 0, 0, 1), (1, 1), 1),         # or 3 vectors
]
ALGO_IDS = [f"x{s[0]}-w{s[1]}-s{s[2]}-p{s[3]}-d{s[4]}-g{s[5]}".replace(" ", "")
            for s in ALGO_GRID]


def algorithms(case, dtype, direction):
    return core.conv2d_algorithms(*case, np.dtype(dtype).name, direction)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", ALGO_GRID + GRID, ids=ALGO_IDS + IDS)
def test_every_forced_algorithm(rng, restore_core, case, dtype):
    """Every algorithm that conv2d_algorithms lists, forced with algo=, on every ISA path, in
    every direction and through the combined conv2d_backward, against the float64 reference."""
    xs, ws, stride, pad, dil, g = case
    x, w, b, dy = make_problem(rng, case, dtype)
    args = (stride, pad, dil, g)
    ax, aw, ab, ady = (np.abs(a.astype(np.float64)) for a in (x, w, b, dy))
    y_r, y_m = ref.conv2d(x, w, b, *args), ref.conv2d(ax, aw, ab, *args)
    dx_r, dw_r, db_r = ref.conv2d_backward(dy, x, w, *args, True)
    mdx, mdw, mdb = ref.conv2d_backward(ady, ax, aw, *args, True)
    n_fwd, n_data = ws[1] * ws[2] * ws[3] + 1, (ws[0] // g) * ws[2] * ws[3]
    n_sum = dy.shape[0] * dy.shape[2] * dy.shape[3]
    fwd_algos, data_algos, weight_algos = (algorithms(case, dtype, d) for d in DIRECTIONS)
    assert "naive" in fwd_algos and "naive" in data_algos and "naive" in weight_algos
    assert "im2col_gemm_batch" in weight_algos and "im2col_gemm_batch" not in fwd_algos
    assert ("direct_small" in fwd_algos) == (stride == (1, 1) and ws[1] <= 64)
    assert ("direct_small" in weight_algos) == ("direct_small" in fwd_algos)
    assert "direct_kvec" in fwd_algos and "direct_kvec" in weight_algos
    assert "direct_kvec" not in data_algos
    assert "direct_batch" in data_algos and "direct_batch" in fwd_algos
    oh, ow = dy.shape[2:]   # the weight kernel: no padding, every window inside x
    no_pad = pad[0] == 0 and pad[2] == 0 and (oh - 1) * stride[0] + (ws[2] - 1) * dil[0] < xs[2] \
        and (ow - 1) * stride[1] + (ws[3] - 1) * dil[1] < xs[3]
    assert ("direct_batch" in weight_algos) == no_pad
    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        for a in fwd_algos:
            tag = f"forward algo={a} {isa} {np.dtype(dtype).name} {case}"
            assert_within_mag(tag, core.conv2d_forward(x, w, b, *args, algo=a), y_r,
                         algo_mag(a, y_m), n_fwd, dtype)
            assert_within_mag(tag + " no bias", core.conv2d_forward(x, w, None, *args, algo=a),
                         ref.conv2d(x, w, None, *args),
                         algo_mag(a, ref.conv2d(ax, aw, None, *args)), n_fwd, dtype)
        for a in data_algos:
            tag = f"data algo={a} {isa} {np.dtype(dtype).name} {case}"
            assert_within_mag(tag, core.conv2d_backward_data(dy, w, xs, *args, algo=a), dx_r,
                         algo_mag(a, mdx), n_data, dtype)
        for a in weight_algos:
            tag = f"weight algo={a} {isa} {np.dtype(dtype).name} {case}"
            dw, db = core.conv2d_backward_weight(dy, x, ws, *args, True, algo=a)
            assert_within_mag(tag, dw, dw_r, mdw, n_sum, dtype)
            assert_within_mag(tag + " db", db, db_r, mdb, n_sum, dtype)
            dw2, none = core.conv2d_backward_weight(dy, x, ws, *args, False, algo=a)
            assert none is None
            np.testing.assert_array_equal(dw2, dw)
        # combined: each data algorithm once, paired with the weight algorithms in turn
        for i in range(max(len(data_algos), len(weight_algos))):
            da, wa = data_algos[i % len(data_algos)], weight_algos[i % len(weight_algos)]
            tag = f"conv2d_backward data_algo={da} weight_algo={wa} {isa} {case}"
            dx, dw, db = core.conv2d_backward(dy, x, w, *args, True, data_algo=da,
                                              weight_algo=wa)
            np.testing.assert_array_equal(
                dx, core.conv2d_backward_data(dy, w, xs, *args, algo=da), err_msg=tag)
            dw1, db1 = core.conv2d_backward_weight(dy, x, ws, *args, True, algo=wa)
            np.testing.assert_array_equal(dw, dw1, err_msg=tag)
            np.testing.assert_array_equal(db, db1, err_msg=tag)
            assert core.conv2d_backward(dy, x, w, *args, False, data_algo=da,
                                        weight_algo=wa)[2] is None
        # auto = the heuristic's choice, bit for bit
        for direction, got in (("forward", core.conv2d_forward(x, w, b, *args)),
                               ("weight", core.conv2d_backward_weight(dy, x, ws, *args, True)[0])):
            chosen = core.conv2d_algorithm(*case, np.dtype(dtype).name, direction)
            want = (core.conv2d_forward(x, w, b, *args, algo=chosen) if direction == "forward"
                    else core.conv2d_backward_weight(dy, x, ws, *args, True, algo=chosen)[0])
            np.testing.assert_array_equal(got, want, err_msg=f"auto {direction} {case}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", ALGO_GRID, ids=ALGO_IDS)
def test_every_forced_algorithm_integer_exact(rng, restore_core, case, dtype):
    xs, ws, stride, pad, dil, g = case
    x = rng.integers(-3, 4, xs).astype(dtype)
    w = rng.integers(-3, 4, ws).astype(dtype)
    b = rng.integers(-3, 4, ws[0]).astype(dtype)
    dy = rng.integers(-3, 4, out_shape(xs, ws, stride, pad, dil)).astype(dtype)
    args = (stride, pad, dil, g)
    y_r, (dx_r, dw_r, db_r) = ref.conv2d(x, w, b, *args), ref.conv2d_backward(dy, x, w, *args,
                                                                               True)
    # Winograd is not exact on integers (its transforms hold 1/6, 1/24, ...): the forced-algorithm
    # test above and tests/core/test_winograd.py bound its error instead.
    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        for a in algorithms(case, dtype, "forward"):
            if a != "winograd":
                np.testing.assert_array_equal(core.conv2d_forward(x, w, b, *args, algo=a), y_r,
                                              err_msg=f"forward {a} {isa}")
        for a in algorithms(case, dtype, "data"):
            if a != "winograd":
                np.testing.assert_array_equal(
                    core.conv2d_backward_data(dy, w, xs, *args, algo=a), dx_r,
                    err_msg=f"data {a} {isa}")
        for a in algorithms(case, dtype, "weight"):
            dw, db = core.conv2d_backward_weight(dy, x, ws, *args, True, algo=a)
            if a != "winograd":
                np.testing.assert_array_equal(dw, dw_r, err_msg=f"weight {a} {isa}")
            np.testing.assert_array_equal(db, db_r, err_msg=f"db {a} {isa}")


def test_heuristic_choices(restore_core):
    """The small-channel rules of choose_conv_algo (threshold 16 input channels per group) and
    the ISA-dependent direct_kvec rules (float with a vector ISA; the tile is 16 output channels
    x 5 taps with AVX2, 32 x 9 with AVX-512; one vector of 8 or 16 where the layer's output
    channels fit in one)."""
    def pick(xs, ws, direction, stride=(1, 1), pad=(0, 0, 0, 0), groups=1, dtype="float32"):
        return core.conv2d_algorithm(xs, ws, stride, pad, (1, 1), groups, dtype, direction)

    vgg = ((32, 64, 32, 32), (64, 64, 3, 3))
    c1, c3 = ((64, 1, 32, 32), (6, 1, 5, 5)), ((64, 6, 14, 14), (16, 6, 5, 5))
    def kvec_or(other, ok=True):  # direct_kvec on the vector ISAs (where ok), else other
        return "direct_kvec" if core.isa() != "baseline" and ok else other

    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        # 3x3 weight gradients of 64 x 64 channels and more: winograd, every ISA and dtype
        assert pick(*vgg, "weight", pad=(1,) * 4) == "winograd", isa
        assert pick(*vgg, "weight", pad=(1,) * 4, dtype="float64") == "winograd"
        assert pick((32, 256, 8, 8), (256, 256, 3, 3), "weight", pad=(1,) * 4) == "winograd"
        assert pick((8, 64, 8, 8), (128, 64, 3, 3), "weight", pad=(1,) * 4) == "winograd"
        # fewer channels: winograd's transforms weigh more; direct_kvec keeps them on AVX-512
        assert pick((32, 32, 32, 32), (32, 32, 3, 3), "weight", pad=(1,) * 4) == "winograd"
        assert pick((32, 16, 32, 32), (32, 16, 3, 3), "weight", pad=(1,) * 4) == (
            "direct_kvec" if isa == "avx512" else "winograd"), isa
        # ... but not with half a kvec tile of output channels on many input channels: winograd
        assert pick((32, 64, 32, 32), (16, 64, 3, 3), "weight", pad=(1,) * 4) == "winograd", isa
        assert pick((32, 64, 32, 32), (16, 64, 3, 3), "weight", pad=(1,) * 4,
                    dtype="float64") == "winograd"
        assert pick((8, 64, 8, 8), (16, 64, 3, 3), "weight", pad=(1,) * 4) == "winograd", isa
        assert pick((32, 128, 16, 16), (128, 128, 3, 1), "weight") == "im2col_gemm_batch"
        assert pick((1, 3, 224, 224), (64, 3, 7, 7), "weight", stride=(2, 2), pad=(3,) * 4) == (
            kvec_or("im2col_gemm"))  # a 7x7/2 first layer, N=1
        assert pick(*c1, "forward") == "direct_small"      # C == 1, G == 1 is not depthwise
        assert pick(*c1, "data") == "im2col_gemm"          # one output plane: im2col wins
        # one input channel, 64 images: direct_batch's image lanes on a vector ISA; 4 images
        # fill half an AVX2 vector, a quarter of an AVX-512 one (direct_small's padded rows, or
        # kvec where it applies); padding: direct_batch's weight kernel has no padded taps
        assert pick(*c1, "weight") == ("direct_batch" if core.isa() != "baseline"
                                       else "direct_small")
        assert pick((4,) + c1[0][1:], c1[1], "weight") != "direct_batch"
        assert pick(*c1, "weight", pad=(2,) * 4) != "direct_batch"
        assert pick(*c1, "weight", dtype="float64") == (
            "direct_batch" if core.isa() != "baseline" else "direct_small")
        # 16 channels, 10 of 14 columns: two AVX2 vectors, one AVX-512 vector (load bound),
        # except where AVX-512 runs on 256-bit halves (Zen 4), which takes the AVX2 tiles
        assert pick(*c3, "forward") == kvec_or(
            "direct_small", isa == "avx2" or (isa == "avx512" and core.narrow_avx512())), isa
        assert pick(*c3, "data") == "direct_batch"         # 10 x 10 dy: mostly zero padding
        assert pick((4, 6, 14, 14), (16, 6, 5, 5), "data") == (  # N=4: idle AVX2/AVX-512
            "direct_batch" if isa == "baseline" else "direct_small"), isa  # lanes, SSE's 4
        assert pick((64, 6, 28, 28), (16, 6, 5, 5), "data", pad=(2,) * 4) == "direct_small"
        # weight: 16 channels are a whole tile (one AVX-512 vector); half a tile still beats
        # direct_small's rows of 10 valid columns in 14, not on 32 of 34 (3x3 on 32 px)
        assert pick(*c3, "weight") == kvec_or("direct_small"), isa
        assert pick((32, 3, 32, 32), (16, 3, 3, 3), "weight", pad=(1,) * 4) == kvec_or(
            "direct_small"), isa
        assert pick((64, 6, 14, 14), (12, 6, 5, 5), "weight") == kvec_or("direct_small"), isa
        assert pick((32, 3, 32, 32), (8, 3, 3, 3), "weight", pad=(1,) * 4) == kvec_or(
            "direct_small", isa == "avx2"), isa
        assert pick((32, 3, 32, 32), (64, 3, 3, 3), "forward", pad=(1,) * 4) == "direct_small"
    core.set_isa(core.detected_isa())
    assert pick((8, 17, 9, 9), (8, 17, 3, 3), "weight") == "im2col_gemm_batch"
    assert pick((8, 16, 9, 9), (6, 16, 3, 3), "forward") == "direct_small"
    assert pick((8, 17, 9, 9), (8, 17, 3, 3), "forward") == "im2col_gemm"
    assert pick((8, 6, 9, 9), (8, 6, 3, 3), "forward", stride=(2, 2)) == "direct_kvec"
    assert pick((8, 17, 9, 9), (8, 17, 3, 3), "forward", stride=(2, 2)) == "im2col_gemm"
    assert pick((1, 3, 224, 224), (64, 3, 7, 7), "forward", stride=(2, 2), pad=(3,) * 4) == (
        "direct_kvec")  # a 7x7/2 first layer
    assert pick((1, 64, 8, 8), (64, 64, 3, 3), "weight") == "winograd"  # 4 tiles, small weights
    assert pick((1, 64, 8, 8), (64, 64, 3, 3), "weight", stride=(2, 2)) == "im2col_gemm"
    assert pick((4, 8, 9, 9), (8, 1, 3, 3), "forward", groups=8) == "direct_depthwise"


def test_data_direct_small_exact_for_nonfinite_weights(rng):
    """direct_small multiplies dy's zero padding by w: an inf weight would put NaN where the
    reference has none, so it runs the exact path (im2col_gemm) then, picked by auto or forced
    (an autotuned winner is forced)."""
    case = ((2, 6, 9, 9), (16, 6, 5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1)
    x, w, b, dy = make_problem(rng, case, np.float64)
    w[0, 0, 0, 0] = np.inf
    assert core.conv2d_algorithm(*case, "float64", "data") == "direct_small"
    with np.errstate(invalid="ignore"):
        want = ref.conv2d_backward(dy, x, w, *case[2:], False)[0]
    for algo in ("auto", "direct_small"):
        got = core.conv2d_backward_data(dy, w, case[0], *case[2:], algo=algo)
        for pred in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(pred(got), pred(want), err_msg=algo)


def test_weight_direct_small_exact_for_nonfinite_inputs(rng):
    """direct_small's dw multiplies x's junk columns by zeros of dy: a NaN/inf in x would
    spread NaN, so it runs an im2col path then, picked by auto or forced."""
    case = ((2, 6, 9, 9), (16, 6, 5, 5), (1, 1), (1, 0, 0, 0), (1, 1), 1)
    x, w, b, dy = make_problem(rng, case, np.float64)
    x[0, 1, 2, 8], x[1, 0, 5, 0] = np.inf, np.nan
    assert core.conv2d_algorithm(*case, "float64", "weight") == "direct_small"
    with np.errstate(invalid="ignore"):
        want = ref.conv2d_backward(dy, x, w, *case[2:], True)[1]
    for algo in ("auto", "direct_small"):
        got = core.conv2d_backward_weight(dy, x, case[1], *case[2:], True, algo=algo)[0]
        for pred in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(pred(got), pred(want), err_msg=algo)


@pytest.mark.parametrize("isa", AVAILABLE_ISAS)
def test_data_direct_batch_exact_for_nonfinite_weights(rng, restore_core, isa):
    """direct_batch sums only the taps that land in dy (no zero padding multiplied), so an inf
    weight gives the reference's NaN/inf pattern, forced or picked by auto."""
    core.set_isa(isa)
    case = ((64, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1)
    x, w, b, dy = make_problem(rng, case, np.float32)
    w[3, 2, 0, 4], w[7, 1, 2, 2] = np.inf, -np.inf
    assert core.conv2d_algorithm(*case, "float32", "data") == "direct_batch"
    with np.errstate(invalid="ignore"):
        want = ref.conv2d_backward(dy.astype(np.float64), x.astype(np.float64),
                                   w.astype(np.float64), *case[2:], False)[0]
    for algo in ("auto", "direct_batch"):
        got = core.conv2d_backward_data(dy, w, case[0], *case[2:], algo=algo)
        for pred in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(pred(got), pred(want), err_msg=algo)


_KVEC_SCRIPT = """
import hashlib, numpy as np
from convforge import _core
h = hashlib.sha256()
rng = np.random.default_rng(5)
# (x shape, w shape, stride, padding, dilation, groups): Kg within one AVX-512 vector
for xs, ws, st, pad, dil, g in %r:
    for dt in (np.float32, np.float64):
        x = rng.standard_normal(xs).astype(dt)
        w = rng.standard_normal(ws).astype(dt)
        b = rng.standard_normal(ws[0]).astype(dt)
        for act in ("linear", "relu"):
            y = _core.conv2d_forward(x, w, b, st, pad, dil, g, algo="direct_kvec",
                                     activation=act)
            h.update(y.tobytes())
        dw, db = _core.conv2d_backward_weight(rng.standard_normal(y.shape).astype(dt), x, ws,
                                              st, pad, dil, g, True, algo="direct_kvec")
        h.update(dw.tobytes())
        h.update(db.tobytes())
c3 = ((64, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1)
print(_core.narrow_avx512(), _core.conv2d_algorithm(*c3[:2], *c3[2:], "float32", "forward"),
      h.hexdigest())
"""
_KVEC_GRID = [((64, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),
              ((3, 4, 11, 13), (12, 4, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
              ((2, 6, 17, 15), (8, 3, 3, 3), (2, 2), (1, 0, 1, 0), (1, 1), 2),
              ((2, 3, 16, 16), (6, 3, 3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 1),
              ((4, 8, 16, 16), (16, 8, 5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),
              ((3, 6, 14, 14), (12, 6, 5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),
              ((2, 4, 12, 12), (10, 2, 5, 5), (2, 2), (1, 1, 1, 1), (1, 1), 2)]


@pytest.mark.skipif("avx512" not in AVAILABLE_ISAS, reason="narrow_avx512 changes AVX-512 only")
def test_kvec_forward_narrow_avx512_same_bits():
    """On a CPU running AVX-512 on 256-bit halves (cpu.hpp narrow_avx512: Zen 4) direct_kvec runs
    the AVX2 copy's tiles for one 512-bit vector of output channels (forward; weight gradient of
    5x5 kernels): in a fresh process each way (CONVFORGE_NARROW_AVX512=1 / 0), same bits (float
    and double, bias, ReLU, stride, groups, dilation, padding, dw and db), and LeNet C3's forward
    goes to direct_kvec only when narrow."""
    got = {}
    for flag in ("0", "1"):
        narrow, c3_algo, digest = run_python(_KVEC_SCRIPT % (_KVEC_GRID,), CONVFORGE_ISA="avx512",
                                             CONVFORGE_NARROW_AVX512=flag)
        assert narrow == ("True" if flag == "1" else "False")
        assert c3_algo == ("direct_kvec" if flag == "1" else "direct_small")
        got[flag] = digest
    assert got["0"] == got["1"]


@pytest.mark.parametrize("isa", AVAILABLE_ISAS)
def test_weight_direct_kvec_exact_for_nonfinite_inputs(rng, restore_core, isa):
    """direct_kvec's dw sums only the valid output positions (no junk columns), so NaN and inf
    in x give the reference's pattern, forced or picked by auto (with AVX2 or AVX-512)."""
    core.set_isa(isa)
    case = ((2, 17, 16, 17), (32, 17, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1)
    x, w, b, dy = make_problem(rng, case, np.float32)
    x[0, 1, 2, 16], x[1, 0, 5, 0] = np.inf, np.nan
    if isa == "avx512":   # (AVX2 picks winograd for this shape: the exact path on this data)
        assert core.conv2d_algorithm(*case, "float32", "weight") == "direct_kvec"
    with np.errstate(invalid="ignore"):
        want = ref.conv2d_backward(dy.astype(np.float64), x.astype(np.float64),
                                   w.astype(np.float64), *case[2:], True)[1]
    for algo in ("auto", "direct_kvec"):
        got = core.conv2d_backward_weight(dy, x, case[1], *case[2:], True, algo=algo)[0]
        for pred in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(pred(got), pred(want), err_msg=algo)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", GRID, ids=IDS)
def test_im2col_col2im(rng, restore_core, case, dtype):
    xs, ws, stride, pad, dil, _ = case
    ks = ws[2:]
    x = rng.standard_normal(xs).astype(dtype)
    want = ref.im2col(x, ks, stride, pad, dil)
    cols = rng.standard_normal(want.shape).astype(dtype)
    back_r = ref.col2im(cols, xs, ks, stride, pad, dil)
    back_m = ref.col2im(np.abs(cols.astype(np.float64)), xs, ks, stride, pad, dil)
    for isa in AVAILABLE_ISAS:  # im2col/col2im have no ISA paths; the loop guards dispatch
        core.set_isa(isa)
        got = core.im2col(x, ks, stride, pad, dil)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want)  # a pure copy: exact
        back = core.col2im(cols, xs, ks, stride, pad, dil)
        assert_within_mag(f"col2im {case}", back, back_r, back_m, ks[0] * ks[1], dtype)


# ---------------------------------------------------------------- determinism and exactness

THREAD_CASES = [
    ((1, 16, 14, 13), (24, 16, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # N=1: GEMM split
    ((4, 16, 12, 12), (32, 16, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # parallel over N
    ((1, 32, 16, 16), (48, 32, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),  # pointwise
    ((2, 12, 9, 9), (24, 1, 3, 3), (2, 1), (1, 1, 1, 1), (1, 1), 12),    # depthwise
    ((3, 8, 9, 7), (6, 4, 3, 3), (1, 2), (1, 0, 2, 1), (2, 1), 2),       # groups
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", THREAD_CASES)
def test_bit_identical_for_any_thread_count(rng, restore_core, case, dtype):
    xs, ws, stride, pad, dil, g = case
    x, w, b, dy = make_problem(rng, case, dtype)
    args = (stride, pad, dil, g)
    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        results = []
        for threads in (1, 2, 3):
            core.set_num_threads(threads)
            results.append((core.conv2d_forward(x, w, b, *args),
                            core.conv2d_backward_data(dy, w, xs, *args),
                            *core.conv2d_backward_weight(dy, x, ws, *args, True),
                            core.col2im(core.im2col(x, ws[2:], stride, pad, dil), xs, ws[2:],
                                        stride, pad, dil)))
        for threads, res in zip((2, 3), results[1:]):
            for name, a, b1 in zip(("y", "dx", "dw", "db", "col2im"), res, results[0]):
                assert np.array_equal(a, b1), (
                    f"{name} differs between 1 and {threads} threads ({isa}, {case}): "
                    f"max |diff| {np.abs(a - b1).max()}")


# >= 32 input channels and N >= 5 (several dw chunks), plus small-channel shapes.
FORCED_THREAD_CASES = [
    ((6, 32, 9, 9), (24, 32, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((11, 40, 5, 6), (16, 20, 3, 3), (1, 1), (1, 0, 0, 1), (1, 1), 2),
    ((7, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((5, 1, 16, 16), (6, 1, 5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),
    ((2, 3, 12, 12), (20, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((9, 4, 24, 24), (5, 4, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),        # 5 dw chunks
    ((5, 34, 11, 12), (40, 34, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),     # stride 2
    ((33, 6, 9, 8), (8, 6, 5, 3), (1, 1), (0, 1, 0, 0), (1, 1), 1),         # 33 images: blocks
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", FORCED_THREAD_CASES)
def test_forced_algorithms_bit_identical_for_any_thread_count(rng, restore_core, case, dtype):
    xs, ws, stride, pad, dil, g = case
    x, w, b, dy = make_problem(rng, case, dtype)
    args = (stride, pad, dil, g)
    runs = {}
    for threads in (1, 2, 3):
        core.set_num_threads(threads)
        for a in algorithms(case, dtype, "forward"):
            runs.setdefault(("y", a), []).append(core.conv2d_forward(x, w, b, *args, algo=a))
        for a in algorithms(case, dtype, "data"):
            runs.setdefault(("dx", a), []).append(
                core.conv2d_backward_data(dy, w, xs, *args, algo=a))
        for a in algorithms(case, dtype, "weight"):
            dw, db = core.conv2d_backward_weight(dy, x, ws, *args, True, algo=a)
            runs.setdefault(("dw", a), []).append(dw)
            runs.setdefault(("db", a), []).append(db)
        dx, dw, db = core.conv2d_backward(dy, x, w, *args, True)
        for name, v in (("dx", dx), ("dw", dw), ("db", db)):
            runs.setdefault((name, "combined auto"), []).append(v)
    assert ("dw", "im2col_gemm_batch") in runs
    for (name, a), res in runs.items():
        for threads, r in zip((2, 3), res[1:]):
            assert np.array_equal(r, res[0]), (
                f"{name} algo={a} differs between 1 and {threads} threads ({case}): "
                f"max |diff| {np.abs(r - res[0]).max()}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", GRID, ids=IDS)
def test_integer_inputs_exact(rng, restore_core, case, dtype):
    """Small integers: every product and partial sum is exactly representable, so every path
    (any summation order) must give the reference's result exactly."""
    xs, ws, stride, pad, dil, g = case
    x = rng.integers(-3, 4, xs).astype(dtype)
    w = rng.integers(-3, 4, ws).astype(dtype)
    b = rng.integers(-3, 4, ws[0]).astype(dtype)
    dy = rng.integers(-3, 4, out_shape(xs, ws, stride, pad, dil)).astype(dtype)
    args = (stride, pad, dil, g)
    want = (ref.conv2d(x, w, b, *args), *ref.conv2d_backward(dy, x, w, *args, True))
    # [winograd] Winograd's transforms (factors 1/6, 1/24, ...) are not exact on integers: y and
    # dx of a Winograd-chosen case get conftest's bound, 16 eps sqrt(reduction) max |reference|.
    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        inexact = {name for name, direction in (("y", "forward"), ("dx", "data"),
                                                ("dw", "weight"))
                   if core.conv2d_algorithm(xs, ws, *args, np.dtype(dtype).name, direction)
                   == "winograd"}   # the choice of this ISA
        for naive in (False, True):
            got = conv_results(x, w, b, dy, args, naive)
            for name, a, r in zip(("y", "dx", "dw", "db"), got, want):
                if not naive and name in inexact:
                    red = np.prod(ws[1:]) if name != "dw" else xs[0] * np.prod(dy.shape[2:])
                    tol = 16 * np.finfo(dtype).eps * np.sqrt(red) * np.abs(r).max()
                    np.testing.assert_allclose(a, r, rtol=0, atol=tol,
                                               err_msg=f"{name} {isa} winograd")
                    continue
                np.testing.assert_array_equal(a, r, err_msg=f"{name} {isa} naive={naive}")


def test_lecture_examples(restore_core):
    x = np.zeros((1, 1, 6, 6))
    x[..., :3] = 10
    w = np.array([[1.0, 0.0, -1.0]] * 3)[None, None]
    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        y = core.conv2d_forward(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 1)
        np.testing.assert_array_equal(y[0, 0], [[0, 30, 30, 0]] * 4)
        x5 = np.array([[1, 2, 0, 3, 1], [1, 0, 0, 2, 2], [2, 1, 2, 1, 1], [0, 0, 1, 0, 0],
                       [1, 2, 1, 1, 1]], np.float32)[None, None]
        k = np.array([[-1, 1, 2], [1, 1, 0], [-1, -2, 0]], np.float32)[None, None]
        y = core.conv2d_forward(x5, k, None, (2, 2), (0, 0, 0, 0), (1, 1), 1)
        np.testing.assert_array_equal(y[0, 0], [[-2, 3], [-2, -1]])
        y = core.conv2d_forward(x5, k, None, (1, 1), (1, 1, 1, 1), (1, 1), 1)
        np.testing.assert_array_equal(y[0, 0, 0], [-1, 2, 2, -1, -2])


# ---------------------------------------------------------------- NaN / inf

NAN_CASES = [GRID[1], GRID[2], GRID[8], GRID[9], GRID[6]]


@pytest.mark.parametrize("where", ["x", "w", "dy"])
@pytest.mark.parametrize("case", NAN_CASES)
def test_nan_inf_like_reference(rng, restore_core, case, where):
    """Non-finite values land where the reference puts them: padding reads as 0, and
    0 * inf = NaN counts (so an inf weight turns border outputs NaN, as in im2col + GEMM)."""
    xs, ws, stride, pad, dil, g = case
    x, w, b, dy = make_problem(rng, case, np.float64)
    if where == "x":
        x[0, 0, 0, 1], x[-1, -1, -2, -1] = np.nan, np.inf
    elif where == "w":
        w[0, 0, 0, 0], w[-1, -1, -1, -1] = np.inf, np.nan
    else:
        dy[0, 0, 0, 0], dy[-1, -1, -1, -1], dy[0, -1, 1, 0] = np.inf, np.nan, -np.inf
    args = (stride, pad, dil, g)
    with np.errstate(invalid="ignore"):
        want = (ref.conv2d(x, w, b, *args), *ref.conv2d_backward(dy, x, w, *args, True))
    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        for naive in (False, True):
            got = conv_results(x, w, b, dy, args, naive)
            for name, a, r in zip(("y", "dx", "dw", "db"), got, want):
                for pred in (np.isnan, np.isposinf, np.isneginf):
                    np.testing.assert_array_equal(
                        pred(a), pred(r), err_msg=f"{pred.__name__} {name} {isa} naive={naive}")
                fin = np.isfinite(r)
                np.testing.assert_allclose(a[fin], r[fin], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", ALGO_GRID + GRID, ids=ALGO_IDS + IDS)
def test_relu_epilogue_every_forced_algorithm(rng, restore_core, case, dtype):
    """activation='relu' (the epilogue each algorithm applies where it stores y) gives exactly
    activation(conv2d(...), 'relu') of the same algorithm, on every ISA path; NaN stays NaN."""
    x, w, b, _ = make_problem(rng, case, dtype)
    x_nan = x.copy()
    x_nan.flat[::7] = np.nan          # NaN inputs send winograd / direct_small to the exact path
    args = (case[2], case[3], case[4], case[5])
    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        for a in algorithms(case, dtype, "forward"):
            for xi in (x, x_nan):
                want = core.activation(core.conv2d_forward(xi, w, b, *args, algo=a), "relu")
                got = core.conv2d_forward(xi, w, b, *args, algo=a, activation="relu")
                assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (a, isa, case)
    with pytest.raises(ValueError, match="activation"):
        core.conv2d_forward(x, w, b, *args, activation="tanh")
