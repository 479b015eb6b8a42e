"""Thread defaults (issue 11 item 6): the default thread count respects the affinity mask, the
cgroup CPU quota (v1 and v2, fake files here) and OMP_NUM_THREADS, for the cpu and the numba
backend; by default the cpu backend's count follows the load of other processes (a busy process
takes a core away, within seconds, and gives it back when it stops); convforge leaves the OpenMP
wait policy to the user."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import convforge
from convforge import _threads


def _write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --------------------------------------------------------------------------- cgroup quota

def test_cgroup_v2_quota_at_the_root(tmp_path):
    _write(tmp_path / "proc", "0::/\n")
    _write(tmp_path / "fs" / "cpu.max", "150000 100000\n")
    assert _threads.cgroup_cpu_limit(str(tmp_path / "fs"), str(tmp_path / "proc")) == 1.5


def test_cgroup_v2_tightest_ancestor_wins(tmp_path):
    _write(tmp_path / "proc", "0::/slice/app\n")
    _write(tmp_path / "fs" / "slice" / "cpu.max", "200000 100000\n")
    _write(tmp_path / "fs" / "slice" / "app" / "cpu.max", "max 100000\n")
    _write(tmp_path / "fs" / "cpu.max", "400000 100000\n")
    assert _threads.cgroup_cpu_limit(str(tmp_path / "fs"), str(tmp_path / "proc")) == 2.0


@pytest.mark.parametrize("text", ["max 100000", "", "garbage", "0 100000", "100 0", "1 2 3"])
def test_cgroup_v2_without_a_usable_quota(tmp_path, text):
    _write(tmp_path / "proc", "0::/\n")
    _write(tmp_path / "fs" / "cpu.max", text)
    assert _threads.cgroup_cpu_limit(str(tmp_path / "fs"), str(tmp_path / "proc")) is None


def test_cgroup_v1_container_view(tmp_path):
    """In a container /proc/self/cgroup names the host path, which is absent under the
    container's mount; the mount root holds the container's quota."""
    _write(tmp_path / "proc", "11:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    _write(tmp_path / "fs" / "cpu,cpuacct" / "cpu.cfs_quota_us", "50000\n")
    _write(tmp_path / "fs" / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    assert _threads.cgroup_cpu_limit(str(tmp_path / "fs"), str(tmp_path / "proc")) == 0.5


def test_cgroup_v1_path_and_unlimited(tmp_path):
    _write(tmp_path / "proc", "3:cpu:/user/job\n")
    _write(tmp_path / "fs" / "cpu" / "cpu.cfs_quota_us", "-1\n")
    _write(tmp_path / "fs" / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert _threads.cgroup_cpu_limit(str(tmp_path / "fs"), str(tmp_path / "proc")) is None
    _write(tmp_path / "fs" / "cpu" / "user" / "job" / "cpu.cfs_quota_us", "300000\n")
    _write(tmp_path / "fs" / "cpu" / "user" / "job" / "cpu.cfs_period_us", "100000\n")
    assert _threads.cgroup_cpu_limit(str(tmp_path / "fs"), str(tmp_path / "proc")) == 3.0


def test_cgroup_missing_files(tmp_path):
    assert _threads.cgroup_cpu_limit(str(tmp_path / "fs"), str(tmp_path / "nope")) is None
    _write(tmp_path / "proc", "not a cgroup line\n2:cpuset:/\n")
    assert _threads.cgroup_cpu_limit(str(tmp_path / "fs"), str(tmp_path / "proc")) is None


# --------------------------------------------------------------------------- thread count

@pytest.mark.parametrize("affinity,limit,want", [
    (8, None, 8), (8, 1.5, 2), (8, 0.5, 1), (8, 16.0, 8), (2, 2.0000000001, 2), (1, None, 1),
    (4, 3.0, 3),
])
def test_default_is_affinity_capped_by_quota(affinity, limit, want):
    assert _threads.default_num_threads({}, affinity=affinity, cpu_limit=limit) == want


@pytest.mark.parametrize("value,want", [("3", 3), ("4,2", 4), (" 5 ", 5), ("0", 8), ("x", 8),
                                        ("", 8), ("-2", 8)])
def test_omp_num_threads_wins_when_valid(value, want):
    env = {"OMP_NUM_THREADS": value}
    assert _threads.default_num_threads(env, affinity=8, cpu_limit=None) == want


def test_affinity_count_uses_the_mask():
    assert _threads.affinity_count(lambda pid: {0, 3, 5}) == 3

    def broken(pid):
        raise OSError("no affinity here")

    assert _threads.affinity_count(broken) == (os.cpu_count() or 1)


def test_configure_gives_the_core_the_default(monkeypatch):
    """configure() sets the compiled core's count from the quota (OpenMP ignores quotas); the
    count follows the load unless it was given or CONVFORGE_DYNAMIC_THREADS=0."""
    if convforge.backends.unavailable_reason("cpu") is not None:
        pytest.skip("cpu backend unavailable")
    from convforge import _core

    before, state = _core.get_num_threads(), dict(_threads.state)
    monkeypatch.setattr(_threads, "cgroup_cpu_limit", lambda *a: 1.0)
    try:
        _threads.configure({})
        assert _core.get_num_threads() == 1
        assert _threads.state["default_num_threads"] == 1
        assert _threads.state["wait_policy"] == "runtime default"
        assert _threads.state["dynamic"] is True
        _threads.configure({"OMP_WAIT_POLICY": "active", "OMP_NUM_THREADS": "1"})
        assert _threads.state["wait_policy"] == "OMP_WAIT_POLICY=active"
        assert _threads.state["dynamic"] is False
        _threads.configure({"CONVFORGE_DYNAMIC_THREADS": "0"})
        assert _threads.state["dynamic"] is False
        _threads.configure({"CONVFORGE_DYNAMIC_THREADS": "1", "OMP_NUM_THREADS": "2"})
        assert _threads.state["dynamic"] is True
    finally:
        _core.set_num_threads(before)
        _threads.state.update(state)
        _threads.set_dynamic(state["dynamic"], before)


# --------------------------------------------------------------------------- load of others

STAT = """cpu  400 0 200 1000 0 0 0 0 0 0
cpu0 100 5 50 500 7 1 2 3 0 0
cpu1 300 0 150 500 0 0 0 0 0 0
intr 12345
"""


def test_busy_seconds_reads_the_affinity_cpus():
    # busy = user + nice + system + irq + softirq + steal (idle and iowait are not)
    assert _threads.busy_seconds(STAT, {0}, 0.01) == pytest.approx(1.61)
    assert _threads.busy_seconds(STAT, {1}, 0.01) == pytest.approx(4.5)
    assert _threads.busy_seconds(STAT, {0, 1}, 0.01) == pytest.approx(6.11)
    assert _threads.busy_seconds(STAT, {7}, 0.01) == 0


@pytest.mark.parametrize("prev,now,want", [
    ((0.0, 10.0, 5.0), (0.5, 11.0, 6.0), 0.0),    # all the busy time was ours
    ((0.0, 10.0, 5.0), (0.5, 11.0, 5.5), 1.0),    # another process took one core
    ((0.0, 10.0, 5.0), (0.5, 10.9, 6.0), 0.0),    # tick rounding: never negative
    ((1.0, 10.0, 5.0), (1.0, 12.0, 5.0), 0.0),    # no time passed
])
def test_foreign_load(prev, now, want):
    assert _threads.foreign_load(prev, now) == pytest.approx(want)


@pytest.mark.parametrize("load,cpus,maximum,want", [
    (0.0, 2, 2, 2), (0.4, 2, 2, 2), (0.6, 2, 2, 1), (1.0, 2, 2, 1), (5.0, 2, 2, 1),
    (1.0, 8, 4, 4), (5.2, 8, 4, 3), (0.0, 8, 1, 1),
])
def test_threads_for(load, cpus, maximum, want):
    assert _threads.threads_for(load, cpus, maximum) == want


# --------------------------------------------------------------------------- real processes

def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    environ = {**os.environ, **env}
    for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        if k not in env:
            environ.pop(k, None)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=180, env=environ)
    assert r.returncode == 0, f"stdout: {r.stdout}\nstderr: {r.stderr}"
    return r


_FOLLOW = """
import subprocess, sys, time
import numpy as np
import convforge as cf
x, w = np.ones((8, 4, 16, 16), np.float32), np.ones((8, 4, 3, 3), np.float32)

