"""Issue #11 on the CLI side: `convforge train --seed S` is reproducible bit for bit on every
backend; bad data and bad arguments end with one line and an exit status (no traceback); an
unusable --out is refused before training; SIGINT/SIGTERM stop training and save the run.

The runs are subprocesses (`python -m convforge`) on tiny MNIST subsets, with timeouts."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import convforge

from conftest import REPO

PYTHON_DIR = str(Path(convforge.__file__).resolve().parents[1])
TIME_FIELDS = ("train_seconds", "images_per_second", "epoch_end_seconds")


def mnist_root():
    env = os.environ.get("CONVFORGE_DATA")
    roots = [Path(p) for p in env.split(os.pathsep) if p] if env else \
        [REPO.parent / "shared" / "data"]
    return next((r for r in roots if (r / "mnist").is_dir()), None)


needs_mnist = pytest.mark.skipif(mnist_root() is None,
                                 reason="MNIST not found ($CONVFORGE_DATA or ../shared/data)")


def env(tmp_path, data=True):
    e = dict(os.environ, PYTHONPATH=os.pathsep.join([PYTHON_DIR, os.environ.get("PYTHONPATH",
                                                                                "")]),
             XDG_CACHE_HOME=str(tmp_path / "xdg"), CONVFORGE_NO_DOWNLOAD="1",
             PYTHONUNBUFFERED="1")
    e.pop("CONVFORGE_DATA", None)
    if data:
        e["CONVFORGE_DATA"] = str(mnist_root())
    return e


def train(tmp_path, *args, data=True, timeout=240):
    return subprocess.run([sys.executable, "-m", "convforge", "train", "lenet5", "--quiet",
                           *args], env=env(tmp_path, data), capture_output=True, text=True,
                          timeout=timeout)


def one_clean_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


# --------------------------------------------------------------------------- item 1

def run_outputs(out: Path):
    metrics = json.loads((out / "metrics.json").read_text())
    for k in TIME_FIELDS:
        metrics.pop(k)
    with np.load(out / "weights.npz") as f:
        arrays = {k: f[k] for k in f.files}
    return metrics, arrays


@needs_mnist
@pytest.mark.parametrize("backend_name", ["cpu", "numba", "reference"])
def test_same_seed_gives_bit_identical_runs(backend_name, tmp_path):
    backend = backend_name
    if backend not in convforge.available():
        pytest.skip(f"backend {backend} not available")
    args = ["--limit", "96", "--test-limit", "64", "--epochs", "1", "--batch-size", "32",
            "--augment", "flip,shift=0.1", "--backend", backend]
    runs = []
    for i, seed in enumerate(("0", "0", "1")):
        r = train(tmp_path, *args, "--seed", seed, "--out", str(tmp_path / f"r{i}"))
        assert r.returncode == 0, r.stderr
        runs.append(run_outputs(tmp_path / f"r{i}"))
    (m0, w0), (m1, w1), (m2, w2) = runs
    assert m0 == m1                                   # metrics, times aside
    assert w0.keys() == w1.keys()
    for k in w0:
        assert w0[k].dtype == w1[k].dtype and np.array_equal(w0[k], w1[k]), k
    assert m2["seed"] == 1
    assert any(not np.array_equal(w0[k], w2[k]) for k in w0)


# --------------------------------------------------------------------------- item 11

@needs_mnist
@pytest.mark.parametrize("lr", ["nan", "inf", "-1", "0"])
def test_bad_learning_rate_is_a_usage_error(lr, tmp_path):
    r = train(tmp_path, "--limit", "64", "--epochs", "1", "--lr", lr, "--out",
              str(tmp_path / "o"))
    assert r.returncode == 2
    assert "--lr" in one_clean_line(r.stderr)
    assert not (tmp_path / "o" / "metrics.json").exists()


def corrupt_mnist(tmp_path, how: str) -> Path:
    """A copy of MNIST with one file damaged: 'truncated' (cut gzip stream) or 'checksum'
    (one label changed, a valid file with the wrong SHA-256)."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for f in (mnist_root() / "mnist").glob("*.gz"):
        shutil.copyfile(f, folder / f.name)
    if how == "truncated":
        p = folder / "train-images-idx3-ubyte.gz"
        p.write_bytes(p.read_bytes()[:5000])
    else:
        p = folder / "t10k-labels-idx1-ubyte.gz"
        raw = bytearray(gzip.decompress(p.read_bytes()))
        raw[-1] = (raw[-1] + 1) % 10
        p.write_bytes(gzip.compress(bytes(raw)))
    return folder.parent


@needs_mnist
@pytest.mark.parametrize("how", ["truncated", "checksum"])
def test_corrupt_data_is_one_line_and_status_1(how, tmp_path):
    root = corrupt_mnist(tmp_path, how)
    r = train(tmp_path, "--data", str(root), "--limit", "64", "--epochs", "1", "--out",
              str(tmp_path / "o"), data=False)
    assert r.returncode == 1, r.stderr
    assert "mnist" in one_clean_line(r.stderr).lower()


def test_missing_data_names_the_data_option(tmp_path):
    r = train(tmp_path, "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"),
              data=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "--data PATH" in r.stderr


def test_out_that_is_a_file_is_refused_before_loading_data(tmp_path):
    out = tmp_path / "taken"
    out.write_text("not a folder")
    t0 = time.monotonic()
    # no data is reachable: a refusal about --out proves it came before loading
    r = train(tmp_path, "--out", str(out), "--data", str(tmp_path / "nowhere"), data=False)
    assert r.returncode == 2
    line = one_clean_line(r.stderr)
    assert "--out" in line and "file" in line
    assert out.read_text() == "not a folder"
    assert time.monotonic() - t0 < 60


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions that apply (not root)")
def test_unwritable_out_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        r = train(tmp_path, "--out", str(locked / "run"), "--data", str(tmp_path / "none"),
                  data=False)
    finally:
        locked.chmod(0o700)
    assert r.returncode == 2 and "--out" in one_clean_line(r.stderr)


@needs_mnist
@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_training_and_saves_the_run(sig, status, tmp_path):
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "convforge", "train", "lenet5", "--quiet",
                          "--limit", "2000", "--epochs", "200", "--batch-size", "16",
                          "--test-limit", "64", "--out", str(out), "--backend", "cpu"
                          if "cpu" in convforge.available() else "reference"],
                         env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:          # "training lenet5 ..." comes before fit
            line = p.stdout.readline()
            if not line or line.startswith("training "):
                break
        assert line.startswith("training "), p.stderr.read()
        time.sleep(1.0)
        sent = time.monotonic()
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        assert time.monotonic() - sent < 30          # stopped at a batch, not at the end
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == status, err
    assert "Traceback" not in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["test_accuracy"] is None
    assert metrics["epochs"] < 200
    with np.load(out / "weights.npz") as f:
        assert sum(f[k].size for k in f.files) == metrics["params"] == 61706
        assert all(np.isfinite(f[k]).all() for k in f.files)
