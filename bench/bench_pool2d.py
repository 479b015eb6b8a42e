"""max/avg pooling forward and backward; GB/s from the bytes the forward must move."""

from __future__ import annotations

import os

import numpy as np
import pytest

import convforge

from conftest import impls
from shapes import POOL, QUICK_POOL

QUICK = os.environ.get("CONVFORGE_BENCH_QUICK") == "1"
CASES = [c for c in POOL if not QUICK or c.name in QUICK_POOL]


def _fn(impl, mode, direction, case, x):
    F = convforge.F
    if impl.startswith("convforge-"):
        be = impl.split("-", 1)[1]
        if mode == "max":
            y, idx = F.max_pool2d(x, case.k, case.stride, return_indices=True, backend=be)
            if direction == "fwd":
                return lambda: F.max_pool2d(x, case.k, case.stride, return_indices=True,
                                            backend=be)
            return lambda: F.max_pool2d_backward(y, x, case.k, case.stride, indices=idx,
                                                 backend=be)
        y = F.avg_pool2d(x, case.k, case.stride, backend=be)
        if direction == "fwd":
            return lambda: F.avg_pool2d(x, case.k, case.stride, backend=be)
        return lambda: F.avg_pool2d_backward(y, x, case.k, case.stride, backend=be)
    if impl == "torch":
        import torch

        tx = torch.from_numpy(x)
        if direction == "fwd":
            if mode == "max":
                return lambda: torch.nn.functional.max_pool2d(tx, case.k, case.stride,
                                                              return_indices=True)
            return lambda: torch.nn.functional.avg_pool2d(tx, case.k, case.stride)
        if mode == "max":
            y, idx = torch.nn.functional.max_pool2d(tx, case.k, case.stride, return_indices=True)
            return lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                y, tx, [case.k] * 2, [case.stride] * 2, [0, 0], [1, 1], False, idx)
        y = torch.nn.functional.avg_pool2d(tx, case.k, case.stride)
        return lambda: torch.ops.aten.avg_pool2d_backward(
            y, tx, [case.k] * 2, [case.stride] * 2, [0, 0], False, True, None)
    if direction == "bwd" or mode != "max":
        return None
    import numpy_ref

    return lambda: numpy_ref.max_pool2d(x, case.k, case.stride)


@pytest.mark.parametrize("impl", impls())
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_pool2d(benchmark, impl, case, mode, direction, rng):
    x = rng.standard_normal((case.N, case.C, case.H, case.W)).astype(np.float32)
    fn = _fn(impl, mode, direction, case, x)
    if fn is None:
        pytest.skip(f"{impl} has no {mode} {direction}")
    benchmark.group = f"{mode}_pool2d-{direction}-{case.name}"
    benchmark.extra_info.update(bytes=case.bytes, impl=impl)
    fn()
    benchmark.pedantic(fn, rounds=20, iterations=1, warmup_rounds=2)
