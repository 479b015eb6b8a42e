"""Argument normalisation and shape math, done once per call before any backend runs.

Every public op turns its user-facing arguments into plain tuples of ints here:
stride/dilation/kernel -> (h, w); conv padding -> (top, bottom, left, right);
pool padding -> (h, w) (symmetric). Bad values raise ValueError/TypeError naming the argument.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

from ._array import INT64_MAX, int64

IntPair = Union[int, Sequence[int]]
Pad4 = Tuple[int, int, int, int]


def checked_size(shape: Sequence[int], name: str) -> int:
    """The element count of `shape`; ValueError when it does not fit in int64."""
    total = 1
    for d in shape:
        total *= int(d)
    if total > INT64_MAX:
        raise ValueError(f"{name} would have shape {tuple(shape)}: {total} elements do not fit "
                         "in a 64-bit size")
    return total


def _check_extent(padded: int, step: int, name: str) -> None:
    """The kernels compute coordinates up to the padded extent plus one stride or dilation
    step; all of them must fit in int64."""
    if padded + step > INT64_MAX:
        raise ValueError(f"{name} {padded} (plus a step of {step}) does not fit in a 64-bit "
                         "index: reduce the padding, stride or dilation")


def pair(v: IntPair, name: str, minimum: int = 1) -> tuple[int, int]:
    """int or (h, w) -> (h, w), each >= minimum."""
    if type(v) is tuple and len(v) == 2 and type(v[0]) is int and type(v[1]) is int \
            and minimum <= min(v) and max(v) <= INT64_MAX:
        return v   # already normalised (the common call from a layer)
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {v!r}")
        out = (int64(v[0], name), int64(v[1], name))
    else:
        i = int64(v, name)
        out = (i, i)
    if min(out) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    return out


def conv_padding(
    padding, in_hw: tuple[int, int], kernel_hw: tuple[int, int],
    stride: tuple[int, int], dilation: tuple[int, int],
) -> Pad4:
    """padding as int, (h, w), (top, bottom, left, right), 'valid' or 'same' -> 4-tuple.

    'same' gives output size ceil(input / stride); odd totals put the extra row/column at the
    bottom/right (TensorFlow's rule, which the lecture material follows).
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode == "same":
            pads = []
            for n, k, s, d in zip(in_hw, kernel_hw, stride, dilation):
                out = -(-n // s)
                total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
                pads += [total // 2, total - total // 2]
            return (pads[0], pads[1], pads[2], pads[3])
        raise ValueError(f"padding must be 'valid' or 'same' when a string, got {padding!r}")
    if isinstance(padding, (tuple, list)):
        if len(padding) == 2:
            ph, pw = (int64(p, "padding") for p in padding)
            pads4 = (ph, ph, pw, pw)
        elif len(padding) == 4:
            t, b, l, r = (int64(p, "padding") for p in padding)
            pads4 = (t, b, l, r)
        else:
            raise ValueError(
                "padding must be an int, (h, w), (top, bottom, left, right), 'valid' or 'same', "
                f"got {padding!r}"
            )
    else:
        p = int64(padding, "padding")
        pads4 = (p, p, p, p)
    if min(pads4) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return pads4


def conv_output_size(
    in_hw: tuple[int, int], kernel_hw: tuple[int, int], stride: tuple[int, int],
    padding: Pad4, dilation: tuple[int, int],
) -> tuple[int, int]:
    """floor((n + p_before + p_after - d*(k-1) - 1) / s) + 1 per axis; raises if the dilated
    kernel does not fit in the padded input."""
    (h, w), (kh, kw) = in_hw, kernel_hw
    (sh, sw), (dh, dw) = stride, dilation
    pt, pb, pl, pr = padding
    _check_extent(h + pt + pb, max(sh, dh), "the padded input height")
    _check_extent(w + pl + pr, max(sw, dw), "the padded input width")
    ekh, ekw = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if ekh > h + pt + pb or ekw > w + pl + pr:
        raise ValueError(
            f"kernel {kh}x{kw} (dilated {ekh}x{ekw}) is larger than the padded input "
            f"{h + pt + pb}x{w + pl + pr} (input {h}x{w}, padding {padding})"
        )
    return ((h + pt + pb - ekh) // sh + 1, (w + pl + pr - ekw) // sw + 1)


def pool_padding(padding: IntPair, kernel_hw: tuple[int, int]) -> tuple[int, int]:
    """Pool padding (symmetric, like PyTorch): int or (h, w), each <= kernel // 2."""
    ph, pw = pair(padding, "padding", minimum=0)
    if ph > kernel_hw[0] // 2 or pw > kernel_hw[1] // 2:
        raise ValueError(
            f"padding {(ph, pw)} must be at most half the kernel size {kernel_hw}"
        )
    return ph, pw


def pool_output_size(
    in_hw: tuple[int, int], kernel_hw: tuple[int, int], stride: tuple[int, int],
    padding: tuple[int, int], ceil_mode: bool,
) -> tuple[int, int]:
    """PyTorch's rule: floor (or ceil) of (n + 2p - k)/s + 1, and with ceil_mode the last window
    must start inside the input or its left/top padding."""
    out = []
    for n, k, s, p in zip(in_hw, kernel_hw, stride, padding):
        _check_extent(n + 2 * p, s, "the padded input extent")
        if k > n + 2 * p:
            raise ValueError(
                f"kernel_size {kernel_hw} is larger than the padded input "
                f"{tuple(i + 2 * q for i, q in zip(in_hw, padding))}"
            )
        span = n + 2 * p - k
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + p:
            o -= 1
        out.append(o)
    return out[0], out[1]
