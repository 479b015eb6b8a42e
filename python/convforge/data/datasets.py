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
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]
Split = tuple[np.ndarray, np.ndarray]

__all__ = [
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "ChecksumError",
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
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DOWNLOAD_TIMEOUT_S = 10.0


class ChecksumError(ValueError):
    """A file's SHA-256 (or MD5) is not the expected one."""


# --------------------------------------------------------------------------- IDX format

# IDX type byte -> big-endian dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}


def _read_maybe_gzip(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def _parse_idx(data: bytes, source: str) -> np.ndarray:
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{source}: not an IDX file (header bytes {data[:4]!r})")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{source}: IDX header says {ndim} dims but the file has "
                         f"{len(data)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{source}: IDX shape {shape} of {dtype} needs {expected} bytes, "
                         f"the file has {len(data)}")
    arr = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))  # native byte order, own writable memory


def read_idx(path: PathLike, sha256: str | None = None) -> np.ndarray:
    """Reads an IDX file (raw or gzip) into a native-endian array.

    With `sha256`, the decompressed bytes must have that digest (ChecksumError otherwise).
    """
    path = Path(path)
    data = _read_maybe_gzip(path)
    if sha256 is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise ChecksumError(f"{path}: SHA-256 of the decompressed content is {got}, "
                                f"expected {sha256} (corrupt or different file; pass "
                                "verify=False to load it anyway)")
    return _parse_idx(data, str(path))


