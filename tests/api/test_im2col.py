"""im2col and col2im on every backend under test against the float64 oracle, and their
adjointness <im2col(x), c> == <x, col2im(c)>."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple, Union

import numpy as np
import pytest

from conftest import DTYPES, assert_close, assert_exact, randint, randn, ref

Pair = Union[int, Tuple[int, int]]


@dataclass(frozen=True)
class UnfoldCase:
    id: str
    x: Tuple[int, int, int, int]         # (N, C, H, W)
    kernel_size: Pair
    stride: Pair = 1
    padding: Union[int, str, Tuple[int, ...]] = 0
    dilation: Pair = 1

    def kw(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    @property
    def taps(self) -> int:
        k = self.kernel_size
        return k * k if isinstance(k, int) else k[0] * k[1]


CASES = [
    UnfoldCase("n1_c1", (1, 1, 5, 5), 3),
    UnfoldCase("1x1", (2, 3, 4, 5), 1),
    UnfoldCase("1x1_stride2", (2, 3, 7, 6), 1, stride=2),
    UnfoldCase("nonsquare", (2, 3, 7, 10), (3, 2)),
    UnfoldCase("kernel_eq_input", (2, 2, 4, 5), (4, 5)),
    UnfoldCase("stride_pad_hw", (2, 2, 11, 9), 3, stride=(2, 3), padding=(1, 2)),
    UnfoldCase("dilation_hw", (1, 3, 9, 8), (3, 2), padding=(2, 1), dilation=(2, 3)),
    UnfoldCase("pad4", (2, 2, 6, 7), 3, padding=(0, 2, 1, 3)),
    UnfoldCase("pad_gt_kernel", (1, 2, 4, 4), 2, padding=(3, 2, 2, 3)),
    UnfoldCase("same_even_stride2", (2, 2, 9, 8), (4, 2), stride=2, padding="same"),
    UnfoldCase("valid_overlap", (2, 3, 8, 8), 5, padding="valid"),
    UnfoldCase("lenet_c2", (2, 6, 14, 14), 5),
    UnfoldCase("vgg_64ch_16px", (2, 64, 16, 16), 3, padding=1),
]
case_params = pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


def _cols_shape(case: UnfoldCase) -> tuple:
    return ref("im2col", np.zeros(case.x), case.kernel_size, **case.kw()).shape


@dtypes
@case_params
def test_im2col(backend, case, dtype, rng):
    """im2col only copies values (and zeros for padding): exact in both dtypes."""
    x = randn(rng, case.x, dtype)
    cols = backend("im2col", x, case.kernel_size, **case.kw())
    assert_exact(cols, ref("im2col", x, case.kernel_size, **case.kw()), dtype,
                 what=f"{backend.name} im2col")


@dtypes
@case_params
def test_col2im(backend, case, dtype, rng):
    """col2im sums up to KH*KW overlapping columns per pixel."""
    cols = randn(rng, _cols_shape(case), dtype)
    x = backend("col2im", cols, case.x, case.kernel_size, **case.kw())
    assert_close(x, ref("col2im", cols, case.x, case.kernel_size, **case.kw()), dtype,
                 case.taps, what=f"{backend.name} col2im")


@dtypes
@case_params
def test_col2im_integer_exact(backend, case, dtype, rng):
    cols = randint(rng, _cols_shape(case), dtype)
    x = backend("col2im", cols, case.x, case.kernel_size, **case.kw())
    assert_exact(x, ref("col2im", cols, case.x, case.kernel_size, **case.kw()), dtype,
                 what=f"{backend.name} col2im")


@case_params
def test_im2col_col2im_adjoint(backend, case, rng):
    """<im2col(x), c> == <x, col2im(c)> in float64, both maps from the backend under test."""
    x = randn(rng, case.x)
    c = randn(rng, _cols_shape(case))
    lhs = float(np.vdot(backend("im2col", x, case.kernel_size, **case.kw()), c))
    rhs = float(np.vdot(x, backend("col2im", c, case.x, case.kernel_size, **case.kw())))
    # worst-case rounding of two float64 dot products of c.size terms
    tol = 2 * np.finfo(np.float64).eps * c.size * float(np.abs(x).max() * np.abs(c).max())
    assert abs(lhs - rhs) <= tol, f"<im2col(x), c> = {lhs!r} but <x, col2im(c)> = {rhs!r} " \
                                  f"(diff {abs(lhs - rhs):.3e}, tolerance {tol:.3e})"


@dtypes
def test_col2im_of_ones_counts_windows(backend, dtype):
    """col2im(ones) counts, per pixel, the windows that cover it (exact)."""
    case = CASES[5]
    ones = np.ones(_cols_shape(case), dtype)
    counts = backend("col2im", ones, case.x, case.kernel_size, **case.kw())
    assert_exact(counts, ref("col2im", ones, case.x, case.kernel_size, **case.kw()), dtype,
                 what=f"{backend.name} col2im(ones)")
    assert counts.min() >= 0 and counts.max() >= 1
