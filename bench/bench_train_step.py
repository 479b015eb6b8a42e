"""One training step (forward, loss, backward, optimiser update) of LeNet-5 and VGG-small:
convforge (each CPU backend) against the same network in PyTorch, on the same batch.
Throughput in images/s in extra_info; the compare table shows x torch."""

from __future__ import annotations

import numpy as np
import pytest

import convforge
from convforge import models, nn

from conftest import run_group
from harness import Group, all_impls

NETS = {"lenet5": ((1, 32, 32), 64), "vgg_small": ((3, 32, 32), 32)}


def _torch_net(name):
    from torch import nn as tnn

    if name == "lenet5":
        return tnn.Sequential(
            tnn.Conv2d(1, 6, 5), tnn.ReLU(), tnn.MaxPool2d(2),
            tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
            tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))
    layers, c = [], 3
    for width in (32, 64, 128):
        for _ in range(2):
            layers += [tnn.Conv2d(c, width, 3, padding=1, bias=False), tnn.BatchNorm2d(width),
                       tnn.ReLU()]
            c = width
        layers += [tnn.MaxPool2d(2), tnn.Dropout(0.25)]
    layers += [tnn.Flatten(), tnn.Linear(128 * 16, 128), tnn.ReLU(), tnn.Dropout(0.25),
               tnn.Linear(128, 10)]
    return tnn.Sequential(*layers)


def _step(impl, name, x, y):
    if impl == "torch":
        import torch

        net = _torch_net(name)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        tx, ty = torch.from_numpy(x / np.float32(255)), torch.from_numpy(y)

        def run():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(tx), ty)
            loss.backward()
            opt.step()
        return run
    backend = impl.split("-", 1)[1]
    nn.set_seed(0)
    m = getattr(models, name)()
    m.compile("adam", "sparse_categorical_crossentropy")

    def run():
        with convforge.use_backend(backend):
            m.train_on_batch(x, y)
    return run


def _make(impl, name):
    if impl == "numpy":
        return None
    shape, n = NETS[name]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n,) + shape).astype(np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    return _step(impl, name, x, y)


def groups(quick: bool = False) -> list[Group]:
    # blocks of 4 steps per library and round, 3 timed: steps as fit runs them, back to back
    return [Group(f"train_step-{name}-n{n}", lambda impl, nm=name: _make(impl, nm),
                  {"images": n}, rounds=10 if name == "lenet5" else 5, block=4)
            for name, (_, n) in NETS.items()]


@pytest.mark.parametrize("impl", all_impls())
@pytest.mark.parametrize("group", groups(), ids=lambda g: g.name)
def test_train_step(benchmark, group, impl):
    run_group(benchmark, group, impl)
