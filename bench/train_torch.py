"""`convforge train`'s nets and recipes in a plain PyTorch training loop, on the very same data
pipeline: the PyTorch side of issue #14's full-epoch target (vgg_small) and of issue #17's
time to accuracy (vgg_fast with the fast recipe). From the repository root (`python -m
convforge` where the `convforge` script is not installed; OMP_NUM_THREADS=2 pins convforge to
the 2 threads that --threads gives torch; --backend cpu stops a silent fallback to numba):

    OMP_NUM_THREADS=2 convforge train vgg_small --dataset cifar10 --augment flip,crop=4 \
        --epochs 1 --batch-size 64 --backend cpu --out runs/cf
    python bench/train_torch.py vgg_small --dataset cifar10 --augment flip,crop=4 \
        --epochs 1 --batch-size 64 --threads 2 --out runs/torch

    OMP_NUM_THREADS=2 convforge train vgg_fast --backend cpu --out runs/cf-fast
    python bench/train_torch.py vgg_fast --threads 2 --out runs/torch-fast
    python bench/train_torch.py vgg_small_gmp --recipe fast --epochs 26 --channels-last \
        --probe-tta --out runs/torch-anchor     # issue #17's PyTorch anchor

and read images_per_second / the per-epoch val_accuracy / test_accuracy in each metrics.json.

Parity with the CLI (python/convforge/cli.py, `_train`):
- Options: the same recipe-backed options with the same defaults (convforge.recipes: --recipe,
  --epochs, --batch-size, --augment, --optimizer, --lr, --lr-schedule, --weight-decay,
  --label-smoothing, --tta, --val-split), resolved by the same code.
- Data: the same arrays. The dataset is loaded with convforge.data, --limit/--test-limit take
  data.random_subset(seed=--seed) and the held-out validation split is
  data.train_val_split(--val-split, seed=--seed + 1), as in the CLI.
- Batches and augmentation: the very object the CLI hands to model.fit,
  data.Batches(x, y, batch_size, shuffle=True, seed=--seed, augment=Augment.from_spec(...),
  dtype=float32), so both sides see the same batches in the same order with the same
  augmentation, computed by the same NumPy code (the data pipeline costs the same on both
  sides). torch.from_numpy wraps each batch without copying.
- Nets (python/convforge/models.py), NCHW float32, with convforge's (Keras') initialisers and
  batch norm (Keras momentum 0.9 = torch 0.1, eps 1e-3). vgg_small: x/255, then per width
  (32, 64, 128) 2 x [conv3x3 'same' no bias + BN + ReLU], maxpool 2, dropout 0.25; flatten,
  dense 128 + ReLU, dropout 0.25, dense 10. vgg_fast: x/255, CIFAR-10 mean/std, stem conv 32
  + BN + ReLU, per width (64, 128, 256) conv -> maxpool -> BN -> ReLU -> conv -> BN -> ReLU,
  global max-pool, dense 10 without bias, logits x 0.125. --channels-last runs torch's
  convolutions in its faster NHWC layout (the input stays the same batch).
- Optimisers: Adam (betas 0.9/0.999, eps 1e-7 where convforge.optim.Adam puts it) or SGD with
  momentum 0.9 (Nesterov's in the fast recipe); weight decay (coupled, added to the gradient)
  on conv and dense kernels only, as convforge's default; the learning rate of every step is
  read from the CLI's own schedule object (convforge.cli.make_schedule), so both follow the
  same curve. Cross-entropy from the logits with the recipe's label smoothing.
- Timing as the CLI: train_seconds is the wall time of the epochs *including* the per-epoch
  validation (model.fit validates at its default batch size 32, inside the CLI's timer);
  images_per_second = train images * epochs / train_seconds. The test set is evaluated after
  the timer (batch 256, with the flip test-time augmentation when --tta flip), as in the CLI.
  loop_seconds / images_per_second_loop leave the validation out, for reference.
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

from convforge import data, models, recipes
from convforge.cli import DATASETS, LR_SCHEDULES, NUM_CLASSES, make_schedule

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


class Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).reshape(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def conv_bn(c_in: int, c_out: int, pool: bool = False) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    nn.init.kaiming_uniform_(conv.weight, nonlinearity="relu")               # = he_uniform
    return [conv, *([nn.MaxPool2d(2)] if pool else []),
            nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.1), nn.ReLU(inplace=True)]


def vgg_fast(in_channels: int, hw: tuple[int, int], num_classes: int,
             widths=(64, 128, 256), stem: int = 32, logit_scale: float = 0.125) -> nn.Module:
    """convforge.models.vgg_fast in torch.nn."""
    layers: list[nn.Module] = [Rescale(), Normalize(models.CIFAR10_MEAN, models.CIFAR10_STD),
                               *conv_bn(in_channels, stem)]
    c = stem
    for width in widths:
        layers += conv_bn(c, width, pool=True) + conv_bn(width, width)
        c = width
    head = nn.Linear(c, num_classes, bias=False)
    nn.init.xavier_uniform_(head.weight)                                     # = glorot_uniform
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), head, Scale(logit_scale)]
    return nn.Sequential(*layers)


def vgg_small_gmp(in_channels: int, hw: tuple[int, int], num_classes: int,
                  widths=(32, 64, 128)) -> nn.Module:
    """Issue #17's PyTorch anchor: VGG-small's widths (per width 2 x [conv3x3 + BN + ReLU],
    then maxpool 2) with a global max-pool head and one dense layer; the input normalised as
    vgg_fast's. Not a convforge zoo net: the anchor the fast recipe's time is measured against."""
    layers: list[nn.Module] = [Rescale(), Normalize(models.CIFAR10_MEAN, models.CIFAR10_STD)]
    c = in_channels
    for width in widths:
        layers += conv_bn(c, width) + conv_bn(width, width) + [nn.MaxPool2d(2)]
        c = width
    head = nn.Linear(c, num_classes)
    nn.init.xavier_uniform_(head.weight)
    nn.init.zeros_(head.bias)
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), head]
    return nn.Sequential(*layers)


NETS = {"vgg_small": vgg_small, "vgg_fast": vgg_fast, "vgg_small_gmp": vgg_small_gmp}


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
def evaluate(net: nn.Module, x: np.ndarray, y: np.ndarray, batch: int,
             tta: str = "none") -> dict[str, float]:
    """Mean cross-entropy and accuracy in inference mode (x raw pixels, cast per batch) of
    the class probabilities, averaged with the mirror image's for tta 'flip'
    (convforge.recipes.evaluate_tta)."""
    net.eval()
    loss = correct = 0.0
    for s in range(0, len(x), batch):
        xb = torch.from_numpy(x[s:s + batch].astype(np.float32))
        yb = torch.from_numpy(y[s:s + batch]).long()
        p = net(xb).softmax(1)
        if tta == "flip":
            p = (p + net(xb.flip(3)).softmax(1)) / 2
        loss -= p.double().gather(1, yb[:, None]).clamp_min(1e-12).log().sum().item()
        correct += (p.argmax(1) == yb).sum().item()
    return {"loss": loss / len(x), "accuracy": correct / len(x)}


def optimizer(net: nn.Module, a: argparse.Namespace) -> torch.optim.Optimizer:
    """The CLI's optimiser; weight decay on conv and dense kernels only (dim > 1)."""
    decay = [q for q in net.parameters() if q.dim() > 1]
    rest = [q for q in net.parameters() if q.dim() <= 1]
    groups = [{"params": decay, "weight_decay": a.weight_decay},
              {"params": rest, "weight_decay": 0.0}]
    if a.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=a.lr, momentum=0.9, nesterov=a.nesterov)
    if a.optimizer == "adam":
        return torch.optim.Adam(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-7)
    raise SystemExit(f"--optimizer {a.optimizer}: this script does adam and sgd")


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
    p = argparse.ArgumentParser(description="a convforge zoo net in a plain PyTorch training "
                                            "loop, on the data, augmentation and recipe of "
                                            "`convforge train`")
    p.add_argument("model", nargs="?", choices=sorted(NETS), default="vgg_small")
    p.add_argument("--dataset", choices=DATASETS, default="cifar10")
    recipes.add_arguments(p, LR_SCHEDULES)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--channels-last", action="store_true",
                   help="torch convolutions in NHWC (torch.channels_last)")
    p.add_argument("--probe-tta", action="store_true",
                   help="also evaluate the validation set with the flip TTA after each epoch "
                        "(history val_accuracy_tta); its time is kept out of the clock "
                        "(probe_seconds)")
    p.add_argument("--limit", type=int, default=None, metavar="N")
    p.add_argument("--test-limit", type=int, default=None, metavar="N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, metavar="PATH", help="dataset location, as the CLI's")
    p.add_argument("--out", default=None, help="folder for metrics.json (default runs/torch-MODEL)")
    a = p.parse_args(argv)
    recipes.resolve(a, a.model)
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
    net = NETS[a.model](x_train.shape[1], x_train.shape[2:], NUM_CLASSES[a.dataset])
    if a.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = optimizer(net, a)
    rate = make_schedule(a.lr_schedule, a.lr, a.epochs, len(batches))
    params = sum(q.numel() for q in net.parameters())
    aug_spec = augment.spec() if augment else "none"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: {a.model} on "
          f"{a.dataset}: {n_train} images, {a.epochs} epoch(s), batch {a.batch_size}, "
          f"augment {aug_spec}, {params:,} parameters; recipe {a.recipe}: {a.optimizer} "
          f"{rate}, weight decay {a.weight_decay:g}, label smoothing {a.label_smoothing:g}")

    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    val_seconds = probe_seconds = 0.0
    epoch_end_seconds: list[float] = []
    step = 0
    t0 = time.perf_counter()
    for epoch in range(a.epochs):
        net.train()
        loss_sum = correct = 0.0
        for xb, yb in batches:
            for group in opt.param_groups:       # the CLI's schedule, step by step
                group["lr"] = float(rate(step)) if callable(rate) else rate
            xt, yt = torch.from_numpy(xb), torch.from_numpy(yb).long()
            out = net(xt)
            loss = nn.functional.cross_entropy(out, yt, label_smoothing=a.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.item() * len(yb)            # convforge keeps the same running means
            correct += (out.argmax(1) == yt).sum().item()
        history["loss"].append(loss_sum / n_train)
        history["accuracy"].append(correct / n_train)
        tv = time.perf_counter()
        for k, value in evaluate(net, *val, VAL_BATCH).items():
            history.setdefault(f"val_{k}", []).append(value)
        val_seconds += time.perf_counter() - tv
        epoch_end_seconds.append(time.perf_counter() - t0 - probe_seconds)
        if a.probe_tta:
            tp = time.perf_counter()
            probe = evaluate(net, *val, TEST_BATCH, "flip")["accuracy"]
            history.setdefault("val_accuracy_tta", []).append(probe)
            probe_seconds += time.perf_counter() - tp
        print(f"Epoch {epoch + 1}/{a.epochs} ({epoch_end_seconds[-1]:.0f} s) - " +
              " - ".join(f"{k}: {vals[-1]:.4f}" for k, vals in history.items()), flush=True)
    train_seconds = time.perf_counter() - t0 - probe_seconds
    test = evaluate(net, x_test, y_test, TEST_BATCH, a.tta)

    loop_seconds = train_seconds - val_seconds
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "epochs": a.epochs,
        "train_seconds": train_seconds,
        "epoch_end_seconds": epoch_end_seconds,
        "probe_seconds": probe_seconds,
        "images_per_second": n_train * a.epochs / train_seconds,
        "loop_seconds": loop_seconds,
        "images_per_second_loop": n_train * a.epochs / loop_seconds,
        "framework": "torch",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "channels_last": a.channels_last,
        "model": a.model,
        "dataset": a.dataset,
        "seed": a.seed,
        "history": history,
        "train_images": n_train,
        "val_images": len(val[0]),
        "test_images": len(x_test),
        "batch_size": a.batch_size,
        "recipe": a.recipe,
        "optimizer": a.optimizer,
        "learning_rate": a.lr,
        "lr_schedule": a.lr_schedule,
        "weight_decay": a.weight_decay,
        "label_smoothing": a.label_smoothing,
        "tta": a.tta,
        "augment": aug_spec,
        "params": params,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "note": "train_seconds: the epochs including the per-epoch validation, as the CLI's "
                "(epoch_end_seconds: to each epoch's end); loop_seconds: without it; the "
                "--probe-tta evaluations (probe_seconds) are in neither",
    }
    out = Path(a.out or f"runs/torch-{a.model}")
    write_json_atomic(out / "metrics.json", metrics)
    print(f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f}, "
          f"{metrics['images_per_second']:.0f} images/s ({metrics['images_per_second_loop']:.0f} "
          f"without validation); wrote {out}/metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
