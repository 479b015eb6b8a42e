"""Thread defaults of the cpu (OpenMP) and numba backends, decided in one place.

Default thread count: the CPUs this process may run on (os.sched_getaffinity) capped by the
cgroup CPU quota (containers, systemd slices: cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` /
`cpu.cfs_period_us`, the tightest along the cgroup's ancestors), rounded up, at least 1.
OMP_NUM_THREADS, when set to a positive count, wins (as it does for OpenMP itself).

Wait policy: an OpenMP worker that finished its share spins (libgomp's default: ~300k pause
iterations per wait, OMP_WAIT_POLICY=active: forever) before it sleeps. On a machine where another
process is busy, those spinning workers take the cores the remaining work needs (LeNet-5 training
on 2 cores with one busy competitor: 292 images/s with the default spin, 6,644 with passive
waiting). Unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT, convforge sets
OMP_WAIT_POLICY=PASSIVE while it loads the compiled core (libgomp reads it once, when it loads)
and removes it again, so the processes the user starts do not inherit it. Without effect when an
OpenMP runtime was loaded before convforge (e.g. by numba's omp layer); info() says so.

configure() runs once, from convforge/__init__.py, before anything else loads the core.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Mapping, MutableMapping, Optional

# The wait policy convforge sets when the user set none (see the module docstring).
DEFAULT_WAIT_POLICY = "PASSIVE"

# What configure() did, for convforge.info(); numba_omp_inherited: set in a fork() child whose
# parent had started numba's GNU OpenMP threading layer (read by backends/numba.py).
state: dict = {"wait_policy": None, "wait_policy_source": None, "default_num_threads": None,
               "numba_omp_inherited": False}


def _after_fork_in_child() -> None:
    """Notes whether numba's GNU OpenMP layer came from the parent: it ends any fork() child that
    runs a parallel kernel. Registered here, at convforge's import, so that it also covers a
    parent that ran only its own numba code before forking."""
    import sys

    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is not None and parallel._is_initialized and parallel._threading_layer == "omp":
        state["numba_omp_inherited"] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _ancestors(mount: str, rel: str) -> list:
    """mount/rel and each of its parents up to mount itself (deepest first). In a container
    /proc/self/cgroup names the host's path, which does not exist under the container's mount:
    those candidates are skipped by the callers, and the mount root (the container's own cgroup)
    still counts."""
    parts = [p for p in rel.split("/") if p and p not in (".", "..")]
    return [os.path.join(mount, *parts[:i]) for i in range(len(parts), -1, -1)]


def _v2_limit(path: str) -> Optional[float]:
    """CPUs allowed by a cgroup v2 cpu.max file ("max 100000" or "150000 100000")."""
    text = _read(os.path.join(path, "cpu.max"))
    if not text:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_limit(path: str) -> Optional[float]:
    """CPUs allowed by cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us (quota -1: no limit)."""
    quota, period = _read(os.path.join(path, "cpu.cfs_quota_us")), _read(
        os.path.join(path, "cpu.cfs_period_us"))
    try:
        q, p = int(quota or ""), int(period or "")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cgroup_cpu_limit(root: str = "/sys/fs/cgroup",
                     proc_cgroup: str = "/proc/self/cgroup") -> Optional[float]:
    """CPUs this process's cgroup may use (quota / period, the smallest along its ancestors), or
    None without a quota. root: where the cgroup file systems are mounted; proc_cgroup: the
    process's cgroup list (lines `id:controllers:path`). Both are arguments for the tests."""
    text = _read(proc_cgroup)
    if text is None:
        return None
    limits = []
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, rel = fields
        if controllers == "":  # cgroup v2 (unified): mounted at root itself
            candidates = [(d, _v2_limit) for d in _ancestors(root, rel)]
        elif "cpu" in controllers.split(","):  # cgroup v1: a mount per controller set
            candidates = [(d, _v1_limit)
                          for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu", controllers)
                          for d in _ancestors(os.path.join(root, name), rel)]
        else:
            continue
        for d, read_limit in candidates:
            limit = read_limit(d)
            if limit is not None:
                limits.append(limit)
    return min(limits) if limits else None


def affinity_count(getaffinity: Optional[Callable[[int], set]] = None) -> int:
    """CPUs this process may run on (its affinity mask), else os.cpu_count()."""
    getaffinity = getaffinity or getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            return max(1, len(getaffinity(0)))
        except OSError:
            pass
    return os.cpu_count() or 1


def _env_count(environ: Mapping[str, str], name: str) -> Optional[int]:
    """The first count of an OpenMP-style list (`4` or `4,2`) when positive, else None."""
    text = environ.get(name, "").split(",")[0].strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


_PROBE = object()  # default_num_threads: read this process's cgroup quota


def default_num_threads(environ: Optional[Mapping[str, str]] = None,
                        affinity: Optional[int] = None,
                        cpu_limit: object = _PROBE) -> int:
    """convforge's default thread count: OMP_NUM_THREADS when set to a positive count, else the
    affinity count capped by the cgroup quota rounded up (1.5 CPUs: 2 threads). affinity and
    cpu_limit (a float, or None: no quota) default to this process's; arguments for the tests."""
    environ = os.environ if environ is None else environ
    forced = _env_count(environ, "OMP_NUM_THREADS")
    if forced is not None:
        return forced
    n = affinity_count() if affinity is None else affinity
    limit = cgroup_cpu_limit() if cpu_limit is _PROBE else cpu_limit
    if limit is not None:
        n = min(n, max(1, math.ceil(limit - 1e-9)))  # 1e-9: 2.0000000001 CPUs are 2
    return max(1, n)


def _libgomp_loaded() -> bool:
    """True when GNU libgomp is already mapped into this process (Linux; False elsewhere)."""
    maps = _read("/proc/self/maps") or ""
    return "/libgomp.so" in maps


def configure(environ: Optional[MutableMapping[str, str]] = None) -> None:
    """Load the compiled core with convforge's wait policy and give it the default thread count
    (OpenMP's own default ignores the cgroup quota). Never raises: a core that does not load is
    reported by convforge.backends.unavailable_reason('cpu')."""
    environ = os.environ if environ is None else environ
    user_set = [k for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in environ]
    preloaded = _libgomp_loaded()
    if user_set:
        state.update(wait_policy=" ".join(f"{k}={environ[k]}" for k in user_set),
                     wait_policy_source="environment")
    elif preloaded:
        state.update(wait_policy="runtime default",
                     wait_policy_source="not set: libgomp was loaded before convforge")
    else:
        state.update(wait_policy=DEFAULT_WAIT_POLICY.lower(), wait_policy_source="convforge")
        environ["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY
    try:
        from . import _core
    except Exception:  # noqa: BLE001 - reported later by the backend registry
        _core = None
    finally:
        if not user_set and not preloaded:
            environ.pop("OMP_WAIT_POLICY", None)
    state["default_num_threads"] = default_num_threads(environ)
    if _core is not None:
        _core.set_num_threads(state["default_num_threads"])
