"""The conv layers of VGG-small (N=32, float32), direction by direction, against PyTorch on the
same inputs: forward, dx alone and dw alone (convforge's need_dw / need_dx = False against
aten.convolution_backward with the matching output mask), medians of interleaved blocks, best
of two. The first layer's dx is never computed in training.

    PYTHONPATH=python python bench/vgg_layers.py 1        # threads
    CONVFORGE_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 \\
        PYTHONPATH=python python bench/vgg_layers.py 1    # both libraries on AVX2
"""

from __future__ import annotations

import sys

import numpy as np
import torch

import convforge
from convforge import functional as F

from harness import median_ms

LAYERS = [(3, 32, 32), (32, 32, 32), (32, 64, 16), (64, 64, 16), (64, 128, 8), (128, 128, 8)]
N = 32


def layer_times(ci: int, co: int, hw: int, rng) -> dict[str, float]:
    """ms of convforge (fwd, dx, dw) and torch (tfwd, tdx, tdw) on one layer's inputs."""
    x = rng.standard_normal((N, ci, hw, hw), dtype=np.float32)
    w = rng.standard_normal((co, ci, 3, 3), dtype=np.float32) * 0.1
    dy = rng.standard_normal((N, co, hw, hw), dtype=np.float32)
    tx, tw, tdy = map(torch.from_numpy, (x, w, dy))

    def tb(mask):
        return lambda: torch.ops.aten.convolution_backward(
            tdy, tx, tw, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)
    fs = {"fwd": lambda: F.conv2d(x, w, padding=1),
          "tfwd": lambda: torch.nn.functional.conv2d(tx, tw, padding=1),
          "dx": lambda: F.conv2d_backward(dy, x, w, padding=1, bias=False, need_dw=False),
          "tdx": tb([True, False, False]),
          "dw": lambda: F.conv2d_backward(dy, x, w, padding=1, bias=False, need_dx=False),
          "tdw": tb([False, True, False])}
    r: dict[str, float] = {}
    for _ in range(2):   # interleaved blocks, best of two
        for k, f in fs.items():
            r[k] = min(r.get(k, 1e9), median_ms(f))
    return r


def main(threads: int) -> None:
    convforge.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    tot: dict[str, float] = {}
    for ci, co, hw in LAYERS:
        r = layer_times(ci, co, hw, rng)
        for k, v in r.items():
            tot[k] = tot.get(k, 0.0) + (0.0 if ci == 3 and k in ("dx", "tdx") else v)
        print(f"{ci:4d}->{co:4d} @{hw:2d}: " + "  ".join(
            f"{d} {r[d]:.3f}/{r['t' + d]:.3f} ({r['t' + d] / r[d]:.2f}x)"
            for d in ("fwd", "dx", "dw")))
    print("sum (first dx excluded): " + "  ".join(
        f"{d} {tot[d]:.2f}/{tot['t' + d]:.2f} ({tot['t' + d] / tot[d]:.2f}x)"
        for d in ("fwd", "dx", "dw")))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
