"""Transfer learning for the CLI (`convforge train ... --init W --freeze base --per-class N`):
start from another run's weights, freeze part of the net, train on few labelled images.

- init_from(model, path): every layer whose weights in `path` (a weights.npz of `convforge
  train`) have this model's names and shapes takes them; the others (a new head with another
  number of classes) keep their fresh initialisation. Returns the names of the layers skipped.
- freeze(model, how): "none"; "base" (every layer before the Flatten: feature extraction, the
  conv base frozen, BatchNormalization in inference mode); "convs" (every layer before the last
  Conv2D: fine-tuning the last conv block and the head).
- per_class_subset(x, y, n, seed): n images of every class (seeded), in their original order.
"""

from __future__ import annotations

import numpy as np

FREEZE = ("none", "base", "convs")


def init_from(model, path) -> list[str]:
    from .nn.saving import _read

    tensors = _read(str(path))
    loaded, skipped = [], []
    for la in model.layers:
        params = la.params
        keys = [f"{la.name}/{p.name}" for p in params]
        if params and all(k in tensors and tuple(tensors[k].shape) == p.shape
                          for k, p in zip(keys, params)):
            la.set_weights([tensors[k] for k in keys])
            loaded.append(la.name)
        elif params:
            skipped.append(la.name)
    if not loaded:
        raise ValueError(f"no layer of model {model.name!r} matches the weights in {path}: "
                         f"names there {sorted(tensors)[:6]}...")
    return skipped


def freeze(model, how: str) -> list[str]:
    """Freezes the layers `how` names (see the module docstring); returns their names."""
    if how not in FREEZE:
        raise ValueError(f"freeze must be one of {FREEZE}, got {how!r}")
    layers = model.layers
    names = [type(la).__name__ for la in layers]
    if how == "none":
        return []
    if how == "base":
        if "Flatten" not in names:
            raise ValueError(f"model {model.name!r} has no Flatten: its base is not defined")
        stop = names.index("Flatten")
    else:
        if "Conv2D" not in names:
            raise ValueError(f"model {model.name!r} has no Conv2D")
        stop = len(names) - 1 - names[::-1].index("Conv2D")
    for la in layers[:stop]:
        la.trainable = False
    return [la.name for la in layers[:stop] if la.params]


def per_class_subset(x, y, n: int, seed: int):
    y_np = np.asarray(y)
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(y_np):
        idx = np.flatnonzero(y_np == c)
        if len(idx) < n:
            raise ValueError(f"class {c} has only {len(idx)} images, fewer than {n}")
        picks.append(rng.choice(idx, n, replace=False))
    keep = np.sort(np.concatenate(picks))
    return x[keep], y[keep]
