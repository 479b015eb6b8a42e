"""What every bench suite and compare.py share: a benchmark *group* (one shape and direction,
every implementation on the same inputs), the implementations present on this machine, the
thread setup, and the interleaved timer compare.py uses.

Why interleaved: these machines are small and noisy. Timing implementation A for a few seconds
and then B lets a burst of other load land on one of them only. compare.py instead runs
convforge-cpu and PyTorch round-robin (the first one of each round rotates), after warm-up,
and takes per-implementation medians, so the ratios compare like with like. Implementations
whose threads spin after a call (numba, NumPy's OpenBLAS) get blocks of their own (ISOLATED).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import convforge

Fn = Callable[[], object]


@dataclass
class Group:
    """One benchmark group: `make(impl)` returns a zero-argument callable running `impl` on the
    group's inputs (built once, inside make), or None when `impl` has no such operation.
    `extra` holds the work per call: flops (conv), bytes (pooling) or images (train step).
    block: calls of one implementation in a row per round, the first untimed (training steps
    run back to back: block > 1 times steps that follow a step of their own, not of the other
    library, whose run evicts the caches); 1 times single calls."""

    name: str
    make: Callable[[str], Optional[Fn]]
    extra: dict = field(default_factory=dict)
    rounds: int = 15
    block: int = 1


def all_impls() -> list[str]:
    """convforge's CPU backends present here, the NumPy baseline, and PyTorch when installed;
    CONVFORGE_BENCH_IMPLS=a,b keeps only those."""
    names = [f"convforge-{b}" for b in ("cpu", "numba") if b in convforge.available()]
    names.append("numpy")
    try:
        import torch  # noqa: F401

        names.append("torch")
    except ImportError:
        pass
    only = os.environ.get("CONVFORGE_BENCH_IMPLS")
    return [n for n in names if not only or n in only.split(",")]


def set_threads(n: int) -> None:
    """The same thread count for convforge (C++ and numba) and PyTorch."""
    convforge.set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    if "numba" in convforge.available():
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


# Implementations whose worker threads keep spinning after a call (numba's threading layer,
# NumPy's OpenBLAS): interleaved with the others they steal the cores from whatever runs next
# (measured: torch 0.47 -> 0.75 ms on LeNet C1 with numba in the round-robin). They are timed
# in a block of their own, after a pause that lets the spinning threads go to sleep.
ISOLATED = ("convforge-numba", "numpy")


def median_ms(f: Fn, k: int = 15, warmup: int = 3) -> float:
    """Median ms of k back-to-back calls of f after `warmup` calls (a layer's own time with its
    inputs in cache: bench/vgg_layers.py, bench/conv_algos.py)."""
    for _ in range(warmup):
        f()
    ts = []
    for _ in range(k):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))


def train_problem(name: str, shape: tuple, n: int):
    """(model, x, y) of the training-step benchmarks: convforge.models.<name>() compiled with Adam
    and sparse categorical cross-entropy from seed 0, and one seeded batch of n pixel images
    x (n,) + shape (float32 0..255) with int64 labels y (n,)."""
    from convforge import models, nn

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n,) + tuple(shape)).astype(np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    nn.set_seed(0)
    model = getattr(models, name)()
    model.compile("adam", "sparse_categorical_crossentropy")
    return model, x, y


def _time_rounds(fns: dict, order: list[str], rounds: int, times: dict, block: int = 1) -> None:
    for r in range(rounds):
        k = r % len(order)
        for impl in order[k:] + order[:k]:
            if block > 1:
                fns[impl]()   # the block's first call: after the other implementation's
            for _ in range(max(1, block - 1)):
                t = time.perf_counter()
                fns[impl]()
                times[impl].append(time.perf_counter() - t)


def run_interleaved(group: Group, impls: list[str], warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each implementation of `group`: convforge-cpu and torch round-robin
    (the first of each round rotates), each ISOLATED implementation in a set of its own, timed
    after the shared set."""
    fns = {}
    for impl in impls:
        fn = group.make(impl)
        if fn is not None:
            fns[impl] = fn
    times: dict[str, list[float]] = {impl: [] for impl in fns}
    shared = [i for i in fns if i not in ISOLATED]
    sets = ([shared] if shared else []) + [[i] for i in fns if i in ISOLATED]
    for members in sets:
        time.sleep(0.2)  # earlier sets' spinning threads go idle
        for impl in members:  # JIT, caches, first touch of workspaces
            for _ in range(warmup):
                fns[impl]()
        _time_rounds(fns, members, group.rounds, times, group.block)
    return times


def sgemm_gflops(threads: int, n: int = 2048) -> float:
    """float32 GEMM GFLOP/s of PyTorch (else NumPy's BLAS) at `threads`, median of 7."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    try:
        import torch

        torch.set_num_threads(threads)
        ta = torch.from_numpy(a)
        mm = lambda: torch.mm(ta, ta)  # noqa: E731
    except ImportError:
        mm = lambda: a @ a  # noqa: E731
    mm()
    times = []
    for _ in range(7):
        t = time.perf_counter()
        mm()
        times.append(time.perf_counter() - t)
    return 2.0 * n**3 / float(np.median(times)) / 1e9


def fma_peak_gflops(threads: int) -> Optional[float]:
    """The machine's float32 FMA peak at `threads` on the ISA the kernels use, measured by
    convforge's microbenchmark (convforge._peak; None where it was not built)."""
    try:
        from convforge import _core, _peak
    except ImportError:
        return None
    return float(_peak.fma_peak("float32", threads=threads, isa=_core.isa())["gflops"])


def machine_line(threads: int, fma: Optional[float], sgemm: float) -> str:
    info = convforge.info()
    versions = [f"convforge {info.get('version')}", f"numpy {np.__version__}",
                f"python {platform.python_version()}"]
    for mod in ("torch", "numba"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    peak = f"FMA peak {fma:.1f} GFLOP/s" if fma else "FMA peak n/a"
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):
        versions.append(f"torch held to ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']} "
                        f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY')}")
    return (f"{info.get('cpu')} | {info.get('cpu_count')} cores | threads {threads} | "
            f"isa {info.get('isa')} | {' | '.join(versions)} | {peak} | "
            f"torch.mm 2048^3 {sgemm:.1f} GFLOP/s (all measured in this run)")
