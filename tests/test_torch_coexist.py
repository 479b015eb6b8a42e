"""Living next to PyTorch (issue #16 item 4): both import orders, alternating and concurrent
multi-threaded kernels, torch's thread count left alone by the numba backend, and the OpenMP
runtime report/warning of convforge.info() and check_openmp().

Each scenario runs in a fresh interpreter (import order and numba's threading layer are
process-wide) with a timeout, so a deadlock fails the test instead of blocking the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import pytest

pytest.importorskip("torch")

import convforge as cf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# conv2d by torch and by convforge's cpu backend, each on 2 threads, checked against the float64
# reference; run(order) alternates them; worker() is one Python thread's loop
_COMMON = """
import numpy as np

def data(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 8, 16, 16)).astype(np.float32)
    w = rng.standard_normal((12, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    ref = cf.F.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                      padding=1, backend="reference")
    return x, w, b, ref

def torch_conv(x, w, b):
    with torch.no_grad():
        return torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                          torch.from_numpy(b), padding=1).numpy()

def cf_conv(x, w, b):
    return cf.F.conv2d(x, w, b, padding=1, backend="cpu")

def check(y, ref, who):
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4, err_msg=who)
"""


def _run(code: str, timeout: float = 120, env: dict | None = None) -> str:
    # the environment as it is: PYTHONPATH=python for a development build, the installed
    # package in CI (the source tree has no compiled _core there)
    full_env = dict(os.environ, **(env or {}))
    try:
        p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                           text=True, timeout=timeout, env=full_env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung: no result within {timeout} s")
    assert p.returncode == 0, p.stderr[-4000:]
    return p.stdout


@pytest.mark.parametrize("first", ["torch", "convforge"])
def test_alternating_kernels_both_import_orders(first):
    imports = ("import torch\nimport convforge as cf\n" if first == "torch"
               else "import convforge as cf\nimport torch\n")
    out = _run(imports + _COMMON + """
torch.set_num_threads(2)
cf.set_num_threads(2)
x, w, b, ref = data(0)
first = cf_conv(x, w, b)
for _ in range(20):
    check(torch_conv(x, w, b), ref, "torch")
    y = cf_conv(x, w, b)
    check(y, ref, "convforge")
    assert np.array_equal(y, first), "convforge not bit-identical run to run"
assert torch.get_num_threads() == 2 and cf.get_num_threads() == 2
print("ok")
""")
    assert out.strip() == "ok"


def test_two_python_threads_torch_and_convforge():
    out = _run("import torch\nimport convforge as cf\n" + _COMMON + """
import threading, time
torch.set_num_threads(2)
cf.set_num_threads(2)
errors = []

def worker(fn, seed):
    try:
        x, w, b, ref = data(seed)
        for _ in range(50):
            check(fn(x, w, b), ref, fn.__name__)
    except BaseException as e:
        errors.append(repr(e))

t0 = time.perf_counter()
ts = [threading.Thread(target=worker, args=(torch_conv, 1)),
      threading.Thread(target=worker, args=(cf_conv, 2))]
for t in ts:
    t.start()
for t in ts:
    t.join(60)
assert not any(t.is_alive() for t in ts), "a thread did not finish within 60 s"
assert not errors, errors
print("ok", round(time.perf_counter() - t0, 1))
""", timeout=90)
    assert out.startswith("ok")


@pytest.mark.parametrize("layer", [None, "omp"])
def test_numba_backend_keeps_torch_thread_count(layer):
    # the omp layer is the one that changed torch's count (1 -> numba's 2) before the fix;
    # with convforge's default (forksafe: tbb/workqueue) it must stay unchanged as well
    pytest.importorskip("numba")
    env = {"NUMBA_THREADING_LAYER": layer} if layer else {}
    out = _run("""
import torch
import numpy as np
import convforge as cf
torch.set_num_threads(1)
assert torch.get_num_threads() == 1  # (the change showed only once torch had read its count)
x = np.ones((2, 3, 8, 8), np.float32)
w = np.ones((4, 3, 3, 3), np.float32)
cf.F.conv2d(x, w, backend="numba")
a = torch.get_num_threads()
cf.set_num_threads(2)
cf.F.conv2d(x, w, backend="numba")
print(a, torch.get_num_threads())
""", env=env)
    assert out.split() == ["1", "1"]


def test_info_lists_openmp_runtimes_in_a_fresh_process():
    if not sys.platform.startswith("linux"):
        pytest.skip("without threadpoolctl the runtimes are read from /proc/self/maps")
    out = _run("""
import convforge as cf
import numpy as np
cf.F.conv2d(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32))
rts = cf.info()["openmp_runtimes"]
from convforge import _openmp
_openmp._from_threadpoolctl = lambda: None   # the /proc/self/maps fallback too
maps = _openmp.openmp_runtimes()
print(len(rts), len(maps), all(r["prefix"] in ("libgomp", "libiomp", "libomp") for r in maps))
""")
    n_rts, n_maps, prefixes_ok = out.split()
    if cf.info().get("has_openmp"):
        assert int(n_rts) >= 1 and int(n_maps) >= 1
    assert prefixes_ok == "True"


def _fake(path, n):
    return {"library": path, "prefix": "libgomp", "version": None, "num_threads": n,
            "source": "test"}


def test_check_openmp_warns_on_two_oversubscribed_runtimes(monkeypatch):
    from convforge import _openmp

    cores = _openmp.available_cores()
    two = [_fake("/x/libgomp.so.1", cores), _fake("/y/libiomp5.so", cores)]
    with pytest.warns(RuntimeWarning, match="torch.set_num_threads"):
        msg = cf.check_openmp(two)
    assert "set_num_threads" in msg and "OMP_NUM_THREADS" in msg
    # through info(), with the runtime list replaced
    monkeypatch.setattr(_openmp, "openmp_runtimes", lambda: two)
    with pytest.warns(RuntimeWarning, match="OpenMP runtimes are loaded"):
        info = cf.info()
    assert info["openmp_runtimes"] == two


def test_check_openmp_quiet_for_one_runtime_or_few_threads(monkeypatch):
    from convforge import _openmp

    monkeypatch.setattr(_openmp, "_convforge_threads", lambda: 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # one runtime (the same file twice): one pool, nothing competes
        assert cf.check_openmp([_fake("/x/libgomp.so.1", 1000), _fake("/x/libgomp.so.1", 1000)
                                ]) is None
        assert cf.check_openmp([_fake("/x/libgomp.so.1", 1), _fake("/y/libomp.so", None)]) \
            is None or _openmp.available_cores() < 2
        assert cf.check_openmp([]) is None
