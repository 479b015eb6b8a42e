"""float32 error of every applicable CPU conv algorithm against the float64 reference:
max |y - y_ref| / max |y_ref| per VGG-like 3x3 layer, forward and backward data.

    PYTHONPATH=python python bench/conv_accuracy.py
"""

from __future__ import annotations

import numpy as np

from convforge import _core as core
from convforge.backends import reference as ref

# (N, C, K, H=W): 3x3, stride 1, padding 1
LAYERS = [(4, 64, 64, 16), (8, 128, 128, 8), (2, 256, 256, 8)]
ARGS = ((1, 1), (1, 1, 1, 1), (1, 1), 1)   # stride, padding, dilation, groups


def rel_err(got, want) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


def main() -> None:
    rng = np.random.default_rng(0)
    for n, c, k, h in LAYERS:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
        dy = rng.standard_normal((n, k, h, h)).astype(np.float32)
        y_ref = ref.conv2d(x.astype(np.float64), w.astype(np.float64), None, *ARGS)
        dx_ref = ref.conv2d_backward(dy.astype(np.float64), x.astype(np.float64),
                                     w.astype(np.float64), *ARGS, False)[0]
        for direction in ("forward", "data"):
            cells = []
            for algo in core.conv2d_algorithms(x.shape, w.shape, *ARGS, "float32", direction):
                if direction == "forward":
                    err = rel_err(core.conv2d_forward(x, w, None, *ARGS, algo=algo), y_ref)
                else:
                    got = core.conv2d_backward_data(dy, w, x.shape, *ARGS, algo=algo)
                    err = rel_err(got, dx_ref)
                cells.append(f"{algo} {err:.1e}")
            print(f"N={n} {c}->{k} @{h}px {direction:7s}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
