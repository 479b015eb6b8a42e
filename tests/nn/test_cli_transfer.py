"""`convforge train ... --init W --freeze base|convs --per-class N` (issue #15 item 3): layers
take another run's weights where names and shapes match (a new head does not), frozen layers
keep them, and --per-class draws N images of every class."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from convforge import _transfer, cli, models, nn

from conftest import REPO, assert_same_bits

pytestmark = pytest.mark.usefixtures("nn_backend")


def _data_root():
    env = os.environ.get("CONVFORGE_DATA")
    roots = [Path(p) for p in env.split(os.pathsep) if p] if env else [REPO.parent / "shared"
                                                                       / "data"]
    return next((r for r in roots if (r / "mnist").is_dir() and (r / "emnist-letters").is_dir()),
                None)


def test_init_from_skips_a_new_head(tmp_path):
    nn.set_seed(0)
    src = models.lenet5(num_classes=10)
    src.build((1, 32, 32))
    path = tmp_path / "w.npz"
    nn.saving.save_weights(src, path)
    nn.set_seed(1)
    dst = models.lenet5(num_classes=26)
    dst.build((1, 32, 32))
    head = dst.layers[-1].get_weights()
    assert _transfer.init_from(dst, path) == [dst.layers[-1].name]
    for a, b in zip(dst.layers[1].get_weights(), src.layers[1].get_weights()):
        assert_same_bits(a, b, what="conv weights taken over")
    assert_same_bits(dst.layers[-1].get_weights()[0], head[0], what="new head left alone")
    frozen = _transfer.freeze(dst, "base")
    assert frozen == ["conv2d", "conv2d_1"] and not dst.layers[1].trainable
    assert dst.layers[-1].trainable
    other = models.lenet5()
    assert _transfer.freeze(other, "convs") == ["conv2d"]


def test_per_class_subset():
    y = np.repeat(np.arange(4), [5, 6, 7, 8])
    x = np.arange(len(y))
    xs, ys = _transfer.per_class_subset(x, y, 3, seed=0)
    assert np.bincount(ys).tolist() == [3, 3, 3, 3] and np.all(np.diff(xs) > 0)
    assert np.array_equal(ys, y[xs])
    with pytest.raises(ValueError, match="class 0 has only 5 images"):
        _transfer.per_class_subset(x, y, 6, seed=0)


def test_cli_transfer_run(tmp_path, monkeypatch, capsys):
    root = _data_root()
    if root is None:
        pytest.skip("MNIST and EMNIST letters not found ($CONVFORGE_DATA)")
    monkeypatch.setenv("CONVFORGE_DATA", str(root))
    pre = tmp_path / "pre"
    assert cli.main(["train", "lenet5", "--limit", "128", "--epochs", "1", "--test-limit", "64",
                     "--out", str(pre), "--quiet"]) == 0
    out = tmp_path / "letters"
    rc = cli.main(["train", "lenet5", "--dataset", "emnist_letters", "--per-class", "3",
                   "--epochs", "1", "--test-limit", "64", "--init", str(pre / "weights.npz"),
                   "--freeze", "base", "--out", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0 and "frozen: conv2d, conv2d_1" in text and "(new: dense_2)" in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["freeze"] == "base" and m["per_class"] == 3
    assert m["train_images"] == 70                          # 78 - 8 held out
    before = np.load(pre / "weights.npz")
    after = np.load(out / "weights.npz")
    for k in ("conv2d/kernel", "conv2d_1/bias"):
        assert_same_bits(after[k], before[k], what=f"frozen {k}")
    assert cli.main(["train", "lenet5", "--init", str(tmp_path / "nope.npz"), "--limit", "8",
                     "--out", str(tmp_path / "x"), "--quiet"]) == 2
