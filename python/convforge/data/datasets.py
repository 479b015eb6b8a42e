"""Dataset loaders: MNIST, Fashion-MNIST, EMNIST letters (IDX files) and CIFAR-10.

Every loader returns `(x_train, y_train), (x_test, y_test)`: x uint8 NCHW, y int64 class ids.

Where the files are looked for, in order (the first place that has them wins):
  1. the `path=` argument: the dataset folder itself or a folder holding it (for CIFAR-10 also
     an archive file). An explicit path is final: if the data is not there, nothing else is tried.
  2. `$CONVFORGE_DATA/<folder>` (several roots may be joined with os.pathsep),
  3. the user cache dir `$XDG_CACHE_HOME/convforge/<folder>` (default `~/.cache/convforge`),
  4. system dirs `/usr/share/datasets/<folder>` (Debian's `dataset-fashion-mnist` installs to
     `/usr/share/datasets/fashion-mnist`) and `/usr/local/share/datasets/<folder>`,
  5. a download from the official mirrors into the cache dir, checked against SHA-256
     (off with `download=False` or `CONVFORGE_NO_DOWNLOAD=1`; without network it fails at once),
  6. a FileNotFoundError that lists every place tried and what to put where.

Folder names: `mnist/`, `fashion-mnist/`, `emnist-letters/`, and for CIFAR-10 either
`cifar-10-batches-py/` (the original pickled batches) or `cifar10-jpg/` (a JPEG tree
`train/<class>/*.jpg`, `test/<class>/*.jpg`, or `cifar10-jpg.tar.gz` holding one).

Checksums: IDX files are checked on the *decompressed* bytes (gzip headers differ between
copies of the same data: the shared MNIST train images and Debian's Fashion-MNIST files are
re-compressed originals). `verify=False` skips the check for local files; downloads are
always checked.

Safety: files are untrusted. CIFAR-10 pickles are read by a restricted unpickler that runs
nothing (convforge.data._cifar_pickle); IDX headers, tar member sizes and image sizes are
checked before anything is inflated or decoded (convforge.data._safety). Corrupt, crafted or
oversized data raises DataError (a ValueError; ChecksumError is one) naming the file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from .._array import array_module
from ._cifar_pickle import MAX_BATCH_BYTES, load_cifar_batch
from ._idx import read_idx, write_idx
from ._images import IMAGE_SUFFIXES, load_image_tree
from ._paths import cache_dir, sha256_file, verify_file
from ._paths import say as _say
from ._safety import ChecksumError, DataError, atomic_output, decode_image, iter_tar_members

PathLike = Union[str, "os.PathLike[str]"]
Split = tuple[np.ndarray, np.ndarray]

__all__ = [
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "ChecksumError",
    "DataError",
    "cache_dir",
    "data_roots",
    "download",
    "find_cifar10_images",
    "load_cifar10",
    "load_emnist_letters",
    "load_fashion_mnist",
    "load_image_tree",
    "load_mnist",
    "pad_images",
    "read_idx",
    "sha256_file",
    "verify_file",
    "write_idx",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SYSTEM_DIRS = (Path("/usr/share/datasets"), Path("/usr/local/share/datasets"))
DOWNLOAD_TIMEOUT_S = 10.0
MAX_DOWNLOAD_BYTES = 1 << 30   # the largest official file (NIST's EMNIST zip) is 562 MB


# --------------------------------------------------------------------------- places, hashes

def data_roots() -> list[tuple[str, Path]]:
    """(label, folder) pairs searched after an explicit path: $CONVFORGE_DATA, cache, system."""
    roots: list[tuple[str, Path]] = []
    env = os.environ.get("CONVFORGE_DATA", "")
    for part in env.split(os.pathsep):
        if part:
            roots.append(("$CONVFORGE_DATA", Path(part).expanduser()))
    roots.append(("user cache", cache_dir()))
    roots.extend(("system", d) for d in SYSTEM_DIRS)
    return roots


def _downloads_enabled(download: bool) -> bool:
    return download and os.environ.get("CONVFORGE_NO_DOWNLOAD", "") in ("", "0")


def download(url: str, dest: PathLike, sha256: str | None = None, md5: str | None = None,
             timeout: float = DOWNLOAD_TIMEOUT_S, max_bytes: int = MAX_DOWNLOAD_BYTES) -> Path:
    """Downloads `url` to `dest` via a temporary file; checks the digest before moving it in place.

    On a checksum mismatch the temporary file is deleted and ChecksumError is raised; more than
    `max_bytes` raises DataError; network errors propagate (urllib's URLError/OSError), so no
    partial file is ever left at `dest`.
    """
    dest = Path(dest)
    digests = {name: hashlib.new(name) for name, want in (("sha256", sha256), ("md5", md5))
               if want is not None}
    with atomic_output(dest) as out:   # replaces dest only if the block below completes
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            n = 0
            for block in iter(lambda: resp.read(1 << 20), b""):
                n += len(block)
                if n > max_bytes:
                    raise DataError(f"{url}: more than {max_bytes} bytes, not the expected file")
                out.write(block)
                for h in digests.values():
                    h.update(block)
        for name, want in (("sha256", sha256), ("md5", md5)):
            if want is not None and digests[name].hexdigest() != want.lower():
                raise ChecksumError(f"{url}: {name.upper().replace('SHA256', 'SHA-256')} is "
                                    f"{digests[name].hexdigest()}, expected {want} (corrupt or "
                                    "different file)")
    return dest


def _not_found(what: str, tried: Sequence[str], hint: str) -> FileNotFoundError:
    lines = "\n".join(f"  - {t}" for t in tried)
    return FileNotFoundError(
        f"{what} not found. Looked in:\n{lines}\n{hint}\n"
        "Pass its folder as path= (CLI: --data PATH), set CONVFORGE_DATA to a folder holding "
        f"it, or put it in the user cache dir ({cache_dir()}) or a system dir "
        f"({', '.join(str(d) for d in SYSTEM_DIRS)})."
    )


# --------------------------------------------------------------------------- IDX datasets

@dataclass(frozen=True)
class _IdxDataset:
    """One IDX-format dataset: folder name, file stems with content SHA-256, download source."""

    title: str
    folder: str
    # role -> (file stem without .gz, SHA-256 of the decompressed file)
    files: dict[str, tuple[str, str]]
    # samples per split in the official files: an IDX header declaring more is rejected before
    # its payload is read (a decompression bomb or another dataset)
    counts: tuple[int, int]
    mirrors: tuple[str, ...] = ()  # base URLs holding <stem>.gz
    archive: tuple[str, str, str] | None = None  # (zip URL, md5, folder in the zip)
    image_hw: tuple[int, int] = (28, 28)
    label_range: tuple[int, int] = (0, 9)


_MNIST = _IdxDataset(
    "MNIST", "mnist",
    {   # published SHA-256 of the uncompressed originals (see shared/data/mnist/README.md)
        "train_images": ("train-images-idx3-ubyte",
                         "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        "train_labels": ("train-labels-idx1-ubyte",
                         "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "test_images": ("t10k-images-idx3-ubyte",
                        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        "test_labels": ("t10k-labels-idx1-ubyte",
                        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
    (60000, 10000),
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
             "https://storage.googleapis.com/cvdf-datasets/mnist/"),
)

_FASHION_MNIST = _IdxDataset(
    "Fashion-MNIST", "fashion-mnist",
    {   # SHA-256 of the uncompressed files of Debian's dataset-fashion-mnist package; its .gz
        # files are the official ones with the stored name stripped and a new mtime, the
        # deflate streams are the same size
        "train_images": ("train-images-idx3-ubyte",
                         "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        "train_labels": ("train-labels-idx1-ubyte",
                         "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        "test_images": ("t10k-images-idx3-ubyte",
                        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "test_labels": ("t10k-labels-idx1-ubyte",
                        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    },
    (60000, 10000),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
)

_EMNIST_LETTERS = _IdxDataset(
    "EMNIST letters", "emnist-letters",
    {   # SHA-256 of the decompressed files (shared/data/emnist-letters/README.md)
        "train_images": ("emnist-letters-train-images-idx3-ubyte",
                         "7a786db773b2096a7b9a3f3275388a27711f4451548c3ca8be96f09ae94371ae"),
        "train_labels": ("emnist-letters-train-labels-idx1-ubyte",
                         "e8e94c3f4353d5532fd9604b939cb4c76e7847945b9b0d9ff7884d881dead6bc"),
        "test_images": ("emnist-letters-test-images-idx3-ubyte",
                        "d5895e82d14765b22a84342337bc5c25f1affd61cc97d3821d4e65504bbf8dbc"),
        "test_labels": ("emnist-letters-test-labels-idx1-ubyte",
                        "22dbcde0a929a7f166bdac863b9195b2994d840a1e082f8f6daaeac5606376a6"),
    },
    (124800, 20800),
    # NIST's only distribution is one 562 MB zip of every EMNIST split (published MD5)
    archive=("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
             "58c8d27c78d21e728a6bc7b3cc06412e", "gzip/"),
    label_range=(1, 26),
)


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        p = folder / name
        if p.is_file():
            return p
    return None


def _idx_complete(folder: Path, ds: _IdxDataset) -> bool:
    return all(_idx_file(folder, stem) is not None for stem, _ in ds.files.values())


def _download_idx(ds: _IdxDataset, dest: Path) -> None:
    """Fetches every file of `ds` into `dest`; each is checked before it is kept."""
    dest.mkdir(parents=True, exist_ok=True)
    if ds.archive is not None:
        url, md5, inner = ds.archive
        zip_path = dest / Path(url).name
        _say(f"downloading {url} (large) to {zip_path}")
        download(url, zip_path, md5=md5)
        with zipfile.ZipFile(zip_path) as z:   # MD5-checked above
            for role, (stem, sha) in ds.files.items():
                target = dest / (stem + ".gz")
                with z.open(inner + stem + ".gz") as src, atomic_output(target) as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                try:
                    _read_idx_checked(ds, role, target, sha)
                except DataError:
                    target.unlink()
                    raise
        zip_path.unlink()
        return
    for role, (stem, sha) in ds.files.items():
        target = dest / (stem + ".gz")
        if target.is_file():
            continue
        unchecked = dest / (stem + ".gz.unchecked")
        errors = []
        for base in ds.mirrors:
            url = base + stem + ".gz"
            try:
                _say(f"downloading {url}")
                download(url, unchecked)
                # content check (gzip headers vary by mirror)
                _read_idx_checked(ds, role, unchecked, sha)
                os.replace(unchecked, target)
                break
            except Exception as e:  # noqa: BLE001 - try the next mirror, report all at the end
                errors.append(f"{url}: {type(e).__name__}: {e}")
            finally:
                if unchecked.exists():
                    unchecked.unlink()
        else:
            raise OSError("; ".join(errors))


def _find_idx(ds: _IdxDataset, path: PathLike | None, download_ok: bool) -> Path:
    """The folder holding all files of `ds`, following the module's search order."""
    if path is not None:
        p = Path(path).expanduser()
        for cand in (p, p / ds.folder):
            if cand.is_dir() and _idx_complete(cand, ds):
                return cand
        raise _not_found(ds.title, [f"path= {p}", f"path= {p / ds.folder}"],
                         _idx_hint(ds))
    tried = []
    if not os.environ.get("CONVFORGE_DATA"):
        tried.append("$CONVFORGE_DATA (not set)")
    for label, root in data_roots():
        cand = root / ds.folder
        if cand.is_dir() and _idx_complete(cand, ds):
            return cand
        tried.append(f"{label}: {cand}")
    dest = cache_dir() / ds.folder
    if _downloads_enabled(download_ok):
        try:
            _download_idx(ds, dest)
            return dest
        except Exception as e:  # noqa: BLE001 - reported in the not-found error
            tried.append(f"download to {dest} failed: {type(e).__name__}: {e}")
    else:
        tried.append("download: disabled (download=False or CONVFORGE_NO_DOWNLOAD=1)")
    raise _not_found(ds.title, tried, _idx_hint(ds))


def _idx_hint(ds: _IdxDataset) -> str:
    names = ", ".join(stem + "[.gz]" for stem, _ in ds.files.values())
    return f"Expected a folder '{ds.folder}/' holding {names}."


def _read_idx_checked(ds: _IdxDataset, role: str, path: Path, sha: str | None) -> np.ndarray:
    """read_idx with `ds`'s limits: uint8, (N, H, W) images or (N,) labels, N at most the
    official count; checked on the header, before the payload is inflated."""
    n_max = ds.counts[0 if role.startswith("train") else 1]
    want = (n_max, *ds.image_hw) if role.endswith("images") else (n_max,)

    want_text = "(N,)" if len(want) == 1 else "(N, {}, {})".format(*ds.image_hw)

    def check(dtype: np.dtype, shape: tuple[int, ...]) -> None:
        if dtype != np.uint8 or len(shape) != len(want) or shape[1:] != want[1:] \
                or shape[0] > n_max:
            raise DataError(f"{path}: IDX header declares {dtype} {shape}; {ds.title} "
                            f"{role.replace('_', ' ')} are uint8 {want_text} with N <= {n_max}")

    a = read_idx(path, sha256=sha, check=check)
    lo, hi = ds.label_range
    if role.endswith("labels") and a.size and (a.min() < lo or a.max() > hi):
        raise DataError(f"{path}: {ds.title} labels must be {lo}..{hi}, got "
                        f"{a.min()}..{a.max()}")
    return a


def _load_idx_dataset(ds: _IdxDataset, path: PathLike | None, verify: bool,
                      download: bool) -> tuple[Split, Split]:
    folder = _find_idx(ds, path, download)
    arrays = {}
    for role, (stem, sha) in ds.files.items():
        arrays[role] = _read_idx_checked(ds, role, _idx_file(folder, stem),
                                         sha if verify else None)
    out = []
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{folder}: {ds.title} {split} has {x.shape[0]} images but "
                            f"{y.shape[0]} labels")
        out.append((x[:, None, :, :], y.astype(np.int64)))
    return out[0], out[1]


