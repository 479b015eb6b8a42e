"""Layer shapes the benchmarks measure (issue #3): LeNet-5, VGG on CIFAR, VGG-16 at N=1, and odd
shapes (stride 2, 1x1, 7x7/2, 3x1, 1x3). One place, shared by every bench file and the CLI."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Conv:
    name: str
    N: int
    C: int
    H: int
    W: int
    K: int
    KH: int
    KW: int
    stride: int = 1
    pad: int = 0
    groups: int = 1

    @property
    def out_hw(self):
        oh = (self.H + 2 * self.pad - self.KH) // self.stride + 1
        ow = (self.W + 2 * self.pad - self.KW) // self.stride + 1
        return oh, ow

    @property
    def flops(self) -> float:
        """Multiply-adds x 2 of the forward pass (backward dx + dw is twice that)."""
        oh, ow = self.out_hw
        return 2.0 * self.N * self.K * oh * ow * (self.C // self.groups) * self.KH * self.KW


@dataclass(frozen=True)
class Pool:
    name: str
    N: int
    C: int
    H: int
    W: int
    k: int
    stride: int
    pad: int = 0

    @property
    def bytes(self) -> float:
        """Bytes read + written by the forward pass at float32."""
        oh = (self.H + 2 * self.pad - self.k) // self.stride + 1
        ow = (self.W + 2 * self.pad - self.k) // self.stride + 1
        return 4.0 * self.N * self.C * (self.H * self.W + oh * ow)


CONV = [
    # LeNet-5
    Conv("lenet-c1-n64", 64, 1, 32, 32, 6, 5, 5),
    Conv("lenet-c3-n64", 64, 6, 14, 14, 16, 5, 5),
    Conv("lenet-c1-n256", 256, 1, 32, 32, 6, 5, 5),
    Conv("lenet-c3-n256", 256, 6, 14, 14, 16, 5, 5),
    # VGG on CIFAR-10 (N=32; the 64-channel layers also at N=64)
    Conv("vgg-3-64-32px", 32, 3, 32, 32, 64, 3, 3, pad=1),
    Conv("vgg-64-64-32px", 32, 64, 32, 32, 64, 3, 3, pad=1),
    Conv("vgg-64-64-32px-n64", 64, 64, 32, 32, 64, 3, 3, pad=1),
    Conv("vgg-64-128-16px", 32, 64, 16, 16, 128, 3, 3, pad=1),
    Conv("vgg-128-128-16px", 32, 128, 16, 16, 128, 3, 3, pad=1),
    Conv("vgg-128-256-8px", 32, 128, 8, 8, 256, 3, 3, pad=1),
    Conv("vgg-256-256-8px", 32, 256, 8, 8, 256, 3, 3, pad=1),
    Conv("vgg-256-512-4px", 32, 256, 4, 4, 512, 3, 3, pad=1),
    Conv("vgg-512-512-4px", 32, 512, 4, 4, 512, 3, 3, pad=1),
    Conv("vgg-512-512-4px-n64", 64, 512, 4, 4, 512, 3, 3, pad=1),
    # VGG-16 at N=1 (224 input)
    Conv("vgg16-64-64-224px", 1, 64, 224, 224, 64, 3, 3, pad=1),
    Conv("vgg16-256-256-56px", 1, 256, 56, 56, 256, 3, 3, pad=1),
    Conv("vgg16-512-512-14px", 1, 512, 14, 14, 512, 3, 3, pad=1),
    # odd shapes
    Conv("stride2-64-128-32px", 32, 64, 32, 32, 128, 3, 3, stride=2, pad=1),
    Conv("1x1-256-64-16px", 32, 256, 16, 16, 64, 1, 1),
    Conv("7x7s2-3-64-224px", 1, 3, 224, 224, 64, 7, 7, stride=2, pad=3),
    Conv("3x1-128-128-16px", 32, 128, 16, 16, 128, 3, 1),
    Conv("1x3-128-128-16px", 32, 128, 16, 16, 128, 1, 3),
]

POOL = [
    Pool("lenet-pool1-n64", 64, 6, 28, 28, 2, 2),
    Pool("vgg-pool-64-32px", 32, 64, 32, 32, 2, 2),
    Pool("vgg-pool-256-8px", 32, 256, 8, 8, 2, 2),
    Pool("pool3s1p1-64-32px", 32, 64, 32, 32, 3, 1, 1),
]

QUICK_CONV = ["lenet-c1-n64", "lenet-c3-n64", "vgg-64-64-32px", "vgg-256-256-8px",
              "stride2-64-128-32px"]
QUICK_POOL = ["lenet-pool1-n64", "vgg-pool-64-32px"]
