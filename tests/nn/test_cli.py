"""The convforge command (info, bench, train) and convforge.viz.

End-to-end training runs only when convforge.models imports (the nn package and model zoo);
otherwise those tests skip and say why.
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convforge
from convforge import cli, viz
from convforge.data import datasets

from conftest import REPO

_SHARED_ENV = os.environ.get("CONVFORGE_DATA")


def models_missing():
    try:
        importlib.import_module("convforge.models")
    except ImportError as e:
        return f"convforge.models is not importable here ({e})"
    return None


needs_models = pytest.mark.skipif(models_missing() is not None,
                                  reason=str(models_missing()))


def mnist_root():
    roots = ([Path(p).resolve() for p in _SHARED_ENV.split(os.pathsep) if p] if _SHARED_ENV
             else [REPO.parent / "shared" / "data"])
    return next((r for r in roots if (r / "mnist").is_dir()), None)


pytestmark = pytest.mark.usefixtures("isolated_data")  # conftest: no real data dirs


@pytest.fixture
def mnist_data(monkeypatch):
    """CONVFORGE_DATA pointed at the folder holding mnist/ (skips without it)."""
    root = mnist_root()
    if root is None:
        pytest.skip("MNIST not found ($CONVFORGE_DATA or ../shared/data)")
    monkeypatch.setenv("CONVFORGE_DATA", str(root))
    return root


def is_png(path):
    return Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- info, bench, usage

def test_info_prints_version_and_backends(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"convforge {convforge.__version__}")
    assert "backends" in out and "reference" in out


def test_format_info_nests_dicts():
    text = cli.format_info({"version": "9", "backends": ["cpu", "numba"],
                            "unavailable": {"cuda": "no GPU"}, "threads": 4})
    assert text.splitlines() == ["convforge 9", "  backends     cpu, numba",
                                 "  unavailable  ", "    cuda  no GPU", "  threads      4"]


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "train" in capsys.readouterr().out


def test_python_dash_m_runs_the_cli():
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    r = subprocess.run([sys.executable, "-m", "convforge", "info"], env=env, check=False,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("convforge ")


def test_bench_without_script_explains(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "bench_script_candidates", lambda: [tmp_path / "bench/compare.py"])
    assert cli.main(["bench"]) == 2
    err = capsys.readouterr().err
    assert "bench/compare.py" in err and str(tmp_path) in err


def test_bench_runs_compare_script_with_arguments(tmp_path, monkeypatch):
    script = tmp_path / "bench" / "compare.py"
    script.parent.mkdir()
    script.write_text("import json, sys\n"
                      f"open({str(tmp_path / 'args.json')!r}, 'w')"
                      ".write(json.dumps(sys.argv[1:]))\n")
    monkeypatch.setattr(cli, "bench_script_candidates", lambda: [script])
    assert cli.main(["bench", "--quick", "conv"]) == 0
    assert json.loads((tmp_path / "args.json").read_text()) == ["--quick", "conv"]


def test_train_rejects_unknown_model_and_dataset():
    with pytest.raises(SystemExit):
        cli.main(["train", "resnet50"])
    with pytest.raises(SystemExit):
        cli.main(["train", "lenet5", "--dataset", "imagenet"])


@pytest.mark.parametrize("args,message", [
    (["--augment", "blur=3"], "augment spec"),
    (["--val-split", "1.5"], "--val-split"),
    (["--dataset", "mnist", "--stream"], "--stream"),
    (["--epochs", "0"], "--epochs"),
])
def test_train_rejects_bad_options(args, message, capsys):
    assert cli.main(["train", "lenet5", *args]) == 2
    assert message in capsys.readouterr().err


def test_train_without_models_says_why(capsys):
    if models_missing() is None:
        pytest.skip("convforge.models is available: nothing to report")
    assert cli.main(["train", "lenet5", "--limit", "8"]) == 1
    assert "convforge.models is not available" in capsys.readouterr().err


@needs_models
def test_train_reports_missing_data(tmp_path, capsys):
    assert cli.main(["train", "lenet5", "--data", str(tmp_path / "none"), "--quiet"]) == 1
    assert "MNIST not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- train end to end

def check_run_outputs(out, model, dataset, epochs, n_train):
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "test_loss", "epochs", "train_seconds", "images_per_second",
                "backend", "model", "dataset", "seed", "history"):
        assert key in metrics, key
    assert metrics["model"] == model and metrics["dataset"] == dataset
    assert metrics["epochs"] == epochs and metrics["train_images"] == n_train
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and np.isfinite(metrics["test_loss"])
    assert metrics["backend"] in convforge.available()
    assert len(metrics["history"]["loss"]) == epochs
    ends = metrics["epoch_end_seconds"]
    assert len(ends) == epochs and ends == sorted(ends) and ends[-1] <= metrics["train_seconds"]
    with np.load(out / "weights.npz") as w:
        assert sum(w[k].size for k in w.files) == metrics["params"]
    assert is_png(out / "curves.png")
    return metrics


@needs_models
def test_train_lenet5_mnist_tiny_subset(tmp_path, mnist_data, capsys):
    out = tmp_path / "run"
    rc = cli.main(["train", "lenet5", "--dataset", "mnist", "--limit", "256", "--epochs", "1",
                   "--out", str(out), "--seed", "0", "--augment", "shift=0.1", "--quiet",
                   "--test-limit", "1000"])
    assert rc == 0, capsys.readouterr().err
    m = check_run_outputs(out, "lenet5", "mnist", 1, 230)     # 10% of 256 held out
    assert m["params"] == 61706 and m["augment"] == "shift=0.1"
    assert "held-out" in m["validation"] and len(m["history"]["val_loss"]) == 1
    assert m["test_images"] == 1000


@needs_models
def test_train_streaming_cifar_tree(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    tree = tmp_path / "cifar"
    for split, n in (("train", 3), ("test", 1)):
        for c in datasets.CIFAR10_CLASSES:
            (tree / split / c).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(tree / split / c / f"{i}.png")
    out = tmp_path / "run"
    rc = cli.main(["train", "lenet5", "--dataset", "cifar10", "--stream", "--data", str(tree),
                   "--epochs", "2", "--batch-size", "8", "--out", str(out), "--quiet",
                   "--augment", "flip,crop=2", "--test-limit", "7"])
    assert rc == 0, capsys.readouterr().err
    m = check_run_outputs(out, "lenet5", "cifar10", 2, 30)
    assert m["validation"].startswith("none") and m["test_images"] == 7


@pytest.mark.parametrize("name,kind", [("constant", float), ("step", "StepDecay"),
                                       ("exponential", "ExponentialDecay"),
                                       ("cosine", "CosineDecay"), ("onecycle", "OneCycle")])
def test_lr_schedule_choices(name, kind):
    a = cli.build_parser().parse_args(["train", "lenet5", "--lr-schedule", name,
                                       "--weight-decay", "1e-4"])
    assert a.lr_schedule == name and a.weight_decay == 1e-4
    rate = cli.make_schedule(name, 0.1, 4, 10)            # 4 epochs of 10 steps
    if kind is float:
        assert rate == 0.1
        return
    assert type(rate).__name__ == kind
    first = 0.1 / 25 if name == "onecycle" else 0.1
    # step: x0.1 every ceil(4/3) = 2 epochs (at step 20)
    last = {"step": 0.01, "exponential": 0.1 * 0.1 ** (39 / 40),
            "cosine": 0.05 * (1 + np.cos(np.pi * 39 / 40)), "onecycle": 0.1 / 25e4}[name]
    assert rate(0) == pytest.approx(first) and rate(39) == pytest.approx(last)
    if name == "step":
        assert rate(19) == 0.1 and rate(20) == pytest.approx(0.01)


def test_train_help_lists_schedules_and_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "{constant,step,exponential,cosine,onecycle}" in out
    assert "(recipe default: cosine; fast: onecycle)" in out and "--lr as the peak" in out
    assert "(recipe default: 0.0; fast: 0.0005)" in out      # --weight-decay


def test_train_rejects_negative_weight_decay(capsys):
    assert cli.main(["train", "lenet5", "--weight-decay", "-1"]) == 2
    assert "--weight-decay" in capsys.readouterr().err


@needs_models
def test_train_with_lr_schedule_and_weight_decay(tmp_path, mnist_data, capsys):
    out = tmp_path / "run"
    rc = cli.main(["train", "lenet5", "--limit", "64", "--epochs", "1", "--batch-size", "16",
                   "--lr-schedule", "onecycle", "--weight-decay", "1e-4", "--out", str(out),
                   "--quiet", "--test-limit", "64", "--val-split", "0.25"])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["lr_schedule"] == "onecycle" and m["weight_decay"] == 1e-4
    # 48 training images, batches of 16: the one cycle has 3 steps, the last at lr/25e4
    assert m["history"]["learning_rate"] == [pytest.approx(1e-3 / 25e4)]
    assert "OneCycle(max_lr=0.001, total_steps=3" in capsys.readouterr().out


# --------------------------------------------------------------------------- viz

class FakeHistory:
    def __init__(self, history):
        self.history = history
        self.epoch = list(range(len(history["loss"])))


def test_plot_history_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    hist = {"loss": [2.0, 1.0, 0.5], "accuracy": [0.3, 0.6, 0.8],
            "val_loss": [2.1, 1.2, 0.7], "val_accuracy": [0.25, 0.55, 0.75]}
    assert is_png(viz.plot_history(hist, tmp_path / "a.png"))
    assert is_png(viz.plot_history(FakeHistory({"loss": [1.0]}), tmp_path / "sub" / "b.png"))
    with pytest.raises(TypeError, match="history"):
        viz.plot_history([1, 2], tmp_path / "c.png")


def test_show_filters_grey_colour_and_model(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    assert is_png(viz.show_filters(rng.standard_normal((6, 1, 5, 5)), tmp_path / "g.png"))
    assert is_png(viz.show_filters(rng.standard_normal((8, 3, 3, 3)), tmp_path / "c.png"))

    class WithWeights:
        def get_weights(self):
            return [np.zeros(3), rng.standard_normal((4, 2, 3, 3))]

    assert is_png(viz.show_filters(WithWeights(), tmp_path / "m.png"))
    with pytest.raises(ValueError, match="4-D"):
        viz.show_filters(np.zeros((3, 3)), tmp_path / "bad.png")
    with pytest.raises(TypeError, match="kernel"):
        viz.show_filters(object(), tmp_path / "bad.png")


class Scale:
    def __init__(self, name, k):
        self.name, self.k = name, k

    def forward(self, x, training=False):
        assert training is False
        return x * self.k


class Flatten:
    name = "flatten"

    def forward(self, x):
        return x.reshape(len(x), -1)


def test_show_activations_on_a_layer_list(tmp_path):
    pytest.importorskip("matplotlib")

    class Model:
        def __init__(self):
            self.layers = [Scale("scale", 2.0), Scale("scale_1", 0.5), Flatten()]

    x = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    assert is_png(viz.show_activations(Model(), x, "scale_1", tmp_path / "a.png"))
    assert is_png(viz.show_activations(Model(), x[0], -1, tmp_path / "b.png"))   # dense
    with pytest.raises(ValueError, match="not found"):
        viz.show_activations(Model(), x, "conv9", tmp_path / "c.png")
    with pytest.raises(TypeError, match="layers"):
        viz.show_activations(object(), x, 0, tmp_path / "d.png")


@needs_models
def test_viz_on_a_zoo_model(tmp_path):
    pytest.importorskip("matplotlib")
    from convforge import models

    model = models.lenet5()
    x = np.random.default_rng(0).integers(0, 256, size=(1, 1, 32, 32), dtype=np.uint8)
    assert is_png(viz.show_filters(model, tmp_path / "f.png"))
    assert is_png(viz.show_activations(model, x, 1, tmp_path / "a.png"))
