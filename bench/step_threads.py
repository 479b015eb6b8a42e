"""Issue #14 item 3: each compiled-core call of a training step at 1 and at 2 threads, and the
memory-bandwidth limit of the streaming ops.

Per op: every `convforge._core` call inside `train_on_batch` is timed (with the step plan off,
CONVFORGE_STEP_PLAN=0, so that each layer is its own call), in alternating blocks of 1-thread and
2-thread steps in one process (`--rounds` rounds of `--steps` steps each, after warm-up steps);
medians per (op, shapes) and the 1 -> 2 thread ratio; then the planned step (nn/_plan.py) the
same way, where the model has one. Bandwidth: the Adam
update (`F.adam_update`) on the network's parameter count (in cache) and on 16M parameters
(from memory), and PyTorch's `torch.add` on 16M floats (when torch is installed), at 1 and 2
threads.

    PYTHONPATH=python python bench/step_threads.py vgg_small
    PYTHONPATH=python python bench/step_threads.py lenet5 --rounds 4 --steps 60
"""

from __future__ import annotations

import argparse
import collections
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

import convforge
from convforge import _core, models, nn
from convforge import functional as F

from harness import train_problem

NETS = {"lenet5": ((1, 32, 32), 64), "vgg_small": ((3, 32, 32), 32)}
_SKIP = {"get_num_threads", "set_num_threads", "requested_num_threads", "in_fork_child"}


def _median_ms(ts) -> float:
    return 1e3 * float(np.median(ts))


def per_op(name: str, rounds: int, steps: int) -> None:
    # one call per op: the step plan's compiled engine (nn/_plan.py) would run the chain as
    # one _core call; its step is timed by step_times() below
    os.environ["CONVFORGE_STEP_PLAN"] = "0"
    model, x, y = train_problem(name, *NETS[name])
    times = {1: collections.defaultdict(list), 2: collections.defaultdict(list)}
    current = [1]

    def timed(op, f):
        def call(*args, **kwargs):
            t = time.perf_counter()
            out = f(*args, **kwargs)
            dt = time.perf_counter() - t
            shapes = tuple(tuple(a.shape) for a in args if hasattr(a, "shape"))[:2]
            times[current[0]][(op, shapes)].append(dt)
            return out
        return call

    originals = {}
    for op in dir(_core):
        f = getattr(_core, op)
        if callable(f) and not op.startswith("_") and op not in _SKIP:
            originals[op] = f
            setattr(_core, op, timed(op, f))
    try:
        step_times = _alternate(model, x, y, rounds, steps, current)
    finally:
        for op, f in originals.items():
            setattr(_core, op, f)
    os.environ.pop("CONVFORGE_STEP_PLAN")
    s1, s2 = _median_ms(step_times[1]), _median_ms(step_times[2])
    print(f"{name} step, one call per op: 1 thread {s1:.2f} ms, 2 threads {s2:.2f} ms "
          f"({s1 / s2:.2f}x)")
    p1, p2 = step_times_planned(name, rounds, steps)
    if p1 is not None:
        print(f"{name} step, planned (nn/_plan.py): 1 thread {p1:.2f} ms, 2 threads {p2:.2f} ms "
              f"({p1 / p2:.2f}x)")
    rows = [(np.median(v) * len(v), key) for key, v in times[1].items()]
    for _, key in sorted(rows, reverse=True):
        a, b = _median_ms(times[1][key]), _median_ms(times[2].get(key, [np.nan]))
        print(f"  {a:8.3f} -> {b:8.3f} ms  {a / b:5.2f}x  {key[0]} {key[1]}")


def step_times_planned(name: str, rounds: int, steps: int):
    """Median train_on_batch times (ms) at 1 and 2 threads with the step plan, alternating
    blocks as per_op does; (None, None) when the model gets no plan."""
    model, x, y = train_problem(name, *NETS[name])
    model.train_on_batch(x, y)
    if not any(p is not None for p in model._plans.values()):
        return None, None
    times = _alternate(model, x, y, rounds, steps, [1])
    return _median_ms(times[1]), _median_ms(times[2])


def _alternate(model, x, y, rounds: int, steps: int, current: list) -> dict:
    """{threads: train_on_batch times} over `rounds` rounds of a block of `steps` steps (after 3
    untimed) at 1 thread, then at 2; current[0] holds the thread count of the block running."""
    times: dict = {1: [], 2: []}
    for _ in range(rounds):
        for th in (1, 2):
            convforge.set_num_threads(th)
            current[0] = th
            with threadpool_limits(th):
                for _ in range(3):
                    model.train_on_batch(x, y)
                for _ in range(steps):
                    t = time.perf_counter()
                    model.train_on_batch(x, y)
                    times[th].append(time.perf_counter() - t)
    return times


def _med(f, *args, k: int = 15) -> float:
    f(*args)
    ts = []
    for _ in range(k):
        t = time.perf_counter()
        f(*args)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def _adam(p, g, m, v) -> None:
    F.adam_update(p, g, m, v, lr=1e-3, step=1, beta_1=0.9, beta_2=0.999, epsilon=1e-7)


def bandwidth(params: int) -> None:
    try:
        import torch
    except ImportError:
        torch = None
    for size in (params, 16_000_000):
        rng = np.random.default_rng(0)
        p, g = ([rng.standard_normal(size).astype(np.float32)] for _ in range(2))
        m, v = ([np.zeros(size, np.float32)] for _ in range(2))
        for th in (1, 2):
            convforge.set_num_threads(th)
            ta = _med(_adam, p, g, m, v)
            line = (f"  {size:>10,} values, {th} thread(s): adam {ta * 1e3:.3f} ms "
                    f"({7 * 4 * size / ta / 1e9:.1f} GB/s)")
            if torch is not None and size > params:
                torch.set_num_threads(th)
                a, b, c = torch.randn(size), torch.randn(size), torch.empty(size)
                tt = _med(lambda a, b, c: torch.add(a, b, out=c), a, b, c)
                line += f", torch.add {tt * 1e3:.3f} ms ({3 * 4 * size / tt / 1e9:.1f} GB/s)"
            print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("net", choices=sorted(NETS))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    print(f"machine: {convforge.info()['cpu']} | isa {_core.isa()} | "
          f"fast_gathers {_core.fast_gathers()}")
    per_op(a.net, a.rounds, a.steps)
    nn.set_seed(0)
    params = getattr(models, a.net)().count_params()
    print("bandwidth (streaming ops, 1 -> 2 threads):")
    bandwidth(params)


if __name__ == "__main__":
    main()
