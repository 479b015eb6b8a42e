"""convforge.distributed: data-parallel training over MPI.

The in-process tests use a single-process World (no MPI needed): the hooks, the sharding and
the synchronised BatchNormalization's formulas. The mpiexec tests (skipped without mpi4py and
an Open MPI mpiexec) run tests/nn/mpi_train_script.py and the CLI on 2 ranks, one thread each,
with timeouts: P = 2 must give the weights of P = 1 on the same global batches, a rank that
raises must end the job quickly with a non-zero status, and only rank 0 writes files.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convforge import distributed, nn

from conftest import REPO

SCRIPT = Path(__file__).with_name("mpi_train_script.py")
sys.path.insert(0, str(SCRIPT.parent))
import mpi_train_script  # noqa: E402  (the helper script, imported for its model)


def _mpiexec():
    """Open MPI's mpiexec (next to this Python first: the wheel's), or None."""
    if importlib.util.find_spec("mpi4py") is None:
        return None
    exe = Path(sys.executable).with_name("mpiexec")
    exe = str(exe) if exe.exists() else shutil.which("mpiexec")
    if exe is None:
        return None
    try:
        v = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return exe if "Open MPI" in v.stdout + v.stderr or "OpenRTE" in v.stdout else None


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="needs mpi4py and Open MPI's mpiexec "
                               "(pip install 'convforge[mpi]')")


def _env(**extra) -> dict:
    # the environment as it is (PYTHONPATH=python for a development build, relative to REPO),
    # one thread per rank, and Open MPI's consent to run as root (CI containers)
    return dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
                OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", **extra)


def _run(args, timeout: float, ranks: int = 0, env=None):
    cmd = ([MPIEXEC, "-n", str(ranks), "--oversubscribe"] if ranks else []) + args
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=env or _env(), cwd=REPO)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung: {' '.join(cmd)} gave no result within {timeout} s")


def _train(out: Path, ranks: int = 0) -> dict:
    args = [sys.executable, str(SCRIPT), "train", str(out)] + (["--dp"] if ranks else [])
    p = _run(args, 180, ranks)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- no MPI needed

def test_import_needs_no_mpi4py():
    code = ("import sys, convforge, convforge.distributed as d; w = d.init(); "
            "assert w.size == 1 and w.comm is None; assert 'mpi4py' not in sys.modules")
    env = {k: v for k, v in _env().items() if k not in distributed._LAUNCHER_ENV}
    p = _run([sys.executable, "-c", code], 120, env=env)
    assert p.returncode == 0, p.stderr[-3000:]


def test_shards_cover_the_batch_in_order():
    for size in (1, 2, 3):
        parts = []
        for rank in range(size):
            w = distributed.World(None)
            w.rank, w.size = rank, size
            xb, _ = distributed.DataParallel(w).shard(np.arange(10), None)
            parts.append(xb)
        assert np.array_equal(np.concatenate(parts), np.arange(10))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    w = distributed.World(None)
    w.rank, w.size = 1, 4
    assert distributed.DataParallel(w).shard(np.arange(3), np.arange(3)) == (None, None)


def test_one_rank_world_matches_plain_fit(rng):
    """The hooks (buckets, the synchronised BatchNormalization's backward) on one rank give the
    plain step's weights: the same sums, in a different order."""
    x, y = rng.standard_normal((40, 2, 8, 8)), rng.integers(0, 5, 40)
    plain, dp = mpi_train_script.build(), mpi_train_script.build()
    d = distributed.data_parallel(dp, distributed.World(None), bucket_mb=0.0005)
    h1 = plain.fit(x, y, batch_size=16, epochs=2, seed=1, verbose=0)
    h2 = dp.fit(x, y, batch_size=16, epochs=2, seed=1, verbose=0)
    for a, b in zip(plain.get_weights(), dp.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h2.history["loss"], h1.history["loss"], rtol=1e-12)
    assert d.stats["steps"] == 6 and d.stats["grad_bytes"] > 0
    assert dp.evaluate(x, y)["loss"] == pytest.approx(plain.evaluate(x, y)["loss"], rel=1e-10)


def test_bn_statistics_combine_like_one_batch(rng):
    """bn_stats' combination of per-rank counts, means and variances (Chan's formula)."""
    x = rng.standard_normal((7, 3)) * 3 + 1
    parts = [x[:3], x[3:]]
    n = np.array([len(p) for p in parts], float)
    means, vars_ = np.array([p.mean(0) for p in parts]), np.array([p.var(0) for p in parts])
    total = n.sum()
    gmean = (n[:, None] * means).sum(0) / total
    gvar = (n[:, None] * (vars_ + (means - gmean) ** 2)).sum(0) / total
    np.testing.assert_allclose(gmean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(gvar, x.var(0), rtol=1e-12)


def test_plain_model_has_no_distribution():
    m = nn.Sequential([nn.Dense(2, input_shape=(3,))])
    assert m._dist is None


# --------------------------------------------------------------------------- under mpiexec

@needs_mpi
def test_two_ranks_give_the_weights_of_one(tmp_path):
    one = _train(tmp_path / "p1.npz")
    two = _train(tmp_path / "p2.npz", ranks=2)
    w1, w2 = np.load(tmp_path / "p1.npz"), np.load(tmp_path / "p2.npz")
    assert list(w1) == list(w2)
    for k in w1:   # float64: only the order of the sums differs
        np.testing.assert_allclose(w2[k], w1[k], rtol=1e-10, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(two["history"]["loss"], one["history"]["loss"], rtol=1e-10)
    assert two["history"]["accuracy"] == one["history"]["accuracy"]
    assert two["evaluate"]["loss"] == pytest.approx(one["evaluate"]["loss"], rel=1e-10)


@needs_mpi
def test_a_failing_rank_ends_the_job():
    p = _run([sys.executable, str(SCRIPT), "raise"], 60, ranks=2)
    assert p.returncode != 0
    assert "rank 1 fails on purpose" in p.stderr
    assert "aborting every rank" in p.stderr


def _mnist_root():
    env = os.environ.get("CONVFORGE_DATA")
    roots = ([Path(p).resolve() for p in env.split(os.pathsep) if p] if env
             else [REPO.parent / "shared" / "data"])
    return next((r for r in roots if (r / "mnist").is_dir()), None)


@needs_mpi
def test_cli_under_mpiexec_only_rank_zero_writes(tmp_path):
    root = _mnist_root()
    if root is None:
        pytest.skip("MNIST not found ($CONVFORGE_DATA or ../shared/data)")
    out = tmp_path / "run"
    args = [sys.executable, "-m", "convforge", "train", "lenet5", "--dataset", "mnist",
            "--limit", "256", "--test-limit", "200", "--epochs", "1", "--batch-size", "64",
            "--out", str(out), "--quiet"]
    p = _run(args, 300, ranks=2, env=_env(CONVFORGE_DATA=str(root)))
    assert p.returncode == 0, p.stderr[-4000:]
    assert sorted(f.name for f in out.iterdir()) == ["curves.png", "metrics.json",
                                                     "weights.npz"]
    assert p.stdout.count("test accuracy") == 1   # rank 1 prints nothing
    assert p.stdout.count("data-parallel over 2 MPI ranks") == 1
    m = json.loads((out / "metrics.json").read_text())
    assert m["mpi_ranks"] == 2 and m["batch_size"] == 64 and m["epochs"] == 1
