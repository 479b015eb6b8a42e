"""Thread defaults of the cpu (OpenMP) and numba backends, decided in one place.

Default thread count: the CPUs this process may run on (os.sched_getaffinity) capped by the
cgroup CPU quota (containers, systemd slices: cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` /
`cpu.cfs_period_us`, the tightest along the cgroup's ancestors), rounded up, at least 1.
OMP_NUM_THREADS, when set to a positive count, wins (as it does for OpenMP itself).

Contention: OpenMP workers that wait for each other at the end of every parallel region fall
apart when another process takes one of the cores, and waiting passively instead slows a quiet
machine down (bench/contention.py measures both; its results are in bench/README.md). So, unless
the thread count was given (OMP_NUM_THREADS, convforge.set_num_threads) or
CONVFORGE_DYNAMIC_THREADS=0, the cpu backend measures every half second how much CPU time other
processes took on this process's CPUs (/proc/stat minus this process's own CPU time) and uses
only the cores left: on a quiet machine all of them, with libgomp's fast spinning wait. No
result depends on the thread count.
The numba backend keeps its count.

configure() runs once, from convforge/__init__.py, before anything else loads the core.
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable, Mapping, Optional

from . import _env

# What configure() found, for convforge.info(); numba_omp_inherited: set in a fork() child whose
# parent had started numba's GNU OpenMP threading layer (read by backends/numba.py); dynamic:
# whether the cpu backend's thread count follows the load (see adapt()).
state: dict = {"wait_policy": None, "default_num_threads": None, "numba_omp_inherited": False,
               "dynamic": False}


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


def configure(environ: Optional[Mapping[str, str]] = None) -> None:
    """Load the compiled core and give it the default thread count (OpenMP's own default
    ignores the cgroup quota) and CONVFORGE_CONV_EXACT; decide whether the count follows the
    load. Never raises: a core
    that does not load is reported by convforge.backends.unavailable_reason('cpu')."""
    environ = os.environ if environ is None else environ
    user_wait = [f"{k}={environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
                 if k in environ]
    state["wait_policy"] = " ".join(user_wait) or "runtime default"
    state["default_num_threads"] = default_num_threads(environ)
    dynamic = _env.flag("CONVFORGE_DYNAMIC_THREADS", environ)
    if dynamic is None:
        dynamic = _env_count(environ, "OMP_NUM_THREADS") is None
    try:
        from . import _core
    except Exception:  # noqa: BLE001 - reported later by the backend registry
        return
    _core.set_num_threads(state["default_num_threads"])
    set_dynamic(dynamic, state["default_num_threads"])
    _core.set_conv_exact(bool(_env.flag("CONVFORGE_CONV_EXACT", environ)))


# --------------------------------------------------------------------------- contention

PERIOD = 0.5   # seconds between two load samples
_watch: dict = {"max": 1, "cpus": None, "next": 0.0, "prev": None, "load_before": None}


def set_dynamic(enabled: bool, max_threads: int) -> None:
    """Whether the cpu backend's thread count follows the load, up to max_threads."""
    state["dynamic"] = bool(enabled) and os.path.exists("/proc/stat")
    _watch.update(max=max(1, int(max_threads)), next=0.0, prev=None, load_before=None)


def _cpus() -> set:
    getaffinity = getattr(os, "sched_getaffinity", None)
    return set(getaffinity(0)) if getaffinity else set(range(os.cpu_count() or 1))


def busy_seconds(stat_text: str, cpus: set, tick: float) -> float:
    """CPU seconds spent busy (user, nice, system, irq, softirq, steal) on the given CPUs since
    boot, from the per-CPU lines of /proc/stat; `tick`: seconds per clock tick."""
    total = 0
    for line in stat_text.splitlines():
        if not line.startswith("cpu") or line[3:4] == " ":
            continue  # the first line is the sum over every CPU
        f = line.split()
        if int(f[0][3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f[1:9])
            total += user + nice + system + irq + softirq + steal
    return total * tick


def foreign_load(prev: tuple, now: tuple) -> float:
    """Cores that other processes used between two samples (wall s, busy s, own CPU s)."""
    wall = now[0] - prev[0]
    if wall <= 0:
        return 0.0
    return max(0.0, ((now[1] - prev[1]) - (now[2] - prev[2])) / wall)


def threads_for(load: float, cpus: int, max_threads: int) -> int:
    """The thread count that leaves other processes their cores: one core less per busy one."""
    return max(1, min(max_threads, cpus - int(load + 0.5)))


def _sample() -> Optional[tuple]:
    text = _read("/proc/stat")
    if text is None:
        return None
    if _watch["cpus"] is None:
        _watch["cpus"] = _cpus()
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    return (time.monotonic(), busy_seconds(text, _watch["cpus"], tick), time.process_time())


def configured_threads(core) -> int:
    """The count the cpu backend uses on a quiet machine: the maximum when it follows the load,
    else the count set."""
    return _watch["max"] if state["dynamic"] else core.get_num_threads()


def adapt(core) -> None:
    """Called before each cpu-backend op: at most every PERIOD seconds, sets the core's thread
    count to threads_for(the load of other processes). Cheap between samples (one clock read)."""
    t = time.monotonic()
    if not state["dynamic"] or t < _watch["next"]:
        return
    _watch["next"] = t + PERIOD
    now, prev = _sample(), _watch["prev"]
    _watch["prev"] = now
    if now is None or prev is None:
        return
    # the smaller load of the last two windows: a short burst (a kernel thread, a cron job)
    # does not take a core away; a busy process does, within a second
    load = foreign_load(prev, now)
    before, _watch["load_before"] = _watch["load_before"], load
    if before is not None:
        load = min(load, before)
    n = threads_for(load, len(_watch["cpus"]), _watch["max"])
    if n != core.requested_num_threads():
        core.set_num_threads(n)
