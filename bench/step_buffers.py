"""Issue #14 item 4: training steps with and without the step buffer cache
(convforge.nn.reuse_step_buffers, what Model.fit runs inside), interleaved in one process:
per round, `--steps` train_on_batch calls of each variant in turn (the first rotates), after a
warm-up round. Prints per variant the median step time over the rounds, page faults (minor +
major) and system CPU time per step, and the cache's hits per step.

    PYTHONPATH=python python bench/step_buffers.py --threads 1,2
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time

import numpy as np

import convforge
from convforge import nn
from convforge.nn import _buffers

from harness import train_problem

NETS = {"vgg_small": ((3, 32, 32), 32, 20), "lenet5": ((1, 32, 32), 64, 200)}


def _usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_minflt + r.ru_majflt, r.ru_stime


def _run(model, x, y, steps, reuse):
    """(seconds per step, faults per step, system seconds per step, cache hits per step)."""
    with nn.reuse_step_buffers(enabled=reuse):
        hits0 = _buffers.stats()["hits"]
        f0, s0 = _usage()
        t0 = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        dt = time.perf_counter() - t0
        f1, s1 = _usage()
        hits = _buffers.stats()["hits"] - hits0
    return dt / steps, (f1 - f0) / steps, (s1 - s0) / steps, hits / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--nets", default="vgg_small,lenet5")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()} | "
          f"convforge {convforge.__version__} | numpy {np.__version__} | "
          f"isa {convforge._core.isa()}")
    print("| net | threads | variant | step ms (median) | faults / step | sys ms / step | "
          "cache hits / step |")
    print("|---|---|---|---:|---:|---:|---:|")
    for threads in (int(t) for t in args.threads.split(",")):
        convforge.set_num_threads(threads)
        for name in args.nets.split(","):
            shape, n, steps = NETS[name]
            model, x, y = train_problem(name, shape, n)
            results = {False: [], True: []}
            for r in range(args.rounds + 1):
                order = (False, True) if r % 2 == 0 else (True, False)
                for reuse in order:
                    res = _run(model, x, y, steps, reuse)
                    if r:   # round 0 warms up both
                        results[reuse].append(res)
            for reuse in (False, True):
                cols = list(zip(*results[reuse]))
                print(f"| {name} N={n} | {threads} | {'reuse' if reuse else 'fresh'} | "
                      f"{statistics.median(cols[0]) * 1e3:.3f} | "
                      f"{statistics.median(cols[1]):.1f} | "
                      f"{statistics.median(cols[2]) * 1e3:.3f} | "
                      f"{statistics.median(cols[3]):.1f} |")


if __name__ == "__main__":
    main()
