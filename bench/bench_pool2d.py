"""max/avg pooling forward and backward (backward of max: dy and the forward's indices -> dx);
GB/s from the bytes the forward must move (input + output at float32)."""

from __future__ import annotations

import numpy as np
import pytest

import convforge

from conftest import QUICK, run_group
from harness import Group, all_impls
from shapes import POOL, QUICK_POOL


def _make(impl, mode, direction, case):
    x = np.random.default_rng(0).standard_normal((case.N, case.C, case.H, case.W))
    x = x.astype(np.float32)
    k, s, p = case.k, case.stride, case.pad
    F = convforge.F
    if impl.startswith("convforge-"):
        be = impl.split("-", 1)[1]
        if mode == "max":
            y, idx = F.max_pool2d(x, k, s, p, return_indices=True, backend=be)
            if direction == "fwd":
                return lambda: F.max_pool2d(x, k, s, p, return_indices=True, backend=be)
            return lambda: F.max_pool2d_backward(y, x, k, s, p, indices=idx, backend=be)
        y = F.avg_pool2d(x, k, s, p, backend=be)
        if direction == "fwd":
            return lambda: F.avg_pool2d(x, k, s, p, backend=be)
        return lambda: F.avg_pool2d_backward(y, x, k, s, p, backend=be)
    if impl == "torch":
        import torch

        tx = torch.from_numpy(x)
        if mode == "max":
            y, idx = torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=True)
            if direction == "fwd":
                return lambda: torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=True)
            return lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                y, tx, [k] * 2, [s] * 2, [p] * 2, [1, 1], False, idx)
        y = torch.nn.functional.avg_pool2d(tx, k, s, p)
        if direction == "fwd":
            return lambda: torch.nn.functional.avg_pool2d(tx, k, s, p)
        return lambda: torch.ops.aten.avg_pool2d_backward(y, tx, [k] * 2, [s] * 2, [p] * 2,
                                                          False, True, None)
    if direction == "bwd" or mode != "max" or p:
        return None
    import numpy_ref

    return lambda: numpy_ref.max_pool2d(x, k, s)


def groups(quick: bool = QUICK) -> list[Group]:
    out = []
    for direction in ("fwd", "bwd"):
        for mode in ("max", "avg"):
            for case in POOL:
                if quick and case.name not in QUICK_POOL:
                    continue
                out.append(Group(f"{mode}_pool2d-{direction}-{case.name}",
                                 lambda impl, m=mode, d=direction, c=case: _make(impl, m, d, c),
                                 {"bytes": case.bytes}, rounds=31))
    return out


@pytest.mark.parametrize("impl", all_impls())
@pytest.mark.parametrize("group", groups(), ids=lambda g: g.name)
def test_pool2d(benchmark, group, impl):
    run_group(benchmark, group, impl)
