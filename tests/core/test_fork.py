"""convforge in fork() children (issue 11 item 5).

After the parent ran 2-thread kernels, a child made by fork() (multiprocessing's "fork" start
method, as PyTorch's DataLoader workers use, or os.fork itself) must get the parent's results:
GNU OpenMP hung there (the cpu backend) and numba's GNU OpenMP layer terminated the child (the
numba backend). Each scenario runs in a subprocess with a timeout, so a hang fails the test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import convforge

TIMEOUT_S = 240  # numba compiles on a cold cache; a hang is what this catches

# Shared by the scripts: the ops of a training step (conv forward/backward, max/avg pooling) on
# fixed data; RESULTS(backend) -> list of arrays, SAME(a, b) -> bit-identical lists.
PRELUDE = """
import os, sys, warnings
import numpy as np
import convforge as cf

BACKEND = sys.argv[1]
rng = np.random.default_rng(0)
X = rng.standard_normal((4, 3, 20, 18)).astype(np.float32)
W = rng.standard_normal((8, 3, 5, 5)).astype(np.float32)
B = rng.standard_normal(8).astype(np.float32)
DY = rng.standard_normal((4, 8, 16, 14)).astype(np.float32)


def RESULTS(i=0):
    F = cf.F
    y = F.conv2d(X, W, B, backend=BACKEND)
    dx, dw, db = F.conv2d_backward(DY, X, W, backend=BACKEND)
    p, idx = F.max_pool2d(y, 2, return_indices=True, backend=BACKEND)
    a = F.avg_pool2d(y, 3, stride=2, padding=1, backend=BACKEND)
    return [y, dx, dw, db, p, idx, a]


def SAME(a, b):
    return len(a) == len(b) and all(u.dtype == v.dtype and np.array_equal(u, v)
                                    for u, v in zip(a, b))


def START():
    cf.set_num_threads(2)
    return RESULTS()
"""


def _run(body: str, backend: str, env: dict | None = None, unset: tuple = ()) -> str:
    """Runs PRELUDE + body in a fresh interpreter (argv[1] = backend) in its own process group,
    so that on a timeout the hung children it forked are killed too; returns its stdout."""
    if convforge.backends.unavailable_reason(backend) is not None:
        pytest.skip(f"{backend} backend unavailable")
    script = PRELUDE + textwrap.dedent(body)
    environ = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    proc = subprocess.Popen([sys.executable, "-c", script, backend], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environ,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"hang: no result within {TIMEOUT_S} s\nstdout: {out}\nstderr: {err}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # children left behind by a failed check
    assert proc.returncode == 0, f"rc {proc.returncode}\nstdout: {out}\nstderr: {err}"
    return out


BACKENDS = ("cpu", "numba")


@pytest.mark.parametrize("name", BACKENDS)
def test_fork_pool_workers_get_the_parents_results(name):
    out = _run("""
        PARENT = START()
        import multiprocessing as mp
        with mp.get_context("fork").Pool(2) as pool:
            got = pool.map(RESULTS, range(4))
        assert all(SAME(g, PARENT) for g in got), "a worker's result differs from the parent's"
        # the parent keeps its 2 threads, and its kernels still run
        assert cf.get_num_threads() == 2, cf.get_num_threads()
        assert SAME(RESULTS(), PARENT)
        print("ok")
    """, name)
    assert out.strip() == "ok"


@pytest.mark.parametrize("name", BACKENDS)
def test_os_fork_child_and_grandchild(name):
    out = _run("""
        PARENT = START()
        def child_checks():
            # kernels, then set_num_threads in the child (no hang, same results), then a fork
            # from the child: the grandchild also gets the results
            ok = SAME(RESULTS(), PARENT)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                cf.set_num_threads(2)
            ok = ok and SAME(RESULTS(), PARENT)
            pid = os.fork()
            if pid == 0:
                os._exit(0 if SAME(RESULTS(), PARENT) else 3)
            _, status = os.waitpid(pid, 0)
            return ok and os.waitstatus_to_exitcode(status) == 0

        pid = os.fork()
        if pid == 0:
            os._exit(0 if child_checks() else 4)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, os.waitstatus_to_exitcode(status)
        assert cf.get_num_threads() == 2 and SAME(RESULTS(), PARENT)
        print("ok")
    """, name)
    assert out.strip() == "ok"


def test_cpu_fork_child_runs_one_thread_and_says_so():
    """In the child the cpu backend uses 1 thread whatever set_num_threads asks (libgomp
    cannot start a team there); set_num_threads(2) warns; info() reports it."""
    out = _run("""
        PARENT = START()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                cf.set_num_threads(2)
            msg = (f"{cf.get_num_threads()} {cf.info()['fork_child']} "
                   f"{[c.category.__name__ for c in caught]} {SAME(RESULTS(), PARENT)}")
            os.write(w, msg.encode())
            os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        print(os.read(r, 1000).decode())
        print(cf.get_num_threads(), cf.info()["fork_child"])
    """, "cpu")
    child, parent = out.strip().splitlines()
    assert child == "1 True ['RuntimeWarning'] True"
    assert parent == "2 False"


def test_numba_gnu_openmp_layer_chosen_by_user_still_works_after_fork():
    """A user who asks numba for its GNU OpenMP layer (or ran parallel numba code before
    convforge's numba kernels loaded) gets serial compilations of the kernels in fork children
    (the omp layer would terminate them): the same results."""
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:
        pytest.skip("numba has no OpenMP threading layer here")
    out = _run("""
        PARENT = START()
        import multiprocessing as mp
        from numba.np.ufunc import parallel
        assert parallel.threading_layer() == "omp", parallel.threading_layer()
        with mp.get_context("fork").Pool(2) as pool:
            got = pool.map(RESULTS, range(2))
        assert all(SAME(g, PARENT) for g in got)
        print("ok")
    """, "numba", env={"NUMBA_THREADING_LAYER": "omp"})
    assert out.strip() == "ok"


def test_numba_default_threading_layer_is_fork_safe():
    out = _run("""
        START()
        from numba.np.ufunc import parallel
        print(parallel.threading_layer())
    """, "numba", unset=("NUMBA_THREADING_LAYER",))
    assert out.strip() in ("workqueue", "tbb")


def test_numba_omp_layer_started_by_user_code_only():
    """The parent ran only its own parallel numba code (GNU OpenMP layer) before forking; the
    children use convforge's numba backend for the first time and get the parent's results."""
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:
        pytest.skip("numba has no OpenMP threading layer here")
    out = _run("""
        import multiprocessing as mp
        import numba
        from numba.np.ufunc import parallel

        @numba.njit(parallel=True)
        def total(a):
            s = 0.0
            for i in numba.prange(a.size):
                s += a[i]
            return s

        assert total(np.ones(1000)) == 1000.0 and parallel.threading_layer() == "omp"
        with mp.get_context("fork").Pool(2) as pool:
            got = pool.map(RESULTS, range(2))
        PARENT = RESULTS()
        assert all(SAME(g, PARENT) for g in got)
        print("ok")
    """, "numba", unset=("NUMBA_THREADING_LAYER",))
    assert out.strip() == "ok"