def load_mnist(path: PathLike | None = None, *, verify: bool = True,
               download: bool = True) -> tuple[Split, Split]:
    """MNIST digits: x uint8 (60000, 1, 28, 28) / (10000, 1, 28, 28), y int64 in 0..9."""
    return _load_idx_dataset(_MNIST, path, verify, download)


def load_fashion_mnist(path: PathLike | None = None, *, verify: bool = True,
                       download: bool = True) -> tuple[Split, Split]:
    """Fashion-MNIST: same shapes as MNIST, y in 0..9 (names in FASHION_MNIST_CLASSES)."""
    return _load_idx_dataset(_FASHION_MNIST, path, verify, download)


def load_emnist_letters(path: PathLike | None = None, *, verify: bool = True,
                        download: bool = True) -> tuple[Split, Split]:
    """EMNIST letters: x uint8 (124800, 1, 28, 28) / (20800, 1, 28, 28), y int64 0..25 (A..Z).

    The files store labels 1..26 and every image transposed; both are undone here, so the
    letters come back upright and label 0 is 'A'.
    """
    (xtr, ytr), (xte, yte) = _load_idx_dataset(_EMNIST_LETTERS, path, verify, download)
    out = [(np.ascontiguousarray(x.transpose(0, 1, 3, 2)), y - 1)   # labels 1..26 checked
           for x, y in ((xtr, ytr), (xte, yte))]
    return out[0], out[1]


