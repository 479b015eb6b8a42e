"""Loaders (IDX, MNIST family, CIFAR-10 pickles and JPEG trees), search order, checksums, batching.

Real-data tests read $CONVFORGE_DATA (else ../shared/data next to the repository) and skip when
the files are absent. Every test runs with its own cache dir, no system dirs and no downloads.
The test decoding the real 60k-JPEG CIFAR-10 archive is slow: set CONVFORGE_RUN_SLOW=1 to run it.
"""

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from convforge.data import (
    Augment,
    Batches,
    ChecksumError,
    StreamingBatches,
    _images,
    datasets,
    download,
    load_cifar10,
    load_emnist_letters,
    load_fashion_mnist,
    load_image_tree,
    load_mnist,
    pad_images,
    random_subset,
    read_idx,
    train_val_split,
    verify_file,
    write_idx,
)

from conftest import REPO

RNG_SEED = 20240611   # the seed of the `rng` fixture (conftest) in this module

_SHARED_ENV = os.environ.get("CONVFORGE_DATA")  # read before the fixture clears it


def _shared_roots():
    env = _SHARED_ENV
    if env:
        return [Path(p).resolve() for p in env.split(os.pathsep) if p]
    return [REPO.parent / "shared" / "data"]


def shared_root_with(folder):
    for root in _shared_roots() + [Path("/usr/share/datasets")]:
        if (root / folder).is_dir():
            return root
    return None


pytestmark = pytest.mark.usefixtures("isolated_data")  # conftest: no real data dirs


def use_shared(monkeypatch, folder):
    root = shared_root_with(folder)
    if root is None:
        pytest.skip(f"{folder}/ not found in {_shared_roots()} or /usr/share/datasets")
    monkeypatch.setenv("CONVFORGE_DATA", str(root))
    return root


