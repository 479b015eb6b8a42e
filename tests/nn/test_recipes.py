"""convforge.recipes (the defaults of `convforge train`), models.vgg_fast, label smoothing in the
cross-entropy losses and the flip test-time augmentation."""

import json

import numpy as np
import pytest
from test_cli import mnist_data, mnist_root, needs_models  # noqa: F401 (a fixture)

from convforge import cli, losses, models, nn, recipes
from convforge import functional as F


def parse(*args):
    a = cli.build_parser().parse_args(["train", *args])
    recipes.resolve(a, a.model)
    return a


def test_default_recipe_fills_the_options():
    a = parse("lenet5")
    assert a.recipe == "default"
    assert (a.epochs, a.batch_size, a.optimizer, a.lr, a.lr_schedule) == (5, 64, "adam", 1e-3,
                                                                          "cosine")
    assert (a.weight_decay, a.augment, a.label_smoothing, a.tta, a.val_split) == (0.0, None, 0.0,
                                                                                 "none", 0.1)


def test_fast_recipe_is_vgg_fasts_default_and_options_win():
    a = parse("vgg_fast")
    r = recipes.RECIPES["fast"]
    assert a.recipe == "fast"
    assert {k: getattr(a, k) for k in r.options()} == r.options()
    a = parse("vgg_fast", "--epochs", "3", "--label-smoothing", "0", "--augment", "none")
    assert (a.epochs, a.label_smoothing, a.augment, a.batch_size) == (3, 0.0, None, 256)
    a = parse("vgg_small", "--recipe", "fast")
    assert a.recipe == "fast" and a.optimizer == "sgd" and a.lr == 0.2 and a.nesterov
    assert parse("vgg_small_gmp").recipe == "fast"       # the anchor's net, the anchor's recipe


def test_recipe_rate_goes_only_with_its_optimizer():
    assert parse("vgg_fast", "--optimizer", "adam").lr == 1e-3     # not sgd's 0.2
    assert parse("vgg_fast", "--optimizer", "adam", "--lr", "5e-4").lr == 5e-4
    assert parse("lenet5", "--optimizer", "sgd").lr == 1e-2


def test_help_shows_each_recipes_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "{default,fast}" in out and "vgg_fast" in out
    assert "(recipe default: 5; fast: 30)" in out
    assert "(recipe default: cosine; fast: onecycle)" in out
    assert "(recipe default: 0.0; fast: 0.2)" in out       # --label-smoothing


def test_unknown_recipe_and_bad_label_smoothing(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "lenet5", "--recipe", "slow"])
    assert cli.main(["train", "lenet5", "--label-smoothing", "1"]) == 2
    assert "--label-smoothing" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown recipe"):
        recipes.get("slow")


def test_vgg_fast_layout():
    m = models.vgg_fast()
    assert m.count_params() == 1_168_352
    assert m.count_flops() == 171_824_128
    small = models.vgg_fast(widths=(8, 16), stem=4, num_classes=3)
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32)).astype(np.float32)
    small.compile("sgd", "sparse_categorical_crossentropy")
    assert small.predict(x).shape == (2, 3)


def test_vgg_small_gmp_layout():
    m = models.vgg_small_gmp()
    assert m.count_params() == 289_642 and m.count_flops() == 77_498_890
    assert [type(layer).__name__ for layer in m.layers[-3:]] == ["MaxPooling2D",
                                                                   "GlobalMaxPooling2D", "Dense"]
    small = models.vgg_small_gmp(num_classes=3, input_shape=(3, 16, 16), widths=(4, 8))
    small.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 16, 16)).astype(np.float32)
    assert small.predict(x).shape == (2, 3)


@pytest.mark.parametrize("ls", [0.0, 0.1, 0.2])
def test_sparse_cross_entropy_label_smoothing(ls):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((5, 4))
    y = np.array([0, 3, 1, 1, 2])
    loss, dz = losses.SparseCategoricalCrossentropy(label_smoothing=ls).forward_backward(y, z)
    t = (1 - ls) * np.eye(4)[y] + ls / 4                      # the smoothed target
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    assert float(loss) == pytest.approx(-(t * logp).sum(1).mean(), rel=1e-12)
    np.testing.assert_allclose(dz, (np.exp(logp) - t) / 5, rtol=1e-10, atol=1e-15)
    same, _ = losses.CategoricalCrossentropy(label_smoothing=ls).forward_backward(np.eye(4)[y], z)
    assert float(same) == pytest.approx(float(loss), rel=1e-12)
    ref, _ = F.softmax_cross_entropy(z, y, label_smoothing=ls)
    assert float(ref) == float(loss)


def test_label_smoothing_argument_errors():
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.SparseCategoricalCrossentropy(label_smoothing=1.0)
    with pytest.raises(ValueError, match="from_logits"):
        losses.SparseCategoricalCrossentropy(from_logits=False, label_smoothing=0.1)
    z16 = np.zeros((2, 3), np.float16)
    with pytest.raises(TypeError, match="float16"):
        losses.SparseCategoricalCrossentropy(label_smoothing=0.1).forward_backward([0, 1], z16)
    assert "label_smoothing=0.1" in repr(losses.SparseCategoricalCrossentropy(label_smoothing=0.1))


