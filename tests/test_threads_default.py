"""Thread defaults (issue 11 item 6): the default thread count respects the affinity mask, the
cgroup CPU quota (v1 and v2, fake files here) and OMP_NUM_THREADS, for the cpu and the numba
backend; the OpenMP runtime starts with a passive wait policy unless the user chose one."""

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
    """configure() sets the compiled core's count from the quota (OpenMP ignores quotas) and
    leaves the wait policy variable it set out of the environment afterwards."""
    if convforge.backends.unavailable_reason("cpu") is not None:
        pytest.skip("cpu backend unavailable")
    from convforge import _core

    before, state = _core.get_num_threads(), dict(_threads.state)
    monkeypatch.setattr(_threads, "cgroup_cpu_limit", lambda *a: 1.0)
    monkeypatch.setattr(_threads, "_libgomp_loaded", lambda: False)
    env = {}
    try:
        _threads.configure(env)
        assert _core.get_num_threads() == 1
        assert _threads.state["default_num_threads"] == 1
        assert env == {}  # OMP_WAIT_POLICY was set only while the core loaded
        assert _threads.state["wait_policy"] == "passive"
        _threads.configure({"OMP_WAIT_POLICY": "active"})
        assert _threads.state["wait_policy"] == "OMP_WAIT_POLICY=active"
    finally:
        _core.set_num_threads(before)
        _threads.state.update(state)


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


def test_openmp_starts_passive_and_the_environment_stays_clean():
    if convforge.backends.unavailable_reason("cpu") is not None:
        pytest.skip("cpu backend unavailable")
    r = _python("import os, convforge; print('OMP_WAIT_POLICY' in os.environ)",
                {"OMP_DISPLAY_ENV": "verbose"})
    if "GOMP_SPINCOUNT" not in r.stderr:
        pytest.skip("the OpenMP runtime is not GNU libgomp (no GOMP_SPINCOUNT in its display)")
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in r.stderr and "GOMP_SPINCOUNT = '0'" in r.stderr, \
        r.stderr
    assert r.stdout.strip() == "False"  # child processes do not inherit convforge's choice


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
