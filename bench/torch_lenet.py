"""PyTorch LeNet-5 on MNIST, one epoch, torch's own modules vs the same model patched with
convforge.torch (issue #16 item 2): test accuracy on the 10k test set and seconds per epoch.
Same seed, same initial weights and batch order; 2 threads for both libraries.

    CONVFORGE_DATA=/work/shared/data PYTHONPATH=python python bench/torch_lenet.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

import convforge
import convforge.torch as cft
from convforge.data import load_mnist, pad_images

BATCH, THREADS = 64, 2


def lenet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
        nn.ReLU(), nn.Linear(84, 10))


def images(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pad_images(x, 2).astype(np.float32) / 255.0)


def run(patched: bool, train, test) -> tuple[float, float]:
    """(test accuracy, seconds for the training epoch)."""
    torch.manual_seed(0)
    model = lenet()
    if patched:
        cft.patch(model)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    (x, y), (xt, yt) = train, test
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    for i in range(0, len(x), BATCH):
        idx = order[i:i + BATCH]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        pred = torch.cat([model(xt[i:i + 1000]).argmax(1) for i in range(0, len(xt), 1000)])
    return (pred == yt).double().mean().item(), seconds


def main() -> None:
    torch.set_num_threads(THREADS)
    convforge.set_num_threads(THREADS)
    (xtr, ytr), (xte, yte) = load_mnist()
    train = images(xtr), torch.from_numpy(ytr)
    test = images(xte), torch.from_numpy(yte)
    for name, patched in (("torch.nn", False), ("convforge.torch", True)):
        acc, sec = run(patched, train, test)
        print(f"{name:16s} test accuracy {acc:.4f}  {sec:.1f} s/epoch "
              f"({len(train[0])} images, batch {BATCH}, {THREADS} threads)")


if __name__ == "__main__":
    main()
