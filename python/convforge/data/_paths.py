"""Small shared helpers of the loaders: the user cache dir, file digests, progress messages."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from ._safety import ChecksumError


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/convforge`, else `~/.cache/convforge` (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convforge"


def _digest_file(path, algo: str, chunk: int = 1 << 20) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path, chunk: int = 1 << 20) -> str:
    return _digest_file(path, "sha256", chunk)


def verify_file(path, sha256: str | None = None, md5: str | None = None) -> None:
    """Raises ChecksumError unless the file has the given SHA-256 (and/or MD5) digest."""
    path = Path(path)
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256.lower():
            raise ChecksumError(f"{path}: SHA-256 is {got}, expected {sha256} (corrupt or "
                                "different file)")
    if md5 is not None:
        got = _digest_file(path, "md5")
        if got != md5.lower():
            raise ChecksumError(f"{path}: MD5 is {got}, expected {md5} (corrupt or "
                                "different file)")


def say(msg: str) -> None:
    print(f"convforge.data: {msg}", file=sys.stderr, flush=True)
