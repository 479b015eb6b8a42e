"""Image trees `train/<class>/<image>`, `test/<class>/<image>` (folder, .tar, .tar.gz): decoding
with limits, and the decoded-array cache used by load_image_tree and load_cifar10.

Limits (DataError when passed, checked before the bytes or pixels they bound are read):
each file/member at most MAX_MEMBER_BYTES; each image's header size exactly `image_size` when
given, else at most `max_image_pixels`, and equal to the first image's; all decoded images
together at most MAX_DECODED_BYTES; a compressed archive inflates at most inflate_limit(size).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from . import _safety
from ._paths import cache_dir, say, sha256_file
from ._safety import (
    MAX_IMAGE_PIXELS,
    MAX_MEMBER_BYTES,
    ChecksumError,
    DataError,
    atomic_output,
    decode_image,
    image_size,
    iter_tar_members,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
Split = tuple[np.ndarray, np.ndarray]


def split_class_file(rel: str) -> tuple[str, str, str] | None:
    """'train/cat/0001.jpg' (any leading folders) -> ('train', 'cat', '0001.jpg'), else None."""
    parts = Path(rel).parts
    if len(parts) < 3 or Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
        return None
    if parts[-3] not in ("train", "test") or parts[-1].startswith("."):
        return None
    return parts[-3], parts[-2], parts[-1]


class _Decoder:
    """Decodes the images of one tree: the first image fixes (H, W) unless `size` is given,
    every image's header is checked before its pixels are decoded, and the decoded total is
    bounded."""

    def __init__(self, source: str, mode: str, size: tuple[int, int] | None, max_pixels: int):
        self.source, self.mode, self.size, self.max_pixels = source, mode, size, max_pixels
        self.total = 0
        self.channels = 3 if mode == "RGB" else 1

    def __call__(self, data: bytes, name: str) -> np.ndarray:
        where = f"{self.source}:{name}"
        if self.size is None:   # the first image fixes the size (header only, pixel cap checked)
            self.size = image_size(data, where, self.max_pixels)
        self.total += self.channels * self.size[0] * self.size[1]
        if self.total > _safety.MAX_DECODED_BYTES:
            raise DataError(f"{self.source}: the decoded images pass "
                            f"{_safety.MAX_DECODED_BYTES} bytes (MAX_DECODED_BYTES)")
        return decode_image(data, where, self.mode, self.size, self.max_pixels)


def _stack_tree(items: list[tuple[str, str, str, np.ndarray]],
                source: str) -> tuple[dict[str, Split], list[str]]:
    """(split, class, file, image) items -> per split sorted (x, y) and the sorted classes."""
    classes = sorted({c for s, c, _, _ in items if s == "train"})
    if not classes:
        raise DataError(f"{source}: no images under train/<class>/")
    index = {c: i for i, c in enumerate(classes)}
    shape = items[0][3].shape
    out = {}
    for split in ("train", "test"):
        chosen = sorted((c, f, img) for s, c, f, img in items if s == split)
        if not chosen:
            raise DataError(f"{source}: no images under {split}/<class>/")
        for c, f, img in chosen:
            if c not in index:
                raise DataError(f"{source}: class {c!r} is in {split}/ but not in train/")
            if img.shape != shape:
                raise DataError(f"{source}: {split}/{c}/{f} has shape {img.shape} (C, H, W), "
                                f"others have {shape}")
        x = np.stack([img for _, _, img in chosen])
        y = np.array([index[c] for c, _, _ in chosen], dtype=np.int64)
        out[split] = (x, y)
    return out, classes


def decode_tree_folder(folder: Path, mode: str, size=None,
                       max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[dict[str, Split], list[str]]:
    decode = _Decoder(str(folder), mode, size, max_pixels)
    items = []
    for split in ("train", "test"):
        for p in sorted((folder / split).glob("*/*")):
            key = split_class_file(str(p.relative_to(folder)))
            if key is None or not p.is_file():
                continue
            n = p.stat().st_size
            if n > MAX_MEMBER_BYTES:
                raise DataError(f"{p}: {n} bytes, more than the {MAX_MEMBER_BYTES} allowed "
                                "for one image file")
            items.append(key + (decode(p.read_bytes(), str(p.relative_to(folder))),))
    if not items:
        raise DataError(f"{folder}: no images under train/<class>/ or test/<class>/")
    return _stack_tree(items, str(folder))


def decode_tree_tar(archive: Path, mode: str, size=None,
                    max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[dict[str, Split], list[str]]:
    decode = _Decoder(str(archive), mode, size, max_pixels)
    items = []
    for m, data in iter_tar_members(archive, lambda name: split_class_file(name) is not None):
        items.append(split_class_file(m.name) + (decode(data, m.name),))
    if not items:
        raise DataError(f"{archive}: no members train/<class>/<image> or test/<class>/<image>")
    return _stack_tree(items, str(archive))


def _tree_fingerprint(folder: Path) -> str:
    """Hash of every image's relative path, size and mtime (cheap; no decoding)."""
    h = hashlib.sha256()
    for split in ("train", "test"):
        for p in sorted((folder / split).glob("*/*")):
            st = p.stat()
            h.update(f"{p.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _load_cached(npz: Path, size) -> tuple[tuple[Split, Split], list[str]] | None:
    """The cached arrays, or None when the cache file is unreadable or of another size (then
    it is decoded again and rewritten)."""
    try:
        with np.load(npz, allow_pickle=False) as z:
            classes = [str(c) for c in z["classes"]]
            tr, te = (z["x_train"], z["y_train"]), (z["x_test"], z["y_test"])
    except Exception as e:  # noqa: BLE001 - a damaged cache is only a cache miss
        say(f"ignoring the unreadable cache file {npz} ({type(e).__name__}: {e})")
        return None
    if size is not None and (tr[0].shape[2:] != tuple(size) or te[0].shape[2:] != tuple(size)):
        return None
    return (tr, te), classes


def load_image_tree(source, *, mode: str = "RGB", cache: bool = True,
                    expected_sha256: str | None = None, image_size: tuple[int, int] | None = None,
                    max_image_pixels: int = MAX_IMAGE_PIXELS
                    ) -> tuple[tuple[Split, Split], list[str]]:
    """Decodes a `train/<class>/*`, `test/<class>/*` image tree (folder, .tar or .tar.gz).

    Returns `((x_train, y_train), (x_test, y_test)), classes`: x uint8 (N, C, H, W), labels are
    indices into the sorted class-folder names, samples sorted by (class, file name).
    Every image must be `image_size` (H, W) when given, else the first image's size, with at
    most `max_image_pixels` pixels; sizes are checked from each header before decoding, and
    damaged or oversized data raises DataError (see convforge.data._images for all limits).
    Decoding tens of thousands of JPEGs takes a while, so with `cache=True` the arrays are
    stored as an .npz in the user cache dir, keyed by the archive's SHA-256 (for a folder:
    by its file names, sizes and mtimes), and later calls load that instead.
    """
    source = Path(source)
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    if image_size is not None and (len(image_size) != 2 or min(image_size) < 1):
        raise ValueError(f"image_size must be (H, W) >= 1, got {image_size!r}")
    if source.is_file():
        key = sha256_file(source)
        if expected_sha256 is not None and key != expected_sha256:
            raise ChecksumError(f"{source}: SHA-256 is {key}, expected {expected_sha256} "
                                "(corrupt or different file; pass verify=False to load it "
                                "anyway)")
    elif source.is_dir():
        key = _tree_fingerprint(source)
    else:
        raise FileNotFoundError(f"source: {source} is neither a folder nor an archive")
    npz = cache_dir() / f"imagetree-{source.name.split('.')[0]}-{mode}-{key[:16]}.npz"
    if cache and npz.is_file():
        cached = _load_cached(npz, image_size)
        if cached is not None:
            return cached
    say(f"decoding the images in {source} once (CIFAR-10's 60,000 JPEGs take 30-60 s)")
    decode = decode_tree_tar if source.is_file() else decode_tree_folder
    splits, classes = decode(source, mode, image_size, max_image_pixels)
    if cache:
        with atomic_output(npz) as f:
            np.savez(f, x_train=splits["train"][0], y_train=splits["train"][1],
                     x_test=splits["test"][0], y_test=splits["test"][1],
                     classes=np.array(classes))
        say(f"cached the decoded arrays in {npz} (delete it to decode again)")
    return (splits["train"], splits["test"]), classes
