"""Guards for reading untrusted data files: one error class, size limits, bounded decompression,
tar members checked by their declared size, images checked by their header before decoding.

Every loader in convforge.data reads files a user (or a download) put on disk, so a file may be
corrupt or crafted. The rules here:
- Nothing is inflated without a bound: a compressed stream may give at most
  `inflate_limit(compressed_size)` bytes (a generous ratio over its own size plus a fixed slack).
  Real image archives (JPEG/PNG inside) inflate about 1-2x and the MNIST-family IDX files 2-5x,
  while a decompression bomb inflates about 1000x.
- A tar member is read only after its declared size passed `MAX_MEMBER_BYTES`.
- An image is decoded only after its header's width x height passed the caller's cap.
- Corrupt or oversized data raises DataError (a ValueError) with one line naming the file.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import tarfile
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .._io_atomic import atomic_write

__all__ = ["ChecksumError", "DataError"]


class DataError(ValueError):
    """A data file is corrupt, truncated, crafted or larger than its format/dataset allows.

    The message is one line that names the file. A ValueError, so `except ValueError` catches it.
    """


class ChecksumError(DataError):
    """A file's SHA-256 (or MD5) is not the expected one."""


MiB = 1 << 20
# A compressed stream may inflate to at most INFLATE_SLACK + INFLATE_RATIO x its own size
# (the same idea as Apache POI's zip-bomb guard, which allows 100x).
INFLATE_RATIO = 100
INFLATE_SLACK = 64 * MiB
# The largest tar member read into memory: an encoded image or one CIFAR-10 batch (~31 MB).
MAX_MEMBER_BYTES = 64 * MiB
# Default cap on one image's width x height (48 MiB as RGB uint8); datasets with a known size
# (CIFAR-10: exactly 32x32) check that size instead.
MAX_IMAGE_PIXELS = 4096 * 4096
# Default cap on all decoded images of one load_image_tree call together.
MAX_DECODED_BYTES = 4 << 30
# Image formats decoded (by content, whatever the file's suffix says): no exotic PIL plugins.
IMAGE_FORMATS = ("JPEG", "PNG", "BMP")


def inflate_limit(compressed_size: int) -> int:
    """The most bytes a compressed file of `compressed_size` bytes may inflate to."""
    return INFLATE_SLACK + INFLATE_RATIO * int(compressed_size)


class BoundedReader(io.RawIOBase):
    """Read-only stream over `inner` that raises DataError once more than `limit` bytes came out.

    Wraps a decompressor so that a bomb stops after `limit` bytes instead of filling memory or
    disk; the check runs before the data is handed on.
    """

    def __init__(self, inner: BinaryIO, limit: int, source: str):
        super().__init__()
        self._inner, self._limit, self._source = inner, int(limit), source
        self.count = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        # ask for one byte past the limit at most: enough to detect that the limit is passed
        want = min(len(view), self._limit - self.count + 1)
        data = self._inner.read(max(want, 0))
        n = len(data)
        self.count += n
        if self.count > self._limit:
            raise DataError(f"{self._source}: inflates to more than {self._limit} bytes "
                            "(limit for a file of this size; a decompression bomb or not "
                            "this format)")
        view[:n] = data
        return n


