"""Pooling ratios against PyTorch, interleaved in one process (noise-tolerant quick check).

For each case: convforge's raw binding (_core), the convforge.functional call (F) and the torch
call run round-robin after warm-up; each round times `inner` calls; medians over the rounds.
Prints `x torch` = torch median / _core median, and F / _core (the Python layer's share).
min_fwd has no torch counterpart: it is compared with torch's max_pool2d (same work).

    PYTHONPATH=python python bench/pool_ratio.py [--threads 1,2] [--rounds 21] [--ops max_fwd,..]
Environment: ISA=baseline|avx2|avx512 runs convforge on that ISA (_core.set_isa).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

import convforge
from convforge import _core

F = convforge.F
# (name, x shape, kernel, stride, padding): the shapes of issue #3, item 5.
SHAPES = [("lenet", (64, 6, 28, 28), 2, 2, 0), ("vgg", (32, 64, 32, 32), 2, 2, 0),
          ("c256", (32, 256, 8, 8), 2, 2, 0), ("k3s1p1", (32, 64, 32, 32), 3, 1, 1)]


def _time(f, n):
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n * 1e3


def _compare(fns, rounds, inner=5):
    for f in fns.values():
        for _ in range(3):
            f()
    res = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            res[k].append(_time(f, inner))
    return {k: statistics.median(v) for k, v in res.items()}


def _cases(x, k, s, p, rng):
    tx = torch.from_numpy(x)
    ks, st, pd = (k, k), (s, s), (p, p)
    out = tuple((n + 2 * p - k) // s + 1 for n in x.shape[2:])
    y, idx = _core.pool2d_forward(x, "max", ks, st, pd, out, False)
    ty, tidx = torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=True)
    assert np.array_equal(y, ty.numpy()) and np.array_equal(idx, tidx.numpy())
    dy = rng.standard_normal(y.shape).astype(x.dtype)
    tdy = torch.from_numpy(dy)
    shape = x.shape
    tmax = lambda: torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=True)  # noqa: E731
    return {
        "max_fwd": {"cf": lambda: _core.pool2d_forward(x, "max", ks, st, pd, out, False),
                    "F": lambda: F.max_pool2d(x, k, s, p, return_indices=True), "torch": tmax},
        "min_fwd": {"cf": lambda: _core.pool2d_forward(x, "min", ks, st, pd, out, False),
                    "F": lambda: F.min_pool2d(x, k, s, p, return_indices=True), "torch": tmax},
        "max_bwd": {"cf": lambda: _core.pool2d_backward(dy, idx, shape, "max", ks, st, pd, False),
                    "F": lambda: F.max_pool2d_backward(dy, shape, k, s, p, indices=idx),
                    "torch": lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                        tdy, tx, [k, k], [s, s], [p, p], [1, 1], False, tidx)},
        "avg_fwd": {"cf": lambda: _core.pool2d_forward(x, "avg", ks, st, pd, out, True),
                    "F": lambda: F.avg_pool2d(x, k, s, p),
                    "torch": lambda: torch.nn.functional.avg_pool2d(tx, k, s, p)},
        "avg_bwd": {"cf": lambda: _core.pool2d_backward(dy, None, shape, "avg", ks, st, pd, True),
                    "F": lambda: F.avg_pool2d_backward(dy, shape, k, s, p),
                    "torch": lambda: torch.ops.aten.avg_pool2d_backward(
                        tdy, tx, [k, k], [s, s], [p, p], False, True, None)},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--ops", default="max_fwd,min_fwd,max_bwd,avg_fwd,avg_bwd")
    args = ap.parse_args()
    if os.environ.get("ISA"):
        _core.set_isa(os.environ["ISA"])
    print(f"convforge isa {_core.isa()}, torch {torch.__version__}")
    rng = np.random.default_rng(0)
    for nt in (int(t) for t in args.threads.split(",")):
        convforge.set_num_threads(nt)
        torch.set_num_threads(nt)
        for name, shape, k, s, p in SHAPES:
            x = rng.standard_normal(shape).astype(np.float32)
            for op, fns in _cases(x, k, s, p, rng).items():
                if op not in args.ops.split(","):
                    continue
                r = _compare(fns, args.rounds)
                print(f"threads {nt} {name:7s} {op}: _core {r['cf']:8.4f} ms  F {r['F']:8.4f} ms"
                      f"  torch {r['torch']:8.4f} ms  -> {r['torch'] / r['cf']:6.2f}x torch"
                      f"  (F/_core {r['F'] / r['cf']:.2f})", flush=True)


if __name__ == "__main__":
    main()