# --------------------------------------------------------------------------- CIFAR-10

_CIFAR_PY_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# published digests of cifar-10-python.tar.gz (SHA-256 as used by Keras, MD5 from the CIFAR page)
_CIFAR_PY_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
_CIFAR_PY_MD5 = "c58f30108f718f92721af3b95e74349a"
_CIFAR_PY_DIR = "cifar-10-batches-py"
_CIFAR_PY_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
_CIFAR_JPG_DIR = "cifar10-jpg"
_CIFAR_JPG_ARCHIVE = "cifar10-jpg.tar.gz"
# from shared/data/cifar10-jpg/SHA256SUMS (a JPEG re-encoding; no published checksum exists)
_CIFAR_JPG_SHA256 = "caee4964ee157074cd166f19fc57801edbb2493096149057c636738291eee788"


def _load_cifar_batches(read) -> tuple[Split, Split]:
    """`read(name) -> (bytes, source)` gives one batch file, parsed by the restricted unpickler
    (convforge.data._cifar_pickle: runs nothing a file names)."""
    parts = {name: load_cifar_batch(*read(name)) for name in _CIFAR_PY_FILES}
    xtr = np.concatenate([parts[n][0] for n in _CIFAR_PY_FILES[:5]])
    ytr = np.concatenate([parts[n][1] for n in _CIFAR_PY_FILES[:5]])
    return (xtr, ytr), parts["test_batch"]


