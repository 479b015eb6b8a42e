"""Issue #15's target: a training step with a frozen conv base costs <= 1.3x its forward pass.
VGG-small's conv blocks as a frozen base Model (base.trainable = False, called with
training=False) under a new dense head; train_on_batch and forward(training=True) timed in
alternating blocks (medians, best of three), N=32, 1 thread; then the same step unfrozen.

    PYTHONPATH=python python bench/frozen_base.py
"""

from __future__ import annotations

import time

import numpy as np

import convforge
from convforge import models, nn


def med(f, n: int = 15) -> float:
    for _ in range(3):
        f()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3


def main() -> None:
    convforge.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    nn.set_seed(0)
    layers = models.vgg_small().layers
    k = next(i for i, la in enumerate(layers) if type(la).__name__ == "Flatten")
    base = nn.Sequential([nn.Input((3, 32, 32))] + layers[:k], name="base")
    base.trainable = False
    inp = nn.Input((3, 32, 32))
    h = base(inp, training=False)
    out = nn.Dense(10)(nn.Dropout(0.25)(nn.Dense(128, activation="relu")(nn.Flatten()(h))))
    model = nn.Model(inp, out)
    model.compile("adam", "sparse_categorical_crossentropy")
    step, fwd = [], []
    for _ in range(3):
        step.append(med(lambda: model.train_on_batch(x, y)))
        fwd.append(med(lambda: model.forward(x, training=True)))
    print(f"frozen-base step {min(step):.2f} ms, forward {min(fwd):.2f} ms, "
          f"ratio {min(step) / min(fwd):.2f}")
    base.trainable = True
    model.compile("adam", "sparse_categorical_crossentropy")
    print(f"unfrozen step {med(lambda: model.train_on_batch(x, y)):.2f} ms")


if __name__ == "__main__":
    main()
