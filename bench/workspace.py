"""Extra memory one conv2d call needs beyond its inputs and outputs (issue #3: <= 64 MB on the
VGG-16 layers), measured as the growth of the process's peak RSS in a fresh subprocess per
(layer, direction): peak RSS after the call - peak RSS before it - bytes of the outputs.

    python bench/workspace.py [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CHILD = r"""
import resource, sys
import numpy as np
import convforge
sys.path.insert(0, {here!r})
from shapes import CONV
c = next(c for c in CONV if c.name == {name!r})
convforge.set_num_threads({threads})
rng = np.random.default_rng(0)
# float32 straight from the generator: no float64 temporaries raising the peak beforehand
x = rng.standard_normal((c.N, c.C, c.H, c.W), dtype=np.float32)
w = rng.standard_normal((c.K, c.C // c.groups, c.KH, c.KW), dtype=np.float32)
oh, ow = c.out_hw
dy = rng.standard_normal((c.N, c.K, oh, ow), dtype=np.float32)
# touch the code paths once on a tiny problem so that lazy imports do not count
convforge.F.conv2d(x[:1, :, :8, :8], w, None, c.stride, c.pad, groups=c.groups)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if {direction!r} == "fwd":
    out = [convforge.F.conv2d(x, w, None, c.stride, c.pad, groups=c.groups)]
else:
    out = [a for a in convforge.F.conv2d_backward(dy, x, w, c.stride, c.pad, groups=c.groups)
           if a is not None]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print((after - before - sum(a.nbytes for a in out)) / 2**20)
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--layers", default="vgg16-64-64-224px,vgg16-256-256-56px,vgg16-512-512-14px")
    args = p.parse_args(argv)
    print(f"| layer | direction | extra MB (peak RSS growth - outputs), {args.threads} threads |")
    print("|---|---|---:|")
    for name in args.layers.split(","):
        for direction in ("fwd", "bwd"):
            code = CHILD.format(here=HERE, name=name, threads=args.threads, direction=direction)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout.strip()
            print(f"| {name} | {direction} | {float(out):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