def _cifar_pickle_dir(folder: Path) -> tuple[Split, Split]:
    def read(name: str) -> tuple[bytes, str]:
        p = folder / name
        n = p.stat().st_size
        if n > MAX_BATCH_BYTES:   # checked before reading it into memory
            raise DataError(f"{p}: {n} bytes, more than a CIFAR-10 batch "
                            f"({MAX_BATCH_BYTES} at most)")
        return p.read_bytes(), str(p)

    return _load_cifar_batches(read)


def _cifar_pickle_tar(archive: Path) -> tuple[Split, Split]:
    """One sequential pass over the archive, keeping the first member named like each batch."""
    found: dict[str, tuple[bytes, str]] = {}
    wanted = set(_CIFAR_PY_FILES)
    for m, data in iter_tar_members(archive, lambda n: Path(n).name in wanted - set(found),
                                    max_member_bytes=MAX_BATCH_BYTES):
        found[Path(m.name).name] = (data, f"{archive}:{m.name}")
        if len(found) == len(wanted):
            break
    missing = [n for n in _CIFAR_PY_FILES if n not in found]
    if missing:
        raise DataError(f"{archive}: no member(s) {', '.join(missing)} (not a CIFAR-10 python "
                        "archive)")
    return _load_cifar_batches(found.__getitem__)


