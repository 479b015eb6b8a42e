"""The PyTorch side of the issue-#14 target: `convforge train vgg_small` images/s against the same
net in a plain PyTorch training loop (same batch size, data, augmentation; one run each, same
machine). Compare, from the repository root (`python -m convforge` where the `convforge` script
is not installed; OMP_NUM_THREADS=2 pins convforge to the 2 threads that --threads gives torch;
--backend cpu stops a silent fallback to numba when the C++ core cannot be loaded):

    OMP_NUM_THREADS=2 convforge train vgg_small --dataset cifar10 --augment flip,crop=4 \
        --epochs 1 --batch-size 64 --backend cpu --out runs/cf
    python bench/train_torch.py --dataset cifar10 --augment flip,crop=4 \
        --epochs 1 --batch-size 64 --threads 2 --out runs/torch

and read images_per_second in runs/cf/metrics.json and runs/torch/metrics.json.

Parity with the CLI (python/convforge/cli.py, `_train`):
- Data: the same arrays. The dataset is loaded with convforge.data, --limit/--test-limit take
  data.random_subset(seed=--seed) and the held-out validation split is
  data.train_val_split(--val-split, seed=--seed + 1), as in the CLI.
- Batches and augmentation: the very object the CLI hands to model.fit,
  data.Batches(x, y, batch_size, shuffle=True, seed=--seed, augment=Augment.from_spec(...),
  dtype=float32), so both sides see the same batches in the same order with the same
  augmentation, computed by the same NumPy code (the data pipeline costs the same on both
  sides). torch.from_numpy wraps each batch without copying.
- Net: vgg_small (python/convforge/models.py), NCHW float32: x/255, then per width (32, 64, 128)
  2 x [conv3x3 'same' no bias (he_uniform) + BatchNorm (Keras momentum 0.9 = torch 0.1,
  eps 1e-3) + ReLU], maxpool 2, dropout 0.25; flatten, dense 128 + ReLU (he_uniform), dropout
  0.25, dense 10 (glorot_uniform); 551,018 trainable parameters on both sides.
- Adam with the CLI's default lr 1e-3, betas (0.9, 0.999) and eps 1e-7 (convforge.optim.Adam,
  which puts eps where torch does); cross-entropy from the logits (mean over the batch).
- Timing as the CLI: train_seconds is the wall time of the epochs *including* the per-epoch
  validation on the held-out split (model.fit validates there, at fit's default batch size 32,
  inside the CLI's timer); images_per_second = train images * epochs / train_seconds. The test
  set is evaluated after the timer (batch 256). loop_seconds / images_per_second_loop leave the
  validation out, for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from convforge import data
from convforge.cli import DATASETS, DEFAULT_LR, NUM_CLASSES

VAL_BATCH = 32     # model.fit's default batch_size: the CLI's fit call validates with it
TEST_BATCH = 256   # the CLI's model.evaluate(x_test, ..., batch_size=256)


class Rescale(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1.0 / 255)


def vgg_small(in_channels: int, hw: tuple[int, int], num_classes: int,
              widths=(32, 64, 128), dense_units: int = 128, dropout: float = 0.25) -> nn.Module:
    """convforge.models.vgg_small in torch.nn, with convforge's (Keras') initialisers."""
    layers: list[nn.Module] = [Rescale()]
    c = in_channels
    for width in widths:
        for _ in range(2):
            conv = nn.Conv2d(c, width, 3, padding=1, bias=False)
            nn.init.kaiming_uniform_(conv.weight, nonlinearity="relu")   # = he_uniform
            layers += [conv, nn.BatchNorm2d(width, eps=1e-3, momentum=0.1), nn.ReLU(inplace=True)]
            c = width
        layers += [nn.MaxPool2d(2), nn.Dropout(dropout)]
    flat = c * (hw[0] // 8) * (hw[1] // 8)
    hidden, out = nn.Linear(flat, dense_units), nn.Linear(dense_units, num_classes)
    nn.init.kaiming_uniform_(hidden.weight, nonlinearity="relu")
    nn.init.xavier_uniform_(out.weight)                                  # = glorot_uniform
    for lin in (hidden, out):
        nn.init.zeros_(lin.bias)
    layers += [nn.Flatten(), hidden, nn.ReLU(inplace=True), nn.Dropout(dropout), out]
    return nn.Sequential(*layers)


def load(a: argparse.Namespace):
    """The CLI's arrays: (x_train, y_train), (x_val, y_val), (x_test, y_test); with
    --val-split 0 the CLI validates on the test set every epoch, and so does this."""
    loaders = {"mnist": data.load_mnist, "fashion_mnist": data.load_fashion_mnist,
               "emnist_letters": data.load_emnist_letters, "cifar10": data.load_cifar10}
    (x_train, y_train), (x_test, y_test) = loaders[a.dataset](a.data)
    if x_train.shape[-1] == 28:   # the CLI's _to_32
        x_train, x_test = data.pad_images(x_train, 2), data.pad_images(x_test, 2)
    if a.limit is not None:
        x_train, y_train = data.random_subset(x_train, y_train, a.limit, seed=a.seed)
    if a.test_limit is not None:
        x_test, y_test = data.random_subset(x_test, y_test, a.test_limit, seed=a.seed)
    val = (x_test, y_test)
    if a.val_split > 0:
        (x_train, y_train), val = data.train_val_split(x_train, y_train, a.val_split,
                                                       seed=a.seed + 1)
    return (x_train, y_train), val, (x_test, y_test)


@torch.no_grad()
def evaluate(net: nn.Module, x: np.ndarray, y: np.ndarray, batch: int) -> dict[str, float]:
    """Mean cross-entropy and accuracy in inference mode (x raw pixels, cast per batch)."""
    net.eval()
    loss = correct = 0.0
    for s in range(0, len(x), batch):
        xb = torch.from_numpy(x[s:s + batch].astype(np.float32))
        yb = torch.from_numpy(y[s:s + batch])
        out = net(xb)
        loss += nn.functional.cross_entropy(out, yb, reduction="sum").item()
        correct += (out.argmax(1) == yb).sum().item()
    return {"loss": loss / len(x), "accuracy": correct / len(x)}


def write_json_atomic(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(obj, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)   # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="vgg_small in a plain PyTorch training loop, on the "
                                            "data and augmentation of `convforge train`")
    p.add_argument("--dataset", choices=DATASETS, default="cifar10")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64, help="default 64, as the CLI's")
    p.add_argument("--augment", default=None, metavar="SPEC", help="as the CLI's, e.g. flip,crop=4")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--limit", type=int, default=None, metavar="N")
    p.add_argument("--test-limit", type=int, default=None, metavar="N")
    p.add_argument("--val-split", type=float, default=0.1, help="as the CLI's (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, metavar="PATH", help="dataset location, as the CLI's")
    p.add_argument("--out", default="runs/torch-vgg_small", help="folder for metrics.json")
    a = p.parse_args(argv)
    if a.epochs < 1 or a.batch_size < 1 or a.threads < 1:
        p.error("--epochs, --batch-size and --threads must be >= 1")
    if not 0.0 <= a.val_split < 1.0:
        p.error(f"--val-split must be in [0, 1), got {a.val_split}")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    augment = data.Augment.from_spec(a.augment) if a.augment else None   # as the CLI
    (x_train, y_train), val, (x_test, y_test) = load(a)
    n_train = len(x_train)
    batches = data.Batches(x_train, y_train, a.batch_size, shuffle=True, seed=a.seed,
                           augment=augment, dtype=np.float32)
    net = vgg_small(x_train.shape[1], x_train.shape[2:], NUM_CLASSES[a.dataset])
    lr = DEFAULT_LR["adam"]
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-7)
    params = sum(q.numel() for q in net.parameters())
    aug_spec = augment.spec() if augment else "none"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: vgg_small on "
          f"{a.dataset}: {n_train} images, {a.epochs} epoch(s), batch {a.batch_size}, "
          f"augment {aug_spec}, {params:,} parameters")

    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    val_seconds = 0.0
    t0 = time.perf_counter()
    for epoch in range(a.epochs):
        net.train()
        loss_sum = correct = 0.0
        for xb, yb in batches:
            xt, yt = torch.from_numpy(xb), torch.from_numpy(yb)
            out = net(xt)
            loss = nn.functional.cross_entropy(out, yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(yb)            # convforge keeps the same running means
            correct += (out.argmax(1) == yt).sum().item()
        history["loss"].append(loss_sum / n_train)
        history["accuracy"].append(correct / n_train)
        tv = time.perf_counter()
        for k, value in evaluate(net, *val, VAL_BATCH).items():
            history.setdefault(f"val_{k}", []).append(value)
        val_seconds += time.perf_counter() - tv
        print(f"Epoch {epoch + 1}/{a.epochs} - " +
              " - ".join(f"{k}: {vals[-1]:.4f}" for k, vals in history.items()))
    train_seconds = time.perf_counter() - t0
    test = evaluate(net, x_test, y_test, TEST_BATCH)

    loop_seconds = train_seconds - val_seconds
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "epochs": a.epochs,
        "train_seconds": train_seconds,
        "images_per_second": n_train * a.epochs / train_seconds,
        "loop_seconds": loop_seconds,
        "images_per_second_loop": n_train * a.epochs / loop_seconds,
        "framework": "torch",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": "vgg_small",
        "dataset": a.dataset,
        "seed": a.seed,
        "history": history,
        "train_images": n_train,
        "val_images": len(val[0]),
        "test_images": len(x_test),
        "batch_size": a.batch_size,
        "optimizer": "adam",
        "learning_rate": lr,
        "augment": aug_spec,
        "params": params,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "note": "train_seconds: the epochs including the per-epoch validation on the held-out "
                "split, as the CLI's; loop_seconds: without it",
    }
    out = Path(a.out)
    write_json_atomic(out / "metrics.json", metrics)
    print(f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f}, "
          f"{metrics['images_per_second']:.0f} images/s ({metrics['images_per_second_loop']:.0f} "
          f"without validation); wrote {out}/metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
