"""The compiled GEMM (convforge._core.gemm).

gemm against NumPy in float64 on a grid of M, N, K around every ISA's register tile (MR, NR) and
depth slice (KC), large enough for several row / column / depth blocks, for every transpose
combination, with accumulate (c) and row_bias, in float32 and float64, on every ISA this CPU
has. Bit-identical results for 1, 2 and 3 threads.

Blocking of each ISA copy (csrc/gemm/gemm_*.cpp): register tile MR x NR (float / double), depth
slice at most KC (balanced: ceil(K / KC) equal slices), row block MC, column block NC:
  baseline  6 x 8  / 6 x 4    KC 256   MC 96 / 72    NC 2048 / 1024
  avx2      6 x 16 / 6 x 8    KC 320   MC 96 / 72    NC 2048 / 1024
  avx512    12 x 32 / 12 x 16 KC 256   MC 192 / 144  NC 2048 / 1024
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO, available_isas

core = pytest.importorskip("convforge._core")

RNG_SEED = 20261201   # the seed of the `rng` fixture (conftest) in this module

AVAILABLE_ISAS = available_isas(core)
DTYPES = (np.float32, np.float64)
TRANS = [(False, False), (True, False), (False, True), (True, True)]

# Edges of every ISA's tiles: 1, MR +- 1 (5, 7, 11, 13), NR +- 1 (3, 5, 7, 9, 15, 17, 31, 33).
SMALL_M = (1, 5, 6, 7, 11, 13)
SMALL_N = (1, 3, 8, 9, 15, 17, 31, 33)
# Depths: 1, 2, around one and two slices of KC = 256 / 320, a balanced 3-slice depth.
DEPTHS = (1, 2, 255, 257, 319, 321, 641)
# Larger: several MC row blocks, several NC column blocks, several panel groups, edges.
LARGE = [
    (200, 150, 700),
    (97, 2100, 33),     # N > NC (2048): two column blocks; M = MC + 1
    (300, 70, 1000),    # M > 2 MC, 4 depth slices
    (64, 576, 600),     # a conv's backward-weight shape
    (150, 300, 5),
]


def operands(rng, m, n, k, ta, tb, dtype):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


def op64(x, t):
    x = x.astype(np.float64)
    return x.T if t else x


def check(tag, got, a, b, ta, tb, dtype, c=None, bias=None):
    """|got - want| <= 4 eps (K + 2) (|op(a)| |op(b)| + |c| + |bias|) element-wise."""
    A, B = op64(a, ta), op64(b, tb)
    want, mag = A @ B, np.abs(A) @ np.abs(B)
    if c is not None:
        want, mag = want + c, mag + np.abs(c)
    if bias is not None:
        want, mag = want + bias[:, None], mag + np.abs(bias[:, None])
    assert got.dtype == dtype, f"{tag}: dtype {got.dtype}"
    assert got.shape == want.shape, f"{tag}: shape {got.shape} != {want.shape}"
    eps = np.finfo(dtype).eps
    allowed = 4 * eps * (A.shape[1] + 2) * mag + np.finfo(dtype).tiny
    err = np.abs(got.astype(np.float64) - want)
    bad = err > allowed
    if bad.any():
        i = np.unravel_index(np.argmax(err - allowed), err.shape)
        pytest.fail(f"{tag}: {bad.sum()} of {err.size} wrong, worst at {i}: got {got[i]!r}, "
                    f"want {want[i]!r} (allowed {allowed[i]:.3g})")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("ta,tb", TRANS, ids=["nn", "tn", "nt", "tt"])
@pytest.mark.parametrize("isa", AVAILABLE_ISAS)
def test_gemm_small_grid(rng, restore_core, isa, ta, tb, dtype):
    core.set_isa(isa)
    for k in DEPTHS:
        for m in SMALL_M:
            for n in SMALL_N:
                a, b = operands(rng, m, n, k, ta, tb, dtype)
                check(f"{isa} {m}x{n}x{k}", core.gemm(a, b, ta, tb), a, b, ta, tb, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("ta,tb", TRANS, ids=["nn", "tn", "nt", "tt"])
@pytest.mark.parametrize("isa", AVAILABLE_ISAS)
def test_gemm_large(rng, restore_core, isa, ta, tb, dtype):
    core.set_isa(isa)
    for threads in (1, 2):
        core.set_num_threads(threads)
        for m, n, k in LARGE:
            a, b = operands(rng, m, n, k, ta, tb, dtype)
            tag = f"{isa} {threads}t {m}x{n}x{k}"
            check(tag, core.gemm(a, b, ta, tb), a, b, ta, tb, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("isa", AVAILABLE_ISAS)
def test_gemm_accumulate_and_bias(rng, restore_core, isa, dtype):
    core.set_isa(isa)
    for m, n, k in [(7, 17, 3), (13, 33, 321), (100, 90, 641), (1, 1, 1)]:
        for ta, tb in TRANS:
            a, b = operands(rng, m, n, k, ta, tb, dtype)
            c = rng.standard_normal((m, n)).astype(dtype)
            bias = rng.standard_normal(m).astype(dtype)
            tag = f"{isa} {m}x{n}x{k} ta={ta} tb={tb}"
            c_before = c.copy()
            check(tag + " +c", core.gemm(a, b, ta, tb, c=c), a, b, ta, tb, dtype, c=c)
            np.testing.assert_array_equal(c, c_before)  # c is an input, not overwritten
            check(tag + " +bias", core.gemm(a, b, ta, tb, row_bias=bias), a, b, ta, tb, dtype,
                  bias=bias)


@pytest.mark.parametrize("isa", AVAILABLE_ISAS)
def test_gemm_exact_on_integers(rng, restore_core, isa):
    """Small integers: every partial sum is exact, so any blocking must give NumPy's result."""
    core.set_isa(isa)
    for dtype in DTYPES:
        for m, n, k in [(13, 35, 700), (50, 40, 1)]:
            a = rng.integers(-4, 5, (m, k)).astype(dtype)
            b = rng.integers(-4, 5, (k, n)).astype(dtype)
            np.testing.assert_array_equal(core.gemm(a, b), (a.astype(np.int64) @ b).astype(dtype))