def _is_pickle_tar(archive: Path) -> bool:
    """Whether the first batch file or image member met is a batch (names only, no reading)."""
    def marker(name: str) -> bool:
        return Path(name).name == "data_batch_1" or Path(name).suffix.lower() in IMAGE_SUFFIXES

    for m, _ in iter_tar_members(archive, marker, read=False):
        return Path(m.name).name == "data_batch_1"
    return False


def _cifar_source(root: Path, explicit: bool) -> tuple[str, Path] | None:
    """Which CIFAR-10 form `root` holds, or None: as a known child folder/archive, or (for an
    explicit path) as `root` itself.

    Kinds: 'pickle_dir', 'pickle_tar', 'image_tree', 'image_tar'. Lossless pickles come first.
    """
    if root.is_file():
        if explicit and root.name.endswith((".tar", ".tar.gz", ".tgz")):
            return ("pickle_tar" if _is_pickle_tar(root) else "image_tar"), root
        return None
    itself = (root,) if explicit else ()
    for folder in (*itself, root / _CIFAR_PY_DIR):
        if all((folder / n).is_file() for n in _CIFAR_PY_FILES):
            return "pickle_dir", folder
    if (root / "cifar-10-python.tar.gz").is_file():
        return "pickle_tar", root / "cifar-10-python.tar.gz"
    for folder in (*itself, root / _CIFAR_JPG_DIR):
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            return "image_tree", folder
        if (folder / _CIFAR_JPG_ARCHIVE).is_file():
            return "image_tar", folder / _CIFAR_JPG_ARCHIVE
    return None


