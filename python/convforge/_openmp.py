"""The OpenMP runtimes loaded in this process, and a warning when they oversubscribe the cores.

torch, NumPy's BLAS, numba's omp layer and convforge's cpu backend may each bring an OpenMP
runtime (libgomp, Intel's libiomp5, LLVM's libomp). Two runtimes keep two thread pools: when
their thread counts add up to more than the cores, their spinning workers take cores from each
other and both slow down by orders of magnitude. One libgomp shared by all (the loader loads a
soname once) is one pool and does not compete with itself.

openmp_runtimes() asks threadpoolctl when installed, else reads /proc/self/maps (Linux) and asks
each runtime found for omp_get_max_threads() through ctypes without loading anything new.
"""

from __future__ import annotations

import ctypes
import os
import re
import warnings
from typing import Any

# libgomp.so.1, libgomp-a34b3233.so.1 (torch wheels' renamed copy), libiomp5.so, libomp.so
_RUNTIME_FILE = re.compile(r"^lib(gomp|iomp\d*|omp)([-.][^/]*)?\.so(\.[\d.]+)?$")
_PREFIX = {"gomp": "libgomp", "iomp": "libiomp", "omp": "libomp"}


def _from_threadpoolctl() -> list[dict[str, Any]] | None:
    try:
        import threadpoolctl
    except ImportError:
        return None
    out = []
    for d in threadpoolctl.threadpool_info():
        if d.get("user_api") == "openmp":
            out.append({"library": d.get("filepath"), "prefix": d.get("prefix"),
                        "version": d.get("version"), "num_threads": d.get("num_threads"),
                        "source": "threadpoolctl"})
    return out


def _max_threads(path: str) -> int | None:
    """omp_get_max_threads() of the runtime at path if it is loaded (RTLD_NOLOAD: never loads)."""
    try:
        lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | getattr(os, "RTLD_LOCAL", 0))
        return int(lib.omp_get_max_threads())
    except (OSError, AttributeError):
        return None


def _from_maps() -> list[dict[str, Any]]:
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:  # not Linux: nothing known without threadpoolctl
        return []
    paths: dict[str, None] = {}
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            m = _RUNTIME_FILE.match(os.path.basename(parts[5]))
            if m:
                paths[os.path.realpath(parts[5])] = None
    out = []
    for path in paths:
        kind = _RUNTIME_FILE.match(os.path.basename(path)).group(1).rstrip("0123456789")
        out.append({"library": path, "prefix": _PREFIX[kind], "version": None,
                    "num_threads": _max_threads(path), "source": "/proc/self/maps"})
    return out


def openmp_runtimes() -> list[dict[str, Any]]:
    """One dict per OpenMP runtime loaded: library (path), prefix (libgomp/libiomp/libomp),
    version (None when unknown: libgomp has none), num_threads (its omp_get_max_threads(), None
    when unknown), source ("threadpoolctl" or "/proc/self/maps")."""
    found = _from_threadpoolctl()
    return _from_maps() if found is None else found


def available_cores() -> int:
    """The cores this process may run on (affinity), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _convforge_threads() -> int | None:
    """The cpu backend's count: it passes num_threads(n) to every region instead of setting the
    runtime's own count, so omp_get_max_threads() of its libgomp does not show it."""
    from . import backends

    if backends.unavailable_reason("cpu") is not None:
        return None
    from . import _core

    return _core.get_num_threads() if _core.has_openmp else None


def check_openmp(runtimes: list[dict[str, Any]] | None = None) -> str | None:
    """Warns (RuntimeWarning) when two or more distinct OpenMP runtimes are loaded and their
    thread counts add up to more than the available cores; returns the message, else None.
    convforge's cpu backend counts on the libgomp it runs on (libgomp.so.1) with its own
    count when larger than that runtime's. runtimes: openmp_runtimes() by default."""
    if runtimes is None:
        runtimes = openmp_runtimes()
    distinct = {os.path.realpath(r["library"]): r for r in runtimes if r.get("library")}
    if len(distinct) < 2:
        return None
    ours = _convforge_threads()
    counts = {}
    for path, r in distinct.items():
        n = r.get("num_threads") or 1
        if ours is not None and os.path.basename(path).startswith("libgomp.so"):
            n = max(n, ours)
        counts[path] = n
    cores = available_cores()
    total = sum(counts.values())
    if total <= cores:
        return None
    listing = ", ".join(f"{os.path.basename(p)} ({n} threads)" for p, n in counts.items())
    msg = (f"{len(counts)} OpenMP runtimes are loaded: {listing}; {total} threads in all on "
           f"{cores} cores. Their thread pools compete for the cores and every library using "
           f"them slows down. Make the counts add up to at most {cores}: e.g. "
           f"convforge.set_num_threads(k) and torch.set_num_threads(k) (or threadpoolctl's "
           f"threadpool_limits), or OMP_NUM_THREADS=k in the environment before Python starts.")
    warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return msg