def test_gemm_propagates_nan_inf(restore_core):
    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        a = np.ones((9, 20), np.float32)
        b = np.ones((20, 18), np.float32)
        a[2, 5] = np.nan
        b[3, 7] = np.inf
        got = core.gemm(a, b)
        assert np.isnan(got[2]).all()  # row 2 has a NaN term in every column
        assert np.isinf(got[np.arange(9) != 2, 7]).all()
        mask = np.ones_like(got, bool)
        mask[2] = False
        mask[:, 7] = False
        np.testing.assert_array_equal(got[mask], 20.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("isa", AVAILABLE_ISAS)
def test_gemm_thread_invariance(rng, restore_core, isa, dtype):
    """Bit-identical results for 1, 2 and 3 threads (the parallel split only tiles C)."""
    core.set_isa(isa)
    for (m, n, k), (ta, tb) in zip([(130, 270, 333), (37, 2100, 70), (400, 20, 650),
                                    (64, 576, 1000)], TRANS):
        a, b = operands(rng, m, n, k, ta, tb, dtype)
        c = rng.standard_normal((m, n)).astype(dtype)
        bias = rng.standard_normal(m).astype(dtype)
        outs = []
        for threads in (1, 2, 3):
            core.set_num_threads(threads)
            outs.append((core.gemm(a, b, ta, tb), core.gemm(a, b, ta, tb, c=c),
                         core.gemm(a, b, ta, tb, row_bias=bias)))
        for threads, out in zip((2, 3), outs[1:]):
            for i, (x, y) in enumerate(zip(outs[0], out)):
                assert x.tobytes() == y.tobytes(), f"{isa} {m}x{n}x{k}: {threads} threads, out {i}"


def test_gemm_isa_copies_agree(rng, restore_core):
    """Every ISA copy computes the same product (up to rounding): a wrong copy cannot hide."""
    a, b = operands(rng, 70, 90, 500, False, False, np.float64)
    outs = {}
    for isa in AVAILABLE_ISAS:
        core.set_isa(isa)
        outs[isa] = core.gemm(a, b)
    for isa, out in outs.items():
        np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-11, err_msg=isa)


# ----------------------------------------------------- the AVX-512 copy without AVX-512

def test_avx512_copy_exact_with_avx2_codegen():
    """csrc/gemm/gemm_avx512.cpp compiled with AVX2 flags only (GCC splits its 64-byte vectors):
    the AVX-512 copy's tiles, blocking and edges checked exactly on a machine without AVX-512
    (the CPU-side tests above only reach it where the CPU has AVX-512), and its run on an op(B)
    packed beforehand (gemm_packed_b, Winograd's) against its own packing, bit for bit. Built by
    CMake from tests/core/cpp (tests/cmake_build.py)."""
    import subprocess

    import cmake_build

    if cmake_build.skip_reason():
        pytest.skip(cmake_build.skip_reason())
    if core.detected_isa() == "baseline":
        pytest.skip("the check is built with -mavx2 -mfma; this CPU lacks them")
    project = REPO / "tests" / "core" / "cpp"
    gemm = REPO / "csrc" / "gemm"
    folder = cmake_build.build(project, inputs=tuple(gemm.iterdir()))
    run = subprocess.run([str(folder / "out" / "gemm_geometry_check")], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert ", 0 bad" in run.stdout and int(run.stdout.split()[-4]) > 100, run.stdout
