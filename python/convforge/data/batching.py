"""Mini-batch sources for model.fit: in-memory `Batches` and disk-streaming `StreamingBatches`.

Both are iterables with `len()` = batches per epoch; each `iter()` is one epoch yielding
`(xb, yb)`: xb (B, C, H, W), yb (B,) int64. One Generator seeded once drives the shuffling and
the augmentation, so epoch k of a given seed is always the same, and epochs differ from each
other. With an `augment` pipeline the batch is cast to `dtype` (float32 when not given) first,
as model.fit does; without one, x keeps its dtype unless `dtype` is given.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import numpy as np

from .._array import on_device_of, positive_int
from ._images import IMAGE_SUFFIXES, split_class_file
from ._paths import cache_dir, say, sha256_file
from ._safety import (
    FS_ERRORS,
    MAX_IMAGE_PIXELS,
    MAX_MEMBER_BYTES,
    READ_ERRORS,
    DataError,
    _compression,
    atomic_output,
    corrupt,
    decode_image,
    iter_tar_members,
)

__all__ = ["Batches", "StreamingBatches", "random_subset", "train_val_split"]

Augmenter = Callable[[object, np.random.Generator], object]


def _check_batch_args(batch_size: int, augment, dtype) -> np.dtype | None:
    positive_int(batch_size, "batch_size")
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be callable (x, rng) -> x, got {type(augment).__name__}")
    if dtype is None:
        return np.dtype(np.float32) if augment is not None else None
    dt = np.dtype(dtype)
    if augment is not None and dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64 when augmenting, got {dt}")
    return dt


def _n_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


class Batches:
    """Shuffled mini-batches of in-memory arrays (NumPy or CuPy; batches stay on x's device).

        for xb, yb in Batches(x, y, batch_size=64, shuffle=True, seed=0, augment=aug): ...
    """

    def __init__(self, x, y, batch_size: int = 32, shuffle: bool = True,
                 seed: int | None = None, augment: Augmenter | None = None,
                 dtype=None, drop_last: bool = False):
        if getattr(x, "ndim", 0) < 1:
            raise ValueError(f"x must be an array with a batch axis, got {type(x).__name__}")
        if y is not None and (getattr(y, "ndim", 0) < 1 or y.shape[0] != x.shape[0]):
            raise ValueError(f"x and y must have the same length: x {tuple(x.shape)}, "
                             f"y {tuple(getattr(y, 'shape', ()))}")
        self.dtype = _check_batch_args(batch_size, augment, dtype)
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.augment = augment
        self.drop_last = bool(drop_last)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return _n_batches(self.x.shape[0], self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[tuple[object, object]]:
        n = self.x.shape[0]
        order = self.rng.permutation(n) if self.shuffle else None
        if order is not None:  # on each array's device once per epoch, not once per batch
            ox = on_device_of(self.x, order)
            oy = None if self.y is None else on_device_of(self.y, order)
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, n)
            if order is None:  # contiguous slices: views, copied only if cast or augmented
                xb = self.x[lo:hi]
                yb = None if self.y is None else self.y[lo:hi]
            else:
                xb = self.x[ox[lo:hi]]                            # (B, ...)
                yb = None if self.y is None else self.y[oy[lo:hi]]
            if self.dtype is not None:
                xb = xb.astype(self.dtype)
            if self.augment is not None:
                xb = self.augment(xb, self.rng)
            yield xb, yb


def train_val_split(x, y, val_fraction: float, seed: int | None = None):
    """Random split -> (x_train, y_train), (x_val, y_val); val gets round(fraction * N) samples."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same length: x {x.shape}, y {y.shape}")
    n = x.shape[0]
    n_val = round(val_fraction * n)
    order = np.random.default_rng(seed).permutation(n)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return (x[train], y[train]), (x[val], y[val])