def write_idx(path: PathLike, array: np.ndarray) -> None:
    """Writes `array` as an IDX file; gzip-compressed when `path` ends with .gz."""
    a = np.asarray(array)
    native = a.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise TypeError(f"array: IDX cannot store dtype {a.dtype}; use one of "
                        f"{sorted(str(d) for d in _IDX_CODES)}")
    if a.ndim == 0 or a.ndim > 255:
        raise ValueError(f"array: IDX needs 1 to 255 dims, got shape {a.shape}")
    code = _IDX_CODES[native]
    header = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
    body = np.ascontiguousarray(a, dtype=_IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write(header + body)
    else:
        path.write_bytes(header + body)


# --------------------------------------------------------------------------- places, hashes

def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/convforge`, else `~/.cache/convforge` (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convforge"


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


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _md5_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: PathLike, sha256: str | None = None, md5: str | None = None) -> None:
    """Raises ChecksumError unless the file has the given SHA-256 (and/or MD5) digest."""
    path = Path(path)
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256.lower():
            raise ChecksumError(f"{path}: SHA-256 is {got}, expected {sha256}")
    if md5 is not None:
        got = _md5_file(path)
        if got != md5.lower():
            raise ChecksumError(f"{path}: MD5 is {got}, expected {md5}")


def _downloads_enabled(download: bool) -> bool:
    return download and os.environ.get("CONVFORGE_NO_DOWNLOAD", "") in ("", "0")


def download(url: str, dest: PathLike, sha256: str | None = None, md5: str | None = None,
             timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Downloads `url` to `dest` via a temporary file; checks the digest before moving it in place.

    On a checksum mismatch the temporary file is deleted and ChecksumError is raised; network
    errors propagate (urllib's URLError/OSError), so no partial file is ever left at `dest`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out, 1 << 20)
        verify_file(tmp, sha256=sha256, md5=md5)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def _not_found(what: str, tried: Sequence[str], hint: str) -> FileNotFoundError:
    lines = "\n".join(f"  - {t}" for t in tried)
    return FileNotFoundError(
        f"{what} not found. Looked in:\n{lines}\n{hint}\n"
        "Set CONVFORGE_DATA to a folder holding it, put it in the user cache dir "
        f"({cache_dir()}), or pass path=."
    )


def _say(msg: str) -> None:
    print(f"convforge.data: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- IDX datasets

@dataclass(frozen=True)
class _IdxDataset:
    """One IDX-format dataset: folder name, file stems with content SHA-256, download source."""

    title: str
    folder: str
    # role -> (file stem without .gz, SHA-256 of the decompressed file)
    files: dict[str, tuple[str, str]]
    mirrors: tuple[str, ...] = ()  # base URLs holding <stem>.gz
    archive: tuple[str, str, str] | None = None  # (zip URL, md5, folder in the zip)


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
    # NIST's only distribution is one 562 MB zip of every EMNIST split (published MD5)
    archive=("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
             "58c8d27c78d21e728a6bc7b3cc06412e", "gzip/"),
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
        with zipfile.ZipFile(zip_path) as z:
            for stem, sha in ds.files.values():
                data = z.read(inner + stem + ".gz")
                if hashlib.sha256(gzip.decompress(data)).hexdigest() != sha:
                    raise ChecksumError(f"{url}: {stem}.gz has unexpected content")
                (dest / (stem + ".gz")).write_bytes(data)
        zip_path.unlink()
        return
    for stem, sha in ds.files.values():
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
                read_idx(unchecked, sha256=sha)  # content check (gzip headers vary by mirror)
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


def _load_idx_dataset(ds: _IdxDataset, path: PathLike | None, verify: bool,
                      download: bool) -> tuple[Split, Split]:
    folder = _find_idx(ds, path, download)
    arrays = {}
    for role, (stem, sha) in ds.files.items():
        arrays[role] = read_idx(_idx_file(folder, stem), sha256=sha if verify else None)
    out = []
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"{ds.title} {split}: images {x.shape} and labels {y.shape} "
                             "do not match (expected (N, H, W) and (N,))")
        out.append((x[:, None, :, :].astype(np.uint8), y.astype(np.int64)))
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
    out = []
    for x, y in ((xtr, ytr), (xte, yte)):
        if y.size and (y.min() < 1 or y.max() > 26):
            raise ValueError(f"EMNIST letters labels must be 1..26, got {y.min()}..{y.max()}")
        out.append((np.ascontiguousarray(x.transpose(0, 1, 3, 2)), y - 1))
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


def _cifar_batches_from_dict(d: dict, source: str) -> Split:
    data = np.asarray(d[b"data"], dtype=np.uint8)
    labels = np.asarray(d[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise ValueError(f"{source}: data {data.shape} / labels {labels.shape} are not a "
                         "CIFAR-10 batch ((N, 3072) and (N,))")
    return data.reshape(-1, 3, 32, 32), labels


def _load_cifar_pickles(read) -> tuple[Split, Split]:
    """`read(name) -> bytes` gives one batch file; pickles come only from checked/local files."""
    parts = {}
    for name in _CIFAR_PY_FILES:
        parts[name] = _cifar_batches_from_dict(pickle.loads(read(name), encoding="bytes"), name)
    xtr = np.concatenate([parts[n][0] for n in _CIFAR_PY_FILES[:5]])
    ytr = np.concatenate([parts[n][1] for n in _CIFAR_PY_FILES[:5]])
    return (xtr, ytr), parts["test_batch"]


def _cifar_pickle_dir(folder: Path) -> tuple[Split, Split]:
    return _load_cifar_pickles(lambda name: (folder / name).read_bytes())


def _cifar_pickle_tar(archive: Path) -> tuple[Split, Split]:
    with tarfile.open(archive, "r:*") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}

        def read(name: str) -> bytes:
            if name not in members:
                raise ValueError(f"{archive}: no member {name!r}")
            return tar.extractfile(members[name]).read()

        return _load_cifar_pickles(read)


def _is_pickle_tar(archive: Path) -> bool:
    with tarfile.open(archive, "r:*") as tar:
        for m in tar:
            if Path(m.name).name == "data_batch_1":
                return True
            if Path(m.name).suffix.lower() in IMAGE_SUFFIXES:
                return False
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
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar.getmembers():
            name = Path(m.name).name
            if m.isfile() and name in _CIFAR_PY_FILES + ("batches.meta",):
                (dest / name).write_bytes(tar.extractfile(m).read())  # no path from the archive
    archive.unlink()


def _decode_image(data: bytes, source: str, mode: str) -> np.ndarray:
    """Encoded image bytes -> uint8 (C, H, W); mode 'RGB' (C=3) or 'L' (C=1)."""
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("decoding JPEG/PNG images needs Pillow: pip install pillow") from e
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert(mode), dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.size == 0:
        raise ValueError(f"{source}: empty image")
    return arr.transpose(2, 0, 1)


def _split_class_file(rel: str) -> tuple[str, str, str] | None:
    """'train/cat/0001.jpg' (any leading folders) -> ('train', 'cat', '0001.jpg'), else None."""
    parts = Path(rel).parts
    if len(parts) < 3 or Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
        return None
    if parts[-3] not in ("train", "test") or parts[-1].startswith("."):
        return None
    return parts[-3], parts[-2], parts[-1]


def _stack_tree(items: list[tuple[str, str, str, np.ndarray]],
                source: str) -> tuple[dict[str, Split], list[str]]:
    """(split, class, file, image) items -> per split sorted (x, y) and the sorted classes."""
    classes = sorted({c for s, c, _, _ in items if s == "train"})
    if not classes:
        raise ValueError(f"{source}: no images under train/<class>/")
    index = {c: i for i, c in enumerate(classes)}
    shape = items[0][3].shape
    out = {}
    for split in ("train", "test"):
        chosen = sorted((c, f, img) for s, c, f, img in items if s == split)
        if not chosen:
            raise ValueError(f"{source}: no images under {split}/<class>/")
        for c, f, img in chosen:
            if c not in index:
                raise ValueError(f"{source}: class {c!r} is in {split}/ but not in train/")
            if img.shape != shape:
                raise ValueError(f"{source}: {split}/{c}/{f} has shape {img.shape} (C, H, W), "
                                 f"others have {shape}")
        x = np.stack([img for _, _, img in chosen])
        y = np.array([index[c] for c, _, _ in chosen], dtype=np.int64)
        out[split] = (x, y)
    return out, classes


def _decode_tree_folder(folder: Path, mode: str) -> tuple[dict[str, Split], list[str]]:
    items = []
    for split in ("train", "test"):
        for p in sorted((folder / split).glob("*/*")):
            key = _split_class_file(str(p.relative_to(folder)))
            if key is not None and p.is_file():
                items.append(key + (_decode_image(p.read_bytes(), str(p), mode),))
    if not items:
        raise ValueError(f"{folder}: no images under train/<class>/ or test/<class>/")
    return _stack_tree(items, str(folder))


def _decode_tree_tar(archive: Path, mode: str) -> tuple[dict[str, Split], list[str]]:
    items = []
    with tarfile.open(archive, "r|*") as tar:  # one sequential pass: fast for .tar.gz
        for m in tar:
            key = _split_class_file(m.name) if m.isfile() else None
            if key is not None:
                data = tar.extractfile(m).read()
                items.append(key + (_decode_image(data, f"{archive}:{m.name}", mode),))
    if not items:
        raise ValueError(f"{archive}: no members train/<class>/<image> or test/<class>/<image>")
    return _stack_tree(items, str(archive))


def _tree_fingerprint(folder: Path) -> str:
    """Hash of every image's relative path, size and mtime (cheap; no decoding)."""
    h = hashlib.sha256()
    for split in ("train", "test"):
        for p in sorted((folder / split).glob("*/*")):
            st = p.stat()
            h.update(f"{p.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def load_image_tree(source: PathLike, *, mode: str = "RGB", cache: bool = True,
                    expected_sha256: str | None = None
                    ) -> tuple[tuple[Split, Split], list[str]]:
    """Decodes a `train/<class>/*`, `test/<class>/*` image tree (folder, .tar or .tar.gz).

    Returns `((x_train, y_train), (x_test, y_test)), classes`: x uint8 (N, C, H, W), labels are
    indices into the sorted class-folder names, samples sorted by (class, file name).
    Decoding tens of thousands of JPEGs takes a while, so with `cache=True` the arrays are
    stored as an .npz in the user cache dir, keyed by the archive's SHA-256 (for a folder:
    by its file names, sizes and mtimes), and later calls load that instead.
    """
    source = Path(source)
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    if source.is_file():
        key = sha256_file(source)
        if expected_sha256 is not None and key != expected_sha256:
            raise ChecksumError(f"{source}: SHA-256 is {key}, expected {expected_sha256} "
                                "(pass verify=False to load it anyway)")
    elif source.is_dir():
        key = _tree_fingerprint(source)
    else:
        raise FileNotFoundError(f"source: {source} is neither a folder nor an archive")
    npz = cache_dir() / f"imagetree-{source.name.split('.')[0]}-{mode}-{key[:16]}.npz"
    if cache and npz.is_file():
        with np.load(npz) as z:
            classes = [str(c) for c in z["classes"]]
            return ((z["x_train"], z["y_train"]), (z["x_test"], z["y_test"])), classes
    _say(f"decoding the images in {source} once (CIFAR-10's 60,000 JPEGs take 30-60 s)")
    if source.is_file():
        splits, classes = _decode_tree_tar(source, mode)
    else:
        splits, classes = _decode_tree_folder(source, mode)
    if cache:
        npz.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=npz.parent, suffix=".npz.part")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, x_train=splits["train"][0], y_train=splits["train"][1],
                         x_test=splits["test"][0], y_test=splits["test"][1],
                         classes=np.array(classes))
            os.replace(tmp, npz)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _say(f"cached the decoded arrays in {npz} (delete it to decode again)")
    return (splits["train"], splits["test"]), classes


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
    splits, classes = load_image_tree(src, mode="RGB", cache=cache, expected_sha256=expected)
    if len(classes) != 10:
        raise ValueError(f"{src}: CIFAR-10 needs 10 class folders, found {classes}")
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
    xp = sys.modules["cupy"] if type(x).__module__.split(".")[0] == "cupy" else np
    return xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
