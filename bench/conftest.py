"""pytest-benchmark fixtures: the thread count (CONVFORGE_BENCH_THREADS, default all cores,
applied to convforge, numba and torch) and the run's machine facts in the JSON.
Allocation policy: every implementation allocates fresh outputs on each call (as each library
does by default); inputs are allocated once per group."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import convforge  # noqa: E402

from harness import set_threads  # noqa: E402

THREADS = int(os.environ.get("CONVFORGE_BENCH_THREADS", os.cpu_count() or 1))
QUICK = os.environ.get("CONVFORGE_BENCH_QUICK") == "1"


def pytest_configure(config):
    # Only under pytest: compare.py imports the suites (and so this file) and sets its own
    # thread count per run.
    set_threads(THREADS)


def run_group(benchmark, group, impl):
    """Time `impl` of `group` with pytest-benchmark (one test per implementation)."""
    import pytest

    fn = group.make(impl)
    if fn is None:
        pytest.skip(f"{impl} has no {group.name}")
    benchmark.group = group.name
    benchmark.extra_info.update(group.extra, impl=impl)
    fn()  # warm-up (JIT, caches, first touch of workspaces)
    benchmark.pedantic(fn, rounds=group.rounds, iterations=1, warmup_rounds=1)


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["convforge_info"] = convforge.info()
    output_json["threads"] = THREADS