def _compression(path: Path) -> str | None:
    """'gz', 'bz2', 'xz' or None, from the file's magic bytes (whatever its name)."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head[:2] == b"\x1f\x8b":
        return "gz"
    if head[:3] == b"BZh":
        return "bz2"
    if head == b"\xfd7zXZ\x00":
        return "xz"
    return None


def open_bounded(path: Path, limit: int | None = None) -> io.BufferedReader:
    """`path`'s content, decompressed when it is gzip/bzip2/xz, as a stream that raises
    DataError past `limit` bytes (default: inflate_limit of the file size; for an uncompressed
    file the file size itself bounds it)."""
    kind = _compression(path)
    size = path.stat().st_size
    opener = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open, None: open}[kind]
    if kind is None:
        limit = size if limit is None else min(limit, size)
    elif limit is None:
        limit = inflate_limit(size)
    return io.BufferedReader(BoundedReader(opener(path, "rb"), limit, str(path)), 1 << 20)


def corrupt(source: str, e: BaseException) -> DataError:
    """DataError for an exception raised while reading `source` (one line, file named)."""
    detail = " ".join(str(e).split()) or type(e).__name__
    return DataError(f"{source}: corrupt or not the expected format ({type(e).__name__}: "
                     f"{detail})")


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` only once fully written and fsynced (the package's
    one atomic-write mechanism, convforge._io_atomic): readers, and a crash mid-write, see the
    old file or the new one, never a partial one. Creates the parent folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        yield f


# Errors the decompressors and tarfile raise on damaged input (gzip.BadGzipFile is an OSError),
# and the OSErrors that are about the file system, not the content: those propagate as they are.
READ_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError, tarfile.TarError)
FS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def iter_tar_members(archive: Path, want: Callable[[str], bool],
                     max_member_bytes: int = MAX_MEMBER_BYTES, limit: int | None = None,
                     read: bool = True) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    """(member, content) of every regular file of `archive` whose name passes `want`, in archive
    order, in one sequential pass (fast for .tar.gz). Each member's declared size is checked
    before it is read; the whole decompressed stream is bounded by `limit` (see open_bounded).
    With read=False the content is b"" (names only). Stop iterating early to stop reading.
    """
    try:
        with open_bounded(archive, limit) as stream, \
                tarfile.open(fileobj=stream, mode="r|") as tar:
            for m in tar:
                if not m.isfile() or not want(m.name):
                    continue
                if m.size > max_member_bytes:
                    raise DataError(f"{archive}: member {m.name!r} declares {m.size} bytes, "
                                    f"more than the {max_member_bytes} allowed for one member")
                if not read:
                    yield m, b""
                    continue
                f = tar.extractfile(m)
                data = f.read() if f is not None else b""
                if len(data) != m.size:
                    raise DataError(f"{archive}: member {m.name!r} is truncated "
                                    f"({len(data)} of {m.size} bytes)")
                yield m, data
    except (DataError, *FS_ERRORS):
        raise
    except READ_ERRORS as e:
        raise corrupt(str(archive), e) from None


def image_size(data: bytes, source: str, max_pixels: int | None = None) -> tuple[int, int]:
    """(H, W) from an encoded image's header (at most `max_pixels`), without decoding pixels."""
    return _open_image(data, source, None, None, max_pixels)[1]


def decode_image(data: bytes, source: str, mode: str, size: tuple[int, int] | None = None,
                 max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Encoded JPEG/PNG/BMP bytes -> uint8 (C, H, W); mode 'RGB' (C=3) or 'L' (C=1).

    The header is read first: the image must have exactly `size` (H, W) when given, and at most
    `max_pixels` pixels, before a pixel is decoded (DataError otherwise).
    """
    return _open_image(data, source, mode, size, max_pixels)[0]


def _open_image(data: bytes, source: str, mode: str | None, size: tuple[int, int] | None,
                max_pixels: int | None) -> tuple[np.ndarray | None, tuple[int, int]]:
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("decoding JPEG/PNG images needs Pillow: pip install pillow") from e
    try:
        # PIL warns (and past 2x raises) above its own global pixel cap: an error here
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as im:  # header only
                w, h = im.size
                if size is not None and (h, w) != tuple(size):
                    raise DataError(f"{source}: has shape HxW = {h}x{w}, expected "
                                    f"{size[0]}x{size[1]} (the dataset's/first image's size)")
                if max_pixels is not None and h * w > max_pixels:
                    raise DataError(f"{source}: image is {h}x{w} (HxW), more than the "
                                    f"{max_pixels} pixels allowed (max_image_pixels); not "
                                    "decoded")
                if h * w == 0:
                    raise DataError(f"{source}: empty image ({h}x{w})")
                if mode is None:
                    return None, (h, w)
                arr = np.asarray(im.convert(mode), dtype=np.uint8)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{source}: image too large to decode ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # PIL's errors on damaged images
        raise corrupt(source, e) from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr.transpose(2, 0, 1), (h, w)
