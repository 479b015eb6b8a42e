"""Benchmark fixtures: seeded inputs, thread count, and the implementations under test.

Every group holds convforge's backends and the references (PyTorch, NumPy) on the same inputs,
so ratios come from one run. Allocation policy: every implementation allocates fresh outputs on
each call (as each library does by default); inputs are allocated once per test.
Threads: CONVFORGE_BENCH_THREADS (default: all cores) is applied to convforge, numba and torch.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import convforge  # noqa: E402

THREADS = int(os.environ.get("CONVFORGE_BENCH_THREADS", os.cpu_count() or 1))


def _setup_threads():
    convforge.set_num_threads(THREADS)
    try:
        import torch

        torch.set_num_threads(THREADS)
    except ImportError:
        pass
    if "numba" in convforge.available():
        import numba

        numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))


_setup_threads()


def impls() -> list[str]:
    names = [f"convforge-{b}" for b in ("cpu", "numba") if b in convforge.available()]
    names.append("numpy")
    try:
        import torch  # noqa: F401

        names.append("torch")
    except ImportError:
        pass
    only = os.environ.get("CONVFORGE_BENCH_IMPLS")
    return [n for n in names if not only or n in only.split(",")]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["convforge_info"] = convforge.info()
    output_json["threads"] = THREADS