def run_until(cond, seconds=8.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        cf.F.conv2d(x, w)
        time.sleep(0.01)
        if cond(cf.get_num_threads()):
            return True
    return False

full = cf.get_num_threads()
quiet = run_until(lambda n: False, 1.2) or cf.get_num_threads() == full
spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
try:
    dropped = run_until(lambda n: n < full)
finally:
    spinner.kill()
    spinner.wait()
back = run_until(lambda n: n == full)
print(full, quiet, dropped, back)
"""


def test_thread_count_follows_a_busy_process():
    """A spinning process takes a core from the default count, and gives it back when it stops;
    with the count fixed (OMP_NUM_THREADS) nothing changes."""
    if convforge.backends.unavailable_reason("cpu") is not None:
        pytest.skip("cpu backend unavailable")
    if _threads.default_num_threads({}) < 2 or not os.path.exists("/proc/stat"):
        pytest.skip("needs 2 CPUs and /proc/stat")
    full, quiet, dropped, back = _python(_FOLLOW, {}).stdout.split()
    if quiet != "True":
        pytest.skip("another process is busy on this machine: the test needs it quiet")
    assert (dropped, back) == ("True", "True"), (full, quiet, dropped, back)
    fixed = _python(_FOLLOW.replace("seconds=8.0", "seconds=2.0"), {"OMP_NUM_THREADS": "2"})
    assert fixed.stdout.split()[2] == "False"  # never dropped


@pytest.mark.parametrize("env,expect", [({"OMP_WAIT_POLICY": "active"}, "'ACTIVE'"),
                                        ({"GOMP_SPINCOUNT": "12345"}, "'12345'")])
def test_user_wait_policy_is_kept(env, expect):
    if convforge.backends.unavailable_reason("cpu") is not None:
        pytest.skip("cpu backend unavailable")
    r = _python("import convforge", {"OMP_DISPLAY_ENV": "verbose", **env})
    if "GOMP_SPINCOUNT" not in r.stderr:
        pytest.skip("the OpenMP runtime is not GNU libgomp")
    assert expect in r.stderr, r.stderr


def test_numba_backend_uses_convforges_count():
    """OMP_NUM_THREADS=1 sets convforge's count, for the numba backend too (numba's own default
    is every CPU); NUMBA_NUM_THREADS still rules numba when set."""
    if convforge.backends.unavailable_reason("numba") is not None:
        pytest.skip("numba backend unavailable")
    code = ("import numpy as np, numba, convforge as cf\n"
            "cf.F.max_pool2d(np.ones((1, 1, 4, 4), np.float32), 2, backend='numba')\n"
            "print(numba.get_num_threads(), cf.get_num_threads())\n")
    r = _python(code, {"OMP_NUM_THREADS": "1"})
    assert r.stdout.split() == ["1", "1"]
    if (os.cpu_count() or 1) > 1:
        r = _python(code, {"NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"})
        assert r.stdout.split() == ["2", "1"]
