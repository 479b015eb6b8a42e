"""Autotuning of the CPU convolution algorithm, like cudnn.benchmark.

Off by default: the heuristic in csrc/conv/select.cpp (choose_conv_algo) picks an algorithm per
shape and direction. With `convforge.set_autotune(True)` (or CONVFORGE_AUTOTUNE=1) the first call of
each problem -- direction, shapes, stride, padding, dilation, groups, dtype and thread count --
times the candidates (one warm-up call, then the best of REPEATS calls each), remembers the
fastest, and every later call of that problem uses it.

Candidates: "auto" (the heuristic's choice) and every other algorithm `_core.conv2d_algorithms`
lists for the problem, except "naive" (never faster, and slow to time on big layers) and
"direct_small" (the heuristic picks it where it should). Whatever runs, the core's data rule
(inf/NaN inputs move Winograd and direct_small to the exact path) applies. Exact mode
(convforge.set_conv_exact) bypasses autotuning of the forward and data directions: the
heuristic then runs (without Winograd).

Each call's result is that of one complete algorithm, within the same tolerances as any; but the
winner can differ between runs and machines and the algorithms round differently (Winograd vs
GEMM), so bit-for-bit reproducibility across runs needs autotune off (the default). For one
algorithm, results never depend on the thread count.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Hashable

from .. import _env

REPEATS = 3
_enabled = bool(_env.flag("CONVFORGE_AUTOTUNE"))
_winners: dict[Hashable, str] = {}
_lock = threading.Lock()


def set_autotune(enabled: bool) -> None:
    """Turn autotuning of the CPU conv algorithms on or off (winners are kept)."""
    global _enabled
    _enabled = bool(enabled)


def autotune_enabled() -> bool:
    return _enabled


def clear() -> None:
    """Forget every winner."""
    with _lock:
        _winners.clear()


def winners() -> dict[Hashable, str]:
    """A copy of the winners: problem key -> algorithm name."""
    with _lock:
        return dict(_winners)


def candidates(listed: list[str]) -> list[str]:
    return ["auto"] + [a for a in listed if a not in ("naive", "direct_small")]


def pick(key: Hashable, listed: Callable[[], list[str]], call: Callable[[str], Any]) -> str:
    """The algorithm to run for `key`: "auto" when off; else the remembered winner, timing
    call(algo) for every candidate the first time."""
    if not _enabled:
        return "auto"
    with _lock:
        best = _winners.get(key)
    if best is not None:
        return best
    names = candidates(listed())
    best_t, best = float("inf"), "auto"
    if len(names) > 1:
        for algo in names:
            call(algo)  # warm-up: workspaces, caches
            t = float("inf")
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                call(algo)
                t = min(t, time.perf_counter() - t0)
            if t < best_t:
                best_t, best = t, algo
    with _lock:
        _winners[key] = best
    return best
