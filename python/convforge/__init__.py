"""convforge: readable, fast convolution and pooling kernels for Python.

    import convforge as cf
    y = cf.F.conv2d(x, w, b, stride=1, padding="same")

Backends: cpu (C++/OpenMP), cuda (CuPy RawKernels), numba, reference (float64 NumPy oracle).
"""

from __future__ import annotations

import os
import platform
import warnings
from typing import Any

from . import _threads, backends, functional
from . import functional as F
from ._array import positive_int
from ._openmp import check_openmp
from .backends import available, set_backend, use_backend
from .backends._autotune import autotune_enabled, set_autotune

# Loads the compiled core and gives it convforge's default thread count (see _threads).
_threads.configure()

__version__ = "0.1.0"

__all__ = ["F", "functional", "backends", "available", "set_backend", "use_backend",
           "set_num_threads", "get_num_threads", "set_autotune", "autotune_enabled", "info",
           "set_seed", "set_conv_exact", "check_openmp", "__version__"]


_LAZY = ("nn", "models", "optim", "losses", "data", "viz", "cli", "utils", "io")


def __getattr__(name: str):
    """convforge.nn, .models, .optim, .losses, .data, .viz, .io import on first use."""
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def set_seed(seed: int | None) -> None:
    """Seeds every random draw convforge makes: weight initialisation, Dropout masks (layers
    created afterwards), and the shuffling and augmentation of fit calls made without seed=.
    The same seed, code, machine, thread count and backend then give bit-identical weights.
    None reseeds from fresh entropy. (data.Batches/StreamingBatches and fit(seed=...) take
    their own seeds.)"""
    from .nn import base

    base.set_seed(seed)


# The last set_num_threads(n): the numba backend applies it when it loads its kernels later.
_requested_threads: int | None = None


def set_num_threads(n: int) -> None:
    """Threads used by the cpu backend (OpenMP) and the numba backend (now if it is loaded, else
    when it loads). Results do not depend on it. A count set here is kept as it is; by default
    the cpu backend uses the cores other processes leave free (see convforge._threads).

    In a child process created by fork() (multiprocessing's "fork" start method, DataLoader-style
    workers) the cpu backend runs on one thread whatever is set: GNU OpenMP cannot start threads
    again after fork. The numba backend uses n threads there too (its threading layer is
    fork-safe).
    """
    global _requested_threads
    _requested_threads = n = positive_int(n, "n")
    if backends.unavailable_reason("cpu") is None:
        from . import _core

        _threads.set_dynamic(False, n)
        _core.set_num_threads(n)
        if n > 1 and _core.in_fork_child():
            warnings.warn(f"set_num_threads({n}): this process was created by fork(), where "
                          "OpenMP cannot start threads; the cpu backend runs on 1 thread "
                          "(multiprocessing's 'spawn' start method gives workers more)",
                          RuntimeWarning, stacklevel=2)
    import sys

    if "numba" in sys.modules:  # else the numba backend applies n when it loads
        from .backends import numba as numba_backend

        numba_backend.set_num_threads(n)


def set_conv_exact(enabled: bool) -> None:
    """Never run the Winograd convolution on the cpu backend (also CONVFORGE_CONV_EXACT=1):
    float32 results then have the GEMM path's accuracy (about 3e-7 relative instead of about
    1e-5 on VGG layers); slower on 3x3 layers with many channels. Takes precedence over
    autotuning."""
    try:
        from . import _core
    except ImportError:  # no cpu backend: nothing runs Winograd
        return
    _core.set_conv_exact(bool(enabled))


def get_num_threads() -> int:
    """Threads the cpu backend uses now (1 in a fork child, see set_num_threads); without the
    cpu backend, the count the numba backend uses (or will use when it loads)."""
    if backends.unavailable_reason("cpu") is None:
        from . import _core

        return _core.get_num_threads()
    import sys

    if "numba" in sys.modules and backends.get("numba")._loaded is not None:
        import numba

        return numba.get_num_threads()
    return _requested_threads or _threads.default_num_threads()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def info() -> dict[str, Any]:
    """Version, usable backends, chosen CPU ISA, OpenMP threads, the machine, and the OpenMP
    runtimes loaded (openmp_runtimes; warns as check_openmp does when they oversubscribe)."""
    import numpy as np

    out: dict[str, Any] = {
        "version": __version__,
        "backends": available(),
        "unavailable": {n: backends.unavailable_reason(n) for n in backends.NAMES
                        if backends.unavailable_reason(n)},
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    if backends.unavailable_reason("cpu") is None:
        from . import _core

        out.update(isa=_core.isa(), detected_isa=_core.detected_isa(),
                   fast_gathers=_core.fast_gathers(), narrow_avx512=_core.narrow_avx512(),
                   has_openmp=bool(_core.has_openmp), num_threads=_core.get_num_threads(),
                   autotune=autotune_enabled(), fork_child=_core.in_fork_child())
    # default_num_threads: affinity and cgroup quota (or OMP_NUM_THREADS); dynamic_threads:
    # whether the cpu backend's count follows the load (see convforge._threads)
    out.update(default_num_threads=_threads.state["default_num_threads"],
               dynamic_threads=_threads.state["dynamic"],
               omp_wait_policy=_threads.state["wait_policy"])
    # the OpenMP runtimes loaded (convforge's, torch's, numba's...): check_openmp warns when
    # two of them have more threads in all than the cores
    from . import _openmp

    out["openmp_runtimes"] = _openmp.openmp_runtimes()
    check_openmp(out["openmp_runtimes"])
    return out
