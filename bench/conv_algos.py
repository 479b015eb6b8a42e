"""Every algorithm the compiled core has for one conv2d shape, each direction forced with
`algo=` through `convforge._core`, medians of back-to-back calls (the inputs stay in cache:
a layer's own time, not its time inside a training step). GFLOP/s count the direct
convolution's work.

    PYTHONPATH=python python bench/conv_algos.py 64,6,14,14 16,6,5,5            # LeNet C3
    PYTHONPATH=python python bench/conv_algos.py 32,32,32,32 32,32,3,3 --pad 1 --threads 2
    CONVFORGE_ISA=avx2 PYTHONPATH=python python bench/conv_algos.py 64,6,14,14 16,6,5,5
"""

from __future__ import annotations

import argparse

import numpy as np

import convforge
from convforge import _core

from harness import median_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("x", help="N,C,H,W")
    ap.add_argument("w", help="K,C,KH,KW")
    ap.add_argument("--pad", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--directions", default="forward,data,weight")
    ap.add_argument("--naive", action="store_true", help="time the naive loops too (slow)")
    a = ap.parse_args()
    xs = tuple(int(v) for v in a.x.split(","))
    ws = tuple(int(v) for v in a.w.split(","))
    convforge.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    args = ((1, 1), (a.pad,) * 4, (1, 1), 1)
    y = _core.conv2d_forward(x, w, None, *args)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    flop = 2 * y.size * ws[1] * ws[2] * ws[3]
    print(f"x {xs} w {ws} pad {a.pad} | isa {_core.isa()} | threads {a.threads}")
    for d in a.directions.split(","):
        auto = _core.conv2d_algorithm(xs, ws, *args, "float32", d)
        cells = []
        for algo in _core.conv2d_algorithms(xs, ws, *args, "float32", d):
            if algo == "naive" and not a.naive:
                continue
            if d == "forward":
                def f(al=algo):
                    return _core.conv2d_forward(x, w, None, *args, algo=al)
            elif d == "data":
                def f(al=algo):
                    return _core.conv2d_backward_data(dy, w, xs, *args, algo=al)
            else:
                def f(al=algo):
                    return _core.conv2d_backward_weight(dy, x, ws, *args, True, algo=al)
            t = median_ms(f, k=60, warmup=2)
            cells.append(f"{algo} {t:.3f} ms ({flop / t / 1e6:.0f} GFLOP/s)")
        print(f"{d} (auto: {auto}): " + " | ".join(cells))


if __name__ == "__main__":
    main()
