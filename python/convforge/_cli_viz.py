"""`convforge viz`: figures of a model trained by `convforge train`.

    convforge viz filters activations gradcam --weights runs/lenet5-mnist/weights.npz --index 0
    convforge viz gradcam --weights W --model lenet5 --image digit.png --out figs --class-index 3

Each figure is one PNG in --out (default: the weights' folder), its path printed on its own
line: filters_<layer>.png (the kernels of a conv layer), activations_<layer>.png (the feature
maps of one image after a layer) and gradcam_<layer>.png (the image and its Grad-CAM heatmap).

The model is rebuilt from the zoo (--model, --dataset: by default those in the metrics.json
that `train` wrote beside the weights) and loaded with Model.load_weights. The image is one
test image of the dataset (--index) or a PNG/JPEG/BMP file (--image), made what the model was
trained on: grey (1 channel) for the MNIST-like datasets, RGB for cifar10; a file that is not
the dataset's size is resized to it (bilinear), then 28x28 images are zero-padded to 32x32
as `train` pads them. MNIST-like models were trained on light strokes on a black background.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from .cli import DATASETS, DEFAULT_DATASET, MODELS, NUM_CLASSES, CLIError

__all__ = ["add_parser", "cmd_viz"]

KINDS = ("filters", "activations", "gradcam")
_SMALL = ("mnist", "fashion_mnist", "emnist_letters")   # 28x28 grey, padded to 32x32


def add_parser(sub) -> None:
    v = sub.add_parser(
        "viz", help="draw filters, activations or Grad-CAM of a trained model (PNG files)",
        description="Writes filters_<layer>.png, activations_<layer>.png and/or "
                    "gradcam_<layer>.png for a model trained by `convforge train` and prints "
                    "their paths.")
    v.add_argument("kinds", nargs="+", choices=KINDS, metavar="{filters,activations,gradcam}",
                   help="the figures to draw (one or more)")
    v.add_argument("--weights", required=True, metavar="W",
                   help="weights file written by `convforge train` (DIR/weights.npz)")
    v.add_argument("--model", choices=MODELS, default=None,
                   help="zoo model (default: the 'model' of metrics.json beside the weights)")
    v.add_argument("--dataset", choices=DATASETS, default=None,
                   help="dataset the model was trained on: classes, channels, image size "
                        "(default: metrics.json beside the weights, else the model's default)")
    src = v.add_mutually_exclusive_group()
    src.add_argument("--image", default=None, metavar="I",
                     help="a PNG/JPEG/BMP file (default: --index 0 of the test set)")
    src.add_argument("--index", type=int, default=None, metavar="K",
                     help="index of a test image of --dataset (0 when --image is not given)")
    v.add_argument("--data", default=None, metavar="PATH",
                   help="dataset location for --index (else $CONVFORGE_DATA, cache, ...)")
    v.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: the folder of --weights)")
    v.add_argument("--layer", default=None, metavar="L",
                   help="layer name or index (default: the first conv layer for filters and "
                        "activations, the last feature-map layer for gradcam)")
    v.add_argument("--class-index", type=int, default=None, metavar="K",
                   help="class whose Grad-CAM is drawn (default: the predicted class)")
    v.add_argument("--alpha", type=float, default=0.4,
                   help="heatmap opacity in the overlay (default 0.4)")


def _run_info(weights: Path) -> dict[str, Any]:
    """metrics.json beside the weights ({} when absent or unreadable)."""
    try:
        info = json.loads((weights.parent / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _load_model(name: str, dataset: str, weights: Path):
    try:
        from . import models
    except ImportError as e:
        raise CLIError(f"convforge.models is not available ({e})") from None
    channels = 3 if dataset == "cifar10" else 1
    model = getattr(models, name)(num_classes=NUM_CLASSES[dataset],
                                  input_shape=(channels, 32, 32))
    try:
        model.load_weights(weights)
    except FileNotFoundError:
        raise CLIError(f"--weights {weights}: no such file") from None
    except (OSError, ValueError, TypeError) as e:
        raise CLIError(f"--weights {weights} does not fit {name} for {dataset}: {e}") from None
    return model


def _fit_image(img: np.ndarray, dataset: str, size: tuple[int, int]) -> np.ndarray:
    """uint8 (C, h, w) -> (C, H, W) as `train` feeds the model: resized (bilinear) to the
    dataset's image size when it differs, then 28x28 zero-padded to 32x32."""
    from .data import pad_images

    if tuple(img.shape[1:]) == size:
        return img
    native = (28, 28) if dataset in _SMALL and size == (32, 32) else size
    if tuple(img.shape[1:]) != native:
        from PIL import Image

        planes = [np.asarray(Image.fromarray(p).resize(native[::-1], Image.BILINEAR))
                  for p in img]
        img = np.stack(planes)
    if native != size:
        img = pad_images(img[None], ((size[0] - native[0]) // 2, (size[1] - native[1]) // 2))[0]
    return img


def _read_image(a: argparse.Namespace, dataset: str, shape: tuple[int, ...]):
    """(uint8 (C, H, W) image, its label or None, a description)."""
    from .cli import _load_dataset, _to_32
    from .data import DataError
    from .data._safety import decode_image

    if a.image is not None:
        path = Path(a.image)
        try:
            raw = path.read_bytes()
            img = decode_image(raw, str(path), "RGB" if shape[0] == 3 else "L")
        except OSError as e:
            raise CLIError(f"--image {path}: {e.strerror or e}") from None
        except DataError as e:
            raise CLIError(f"--image {path}: {e}") from None
        return _fit_image(img, dataset, tuple(shape[1:])), None, path.name
    index = 0 if a.index is None else a.index
    _, (x_test, y_test) = _load_dataset(dataset, a.data)
    if not 0 <= index < len(x_test):
        raise CLIError(f"--index must be in 0..{len(x_test) - 1}, got {index}", 2)
    img = _to_32(x_test[index:index + 1])[0]
    return img, int(y_test[index]), f"{dataset} test image {index}"


def _class_names(dataset: str) -> tuple[str, ...]:
    from . import data

    return {"cifar10": data.CIFAR10_CLASSES, "fashion_mnist": data.FASHION_MNIST_CLASSES,
            "emnist_letters": data.EMNIST_LETTERS_CLASSES}.get(
        dataset, tuple(str(i) for i in range(NUM_CLASSES[dataset])))


def _layer_arg(model, layer: str | None, default: str) -> str:
    """--layer as a layer name (an int is an index into model.layers)."""
    names = [la.name for la in model.layers]
    if layer is None:
        return default
    try:
        i = int(layer)
    except ValueError:
        if layer not in names:
            raise CLIError(f"--layer {layer!r} not found; layers are {names}", 2) from None
        return layer
    if not -len(names) <= i < len(names):
        raise CLIError(f"--layer {i} out of range for {len(names)} layers {names}", 2)
    return names[i]


def cmd_viz(a: argparse.Namespace) -> int:
    from .cli import _check_out_dir

    weights = Path(a.weights)
    if not weights.is_file():
        raise CLIError(f"--weights {weights}: no such file", 2)
    info = _run_info(weights)
    name = a.model or info.get("model")
    if name not in MODELS:
        raise CLIError("give --model (no metrics.json with a zoo model beside the weights)", 2)
    dataset = a.dataset or info.get("dataset")
    dataset = dataset if dataset in DATASETS else DEFAULT_DATASET[name]
    if not 0.0 <= a.alpha <= 1.0:
        raise CLIError(f"--alpha must be in [0, 1], got {a.alpha}", 2)
    out = Path(a.out) if a.out is not None else weights.parent
    _check_out_dir(out)
    try:
        from . import viz
        from .nn import Conv2D

        model = _load_model(name, dataset, weights)
        first_conv = next(la.name for la in model.layers if isinstance(la, Conv2D))
        img, label, what = _read_image(a, dataset, model.input_shape)
        x = img[None].astype(model.dtype)
        for kind in dict.fromkeys(a.kinds):   # each kind once, in the order given
            if kind == "filters":
                layer = model.get_layer(_layer_arg(model, a.layer, first_conv))
                if getattr(layer, "kernel", None) is None or len(layer.kernel.shape) != 4:
                    raise CLIError(f"--layer {layer.name!r} has no conv kernel to draw", 2)
                path = viz.show_filters(layer.kernel.data, out / f"filters_{layer.name}.png")
            elif kind == "activations":
                layer = _layer_arg(model, a.layer, first_conv)
                path = viz.show_activations(model, x, layer, out / f"activations_{layer}.png")
            else:
                path = _gradcam(viz, model, x, img, a, label, what, dataset, out)
            print(path)
    except ImportError as e:   # matplotlib or pillow missing
        raise CLIError(str(e)) from None
    except OSError as e:
        raise CLIError(f"cannot write to {out}: {e}") from None
    return 0


def _gradcam(viz, model, x, img, a, label, what, dataset, out: Path) -> Path:
    from .viz._gradcam import default_layer

    layer = _layer_arg(model, a.layer, default_layer(model))
    logits = np.asarray(model.predict(x, raw=True), dtype=np.float64)[0]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    names = _class_names(dataset)
    pred = int(probs.argmax())
    cls = pred if a.class_index is None else a.class_index
    try:
        heat = viz.grad_cam(model, x, layer, cls)[0]
    except ValueError as e:
        raise CLIError(str(e), 2) from None
    title = (f"{what}{'' if label is None else f' (label {names[label]})'}: predicted "
             f"{names[pred]} (p {probs[pred]:.2f}); Grad-CAM of {names[cls]} at {layer}")
    return viz.show_grad_cam(img, heat, out / f"gradcam_{layer}.png", alpha=a.alpha, title=title)
