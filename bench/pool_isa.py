"""Pooling fast paths: the AVX2 copy against the AVX-512 copy of csrc/pool/pool_kernel.inc on
the same inputs, interleaved, 1 thread, medians of 15 rounds (needs an AVX-512 CPU).

    PYTHONPATH=python python bench/pool_isa.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import convforge as cf
from convforge import _core

# (name, x shape (N, C, H, W), mode, kernel, stride, padding): general windows (the 2x2 / stride-2
# kernels are 8-lane in both copies)
CASES = [
    ("max 3x3/2 64@56", (8, 64, 56, 56), "max", 3, 2, 1),
    ("max 3x3/1 32@32", (8, 32, 32, 32), "max", 3, 1, 1),
    ("avg 3x3/1 32@32", (8, 32, 32, 32), "avg", 3, 1, 1),
    ("avg 5x5/1 16@64", (4, 16, 64, 64), "avg", 5, 1, 2),
]
ROUNDS = 15


def pool(x, mode, k, s, p):
    return cf.F.max_pool2d(x, k, s, p) if mode == "max" else cf.F.avg_pool2d(x, k, s, p)


def main() -> None:
    if _core.detected_isa() != "avx512":
        raise SystemExit(f"needs an AVX-512 CPU (this one: {_core.detected_isa()})")
    cf.set_num_threads(1)
    rng = np.random.default_rng(0)
    for name, shape, mode, k, s, p in CASES:
        x = rng.standard_normal(shape).astype(np.float32)
        times: dict[str, list] = {"avx2": [], "avx512": []}
        for isa in times:   # warm-up
            _core.set_isa(isa)
            pool(x, mode, k, s, p)
        for r in range(ROUNDS):
            for isa in (("avx2", "avx512") if r % 2 else ("avx512", "avx2")):
                _core.set_isa(isa)
                t0 = time.perf_counter()
                pool(x, mode, k, s, p)
                times[isa].append(time.perf_counter() - t0)
        _core.set_isa("avx512")
        a, b = (statistics.median(times[i]) * 1e3 for i in ("avx2", "avx512"))
        print(f"{name:20s} avx2 {a:.3f} ms  avx512 {b:.3f} ms  ratio {a / b:.2f}")


if __name__ == "__main__":
    main()
