"""Thread-count invariance: the cpu backend (convforge.set_num_threads) and the numba backend
(numba.set_num_threads) give bit-identical results for 1, 2 and 3 threads, forward and
backward (no atomics, fixed reduction order)."""

from __future__ import annotations

import numpy as np
import pytest

import convforge

from conftest import assert_exact, randn

THREADS = (1, 2, 3)


def _ops(rng, dtype):
    """(name, thunk-of-call) pairs big enough that every thread gets work."""
    x = randn(rng, (5, 6, 13, 11), dtype)
    w = randn(rng, (8, 3, 3, 3), dtype)
    b = randn(rng, (8,), dtype)
    kw = dict(stride=(1, 2), padding=1, groups=2)
    dy = randn(rng, (5, 8, 13, 6), dtype)
    cols = randn(rng, (5, 6 * 9, 13 * 11), dtype)
    dyp = randn(rng, (5, 6, 7, 6), dtype)                 # pool 3/2 pad 1 ceil of 13x11
    pkw = dict(stride=2, padding=1, ceil_mode=True)
    return [
        ("conv2d", lambda c: c("conv2d", x, w, b, **kw)),
        ("conv2d_backward", lambda c: c("conv2d_backward", dy, x, w, **kw)),
        ("im2col", lambda c: c("im2col", x, 3, padding=1)),
        ("col2im", lambda c: c("col2im", cols, x.shape, 3, padding=1)),
        ("max_pool2d", lambda c: c("max_pool2d", x, 3, return_indices=True, **pkw)),
        ("max_pool2d_backward", lambda c: c("max_pool2d_backward", dyp, x, 3, **pkw)),
        ("min_pool2d_backward", lambda c: c("min_pool2d_backward", dyp, x, 3, **pkw)),
        ("avg_pool2d", lambda c: c("avg_pool2d", x, 3, count_include_pad=False, **pkw)),
        ("avg_pool2d_backward", lambda c: c("avg_pool2d_backward", dyp, x, 3, **pkw)),
        ("global_avg_pool2d", lambda c: c("global_avg_pool2d", x)),
        ("global_max_pool2d", lambda c: c("global_max_pool2d", x, return_indices=True)),
    ]


def _outputs(r) -> list:
    return list(r) if isinstance(r, tuple) else [r]


def _set_threads(backend, n: int) -> int:
    """Sets backend's thread count to n (capped by what it allows); returns the count set."""
    if backend.name == "cpu":
        convforge.set_num_threads(n)
        return convforge.get_num_threads()
    import numba

    n = min(n, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n)
    return numba.get_num_threads()


def _get_threads(backend) -> int:
    if backend.name == "cpu":
        return convforge.get_num_threads()
    import numba

    return numba.get_num_threads()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_results_independent_of_thread_count(backend, dtype, rng):
    if backend.name not in ("cpu", "numba"):
        pytest.skip(f"{backend.name} has no thread-count setting")
    ops = _ops(rng, dtype)
    before = _get_threads(backend)
    try:
        results = {}
        for n in THREADS:
            used = _set_threads(backend, n)
            if used in results:
                continue
            results[used] = [(name, call(backend)) for name, call in ops]
        if len(results) < 2:
            pytest.skip(f"{backend.name} cannot use more than one thread here")
        (n0, first), *rest = results.items()
        for n, res in rest:
            for (name, a), (_, b) in zip(first, res):
                for i, (ai, bi) in enumerate(zip(_outputs(a), _outputs(b))):
                    if ai is None:
                        assert bi is None, f"{name} output {i}"
                    else:
                        assert_exact(bi, ai, ai.dtype, what=f"{backend.name} {name} output "
                                                            f"{i}: {n} threads vs {n0}")
    finally:
        _set_threads(backend, before)