def _find_cifar10(path: PathLike | None, download_ok: bool,
                  kinds: Sequence[str] = ("pickle_dir", "pickle_tar", "image_tree", "image_tar"),
                  ) -> tuple[str, Path]:
    hint = (f"Expected '{_CIFAR_PY_DIR}/' (data_batch_1..5, test_batch), "
            "'cifar-10-python.tar.gz', or '{d}/' holding train/<class>/*.jpg and "
            "test/<class>/*.jpg or '{a}'.".format(d=_CIFAR_JPG_DIR, a=_CIFAR_JPG_ARCHIVE))
    if path is not None:
        p = Path(path).expanduser()
        found = _cifar_source(p, explicit=True) if p.exists() else None
        if found is not None and found[0] in kinds:
            return found
        raise _not_found("CIFAR-10", [f"path= {p}"], hint)
    tried = []
    if not os.environ.get("CONVFORGE_DATA"):
        tried.append("$CONVFORGE_DATA (not set)")
    for label, root in data_roots():
        found = _cifar_source(root, explicit=False) if root.is_dir() else None
        if found is not None and found[0] in kinds:
            return found
        tried.append(f"{label}: {root}")
    if "pickle_dir" in kinds and _downloads_enabled(download_ok):
        dest = cache_dir() / _CIFAR_PY_DIR
        try:
            _download_cifar10(dest)
            return "pickle_dir", dest
        except Exception as e:  # noqa: BLE001 - reported in the not-found error
            tried.append(f"download to {dest} failed: {type(e).__name__}: {e}")
    elif "pickle_dir" in kinds:
        tried.append("download: disabled (download=False or CONVFORGE_NO_DOWNLOAD=1)")
    raise _not_found("CIFAR-10", tried, hint)


def _download_cifar10(dest: Path) -> None:
    archive = dest.parent / "cifar-10-python.tar.gz"
    _say(f"downloading {_CIFAR_PY_URL} (163 MB) to {archive}")
    download(_CIFAR_PY_URL, archive, sha256=_CIFAR_PY_SHA256, md5=_CIFAR_PY_MD5)
    names = set(_CIFAR_PY_FILES + ("batches.meta",))
    for m, data in iter_tar_members(archive, lambda n: Path(n).name in names,
                                    max_member_bytes=MAX_BATCH_BYTES):
        with atomic_output(dest / Path(m.name).name) as out:  # no path from the archive
            out.write(data)
    archive.unlink()


# kept under their old names for batching and existing callers
_decode_image = decode_image


def find_cifar10_images(path: PathLike | None = None) -> Path:
    """The CIFAR-10 JPEG tree or archive (for streaming), by the module's search order."""
    return _find_cifar10(path, False, kinds=("image_tree", "image_tar"))[1]


def load_cifar10(path: PathLike | None = None, *, verify: bool = True, download: bool = True,
                 cache: bool = True) -> tuple[Split, Split]:
    """CIFAR-10: x uint8 (50000, 3, 32, 32) / (10000, 3, 32, 32), y int64 0..9 (CIFAR10_CLASSES).

    Reads the original pickled batches (folder or cifar-10-python.tar.gz) or a JPEG tree
    (folder, .tar, .tar.gz). JPEG trees are decoded once and cached (see load_image_tree).
    """
    kind, src = _find_cifar10(path, download)
    if kind == "pickle_dir":
        return _cifar_pickle_dir(src)
    if kind == "pickle_tar":
        if verify and src.name == "cifar-10-python.tar.gz":
            verify_file(src, sha256=_CIFAR_PY_SHA256)
        return _cifar_pickle_tar(src)
    expected = _CIFAR_JPG_SHA256 if (verify and src.name == _CIFAR_JPG_ARCHIVE) else None
    splits, classes = load_image_tree(src, mode="RGB", cache=cache, expected_sha256=expected,
                                      image_size=(32, 32))
    if len(classes) != 10:
        raise DataError(f"{src}: CIFAR-10 needs 10 class folders, found {classes}")
    return splits


# --------------------------------------------------------------------------- preprocessing

def pad_images(x: np.ndarray, pad: int | tuple[int, int]) -> np.ndarray:
    """Zero-pads H and W of NCHW images: pad p or (ph, pw) on each side (MNIST 28 -> 32: pad=2)."""
    if isinstance(pad, (int, np.integer)):
        ph = pw = int(pad)
    else:
        ph, pw = (int(v) for v in pad)
    if ph < 0 or pw < 0:
        raise ValueError(f"pad must be >= 0, got {pad!r}")
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"x must be 4-D NCHW, got shape {getattr(x, 'shape', None)}")
    return array_module(x).pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
