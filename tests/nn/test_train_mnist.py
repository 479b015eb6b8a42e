"""Integration: LeNet-5 learns real MNIST digits on the default backend in CI time."""

from __future__ import annotations

import numpy as np
import pytest

from convforge import data, models, nn


@pytest.fixture(scope="module")
def mnist():
    try:
        (xtr, ytr), (xte, yte) = data.load_mnist(download=False)
    except FileNotFoundError as e:
        pytest.skip(f"MNIST not found (set CONVFORGE_DATA): {e}")
    return (data.pad_images(xtr[:12000], 2), ytr[:12000]), (data.pad_images(xte[:2000], 2),
                                                         yte[:2000])


def test_lenet5_learns_mnist_subset(mnist):
    (xtr, ytr), (xte, yte) = mnist
    nn.set_seed(0)
    m = models.lenet5()
    m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    hist = m.fit(xtr, ytr, batch_size=64, epochs=2, verbose=0, seed=0)
    assert hist.history["loss"][1] < hist.history["loss"][0]
    res = m.evaluate(xte, yte, return_dict=True)
    # 12,000 images x 2 epochs (seeded): LeNet-5 reaches ~95% here; chance is 10%.
    assert res["accuracy"] > 0.92, res
    assert np.isfinite(res["loss"])
