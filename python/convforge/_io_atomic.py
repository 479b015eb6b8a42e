"""Atomic file writes: every file convforge writes (weights, checkpoints, metrics.json,
curves.png) goes through `atomic_write`.

The data goes to a temporary file in the destination's folder, is flushed and fsync'ed, and
then renamed over the destination with os.replace (atomic on POSIX and Windows within one file
system). A crash, kill -9 or a write error (disk full) at any point leaves either the complete
old file or the complete new one, never a truncated mix; a failed write removes its temporary
file. The folder is fsync'ed after the rename (POSIX) so the new name survives a power loss.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator, Union

__all__ = ["atomic_write", "write_bytes", "write_text"]

PathLike = Union[str, "os.PathLike[str]"]


def _fsync_dir(folder: str) -> None:
    """Persists a rename in `folder` (best effort: not every platform/file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask(x) sets it,
    for a moment, for every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", encoding: str | None = None
                 ) -> Iterator[IO]:
    """`with atomic_write(path) as f: f.write(...)`: path holds the new content only once the
    block has ended without an exception; otherwise the old file (if any) is left untouched.

    mode: "wb" or "w" (text, with `encoding`, default utf-8). The new file gets the usual
    permissions of a freshly created file (umask applied), like open(path, "w") would give.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        if hasattr(os, "fchmod"):   # mkstemp makes it 0600; give it what open() would
            os.fchmod(fd, 0o666 & ~_umask())
        if mode == "w":
            f = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline="")
        else:
            f = os.fdopen(fd, "wb")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def write_bytes(path: PathLike, data: bytes) -> None:
    """Atomically replaces `path` with `data`."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Atomically replaces `path` with `text`."""
    with atomic_write(path, "w", encoding) as f:
        f.write(text)