def make_idx_set(folder, ds, rng, n_train=5, n_test=3, labels=(0, 10), gz=True):
    """Writes a tiny dataset with `ds`'s file names; returns (train, test) arrays as written."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(labels[0], labels[1], size=n).astype(np.uint8)
        write_idx(folder / (ds.files[f"{split}_images"][0] + (".gz" if gz else "")), x)
        write_idx(folder / (ds.files[f"{split}_labels"][0] + (".gz" if gz else "")), y)
        out[split] = (x, y)
    return out


# --------------------------------------------------------------------------- IDX format

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, rng, dtype, suffix):
    for shape in [(7,), (4, 5, 6), (2, 3, 4, 5)]:
        a = (rng.standard_normal(shape) * 100).astype(dtype)
        p = tmp_path / f"a-{len(shape)}.idx{suffix}"
        write_idx(p, a)
        b = read_idx(p)
        assert b.dtype == np.dtype(dtype) and b.shape == a.shape
        np.testing.assert_array_equal(b, a)
        assert b.flags.writeable and b.dtype.isnative


def test_idx_header_bytes(tmp_path):
    a = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    write_idx(tmp_path / "x.idx", a)
    raw = (tmp_path / "x.idx").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"                      # MNIST image magic 0x00000803
    assert raw[4:16] == bytes([0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3])
    assert raw[16:] == bytes(range(6))
    # a gzip file is recognised by its magic, whatever its name
    (tmp_path / "y.idx").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "y.idx"), a)


def test_idx_rejects_bad_files(tmp_path):
    write_idx(tmp_path / "x.idx", np.zeros((3, 4), np.uint8))
    raw = (tmp_path / "x.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="needs 24 bytes"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x08\x01" + raw[4:])
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad.idx")
    with pytest.raises(TypeError, match="IDX cannot store"):
        write_idx(tmp_path / "c.idx", np.zeros(3, np.complex64))


# --------------------------------------------------------------------------- checksums, download

def test_checksum_failure_on_local_file(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"convforge")
    good = hashlib.sha256(b"convforge").hexdigest()
    verify_file(p, sha256=good)
    verify_file(p, md5=hashlib.md5(b"convforge").hexdigest())
    with pytest.raises(ChecksumError, match="SHA-256 is"):
        verify_file(p, sha256="0" * 64)
    with pytest.raises(ChecksumError, match="MD5 is"):
        verify_file(p, md5="0" * 32)


def test_read_idx_checks_decompressed_content(tmp_path):
    a = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "a.idx.gz", a)
    content = gzip.decompress((tmp_path / "a.idx.gz").read_bytes())
    read_idx(tmp_path / "a.idx.gz", sha256=hashlib.sha256(content).hexdigest())
    with pytest.raises(ChecksumError, match="verify=False"):
        read_idx(tmp_path / "a.idx.gz", sha256="f" * 64)


def test_download_keeps_only_checked_files(tmp_path):
    src = tmp_path / "mirror" / "blob.bin"
    src.parent.mkdir()
    src.write_bytes(b"payload" * 100)
    dest = tmp_path / "dl" / "blob.bin"
    with pytest.raises(ChecksumError):
        download(src.as_uri(), dest, sha256="0" * 64)
    assert not dest.exists() and list(dest.parent.iterdir()) == [], "no partial files left"
    download(src.as_uri(), dest, sha256=hashlib.sha256(src.read_bytes()).hexdigest())
    assert dest.read_bytes() == src.read_bytes()


def test_loader_downloads_into_cache_when_nothing_local(tmp_path, rng, monkeypatch):
    mirror = tmp_path / "mirror"
    arrays = make_idx_set(mirror, datasets._MNIST, rng)
    files = {role: (stem, hashlib.sha256(gzip.decompress((mirror / (stem + ".gz"))
                                                         .read_bytes())).hexdigest())
             for role, (stem, _) in datasets._MNIST.files.items()}
    fake = dataclasses.replace(datasets._MNIST, files=files,
                               mirrors=("file:///nonexistent/", mirror.as_uri() + "/"))
    monkeypatch.setattr(datasets, "_MNIST", fake)
    monkeypatch.delenv("CONVFORGE_NO_DOWNLOAD")
    (xtr, _ytr), (_xte, yte) = load_mnist()
    np.testing.assert_array_equal(xtr[:, 0], arrays["train"][0])
    np.testing.assert_array_equal(yte, arrays["test"][1])
    assert (datasets.cache_dir() / "mnist" / "train-images-idx3-ubyte.gz").is_file()

    # a mirror serving wrong content: nothing kept, the error says why
    bad = dataclasses.replace(fake, files={k: (s, "0" * 64) for k, (s, _) in files.items()})
    monkeypatch.setattr(datasets, "_MNIST", bad)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-cache"))
    with pytest.raises(FileNotFoundError, match="ChecksumError"):
        load_mnist()
    assert not list((tmp_path / "other-cache" / "convforge" / "mnist").glob("*")), "nothing kept"


# --------------------------------------------------------------------------- search order

def test_search_order_path_env_cache_system(tmp_path, rng, monkeypatch):
    ds = datasets._MNIST
    sets = {name: make_idx_set(tmp_path / name / "mnist", ds, rng)
            for name in ("explicit", "env", "system")}
    sets["cache"] = make_idx_set(tmp_path / "xdg-cache" / "convforge" / "mnist", ds, rng)
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", (tmp_path / "system",))

    def first_label_set():
        (_, ytr), _ = load_mnist(verify=False)
        return ytr

    expect = {k: v["train"][1] for k, v in sets.items()}
    np.testing.assert_array_equal(first_label_set(), expect["cache"])      # cache before system
    (tmp_path / "xdg-cache" / "convforge" / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    np.testing.assert_array_equal(first_label_set(), expect["system"])     # cache incomplete
    monkeypatch.setenv("CONVFORGE_DATA", os.pathsep.join([str(tmp_path / "none"),
                                                          str(tmp_path / "env")]))
    np.testing.assert_array_equal(first_label_set(), expect["env"])        # env first
    for p in (tmp_path / "explicit", tmp_path / "explicit" / "mnist"):     # parent or folder
        (_, ytr), _ = load_mnist(p, verify=False)
        np.testing.assert_array_equal(ytr, expect["explicit"])


def test_explicit_path_is_final(tmp_path, rng, monkeypatch):
    make_idx_set(tmp_path / "env" / "mnist", datasets._MNIST, rng)
    monkeypatch.setenv("CONVFORGE_DATA", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError, match="path= .*nowhere"):
        load_mnist(tmp_path / "nowhere", verify=False)


def test_not_found_error_lists_places(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVFORGE_DATA", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError) as e:
        load_fashion_mnist()
    msg = str(e.value)
    for part in ("Fashion-MNIST not found", str(tmp_path / "data" / "fashion-mnist"),
                 str(tmp_path / "xdg-cache" / "convforge" / "fashion-mnist"),
                 str(tmp_path / "system" / "fashion-mnist"), "download: disabled",
                 "train-images-idx3-ubyte[.gz]", "CONVFORGE_DATA"):
        assert part in msg, f"{part!r} missing from:\n{msg}"
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found"):
        load_cifar10()


def test_raw_idx_files_are_found(tmp_path, rng):
    arrays = make_idx_set(tmp_path / "mnist", datasets._MNIST, rng, gz=False)
    (xtr, ytr), (xte, _yte) = load_mnist(tmp_path, verify=False)
    assert xtr.shape == (5, 1, 28, 28) and xte.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(ytr, arrays["train"][1])
    with pytest.raises(ChecksumError):
        load_mnist(tmp_path)                                   # not the real MNIST content


def test_emnist_letters_transposed_and_shifted_labels(tmp_path, rng):
    arrays = make_idx_set(tmp_path / "emnist-letters", datasets._EMNIST_LETTERS, rng,
                          labels=(1, 27))
    (xtr, ytr), (_xte, _yte) = load_emnist_letters(tmp_path, verify=False)
    np.testing.assert_array_equal(xtr[:, 0], arrays["train"][0].transpose(0, 2, 1))
    np.testing.assert_array_equal(ytr, arrays["train"][1].astype(np.int64) - 1)
    assert xtr.flags.c_contiguous and ytr.dtype == np.int64


# --------------------------------------------------------------------------- real datasets

def test_mnist_real(monkeypatch):
    use_shared(monkeypatch, "mnist")
    (xtr, ytr), (xte, yte) = load_mnist()
    assert xtr.shape == (60000, 1, 28, 28) and xte.shape == (10000, 1, 28, 28)
    assert xtr.dtype == np.uint8 and ytr.dtype == np.int64 and yte.dtype == np.int64
    assert np.bincount(ytr).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851,
                                         5949]
    assert np.bincount(yte).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert ytr[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert yte[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert abs(xtr.mean() - 33.318) < 1e-3 and abs(xte.mean() - 33.791) < 1e-3


def test_emnist_letters_real(monkeypatch):
    root = use_shared(monkeypatch, "emnist-letters")
    (xtr, ytr), (xte, yte) = load_emnist_letters()
    assert xtr.shape == (124800, 1, 28, 28) and xte.shape == (20800, 1, 28, 28)
    assert np.bincount(ytr, minlength=26).tolist() == [4800] * 26
    assert np.bincount(yte, minlength=26).tolist() == [800] * 26
    assert (yte == np.repeat(np.arange(26), 800)).all(), "test labels are in class order"
    assert abs(xtr.mean() - 43.92) < 0.01 and abs(xte.mean() - 43.90) < 0.01
    raw = read_idx(root / "emnist-letters" / "emnist-letters-test-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(xte[:50, 0], raw[:50].transpose(0, 2, 1))  # upright


def test_fashion_mnist_real(monkeypatch):
    use_shared(monkeypatch, "fashion-mnist")
    (xtr, ytr), (xte, yte) = load_fashion_mnist()
    assert xtr.shape == (60000, 1, 28, 28) and xte.shape == (10000, 1, 28, 28)
    assert np.bincount(ytr).tolist() == [6000] * 10
    assert np.bincount(yte).tolist() == [1000] * 10


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("CONVFORGE_RUN_SLOW"),
                    reason="decodes 60,000 JPEGs; set CONVFORGE_RUN_SLOW=1")
def test_cifar10_real_jpeg_archive(monkeypatch):
    use_shared(monkeypatch, "cifar10-jpg")
    (xtr, ytr), (xte, yte) = load_cifar10()
    assert xtr.shape == (50000, 3, 32, 32) and xte.shape == (10000, 3, 32, 32)
    assert np.bincount(ytr).tolist() == [5000] * 10 and np.bincount(yte).tolist() == [1000] * 10
    mean = xtr.reshape(50000, 3, -1).mean(axis=(0, 2))
    np.testing.assert_allclose(mean, [125.27, 122.93, 113.86], atol=0.01)
    assert list(datasets.cache_dir().glob("imagetree-cifar10-jpg-RGB-*.npz"))


# --------------------------------------------------------------------------- CIFAR-10 forms

def write_image_tree(root, rng, classes, n_train=2, n_test=1, size=(32, 32), fmt="PNG"):
    """train/<class>/<i>.png and test/...; returns {split: (x (N,3,H,W), y)} sorted as loaded."""
    from PIL import Image

    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        xs, ys = [], []
        for label, c in enumerate(sorted(classes)):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 256, size=(size[0], size[1], 3), dtype=np.uint8)
                Image.fromarray(img).save(root / split / c / f"{i:04d}.{fmt.lower()}", fmt)
                xs.append(img.transpose(2, 0, 1))
                ys.append(label)
        out[split] = (np.stack(xs), np.array(ys, np.int64))
    return out


def make_tar(folder, archive, mode="w:gz"):
    with tarfile.open(archive, mode) as tar:
        for split in ("test", "train"):                        # archive order is irrelevant
            tar.add(folder / split, arcname=split)
    return archive


def test_image_tree_folder_tar_and_cache(tmp_path, rng, monkeypatch):
    tree = tmp_path / "tree"
    want = write_image_tree(tree, rng, ["ship", "airplane", "cat"])
    archive = make_tar(tree, tmp_path / "tiny.tar.gz")
    for source in (tree, archive):
        (tr, te), classes = load_image_tree(source)
        assert classes == ["airplane", "cat", "ship"]
        for got, exp in ((tr, want["train"]), (te, want["test"])):
            assert got[0].dtype == np.uint8 and got[1].dtype == np.int64
            np.testing.assert_array_equal(got[0], exp[0])      # PNG: lossless
            np.testing.assert_array_equal(got[1], exp[1])
    npz = list(datasets.cache_dir().glob("imagetree-tiny-RGB-*.npz"))
    assert len(npz) == 1, "decoded archive cached under its SHA-256"
    sha = datasets.sha256_file(archive)
    assert sha[:16] in npz[0].name

    def no_decoding(*args):
        raise AssertionError("should load the cached arrays")

    monkeypatch.setattr(_images, "decode_tree_tar", no_decoding)
    (tr, _), _ = load_image_tree(archive)
    np.testing.assert_array_equal(tr[0], want["train"][0])


def test_image_tree_jpeg_is_close(tmp_path, rng):
    tree = tmp_path / "tree"
    want = write_image_tree(tree, rng, ["a", "b"], fmt="JPEG")
    (tr, _), _ = load_image_tree(make_tar(tree, tmp_path / "j.tar", "w"), cache=False)
    diff = np.abs(tr[0].astype(int) - want["train"][0].astype(int))
    assert diff.mean() < 60, "JPEG of noise is lossy, but the decoded images must correspond"
    assert not list(datasets.cache_dir().glob("*.npz")), "cache=False writes no cache"


def test_image_tree_rejects_mixed_sizes(tmp_path, rng):
    tree = tmp_path / "tree"
    write_image_tree(tree, rng, ["a", "b"])
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tree / "train" / "b" / "9.png")
    with pytest.raises(ValueError, match="has shape"):
        load_image_tree(tree, cache=False)


def test_load_cifar10_from_jpeg_tree_archive(tmp_path, rng, monkeypatch):
    classes = list(datasets.CIFAR10_CLASSES)
    tree = tmp_path / "tree"
    want = write_image_tree(tree, rng, classes)
    root = tmp_path / "data" / "cifar10-jpg"
    root.mkdir(parents=True)
    make_tar(tree, root / "cifar10-jpg.tar.gz")
    monkeypatch.setenv("CONVFORGE_DATA", str(tmp_path / "data"))
    with pytest.raises(ChecksumError):                         # not the shared archive
        load_cifar10()
    (xtr, _ytr), (xte, yte) = load_cifar10(verify=False)
    assert xtr.shape == (20, 3, 32, 32) and xte.shape == (10, 3, 32, 32)
    np.testing.assert_array_equal(xtr, want["train"][0])
    np.testing.assert_array_equal(yte, np.arange(10))


def write_cifar_pickles(folder, rng, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    parts = {}
    for name in datasets._CIFAR_PY_FILES:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f)
        parts[name] = (data.reshape(n, 3, 32, 32), np.array(labels))
    xtr = np.concatenate([parts[f"data_batch_{i}"][0] for i in range(1, 6)])
    return xtr, parts["test_batch"]


def test_load_cifar10_from_python_batches_folder_and_tar(tmp_path, rng):
    folder = tmp_path / "d" / "cifar-10-batches-py"
    xtr_want, (xte_want, yte_want) = write_cifar_pickles(folder, rng)
    for path in (tmp_path / "d", folder):
        (xtr, ytr), (xte, yte) = load_cifar10(path)
        assert xtr.shape == (20, 3, 32, 32) and ytr.dtype == np.int64
        np.testing.assert_array_equal(xtr, xtr_want)
        np.testing.assert_array_equal(xte, xte_want)
        np.testing.assert_array_equal(yte, yte_want)
    archive = tmp_path / "batches.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    (xtr, _), _ = load_cifar10(archive)
    np.testing.assert_array_equal(xtr, xtr_want)


# --------------------------------------------------------------------------- pad, split, batches

def test_pad_images(rng):
    x = rng.integers(1, 256, size=(3, 1, 28, 28), dtype=np.uint8)
    y = pad_images(x, 2)
    assert y.shape == (3, 1, 32, 32) and y.dtype == np.uint8
    np.testing.assert_array_equal(y[:, :, 2:30, 2:30], x)
    assert y.sum() == x.astype(np.int64).sum(), "padding is zeros"
    assert pad_images(x, (1, 3)).shape == (3, 1, 30, 34)
    with pytest.raises(ValueError, match="pad"):
        pad_images(x, -1)
    with pytest.raises(ValueError, match="4-D"):
        pad_images(x[0], 2)


def test_train_val_split_and_subset(rng):
    x = np.arange(100).reshape(100, 1, 1, 1)
    y = np.arange(100)
    (xt, yt), (_xv, yv) = train_val_split(x, y, 0.2, seed=0)
    assert len(yv) == 20 and len(yt) == 80
    assert sorted(np.concatenate([yt, yv]).tolist()) == list(range(100))
    np.testing.assert_array_equal(xt[:, 0, 0, 0], yt)
    (_, yt2), _ = train_val_split(x, y, 0.2, seed=0)
    np.testing.assert_array_equal(yt, yt2)
    _xs, ys = random_subset(x, y, 10, seed=1)
    assert len(set(ys.tolist())) == 10 and (np.diff(ys) > 0).all()


def test_batches_epochs_cover_everything_and_are_seeded(rng):
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(2, axis=2)
    y = np.arange(10, dtype=np.int64)
    b = Batches(x, y, batch_size=4, shuffle=True, seed=3)
    assert len(b) == 3
    epochs = []
    for _ in range(2):
        seen = []
        for xb, yb in b:
            assert xb.dtype == np.uint8 and xb.shape[1:] == (1, 2, 1)
            np.testing.assert_array_equal(xb[:, 0, 0, 0], yb)
            seen.append(yb)
        assert [len(s) for s in seen] == [4, 4, 2]
        epochs.append(np.concatenate(seen))
        assert sorted(epochs[-1].tolist()) == list(range(10))
    assert not np.array_equal(epochs[0], epochs[1]), "each epoch reshuffles"
    again = [yb for _, yb in Batches(x, y, batch_size=4, seed=3)]
    np.testing.assert_array_equal(np.concatenate(again), epochs[0])
    assert len(Batches(x, y, batch_size=4, drop_last=True)) == 2
    ordered = [yb.tolist() for _, yb in Batches(x, y, batch_size=4, shuffle=False)]
    assert ordered == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_batches_cast_and_augment(rng):
    x = rng.integers(0, 256, size=(8, 1, 6, 6), dtype=np.uint8)
    y = np.arange(8)
    x_before = x.copy()
    flip = Augment.from_spec("flip=h:1")
    for xb, yb in Batches(x, y, batch_size=3, shuffle=False, augment=flip):
        assert xb.dtype == np.float32                          # cast before augmenting
        np.testing.assert_array_equal(xb, x[yb][:, :, :, ::-1].astype(np.float32))
    np.testing.assert_array_equal(x, x_before)
    xb, _ = next(iter(Batches(x, y, batch_size=3, dtype=np.float64)))
    assert xb.dtype == np.float64
    with pytest.raises(ValueError, match="same length"):
        Batches(x, y[:5])
    with pytest.raises(ValueError, match="batch_size"):
        Batches(x, y, batch_size=0)


@pytest.mark.parametrize("form", ["folder", "tar", "tar.gz"])
def test_streaming_batches_match_in_memory(tmp_path, rng, form):
    tree = tmp_path / "tree"
    want = write_image_tree(tree, rng, ["dog", "cat", "bird"], n_train=4, n_test=2)
    source = {"folder": tree,
              "tar": make_tar(tree, tmp_path / "t.tar", "w"),
              "tar.gz": make_tar(tree, tmp_path / "t.tar.gz")}[form]
    s = StreamingBatches(source, "train", batch_size=5, shuffle=True, seed=0)
    assert s.classes == ["bird", "cat", "dog"] and len(s) == 3 and s.num_samples == 12
    assert s.sample_shape == (3, 32, 32)
    xs, ys = zip(*list(s))
    x, y = np.concatenate(xs), np.concatenate(ys)
    key = [want["train"][0][i].tobytes() for i in range(12)]
    assert sorted(k.tobytes() for k in x) == sorted(key), "every image exactly once"
    for xi, yi in zip(x, y):                                   # each image has its own label
        j = key.index(xi.tobytes())
        assert want["train"][1][j] == yi
    test = StreamingBatches(source, "test", batch_size=4, shuffle=False, dtype=np.float32)
    xt = np.concatenate([xb for xb, _ in test])
    np.testing.assert_array_equal(xt, want["test"][0].astype(np.float32))
    small = StreamingBatches(source, "train", batch_size=2, seed=1, limit=5)
    assert small.num_samples == 5 and len(small) == 3
    if form == "tar.gz":
        assert list(datasets.cache_dir().glob("stream-t-*.tar")), "decompressed once to cache"


def test_streaming_batches_augment_is_seeded(tmp_path, rng):
    tree = tmp_path / "tree"
    write_image_tree(tree, rng, ["a", "b"], n_train=3, n_test=1)
    aug = Augment.from_spec("flip,crop=4")
    runs = [[xb for xb, _ in StreamingBatches(tree, batch_size=4, seed=9, augment=aug)]
            for _ in range(2)]
    for a, b in zip(*runs):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_decode_grayscale_png():
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((2, 3), 7, np.uint8)).save(buf, "PNG")
    img = datasets._decode_image(buf.getvalue(), "mem", "L")
    assert img.shape == (1, 2, 3) and (img == 7).all()
