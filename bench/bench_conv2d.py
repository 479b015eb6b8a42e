"""conv2d forward and backward (dx + dw + db): one group per (direction, shape), every
implementation in it on the same seeded float32 inputs.
Run: pytest bench/bench_conv2d.py --benchmark-json=out.json   (or python bench/compare.py)"""

from __future__ import annotations

import numpy as np
import pytest

import convforge

from conftest import QUICK, run_group
from harness import Group, all_impls
from shapes import CONV, QUICK_CONV


def _inputs(case, dtype=np.float32):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.N, case.C, case.H, case.W)).astype(dtype)
    w = rng.standard_normal((case.K, case.C // case.groups, case.KH, case.KW)).astype(dtype)
    b = rng.standard_normal(case.K).astype(dtype)
    oh, ow = case.out_hw
    dy = rng.standard_normal((case.N, case.K, oh, ow)).astype(dtype)
    return x, w, b, dy


def _forward(impl, case):
    x, w, b, _ = _inputs(case)
    if impl.startswith("convforge-"):
        be = impl.split("-", 1)[1]
        return lambda: convforge.F.conv2d(x, w, b, case.stride, case.pad, groups=case.groups,
                                          backend=be)
    if impl == "torch":
        import torch

        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        return lambda: torch.nn.functional.conv2d(tx, tw, tb, case.stride, case.pad, 1,
                                                  case.groups)
    if case.groups != 1:
        return None  # the NumPy baseline has no groups
    import numpy_ref

    return lambda: numpy_ref.conv2d(x, w, b, case.stride, case.pad)


def _backward(impl, case):
    x, w, _, dy = _inputs(case)
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
    if case.groups != 1:
        return None
    import numpy_ref

    return lambda: numpy_ref.conv2d_backward(dy, x, w, case.stride, case.pad)


def groups(quick: bool = QUICK) -> list[Group]:
    out = []
    for direction, make in (("fwd", _forward), ("bwd", _backward)):
        for case in CONV:
            if quick and case.name not in QUICK_CONV:
                continue
            flops = case.flops * (1 if direction == "fwd" else 2)  # backward: dx + dw
            out.append(Group(f"conv2d-{direction}-{case.name}",
                             lambda impl, c=case, m=make: m(impl, c),
                             {"flops": flops}, rounds=max(5, min(31, int(4e10 / flops)))))
    return out


@pytest.mark.parametrize("impl", all_impls())
@pytest.mark.parametrize("group", groups(), ids=lambda g: g.name)
def test_conv2d(benchmark, group, impl):
    run_group(benchmark, group, impl)
