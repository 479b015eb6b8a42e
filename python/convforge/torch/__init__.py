"""convforge kernels inside PyTorch: `torch.library` custom ops (torch.ops.convforge.*, with
fake kernels for torch.compile and autograd formulas), torch-style functions, nn.Module
wrappers and patch(model), which switches an existing model's convolutions and pools to
convforge in place (same parameter tensors).

Optional: convforge itself never imports torch; importing this package without PyTorch raises
ImportError. CPU float32/float64 tensors only.

    import convforge.torch as cft
    model = cft.patch(torchvision_like_model)        # nn.Conv2d -> cft.Conv2d, pools too
    y = cft.conv2d(x, w, b, stride=2, padding=1)     # torch.ops.convforge.conv2d
"""

from __future__ import annotations

try:
    import torch  # noqa: F401 - only to fail early with a clear message
except ImportError as e:   # pragma: no cover - exercised only without torch
    raise ImportError("convforge.torch needs PyTorch (pip install torch); the rest of "
                      "convforge works without it") from e

from ._ops import (
    avg_pool2d,
    conv2d,
    global_avg_pool2d,
    global_max_pool2d,
    max_pool2d,
    min_pool2d,
)
from .nn import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, Conv2d, MaxPool2d, patch

__all__ = [
    "conv2d", "max_pool2d", "min_pool2d", "avg_pool2d", "global_avg_pool2d",
    "global_max_pool2d",
    "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "patch",
]