def random_subset(x, y, n: int, seed: int | None = None):
    """`n` samples drawn without replacement (kept in their original order)."""
    if n < 1 or n > x.shape[0]:
        raise ValueError(f"n must be in 1..{x.shape[0]}, got {n}")
    idx = np.sort(np.random.default_rng(seed).permutation(x.shape[0])[:n])
    return x[idx], y[idx]


class StreamingBatches:
    """Mini-batches decoded from disk per batch: an image tree `<split>/<class>/<image>`.

    `source` is a folder holding `train/` and `test/`, an uncompressed .tar, or a .tar.gz
    (.tar.bz2, .tar.xz). Only file names, labels and (for tar) byte offsets are kept in memory;
    each batch reads and decodes its own images, so the decoded set is never held whole. A
    compressed tar cannot be read at random offsets, so its image members are copied once into
    the user cache dir as a plain .tar (keyed by the archive's SHA-256) and read from there.

    Limits (DataError, checked before the bytes they bound are read or written): every image
    file/member at most MAX_MEMBER_BYTES; the decompressed archive at most
    convforge.data._safety.inflate_limit(archive size), so the cache never grows past it;
    every image `image_size` (H, W) when given, else the first image's size, with at most
    `max_image_pixels` pixels, checked from its header before decoding.

    Labels index the sorted class-folder names of `train/` (`classes`), as load_cifar10 does.
    `limit` keeps a seeded random subset of that many images. `color_mode`: 'rgb' or 'grayscale'.
    """

    def __init__(self, source: str | os.PathLike[str], split: str = "train",
                 batch_size: int = 32, shuffle: bool = True, seed: int | None = None,
                 augment: Augmenter | None = None, dtype=None, drop_last: bool = False,
                 limit: int | None = None, color_mode: str = "rgb",
                 image_size: tuple[int, int] | None = None,
                 max_image_pixels: int = MAX_IMAGE_PIXELS):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if color_mode not in ("rgb", "grayscale"):
            raise ValueError(f"color_mode must be 'rgb' or 'grayscale', got {color_mode!r}")
        if image_size is not None and (len(image_size) != 2 or min(image_size) < 1):
            raise ValueError(f"image_size must be (H, W) >= 1, got {image_size!r}")
        self.dtype = _check_batch_args(batch_size, augment, dtype)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.augment = augment
        self.drop_last = bool(drop_last)
        self.mode = "RGB" if color_mode == "rgb" else "L"
        self.max_image_pixels = int(max_image_pixels)
        self.rng = np.random.default_rng(seed)
        self.split = split
        src = Path(source)
        self._tar: Path | None = None
        if src.is_dir():
            entries = []
            for p in sorted(src.glob("*/*/*")):
                key = split_class_file(str(p.relative_to(src))) if p.is_file() else None
                if key is not None:
                    _check_member_size(p.stat().st_size, str(p))
                    entries.append((key, p))
        elif src.is_file():
            self._tar = self._plain_tar(src)
            entries = self._tar_entries(self._tar)
        else:
            raise FileNotFoundError(f"source: {src} is neither a folder nor an archive")
        self.classes: list[str] = sorted({k[1] for k, _ in entries if k[0] == "train"})
        if not self.classes:
            raise DataError(f"{src}: no images under train/<class>/ "
                            f"(image suffixes {IMAGE_SUFFIXES})")
        index = {c: i for i, c in enumerate(self.classes)}
        chosen = sorted((k[1], k[2], loc) for k, loc in entries if k[0] == split)
        if not chosen:
            raise DataError(f"{src}: no images under {split}/<class>/")
        missing = sorted({c for c, _, _ in chosen} - set(index))
        if missing:
            raise DataError(f"{src}: classes {missing} are in {split}/ but not in train/")
        self._locs = [loc for _, _, loc in chosen]
        self.labels = np.array([index[c] for c, _, _ in chosen], dtype=np.int64)  # (N,)
        self._keep = np.arange(len(self._locs))
        if limit is not None:
            if limit < 1 or limit > len(self._locs):
                raise ValueError(f"limit must be in 1..{len(self._locs)}, got {limit}")
            self._keep = np.sort(self.rng.permutation(len(self._locs))[:limit])
        self.source = src
        self._size = None if image_size is None else tuple(int(v) for v in image_size)
        first = self._read(int(self._keep[0]))
        self._size = first.shape[1:]   # every later image must match, checked from its header
        self.sample_shape = first.shape                                  # (C, H, W)

    @staticmethod
    def _tar_entries(plain: Path) -> list:
        """(key, (offset, size)) of the image members of an uncompressed tar, sizes checked."""
        entries = []
        try:
            with tarfile.open(plain, "r:") as tar:
                for m in tar:
                    key = split_class_file(m.name) if m.isfile() else None
                    if key is not None:
                        _check_member_size(m.size, f"{plain}:{m.name}")
                        entries.append((key, (m.offset_data, m.size)))
        except FS_ERRORS:
            raise
        except READ_ERRORS as e:
            raise corrupt(str(plain), e) from None
        return entries

    @staticmethod
    def _plain_tar(archive: Path) -> Path:
        """`archive` itself when uncompressed; else a plain tar of its image members in the
        cache dir, written once. Each member's declared size is checked before it is read and
        written, and the decompressed stream is bounded (see the class docstring)."""
        if _compression(archive) is None:
            return archive
        key = sha256_file(archive)
        plain = cache_dir() / f"stream-{archive.name.split('.')[0]}-{key[:16]}.tar"
        if plain.is_file():
            return plain
        say(f"decompressing {archive} once to {plain} for random access")
        with atomic_output(plain) as out, tarfile.open(fileobj=out, mode="w",
                                                       format=tarfile.PAX_FORMAT) as tar:
            for m, data in iter_tar_members(archive, lambda n: split_class_file(n) is not None):
                info = tarfile.TarInfo(m.name)     # name and size only: no links, modes, owners
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return plain

    def _read(self, i: int, handle: io.BufferedReader | None = None) -> np.ndarray:
        """Decodes sample i -> uint8 (C, H, W), its header checked first."""
        loc = self._locs[i]
        if self._tar is None:
            data, where = Path(loc).read_bytes(), str(loc)
        else:
            offset, size = loc
            if handle is None:
                with open(self._tar, "rb") as f:
                    f.seek(offset)
                    data = f.read(size)
            else:
                handle.seek(offset)
                data = handle.read(size)
            where = f"{self.source} at byte {offset}"
        return decode_image(data, where, self.mode, self._size, self.max_image_pixels)

    def __len__(self) -> int:
        return _n_batches(len(self._keep), self.batch_size, self.drop_last)

    @property
    def num_samples(self) -> int:
        return len(self._keep)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = self.rng.permutation(self._keep) if self.shuffle else self._keep
        with contextlib.ExitStack() as stack:  # one open tar file per epoch; None for a folder
            handle = None if self._tar is None else stack.enter_context(open(self._tar, "rb"))
            for b in range(len(self)):
                idx = order[b * self.batch_size:(b + 1) * self.batch_size]    # (B,)
                xb = np.empty((len(idx), *self.sample_shape), dtype=np.uint8)  # (B, C, H, W)
                for k, i in enumerate(idx):
                    xb[k] = self._read(int(i), handle)   # (C, H, W): size checked in _read
                yb = self.labels[idx]
                if self.dtype is not None:
                    xb = xb.astype(self.dtype)
                if self.augment is not None:
                    xb = self.augment(xb, self.rng)
                yield xb, yb


def _check_member_size(size: int, where: str) -> None:
    if size > MAX_MEMBER_BYTES:
        raise DataError(f"{where}: {size} bytes, more than the {MAX_MEMBER_BYTES} allowed for "
                        "one image file")
