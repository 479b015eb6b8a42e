"""Model zoo. Every model takes raw 0..255 pixels (it starts with Rescaling(1/255); vgg16 with
its `preprocess`) and outputs logits; compile with loss="sparse_categorical_crossentropy"
(from logits) and predict returns softmax probabilities.

    lenet5()     61,706 params, 839,558 FLOPs per 1x32x32 image (LeCun et al. 1998 layout with
                 ReLU and max pooling: conv 6@5x5, pool, conv 16@5x5, pool, 120, 84, 10)
    vgg_small()  CIFAR-10 VGG: 3 blocks of 2 x [conv3x3 (no bias) + BatchNorm + ReLU] + maxpool
                 + dropout, widths (32, 64, 128), then dense 128 + dropout + dense 10:
                 551,914 params (551,018 trainable), 78.0 MFLOPs per 3x32x32 image.
                 widths=(64, 128, 256) gives 1,673,802 params and 307.0 MFLOPs.
    vgg_fast()   the fast CIFAR-10 recipe's net (pool after each block's first conv, global
                 max-pool head), widths (64, 128, 256) after a 32-channel stem.
    vgg_small_gmp()  vgg_small's conv blocks (no dropout) with a global max-pool head: the
                 net of issue #17's PyTorch anchor; 289,642 params (288,746 trainable),
                 77.5 MFLOPs.
    vgg16()      Simonyan & Zisserman configuration D: 13 conv3x3 + 3 dense (dropout 0.5);
                 138,357,544 params at 3x224x224 with 1000 classes (31.0 GFLOPs per image).
                 Weights are drawn only when first used, so the architecture is cheap to build;
                 pretrained torchvision or Keras weights load from a file (weights=path). Its
                 preprocessing is ImageNet's (preprocess="torch" by default, "caffe" or None).
FLOPs: multiply-adds count 2 (conv, dense, batch norm; see Model.count_flops).
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence, Union

from . import nn

__all__ = ["lenet5", "vgg_small", "vgg_fast", "vgg_small_gmp", "vgg16"]


def _shape(input_shape: Sequence[int], name: str = "input_shape") -> tuple:
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(f"{name} must be (C, H, W), got {input_shape!r}")
    return tuple(int(s) for s in input_shape)


def _conv3x3(width: int):
    """The VGG nets' conv: 3x3 'same', no bias (a BatchNormalization follows), He init."""
    return nn.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer="he_uniform")


def _bn_relu() -> list:
    return [nn.BatchNormalization(momentum=0.9), nn.ReLU()]


def lenet5(num_classes: int = 10, input_shape: Sequence[int] = (1, 32, 32),
           dtype="float32") -> nn.Sequential:
    """LeNet-5 on 32x32 inputs (pad 28x28 MNIST by 2): 61,706 parameters for 10 classes."""
    return nn.Sequential([
        nn.Rescaling(1.0 / 255, input_shape=_shape(input_shape)),
        nn.Conv2D(6, 5, activation="relu"),
        nn.MaxPooling2D(2),
        nn.Conv2D(16, 5, activation="relu"),
        nn.MaxPooling2D(2),
        nn.Flatten(),
        nn.Dense(120, activation="relu"),
        nn.Dense(84, activation="relu"),
        nn.Dense(num_classes),
    ], name="lenet5", dtype=dtype)


def vgg_small(num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
              widths: Sequence[int] = (32, 64, 128), dense_units: int = 128,
              dropout: float = 0.25, dtype="float32") -> nn.Sequential:
    """A small VGG for CIFAR-10: per width, 2 x [conv3x3 'same' + BatchNorm + ReLU], maxpool 2,
    dropout; then flatten, dense `dense_units` + ReLU, dropout, dense `num_classes`."""
    layers: list = [nn.Rescaling(1.0 / 255, input_shape=_shape(input_shape))]
    for width in widths:
        for _ in range(2):
            layers += [_conv3x3(width), *_bn_relu()]
        layers += [nn.MaxPooling2D(2), nn.Dropout(dropout)]
    layers += [nn.Flatten(),
               nn.Dense(dense_units, activation="relu", kernel_initializer="he_uniform"),
               nn.Dropout(dropout),
               nn.Dense(num_classes)]
    return nn.Sequential(layers, name="vgg_small", dtype=dtype)


CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)   # per-channel statistics of the 50,000 training
CIFAR10_STD = (0.2470, 0.2435, 0.2616)    # images, RGB in [0, 1]


def vgg_fast(num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
             widths: Sequence[int] = (64, 128, 256), stem: int = 32,
             logit_scale: float = 0.125, dtype="float32") -> nn.Sequential:
    """The net of `convforge train vgg_fast` (the fast CIFAR-10 recipe, issue #17): normalise,
    a stem conv3x3 of `stem` channels + BatchNorm + ReLU, then per width conv3x3 -> max-pool 2
    -> BN -> ReLU -> conv3x3 -> BN -> ReLU, a global max-pool and one dense layer whose logits
    are scaled by `logit_scale`.

    The layout follows the fast CIFAR-10 nets (David Page's DAWNBench ResNet-9 without its
    residual branches, Keller Jordan's airbench): pooling right after each block's first conv
    halves that block's second conv, so the widths can grow where the pixels are few; the
    small logit scale keeps the initial softmax soft, which suits label smoothing and a high
    learning rate. 1,168,352 params, 171.8 MFLOPs per 3x32x32 image at the default widths.
    """
    layers: list = [nn.Rescaling(1.0 / 255, input_shape=_shape(input_shape)),
                    nn.Normalization(CIFAR10_MEAN, CIFAR10_STD), _conv3x3(stem), *_bn_relu()]
    for width in widths:
        layers += [_conv3x3(width), nn.MaxPooling2D(2), *_bn_relu(),
                   _conv3x3(width), *_bn_relu()]
    layers += [nn.GlobalMaxPooling2D(), nn.Dense(num_classes, use_bias=False),
               nn.Rescaling(logit_scale)]
    return nn.Sequential(layers, name="vgg_fast", dtype=dtype)


