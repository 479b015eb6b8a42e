"""GEMM speed of the compiled core against the measured FMA peak and torch.mm (issue #3).

    python bench/gemm_peak.py                  # 1 and 2 threads, every shape, float32
    python bench/gemm_peak.py --threads 2 --reps 15 --shapes vgg64,sq1024

For each shape and thread count: convforge._core.gemm and torch.mm on the same operands,
interleaved call by call in one process after a warm-up, median of --reps calls each.
GFLOP/s = 2 M N K / median time; "% peak" is against _peak.fma_peak() at the same thread
count (float32, or --dtype float64). Both libraries allocate their output on every call.
--clock cpu times each call by the process's CPU time divided by the thread count instead of
wall time: on a shared, oversubscribed machine this removes the time the threads spent
descheduled (the FMA peak's best-window rate does the same), at the price of counting
OpenMP's spin-waiting as work.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

# name: (M, N, K, trans_a, trans_b); shapes of the convolutions in the im2col GEMMs.
SHAPES = {
    "vgg64": (64, 32 * 1024, 576, False, False),  # VGG 64->64 forward, 32 images of 32x32
    "vgg256": (256, 64 * 32, 2304, False, False),
    "vgg512": (512, 16 * 32, 4608, False, False),
    "sq1024": (1024, 1024, 1024, False, False),
    "sq2048": (2048, 2048, 2048, False, False),
    "vgg64-dcols": (576, 32 * 1024, 64, True, False),  # dcols = W^T dy
    "vgg256-dcols": (2304, 64 * 32, 256, True, False),
    "vgg64-dw": (64, 576, 32 * 1024, False, True),  # dw = dy cols^T
    "vgg256-dw": (256, 2304, 64 * 32, False, True),
}


def operands(M, N, K, ta, tb, rng, dtype):
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    return a, b


def time_pair(a, b, ta, tb, reps, clock, scale):
    """Times of _core.gemm and torch.mm on the same operands, interleaved, after a warm-up."""
    import torch

    from convforge import _core

    ta_t, tb_t = torch.from_numpy(a), torch.from_numpy(b)

    def fa():
        return torch.mm(ta_t.t() if ta else ta_t, tb_t.t() if tb else tb_t)

    def fc():
        return _core.gemm(a, b, ta, tb)

    for f in (fc, fa, fc, fa):
        f()
    tc, tt = [], []
    for _ in range(reps):
        for f, ts in ((fc, tc), (fa, tt)):
            t0 = clock()
            f()
            ts.append((clock() - t0) * scale)
    return tc, tt


def main() -> None:
    import torch

    from convforge import _core, _peak

    p = argparse.ArgumentParser()
    p.add_argument("--threads", default="1,2")
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--shapes", default=",".join(SHAPES))
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    print(f"isa {_core.isa()} | clock {args.clock}")
    for th in [int(t) for t in args.threads.split(",")]:
        _core.set_num_threads(th)
        torch.set_num_threads(th)
        clock = time.perf_counter if args.clock == "wall" else time.process_time
        scale = 1 if args.clock == "wall" else 1.0 / th
        peak = _peak.fma_peak(args.dtype, 0.3, th, isa=_core.isa())
        print(f"\nthreads {th}: FMA peak {args.dtype} {peak['gflops']:.1f} GFLOP/s "
              f"({peak['bits']}-bit, per thread {peak['gflops_per_thread']:.1f})")
        print(f"{'shape':14s} {'M':>5s} {'N':>6s} {'K':>6s} ta tb | {'cf GF/s':>8s} "
              f"{'%peak':>6s} | {'torch GF/s':>10s} {'%peak':>6s} | cf/torch")
        for name in args.shapes.split(","):
            M, N, K, ta, tb = SHAPES[name]
            a, b = operands(M, N, K, ta, tb, rng, args.dtype)
            flops = 2.0 * M * N * K
            reps = max(5, min(args.reps, int(3e10 / flops * th) or 5))
            tc, tt = time_pair(a, b, ta, tb, reps, clock, scale)
            gc = flops / statistics.median(tc) / 1e9
            gt = flops / statistics.median(tt) / 1e9
            ratios = sorted(x / y for x, y in zip(tt, tc))
            pk = peak["gflops"]
            print(f"{name:14s} {M:5d} {N:6d} {K:6d} {int(ta):2d} {int(tb):2d} | {gc:8.1f} "
                  f"{100 * gc / pk:5.1f}% | {gt:10.1f} {100 * gt / pk:5.1f}% "
                  f"| {ratios[len(ratios) // 2]:.2f}x")

if __name__ == "__main__":
    main()