def tiny_model():
    m = nn.Sequential([nn.Conv2D(3, 3, input_shape=(1, 6, 6)), nn.Flatten(), nn.Dense(4)])
    m.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_evaluate_tta_averages_the_mirror():
    rng = np.random.default_rng(2)
    m = tiny_model()
    x = rng.standard_normal((7, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 4, 7)
    p = (m.predict(x) + m.predict(np.ascontiguousarray(x[..., ::-1]))) / 2
    r = recipes.evaluate_tta(m, x, y, batch_size=3)
    assert r["accuracy"] == pytest.approx(float((p.argmax(1) == y).mean()))
    assert r["loss"] == pytest.approx(float(-np.log(p[np.arange(7), y]).mean()), rel=1e-6)
    plain = recipes.evaluate_tta(m, x, y, tta="none")
    ev = m.evaluate(x, y, return_dict=True)
    assert plain["loss"] == pytest.approx(ev["loss"], rel=1e-5)
    assert plain["accuracy"] == pytest.approx(ev["accuracy"])
    with pytest.raises(ValueError, match="tta"):
        recipes.evaluate_tta(m, x, y, tta="crop")


@needs_models
@pytest.mark.usefixtures("mnist_data")
def test_train_with_the_fast_recipe_records_it(tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli.main(["train", "lenet5", "--recipe", "fast", "--limit", "64", "--epochs", "1",
                   "--batch-size", "32", "--test-limit", "50", "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert (m["recipe"], m["optimizer"], m["label_smoothing"], m["tta"]) == ("fast", "sgd", 0.2,
                                                                          "flip")
    assert m["augment"] == "flip=h,fill=reflect,crop=4" and m["lr_schedule"] == "onecycle"
    assert "sgd (nesterov)" in capsys.readouterr().out


def test_torch_side_of_the_recipe_comparison(tmp_path, monkeypatch):
    """bench/train_torch.py builds the same nets (same trainable parameter counts) and runs the
    fast recipe end to end on a few images."""
    torch = pytest.importorskip("torch")
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("train_torch", REPO / "bench" / "train_torch.py")
    tt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tt)
    for name in ("vgg_small", "vgg_fast", "vgg_small_gmp"):
        ours = getattr(models, name)()
        trainable = sum(p.data.size for p in ours.trainable_params)
        theirs = tt.NETS[name](3, (32, 32), 10)
        assert sum(q.numel() for q in theirs.parameters()) == trainable, name
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 32, 32)).astype(np.float32)
    net = tt.vgg_fast(3, (32, 32), 10).eval()
    with torch.no_grad():
        assert tuple(net(torch.from_numpy(x)).shape) == (4, 10)
    data_root = mnist_root()
    if data_root is None:
        pytest.skip("MNIST not found ($CONVFORGE_DATA or ../shared/data)")
    out = tmp_path / "torch"
    assert tt.main(["vgg_small", "--dataset", "mnist", "--recipe", "fast", "--limit", "64",
                    "--test-limit", "32", "--epochs", "1", "--batch-size", "32", "--threads", "1",
                    "--data", str(data_root / "mnist"), "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["recipe"], m["optimizer"], m["tta"], m["label_smoothing"]) == ("fast", "sgd", "flip",
                                                                          0.2)


def test_time_to_accuracy_reads_both_kinds_of_run(tmp_path, capsys):
    """bench/time_to_accuracy.py: when each run first reaches a target, from epoch_end_seconds
    or (older runs) train_seconds spread over the epochs, with the TTA probe where present."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("tta_bench",
                                                  REPO / "bench" / "time_to_accuracy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    base = {"model": "m", "epochs": 3, "seed": 0, "tta": "flip"}
    runs = {"cf": {**base, "train_seconds": 300.0, "test_accuracy": 0.9,
                   "history": {"val_accuracy": [0.5, 0.8, 0.88]}},
            "torch": {**base, "framework": "torch", "train_seconds": 240.0,
                      "epoch_end_seconds": [60.0, 120.0, 240.0], "test_accuracy": 0.84,
                      "history": {"val_accuracy": [0.6, 0.86, 0.83],
                                  "val_accuracy_tta": [0.6, 0.87, 0.84]}}}
    for name, m in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(m))
    assert mod.main([str(tmp_path / "cf"), str(tmp_path / "torch"), "--target", "0.85"]) == 0
    out = capsys.readouterr().out
    assert ("convforge m 3 ep s0: per-epoch curve 5.0 min, flip-TTA curve not measured; final "
            "test 90.00% (flip TTA) at 5.0 min: 5.0 min") in out
    assert ("torch m 3 ep s0: per-epoch curve 2.0 min, flip-TTA curve 2.0 min; final test "
            "84.00% (flip TTA) at 4.0 min: never") in out
