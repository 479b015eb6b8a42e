"""conv2d forward and backward (dx + dw + db): one group per (direction, shape), every
implementation in it. Run: pytest bench/bench_conv2d.py --benchmark-json=out.json"""

from __future__ import annotations

import os

import numpy as np
import pytest

import convforge

from conftest import impls
from shapes import CONV, QUICK_CONV

QUICK = os.environ.get("CONVFORGE_BENCH_QUICK") == "1"
CASES = [c for c in CONV if not QUICK or c.name in QUICK_CONV]


def _make(case, rng, dtype=np.float32):
    x = rng.standard_normal((case.N, case.C, case.H, case.W)).astype(dtype)
    w = rng.standard_normal((case.K, case.C // case.groups, case.KH, case.KW)).astype(dtype)
    b = rng.standard_normal(case.K).astype(dtype)
    oh, ow = case.out_hw
    dy = rng.standard_normal((case.N, case.K, oh, ow)).astype(dtype)
    return x, w, b, dy


def _forward(impl, case, x, w, b):
    if impl.startswith("convforge-"):
        be = impl.split("-", 1)[1]
        return lambda: convforge.F.conv2d(x, w, b, case.stride, case.pad, groups=case.groups,
                                          backend=be)
    if impl == "torch":
        import torch

        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        return lambda: torch.nn.functional.conv2d(tx, tw, tb, case.stride, case.pad, 1,
                                                  case.groups)
    import numpy_ref

    return lambda: numpy_ref.conv2d(x, w, b, case.stride, case.pad)


def _backward(impl, case, x, w, dy):
    if impl.startswith("convforge-"):
        be = impl.split("-", 1)[1]
        return lambda: convforge.F.conv2d_backward(dy, x, w, case.stride, case.pad,
                                                   groups=case.groups, backend=be)
    if impl == "torch":
        import torch

        tx, tw, tdy = (torch.from_numpy(a) for a in (x, w, dy))

        def run():
            # The same three gradients convforge computes: grad_input, grad_weight, grad_bias.
            return torch.ops.aten.convolution_backward(
                tdy, tx, tw, [w.shape[0]], [case.stride] * 2, [case.pad] * 2, [1, 1], False,
                [0, 0], case.groups, [True, True, True])

        return run
    import numpy_ref

    return lambda: numpy_ref.conv2d_backward(dy, x, w, case.stride, case.pad)


@pytest.mark.parametrize("impl", impls())
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_conv2d(benchmark, impl, case, direction, rng):
    if impl == "numpy" and case.groups != 1:
        pytest.skip("numpy baseline has no groups")
    x, w, b, dy = _make(case, rng)
    fn = _forward(impl, case, x, w, b) if direction == "fwd" else _backward(impl, case, x, w, dy)
    benchmark.group = f"conv2d-{direction}-{case.name}"
    benchmark.extra_info.update(flops=case.flops * (1 if direction == "fwd" else 2), impl=impl)
    fn()  # warm-up (JIT, caches, first-touch of workspaces)
    benchmark.pedantic(fn, rounds=_rounds(case), iterations=1, warmup_rounds=1)


def _rounds(case):
    return max(3, min(30, int(2e10 / max(case.flops, 1))))