def vgg_small_gmp(num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
                  widths: Sequence[int] = (32, 64, 128), dtype="float32") -> nn.Sequential:
    """The net of issue #17's PyTorch anchor (bench/train_torch.py vgg_small_gmp): vgg_fast's
    normalised input, then per width 2 x [conv3x3 + BatchNorm + ReLU] and a max-pool 2 (vgg_small's
    blocks without dropout), a global max-pool and one dense layer. Its default recipe is the
    fast one, as vgg_fast's."""
    layers: list = [nn.Rescaling(1.0 / 255, input_shape=_shape(input_shape)),
                    nn.Normalization(CIFAR10_MEAN, CIFAR10_STD)]
    for width in widths:
        layers += [_conv3x3(width), *_bn_relu(), _conv3x3(width), *_bn_relu(),
                   nn.MaxPooling2D(2)]
    layers += [nn.GlobalMaxPooling2D(), nn.Dense(num_classes)]
    return nn.Sequential(layers, name="vgg_small_gmp", dtype=dtype)


IMAGENET_MEAN = (0.485, 0.456, 0.406)     # torchvision's transforms.Normalize, RGB in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # Keras' preprocess_input(mode="caffe"), 0..255


def _preprocessing(preprocess, shape) -> list:
    if preprocess == "torch":
        return [nn.Rescaling(1.0 / 255, input_shape=shape, name="rescaling"),
                nn.Normalization(IMAGENET_MEAN, IMAGENET_STD, name="normalization")]
    if preprocess == "caffe":
        return [nn.Normalization(CAFFE_MEAN_BGR, 1.0, bgr=True, input_shape=shape,
                                 name="normalization")]
    if preprocess is None:
        return []
    raise ValueError(f"preprocess must be 'torch', 'caffe' or None, got {preprocess!r}")


def vgg16(num_classes: int = 1000, input_shape: Sequence[int] = (3, 224, 224),
          include_top: bool = True, pooling: Optional[str] = None,
          preprocess: Optional[str] = "torch",
          weights: Union[None, str, "os.PathLike[str]", Mapping] = None,
          dtype="float32") -> nn.Sequential:
    """VGG-16 (configuration D): 13 conv3x3 'same' + ReLU in 5 blocks with 2x2 max pooling,
    then (include_top) flatten, dense 4096, 4096 (ReLU, dropout 0.5) and `num_classes` logits.
    H and W must be at least 32. Layers carry Keras' names (block1_conv1 ... block5_pool, fc1,
    fc2, predictions).

    include_top=False ends at the convolutional features: pooling=None keeps the (512, H/32,
    W/32) map, "avg" / "max" reduce it to (512,) (Keras' semantics; pooling must be None with
    the top). preprocess: what the model does to raw 0..255 RGB pixels first:
      "torch"  x/255, then (x - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225) per channel
               (torchvision's ImageNet weights expect this)
      "caffe"  RGB -> BGR, then subtract (103.939, 116.779, 123.68) (Keras' ImageNet weights)
      None     nothing: feed inputs already prepared.
    weights: None (random initialisation) or pretrained weights: a .h5 file from Keras
    (convforge.io.load_keras_h5), or a torchvision state dict (a mapping, .safetensors, .npz or
    .pth: convforge.io.load_torchvision). Without the top, the file's classifier is skipped.
    torchvision's VGG-16 average-pools the features to 7x7 before its classifier, which is the
    identity only at 224x224 input: other sizes need include_top=False (or their own top).
    """
    shape = _shape(input_shape)
    if min(shape[1:]) < 32:
        raise ValueError(f"vgg16 needs H, W >= 32 (five 2x2 poolings), got input_shape {shape}")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if include_top and pooling is not None:
        raise ValueError(f"pooling={pooling!r} applies only with include_top=False")
    layers: list = _preprocessing(preprocess, shape)
    for block, (width, repeat) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)),
                                            start=1):
        for i in range(1, repeat + 1):
            first = {} if layers else {"input_shape": shape}
            layers.append(nn.Conv2D(width, 3, padding="same", activation="relu",
                                    name=f"block{block}_conv{i}", **first))
        layers.append(nn.MaxPooling2D(2, name=f"block{block}_pool"))
    if include_top:
        layers += [nn.Flatten(name="flatten"),
                   nn.Dense(4096, activation="relu", name="fc1"), nn.Dropout(0.5),
                   nn.Dense(4096, activation="relu", name="fc2"), nn.Dropout(0.5),
                   nn.Dense(num_classes, name="predictions")]
    elif pooling == "avg":
        layers.append(nn.GlobalAveragePooling2D(name="avg_pool"))
    elif pooling == "max":
        layers.append(nn.GlobalMaxPooling2D(name="max_pool"))
    model = nn.Sequential(layers, name="vgg16", dtype=dtype)
    if weights is not None:
        _load_vgg16_weights(model, weights, include_top)
    return model


def _load_vgg16_weights(model, weights, include_top: bool) -> None:
    from . import io

    if isinstance(weights, Mapping):
        path = None
    elif isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
    else:
        raise TypeError(f"weights must be None, a path or a state dict, got "
                        f"{type(weights).__name__}")
    if path is not None and path.endswith((".h5", ".hdf5")):
        io.load_keras_h5(model, path, ignore=() if include_top else ("fc1", "fc2",
                                                                      "predictions"))
    else:
        io.load_torchvision(model, weights, ignore=() if include_top else ("classifier",))
