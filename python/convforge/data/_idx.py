"""The IDX format of MNIST-family files (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").

Layout: 2 zero bytes, a type byte, the number of dims, one big-endian uint32 per dim, then the
values in row-major order, big-endian. Files may be gzip-compressed (detected by content).

Reading is bounded: the header is read and checked first (type, dims against `max_bytes` and the
caller's `check`), then exactly the declared payload is inflated into one buffer and one more
byte is asked for, so a file that inflates to more (or less) than its header says is rejected
without inflating the rest.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._safety import (
    FS_ERRORS,
    READ_ERRORS,
    ChecksumError,
    DataError,
    atomic_output,
    corrupt,
    open_bounded,
)

# IDX type byte -> big-endian dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
# Default cap on one IDX file's decompressed size (EMNIST byclass, the largest IDX set in use,
# has 547 MB of training images).
IDX_MAX_BYTES = 1 << 30

ShapeCheck = Callable[[np.dtype, tuple[int, ...]], None]


def _read_exact(f: io.BufferedReader, n: int) -> bytes:
    data = f.read(n)
    return data if data is not None else b""


def read_idx(path, sha256: str | None = None, *, max_bytes: int | None = IDX_MAX_BYTES,
             check: ShapeCheck | None = None) -> np.ndarray:
    """Reads an IDX file (raw or gzip) into a native-endian array.

    With `sha256`, the decompressed bytes must have that digest (ChecksumError otherwise).
    `max_bytes` caps the decompressed size (None: no cap); `check(dtype, shape)` may raise
    DataError to reject the header's dims before the payload is read. Corrupt, truncated or
    oversized files raise DataError.
    """
    path = Path(path)
    source = str(path)
    try:
        # +1: room to see a byte past the declared end (the header bounds the real read)
        limit = None if max_bytes is None else max_bytes + 1
        with open_bounded(path, limit=limit if limit is not None else 1 << 62) as f:
            return _read_idx_stream(f, path, source, sha256, max_bytes, check)
    except (DataError, *FS_ERRORS):
        raise
    except READ_ERRORS as e:
        raise corrupt(source, e) from None


def _read_idx_stream(f: io.BufferedReader, path: Path, source: str, sha256: str | None,
                     max_bytes: int | None, check: ShapeCheck | None) -> np.ndarray:
    head = _read_exact(f, 4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES:
        raise DataError(f"{source}: not an IDX file (header bytes {head!r})")
    dtype = np.dtype(IDX_DTYPES[head[2]])
    ndim = head[3]
    dims = _read_exact(f, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(f"{source}: IDX header says {ndim} dims but the file ends after "
                        f"{4 + len(dims)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(dims, ">u4"))
    header = 4 + 4 * ndim
    count = 1
    for d in shape:          # Python ints: no overflow
        count *= d
    expected = header + count * dtype.itemsize
    if max_bytes is not None and expected > max_bytes:
        raise DataError(f"{source}: IDX header declares shape {shape} of {dtype} "
                        f"({expected} bytes), more than the {max_bytes} allowed")
    if check is not None:
        check(dtype, shape)
    payload = np.empty(expected - header, dtype=np.uint8)
    view = memoryview(payload)
    got = 0
    while got < payload.size:                       # BufferedReader may return short reads
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    if got < payload.size:
        raise DataError(f"{source}: IDX shape {shape} of {dtype} needs {expected} bytes, "
                        f"the file has only {header + got} (truncated)")
    if _read_exact(f, 1):
        raise DataError(f"{source}: IDX shape {shape} of {dtype} needs {expected} bytes, "
                        "the file has more (trailing data, or not this header's file)")
    if sha256 is not None:
        h = hashlib.sha256(head + dims)
        h.update(payload)
        got_sha = h.hexdigest()
        if got_sha != sha256:
            raise ChecksumError(f"{source}: SHA-256 of the decompressed content is {got_sha}, "
                                f"expected {sha256} (corrupt or different file; pass "
                                "verify=False to load it anyway)")
    arr = payload.view(dtype).reshape(shape)
    # native byte order: a copy only for multi-byte big-endian data (payload is our own buffer)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path, array: np.ndarray) -> None:
    """Writes `array` as an IDX file (atomically); gzip-compressed when `path` ends with .gz."""
    import gzip

    a = np.asarray(array)
    native = a.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise TypeError(f"array: IDX cannot store dtype {a.dtype}; use one of "
                        f"{sorted(str(d) for d in _IDX_CODES)}")
    if a.ndim == 0 or a.ndim > 255:
        raise ValueError(f"array: IDX needs 1 to 255 dims, got shape {a.shape}")
    if any(d >= 1 << 32 for d in a.shape):
        raise ValueError(f"array: IDX dims must be < 2**32, got shape {a.shape}")
    code = _IDX_CODES[native]
    header = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
    body = np.ascontiguousarray(a, dtype=IDX_DTYPES[code]).tobytes()
    path = Path(path)
    with atomic_output(path) as out:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as f:
                f.write(header + body)
        else:
            out.write(header + body)
