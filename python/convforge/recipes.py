"""Training recipes: the defaults `convforge train` starts from (`--recipe NAME`).

    default  what the zoo models train with unless asked otherwise: Adam, batch 64, the
             learning rate decayed to 0 by a cosine over the run, no augmentation, 10% of the
             training images held out for validation.
    fast     time to accuracy on CIFAR-10 (issue #17), after the published fast CIFAR-10
             recipes (David Page's DAWNBench ResNet-9 notes, Keller Jordan's airbench): batch
             256, SGD with Nesterov momentum 0.9 and a one-cycle learning rate (peak 0.2),
             weight decay 5e-4 on the conv and dense kernels only, label smoothing 0.2, flip +
             reflect-padded 4-pixel crops drawn per batch, all 50,000 training images (the
             test set is the per-epoch curve) and a flip test-time augmentation at the end.
             The default recipe of `vgg_fast` and `vgg_small_gmp`.

A recipe only fills the options left unset on the command line: `--recipe fast --epochs 30`
is the fast recipe run for 30 epochs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np

__all__ = ["Recipe", "RECIPES", "DEFAULT_RECIPE", "get", "evaluate_tta"]

DEFAULT_LR = {"adam": 1e-3, "rmsprop": 1e-3, "sgd": 1e-2}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The training options a recipe sets (CLI option names with '-' as '_')."""

    name: str
    epochs: int
    batch_size: int
    optimizer: str
    lr: Optional[float]          # None: DEFAULT_LR of the optimizer
    lr_schedule: str
    weight_decay: float
    augment: Optional[str]
    label_smoothing: float
    tta: str                     # "none" or "flip"
    val_split: float
    nesterov: bool               # for --optimizer sgd (momentum 0.9 either way)

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "name"}


RECIPES = {
    "default": Recipe("default", epochs=5, batch_size=64, optimizer="adam", lr=None,
                      lr_schedule="cosine", weight_decay=0.0, augment=None,
                      label_smoothing=0.0, tta="none", val_split=0.1, nesterov=False),
    "fast": Recipe("fast", epochs=30, batch_size=256, optimizer="sgd", lr=0.2,
                   lr_schedule="onecycle", weight_decay=5e-4, augment="flip,fill=reflect,crop=4",
                   label_smoothing=0.2, tta="flip", val_split=0.0, nesterov=True),
}
DEFAULT_RECIPE = {"vgg_fast": "fast", "vgg_small_gmp": "fast"}   # every other model: "default"


def get(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}")
    return RECIPES[name]


def for_model(model: str, name: Optional[str] = None) -> Recipe:
    """The recipe `name`, or the model's default one."""
    return get(name or DEFAULT_RECIPE.get(model, "default"))


def help_suffix(option: str) -> str:
    """'(default: recipe default: X; fast: Y)' for a recipe-backed option's --help."""
    shown = []
    for r in RECIPES.values():
        v = getattr(r, option)
        if option == "lr" and v is None:
            v = "1e-3 for adam/rmsprop, 1e-2 for sgd"
        shown.append(f"{r.name}: {'none' if v is None else v}")
    return f"(recipe {'; '.join(shown)})"


def add_arguments(parser, lr_schedules) -> None:
    """The recipe-backed options of `convforge train` (each defaults to None: `resolve` fills
    it from the recipe)."""
    t = parser
    t.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                   help="the defaults of the options marked 'recipe' (default: fast for "
                        "vgg_fast and vgg_small_gmp, default for the other models; see "
                        "convforge.recipes)")
    t.add_argument("--epochs", type=int, default=None, help=help_suffix("epochs"))
    t.add_argument("--batch-size", type=int, default=None, help=help_suffix("batch_size"))
    t.add_argument("--augment", default=None, metavar="SPEC",
                   help="augmentation, e.g. 'flip,shift=0.1,crop=4' (see "
                        "convforge.data.Augment.from_spec; 'none' for none) "
                        + help_suffix("augment"))
    t.add_argument("--optimizer", choices=sorted(DEFAULT_LR), default=None,
                   help="sgd has momentum 0.9, Nesterov's in the fast recipe "
                        + help_suffix("optimizer"))
    t.add_argument("--lr", type=float, default=None,
                   help="learning rate (the peak for onecycle) " + help_suffix("lr"))
    t.add_argument("--lr-schedule", choices=lr_schedules, default=None,
                   help="how the rate moves over the E epochs x S steps of the run, per step: "
                        "constant; step = x0.1 every ceil(E/3) epochs; exponential = "
                        "lr * 0.1^(t/(E*S)), a tenth of --lr at the end; cosine = from --lr "
                        "down to 0 at the end, no warmup; onecycle = PyTorch's OneCycleLR with "
                        "--lr as the peak (up from lr/25 over the first 30%%, then down to "
                        "lr/25e4) " + help_suffix("lr_schedule"))
    t.add_argument("--weight-decay", type=float, default=None, metavar="WD",
                   help="L2 weight decay of the optimizer, added to the gradients (PyTorch's "
                        "coupled form); biases and BatchNorm gamma/beta are not decayed "
                        + help_suffix("weight_decay"))
    t.add_argument("--label-smoothing", type=float, default=None, metavar="LS",
                   help="the cross-entropy's target becomes (1 - LS) one-hot + LS / classes "
                        + help_suffix("label_smoothing"))
    t.add_argument("--tta", choices=("none", "flip"), default=None,
                   help="test-time augmentation of the final test evaluation: flip averages "
                        "each image's class probabilities with its mirror's "
                        + help_suffix("tta"))
    t.add_argument("--val-split", type=float, default=None,
                   help="fraction of the training images held out for validation each epoch; "
                        "0 validates on the test set instead " + help_suffix("val_split"))


def resolve(args, model: str) -> Recipe:
    """Fills every recipe-backed option left None on `args` from the recipe (args.recipe, or
    the model's default) and returns that recipe; args.nesterov is set from it too."""
    recipe = for_model(model, args.recipe)
    args.recipe = recipe.name
    for key, value in recipe.options().items():
        if key != "lr" and getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.lr is None:   # the recipe's rate belongs to the recipe's optimiser
        args.lr = (recipe.lr if recipe.lr is not None and args.optimizer == recipe.optimizer
                   else DEFAULT_LR[args.optimizer])
    if isinstance(args.augment, str) and args.augment.strip().lower() == "none":
        args.augment = None
    return recipe


def _flipped(x):
    return x[..., ::-1]


def evaluate_tta(model, x, y, batch_size: int = 256, tta: str = "flip") -> dict[str, float]:
    """Test-time augmentation: the class probabilities of each image averaged with those of its
    horizontal mirror ('flip'; 'none' = plain predict), then the mean cross-entropy of the
    averaged probabilities and the accuracy of their argmax. x (N, C, H, W), y (N,) ids."""
    if tta not in ("none", "flip"):
        raise ValueError(f"tta must be 'none' or 'flip', got {tta!r}")
    p = model.predict(x, batch_size=batch_size)                     # (N, K) probabilities
    if tta == "flip":
        p = (p + model.predict(_flipped(x), batch_size=batch_size)) / 2
    p = np.asarray(p.get() if hasattr(p, "get") else p, dtype=np.float64)
    y = np.asarray(y.get() if hasattr(y, "get") else y).reshape(-1).astype(np.int64)
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"evaluate_tta needs (N, K) outputs for N labels, got outputs "
                         f"{p.shape} for labels {y.shape}")
    picked = np.clip(p[np.arange(len(y)), y], 1e-12, None)
    return {"loss": float(-np.log(picked).mean()),
            "accuracy": float((p.argmax(axis=1) == y).mean())}
