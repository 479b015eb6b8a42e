"""Model zoo. Every model starts with Rescaling(1/255) (feed raw uint8 images) and outputs
logits; compile with loss="sparse_categorical_crossentropy" (from logits) and predict returns
softmax probabilities.

    lenet5()     61,706 params, 839,558 FLOPs per 1x32x32 image (LeCun et al. 1998 layout with
                 ReLU and max pooling: conv 6@5x5, pool, conv 16@5x5, pool, 120, 84, 10)
    vgg_small()  CIFAR-10 VGG: 3 blocks of 2 x [conv3x3 (no bias) + BatchNorm + ReLU] + maxpool
                 + dropout, widths (32, 64, 128), then dense 128 + dropout + dense 10:
                 551,914 params (551,018 trainable), 78.0 MFLOPs per 3x32x32 image.
                 widths=(64, 128, 256) gives 1,673,802 params and 307.0 MFLOPs.
    vgg16()      Simonyan & Zisserman configuration D: 13 conv3x3 + 3 dense (dropout 0.5);
                 138,357,544 params at 3x224x224 with 1000 classes (31.0 GFLOPs per image).
                 Weights are drawn only when first used, so the architecture is cheap to build.
FLOPs: multiply-adds count 2 (conv, dense, batch norm; see Model.count_flops).
"""

from __future__ import annotations

from typing import Sequence

from . import nn

__all__ = ["lenet5", "vgg_small", "vgg16"]


def _shape(input_shape: Sequence[int], name: str = "input_shape") -> tuple:
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(f"{name} must be (C, H, W), got {input_shape!r}")
    return tuple(int(s) for s in input_shape)


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
            layers += [nn.Conv2D(width, 3, padding="same", use_bias=False,
                                 kernel_initializer="he_uniform"),
                       nn.BatchNormalization(momentum=0.9),
                       nn.ReLU()]
        layers += [nn.MaxPooling2D(2), nn.Dropout(dropout)]
    layers += [nn.Flatten(),
               nn.Dense(dense_units, activation="relu", kernel_initializer="he_uniform"),
               nn.Dropout(dropout),
               nn.Dense(num_classes)]
    return nn.Sequential(layers, name="vgg_small", dtype=dtype)


def vgg16(num_classes: int = 1000, input_shape: Sequence[int] = (3, 224, 224),
          dtype="float32") -> nn.Sequential:
    """VGG-16 (configuration D): 13 conv3x3 'same' + ReLU in 5 blocks with max pooling, then
    dense 4096, 4096 (ReLU, dropout 0.5) and `num_classes`. H and W must be at least 32."""
    shape = _shape(input_shape)
    if min(shape[1:]) < 32:
        raise ValueError(f"vgg16 needs H, W >= 32 (five 2x2 poolings), got input_shape {shape}")
    layers: list = [nn.Rescaling(1.0 / 255, input_shape=shape)]
    for width, repeat in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        layers += [nn.Conv2D(width, 3, padding="same", activation="relu")
                   for _ in range(repeat)]
        layers.append(nn.MaxPooling2D(2))
    layers += [nn.Flatten(),
               nn.Dense(4096, activation="relu"), nn.Dropout(0.5),
               nn.Dense(4096, activation="relu"), nn.Dropout(0.5),
               nn.Dense(num_classes)]
    return nn.Sequential(layers, name="vgg16", dtype=dtype)
