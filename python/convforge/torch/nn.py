"""nn.Module wrappers: subclasses of torch's modules that only override forward, so their
constructor arguments, parameters, initialisation and state_dict are torch's; patch(model)
switches a model's modules to them in place."""

from __future__ import annotations

import warnings

from torch import Tensor, nn

from . import _ops


class Conv2d(nn.Conv2d):
    """torch.nn.Conv2d on convforge's kernels (padding_mode='zeros' only)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f"convforge.torch.Conv2d takes padding_mode='zeros' only, got "
                             f"{padding_mode!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype)

    def forward(self, input: Tensor) -> Tensor:
        return _ops.conv2d(input, self.weight, self.bias, self.stride, self.padding,
                           self.dilation, self.groups)


class MaxPool2d(nn.MaxPool2d):
    """torch.nn.MaxPool2d on convforge's kernels (dilation=1; return_indices works)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)
        _unsupported(self)

    def forward(self, input: Tensor):
        return _ops.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                               self.ceil_mode, self.return_indices)


class AvgPool2d(nn.AvgPool2d):
    """torch.nn.AvgPool2d on convforge's kernels (divisor_override is not supported)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad,
                         divisor_override)
        _unsupported(self)

    def forward(self, input: Tensor) -> Tensor:
        return _ops.avg_pool2d(input, self.kernel_size, self.stride, self.padding,
                               self.ceil_mode, self.count_include_pad)


def _global_only(module) -> None:
    if module.output_size not in (1, (1, 1), [1, 1]):
        raise ValueError(f"convforge.torch.{type(module).__name__} takes output_size=1 only "
                         f"(the global pool), got {module.output_size!r}")


class AdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """torch.nn.AdaptiveAvgPool2d(1) as convforge's global average pool: (N, C, 1, 1)."""

    def __init__(self, output_size=1):
        super().__init__(output_size)
        _global_only(self)

    def forward(self, input: Tensor) -> Tensor:
        return _ops.global_avg_pool2d(input)[..., None, None]


class AdaptiveMaxPool2d(nn.AdaptiveMaxPool2d):
    """torch.nn.AdaptiveMaxPool2d(1) as convforge's global max pool: (N, C, 1, 1)."""

    def __init__(self, output_size=1, return_indices: bool = False):
        super().__init__(output_size, return_indices)
        _global_only(self)

    def forward(self, input: Tensor):
        y, idx = _ops.global_max_pool2d(input, return_indices=True)
        y = y[..., None, None]
        return (y, idx[..., None, None]) if self.return_indices else y


def _unsupported(m) -> None:
    """Raise ValueError for settings of torch's modules that convforge does not compute."""
    if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
        raise ValueError(f"padding_mode={m.padding_mode!r} (convforge: 'zeros' only)")
    if isinstance(m, nn.MaxPool2d) and m.dilation not in (1, (1, 1)):
        raise ValueError(f"dilation={m.dilation!r} (convforge pools: 1 only)")
    if isinstance(m, nn.AvgPool2d) and m.divisor_override is not None:
        raise ValueError("divisor_override is not supported by convforge")
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        _global_only(m)


# torch's class -> ours; exact types only (a subclass may have its own forward)
_SWAP = {nn.Conv2d: Conv2d, nn.MaxPool2d: MaxPool2d, nn.AvgPool2d: AvgPool2d,
         nn.AdaptiveAvgPool2d: AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d: AdaptiveMaxPool2d}


def patch(model: nn.Module) -> nn.Module:
    """Switch model's torch.nn.Conv2d, MaxPool2d, AvgPool2d and AdaptiveAvg/MaxPool2d(1)
    submodules (model itself too) to convforge's, in place, and return model.

    Each module keeps its identity, parameters (the same tensors), buffers and hooks: only its
    class changes, to the subclass that overrides forward. Modules with settings convforge does
    not compute (padding_mode other than 'zeros', pool dilation, divisor_override, adaptive
    output sizes other than 1) stay torch's, with a warning naming them."""
    for name, m in model.named_modules():
        ours = _SWAP.get(type(m))
        if ours is None:
            continue
        try:
            _unsupported(m)
        except ValueError as e:
            warnings.warn(f"convforge.torch.patch: {name or type(m).__name__} stays torch's: "
                          f"{e}", stacklevel=2)
            continue
        m.__class__ = ours
    return model


__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
           "patch"]
