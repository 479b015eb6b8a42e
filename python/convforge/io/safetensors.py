"""The .safetensors format in plain Python and NumPy (the `safetensors` package is not needed).

Layout: an unsigned 64-bit little-endian header length N, N bytes of UTF-8 JSON (padded with
spaces), then one byte buffer. The header maps each tensor name to
{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]} (offsets into the buffer) and may
hold "__metadata__": {str: str}. Values are little-endian and C-ordered.

Reading never trusts the header: its length is bounded (MAX_HEADER_BYTES) and by the file size,
duplicate names are refused, every dtype, shape and offset pair is checked, the tensors must tile
the buffer exactly (no overlap, no hole, nothing past the end: the format's own rule), and each
tensor's byte count must equal its shape times its item size. So no more bytes are ever
allocated than the file holds, and data is read only when asked for (open_safetensors) or all at
once (read_safetensors). Nothing is executed: there is no pickle in this format.
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Mapping, Optional, Union

import numpy as np

from .._io_atomic import atomic_write

__all__ = ["read_safetensors", "write_safetensors", "open_safetensors", "LazyTensor",
           "MAX_HEADER_BYTES"]

PathLike = Union[str, "os.PathLike[str]"]

# The reference implementation's limit too.
MAX_HEADER_BYTES = 100_000_000

# format dtype -> NumPy dtype of the stored bytes (little-endian). BF16 is read as uint16 and
# widened to float32 (NumPy has no bfloat16).
_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
_FROM_NUMPY = {np.dtype(v).newbyteorder("<").str: k for k, v in _DTYPES.items() if k != "BF16"}


def _bad(path: str, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a valid .safetensors file: {why}")


class LazyTensor:
    """One tensor of a .safetensors file: shape and dtype known, bytes read by read()."""

    __slots__ = ("path", "name", "format_dtype", "shape", "begin", "end")

    def __init__(self, path: str, name: str, format_dtype: str, shape: tuple, begin: int,
                 end: int):
        self.path, self.name, self.format_dtype = path, name, format_dtype
        self.shape, self.begin, self.end = shape, begin, end

    @property
    def dtype(self) -> np.dtype:
        """The dtype read() returns (float32 for BF16)."""
        return np.dtype(np.float32) if self.format_dtype == "BF16" \
            else np.dtype(_DTYPES[self.format_dtype]).newbyteorder("=")

    def read(self) -> np.ndarray:
        a = np.empty(self.shape, dtype=_DTYPES[self.format_dtype])
        with open(self.path, "rb") as f:
            f.seek(self.begin)
            got = f.readinto(memoryview(a.reshape(-1).view(np.uint8)))
        if got != self.end - self.begin:
            raise _bad(self.path, f"tensor {self.name!r} is cut short (the file changed?)")
        if self.format_dtype == "BF16":
            return (a.astype(np.uint32) << 16).view(np.float32)
        return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))

    def __repr__(self) -> str:
        return f"LazyTensor({self.name!r}, {self.format_dtype}, shape={self.shape})"


def _shape(path: str, name: str, v) -> tuple:
    if not isinstance(v, list) or not all(type(s) is int and s >= 0 for s in v):
        raise _bad(path, f"tensor {name!r} has shape {v!r} (must be a list of ints >= 0)")
    return tuple(v)


def _header(path: str, f, size: int) -> tuple[dict, int]:
    """(parsed header, offset of the byte buffer), checked against the file size."""
    head = f.read(8)
    if len(head) != 8:
        raise _bad(path, f"{size} bytes is shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", head)
    if n > MAX_HEADER_BYTES or n > size - 8:
        raise _bad(path, f"header length {n} exceeds the file ({size} bytes) or the "
                         f"{MAX_HEADER_BYTES}-byte limit")
    raw = f.read(n)

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise _bad(path, "the header names a tensor twice")
        return dict(pairs)

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _bad(path, f"header is not UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise _bad(path, "header is not a JSON object")
    return header, 8 + n


def open_safetensors(path: PathLike) -> tuple[dict[str, LazyTensor], dict[str, str]]:
    """({name: LazyTensor} in file order, metadata) after checking the whole header."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header, start = _header(path, f, size)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in meta.items()):
        raise _bad(path, "__metadata__ must map strings to strings")
    buffer_len = size - start
    tensors, spans = {}, []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise _bad(path, f"entry {name!r} must hold exactly dtype, shape and data_offsets")
        dt = info["dtype"]
        if dt not in _DTYPES:
            raise _bad(path, f"tensor {name!r} has unsupported dtype {dt!r}")
        shape = _shape(path, name, info["shape"])
        off = info["data_offsets"]
        if not (isinstance(off, list) and len(off) == 2 and all(type(o) is int for o in off)
                and 0 <= off[0] <= off[1] <= buffer_len):
            raise _bad(path, f"tensor {name!r} has data_offsets {off!r} outside the "
                             f"{buffer_len}-byte buffer")
        # exact integers: a huge shape cannot overflow into a small product
        want = math.prod(shape) * np.dtype(_DTYPES[dt]).itemsize
        if off[1] - off[0] != want:
            raise _bad(path, f"tensor {name!r} ({dt}, shape {shape}) needs {want} bytes but "
                             f"its offsets span {off[1] - off[0]}")
        tensors[name] = LazyTensor(path, name, dt, shape, start + off[0], start + off[1])
        spans.append((off[0], off[1], name))
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            why = "overlaps the previous one" if begin < pos else f"leaves a hole at byte {pos}"
            raise _bad(path, f"tensor {name!r} at bytes [{begin}, {end}) {why}")
        pos = end
    if pos != buffer_len:
        raise _bad(path, f"the tensors cover {pos} of the {buffer_len} buffer bytes")
    return tensors, meta


def read_safetensors(path: PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file as a NumPy array (file order; BF16 as float32)."""
    tensors, _ = open_safetensors(path)
    return {k: t.read() for k, t in tensors.items()}


def write_safetensors(path: PathLike, tensors: Mapping[str, np.ndarray],
                      metadata: Optional[Mapping[str, str]] = None) -> None:
    """Writes NumPy arrays (bool, int, uint, float16/32/64) to `path` in the given order,
    atomically (the old file stays whole on any error). metadata: optional str -> str."""
    header: dict = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    arrays, pos = [], 0
    for name, a in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"tensor names must be strings other than '__metadata__', "
                             f"got {name!r}")
        a = np.asarray(a)
        fmt = _FROM_NUMPY.get(a.dtype.newbyteorder("<").str)
        if fmt is None:
            raise TypeError(f"tensor {name!r} has dtype {a.dtype}, which .safetensors files "
                            "cannot hold here (bool, int8-64, uint8-64, float16/32/64)")
        a = np.asarray(a, dtype=np.dtype(_DTYPES[fmt]))
        if not a.flags.c_contiguous:
            a = a.copy(order="C")           # (np.ascontiguousarray would make 0-d arrays 1-d)
        header[name] = {"dtype": fmt, "shape": list(a.shape),
                        "data_offsets": [pos, pos + a.nbytes]}
        arrays.append(a)
        pos += a.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)               # the buffer starts 8-byte aligned
    with atomic_write(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for a in arrays:
            f.write(a.reshape(-1).view(np.uint8).data)
