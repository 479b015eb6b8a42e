"""Data safety (issue 11, items 8, 9 and the data side of 11): crafted CIFAR-10 pickles run
nothing, decompression bombs are refused before they inflate, corrupt files raise DataError.

Bombs are built here, small: streams of zeros compressed chunk by chunk, so the test files are a
few hundred KB and nothing large is ever held. Memory is measured in a subprocess (peak RSS
growth during the call), everything else by the error raised and what was (not) written.
"""

import gzip
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

from convforge import data as cfdata
from convforge.data import (
    ChecksumError,
    DataError,
    StreamingBatches,
    datasets,
    load_cifar10,
    load_image_tree,
    load_mnist,
    read_idx,
    write_idx,
)

RNG_SEED = 11   # the seed of the `rng` fixture (conftest) in this module

MiB = 1 << 20


pytestmark = pytest.mark.usefixtures("isolated_data")  # conftest: no real data dirs


class Zeros(io.RawIOBase):
    """A readable stream of `n` zero bytes (what tarfile.addfile copies from)."""

    def __init__(self, n):
        self.left = n

    def readable(self):
        return True

    def readinto(self, buf):
        k = min(len(buf), self.left)
        buf[:k] = bytes(k)
        self.left -= k
        return k


def gzip_stream(path, chunks):
    """Writes the gzip of the concatenated byte chunks (an iterable) to `path`, streaming."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9,
                                                mtime=0) as f:
        for c in chunks:
            f.write(c)
    return path


def zero_chunks(n, chunk=4 * MiB):
    z = bytes(chunk)
    while n > 0:
        yield z[:min(n, chunk)]
        n -= chunk


def tar_gz(path, members):
    """members: (name, size or bytes); sizes become streams of zeros."""
    with open(path, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w|") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, bytes):
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                info.size = content
                tar.addfile(info, io.BufferedReader(Zeros(content), 4 * MiB))
    return path


def png_bytes(w, h, rows=None):
    """A grayscale PNG of w x h zeros written by hand (no h*w buffer): IHDR, IDAT streamed
    through zlib row by row, IEND. rows=0 gives a header with no pixel data."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    c = zlib.compressobj(9)
    row = bytes(w + 1)                                   # filter byte 0, then w zero pixels
    idat = b"".join(c.compress(row) for _ in range(h if rows is None else rows)) + c.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) \
        + chunk(b"IEND", b"")


def small_png(rng, hw=(32, 32)):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def peak_rss_growth_mib(code, cwd):
    """Runs `code` (which must define `run()`) in a fresh interpreter; returns the peak RSS
    growth in MiB during run() and the repr of the exception run() raised (or None)."""
    script = textwrap.dedent("""
        import json, resource, sys
        import numpy, convforge.data  # imports counted in the baseline
        {code}
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            run()
            err = None
        except Exception as e:
            err = type(e).__name__ + ": " + str(e)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"mib": (after - before) / 1024, "err": err}}))
    """).format(code=textwrap.dedent(code))
    pkg_root = str(Path(cfdata.__file__).resolve().parents[2])   # the tested convforge
    env = dict(os.environ, XDG_CACHE_HOME=str(Path(cwd) / "sub-cache"),
               CONVFORGE_NO_DOWNLOAD="1",
               PYTHONPATH=os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["mib"], res["err"]


# --------------------------------------------------------------------------- item 8: pickles

class _Exploit:
    """Pickles to `func(arg)`: what a crafted batch file does."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _crafted_payloads(marker):
    cmd = f"touch {marker}"
    return {
        "os.system": pickle.dumps(_Exploit(os.system, cmd)),
        "builtins.eval": pickle.dumps(_Exploit(eval, f"open({str(marker)!r}, 'w').close()")),
        "subprocess.Popen": pickle.dumps(_Exploit(subprocess.Popen, ["touch", str(marker)])),
        # the exploit nested inside an otherwise valid batch dict, at protocol 2
        "nested": pickle.dumps({b"data": np.zeros((1, 3072), np.uint8),
                                b"labels": [_Exploit(os.system, cmd)]}, protocol=2),
    }


def write_batches(folder, rng, n=3, protocol=pickle.DEFAULT_PROTOCOL):
    folder.mkdir(parents=True, exist_ok=True)
    want = {}
    for name in datasets._CIFAR_PY_FILES:
        x = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, size=n).tolist()
        d = {b"batch_label": b"synthetic", b"labels": y, b"data": x,
             b"filenames": [f"{i}.png".encode() for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(d, protocol=protocol))
        want[name] = (x.reshape(n, 3, 32, 32), np.array(y))
    return want


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "subprocess.Popen", "nested"])
@pytest.mark.parametrize("where", ["path", "env", "verify_false", "tar"])
def test_crafted_cifar_pickle_runs_nothing(tmp_path, rng, monkeypatch, kind, where):
    marker = tmp_path / "pwned"
    root = tmp_path / "data"
    folder = root / "cifar-10-batches-py"
    write_batches(folder, rng)
    (folder / "data_batch_3").write_bytes(_crafted_payloads(marker)[kind])
    with pytest.raises(DataError, match=r"data_batch_3.*(not a CIFAR-10 batch|refers to)") as e:
        if where == "path":
            load_cifar10(folder)
        elif where == "env":
            monkeypatch.setenv("CONVFORGE_DATA", str(root))
            load_cifar10()
        elif where == "verify_false":
            load_cifar10(root, verify=False)
        else:
            archive = tmp_path / "batches.tar.gz"
            with tarfile.open(archive, "w:gz") as tar:
                tar.add(folder, arcname="cifar-10-batches-py")
            load_cifar10(archive)
    assert "\n" not in str(e.value), "one line"
    assert not marker.exists(), "the crafted pickle ran code"


def py2_cifar_batch(x, labels, label=b"training batch 1 of 5"):
    """A CIFAR-10 batch as Python 2's cPickle.dump(d, f, 2) wrote it: str (-> bytes) keys,
    numpy.core.multiarray._reconstruct, dtype('u1', 0, 1) with a version-3 state, BINSTRING
    data. Assembled opcode by opcode (what pickle.dumps under Python 3 cannot produce)."""
    def s(b):                                       # SHORT_BINSTRING or BINSTRING
        return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<I", len(b))) + b

    def i(v):
        return b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v)

    n = x.shape[0]
    arr = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + i(0) + b"\x85"
           + s(b"b") + b"\x87R"
           + b"(" + i(1) + i(n) + b"M\x00\x0c" + b"\x86"                  # (1, (n, 3072),
           + b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R"      #  dtype('u1', 0, 1)
           + b"(" + i(3) + s(b"|") + b"NNN" + i(-1) + i(-1) + i(0) + b"tb"
           + b"\x89" + s(x.tobytes()) + b"tb")                          #  False, data)
    items = (s(b"batch_label") + s(label)
             + s(b"labels") + b"](" + b"".join(i(int(v)) for v in labels) + b"e"
             + s(b"data") + arr
             + s(b"filenames") + b"](" + b"".join(s(b"f%d.png" % k) for k in range(n)) + b"e")
    return b"\x80\x02}(" + items + b"u."


def test_restricted_unpickler_reads_python2_batches(tmp_path, rng):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    want = {}
    for name in datasets._CIFAR_PY_FILES:
        x = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, size=4)
        blob = py2_cifar_batch(x, y)
        trusted = pickle.loads(blob, encoding="bytes")  # our own bytes: shows they are faithful
        np.testing.assert_array_equal(trusted[b"data"], x)
        assert trusted[b"labels"] == y.tolist()
        (folder / name).write_bytes(blob)
        want[name] = (x.reshape(4, 3, 32, 32), y)
    (xtr, ytr), (xte, yte) = load_cifar10(folder)
    np.testing.assert_array_equal(xtr[:4], want["data_batch_1"][0])
    np.testing.assert_array_equal(ytr[-4:], want["data_batch_5"][1])
    np.testing.assert_array_equal(xte, want["test_batch"][0])
    assert xtr.flags.writeable and xtr.dtype == np.uint8 and yte.dtype == np.int64


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_restricted_unpickler_reads_python3_repickles(tmp_path, rng, protocol):
    want = write_batches(tmp_path / "b", rng, protocol=protocol)
    (xtr, _), (xte, yte) = load_cifar10(tmp_path / "b")
    np.testing.assert_array_equal(xtr[:3], want["data_batch_1"][0])
    np.testing.assert_array_equal(xte, want["test_batch"][0])
    np.testing.assert_array_equal(yte, want["test_batch"][1])


@pytest.mark.parametrize("bad, match", [
    ({b"data": np.zeros((1, 3072), object), b"labels": [0]}, "plain numeric dtype"),
    ({b"data": np.zeros((1, 3072), np.float32), b"labels": [0]}, "uint8"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, "labels must be 0..9"),
    ({b"labels": [0]}, "needs b'data'"),
    ([1, 2, 3], "not a dict"),
])
def test_restricted_unpickler_rejects_non_batches(tmp_path, rng, bad, match):
    folder = tmp_path / "b"
    write_batches(folder, rng)
    (folder / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError, match=match):
        load_cifar10(folder)


def test_cifar_batch_size_checked_before_reading(tmp_path, rng):
    folder = tmp_path / "b"
    write_batches(folder, rng)
    with open(folder / "data_batch_2", "r+b") as f:
        f.truncate(200 * MiB)                         # sparse: declared size, no disk used
    with pytest.raises(DataError, match=r"data_batch_2: 209715200 bytes, more than a CIFAR"):
        load_cifar10(folder)


def test_no_pickle_loads_left_in_the_data_package():
    pkg = Path(cfdata.__file__).parent
    for p in pkg.glob("*.py"):
        text = p.read_text()
        assert "pickle.loads(" not in text and "pickle.load(" not in text, p
        assert "allow_pickle=True" not in text, p


# --------------------------------------------------------------------------- item 9: bombs

def idx_header(shape, code=0x08):
    return bytes([0, 0, code, len(shape)]) + np.asarray(shape, ">u4").tobytes()


def test_idx_gzip_bomb_with_small_header_is_not_inflated(tmp_path):
    """Valid MNIST test-label header (10000,) followed by 300 MB of zeros in a ~300 KB .gz."""
    bomb = gzip_stream(tmp_path / "t10k-labels-idx1-ubyte.gz",
                       [idx_header((10000,))] + list(zero_chunks(300 * MiB)))
    assert bomb.stat().st_size < 2 * MiB
    mib, err = peak_rss_growth_mib(f"""
        def run():
            convforge.data.read_idx({str(bomb)!r})
    """, tmp_path)
    assert mib < 100, f"reading the bomb grew the peak RSS by {mib:.0f} MiB"
    assert err is not None and err.startswith("DataError"), err
    with pytest.raises(DataError, match=r"needs 10008 bytes, the file has more"):
        read_idx(bomb)


def test_idx_declared_dims_checked_before_inflating(tmp_path, rng):
    # a header declaring 2**31 x 28 x 28 bytes: refused from the header alone
    huge = gzip_stream(tmp_path / "huge.gz", [idx_header((1 << 31, 28, 28))])
    with pytest.raises(DataError, match=r"declares shape \(2147483648, 28, 28\).*more than"):
        read_idx(huge)
    # per dataset: MNIST test images are uint8 (N, 28, 28) with N <= 10000
    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem, _ in datasets._MNIST.files.values():
        n = 10 if "t10k" in stem else 20
        write_idx(folder / (stem + ".gz"),
                  np.zeros((n, 28, 28) if "images" in stem else (n,), np.uint8))
    gzip_stream(folder / "t10k-images-idx3-ubyte.gz",
                [idx_header((10001, 28, 28))] + list(zero_chunks(10001 * 784)))
    with pytest.raises(DataError, match=r"t10k-images.*declares uint8 \(10001, 28, 28\).*"
                                        r"N <= 10000"):
        load_mnist(folder, verify=False)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((10, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"uint8 \(N, 28, 28\)"):
        load_mnist(folder, verify=False)


def test_tar_member_size_checked_before_reading(tmp_path, rng):
    """A 1 GiB member in a ~1 MiB archive: refused from its tar header, never read."""
    archive = tar_gz(tmp_path / "tree.tar.gz", [("train/a/0.png", small_png(rng)),
                                                ("test/a/0.png", small_png(rng)),
                                                ("train/a/1.png", 1 << 30)])
    assert archive.stat().st_size < 4 * MiB
    mib, err = peak_rss_growth_mib(f"""
        def run():
            convforge.data.load_image_tree({str(archive)!r}, cache=False)
    """, tmp_path)
    assert err is not None and err.startswith("DataError"), err
    assert "train/a/1.png" in err and "declares 1073741824 bytes" in err
    assert mib < 100, f"peak RSS grew by {mib:.0f} MiB"


def test_inflated_total_is_bounded(tmp_path, rng):
    """Many members under the per-member cap, all zeros: the stream stops at the inflate limit
    (compressed size x ratio + slack), whatever the names are."""
    members = [("train/a/0.png", small_png(rng)), ("test/a/0.png", small_png(rng))]
    members += [(f"junk/{k}.bin", 60 * MiB) for k in range(4)]
    archive = tar_gz(tmp_path / "many.tar.gz", members)
    with pytest.raises(DataError, match=r"many.tar.gz: inflates to more than \d+ bytes"):
        load_image_tree(archive, cache=False)


def test_image_dimensions_checked_from_header(tmp_path, rng):
    """8000x8000 PNGs (~60 KB each) in a small archive: refused before decoding."""
    big = png_bytes(8000, 8000)
    assert len(big) < 200_000
    archive = tar_gz(tmp_path / "bomb.tar.gz", [("train/a/0.png", big), ("train/b/0.png", big),
                                                ("test/a/0.png", big)])
    mib, err = peak_rss_growth_mib(f"""
        def run():
            convforge.data.load_image_tree({str(archive)!r}, cache=False)
    """, tmp_path)
    assert err is not None and err.startswith("DataError"), err
    assert "8000x8000" in err and "pixels allowed" in err
    assert mib < 100, f"peak RSS grew by {mib:.0f} MiB"
    with pytest.raises(DataError, match="8000x8000"):
        StreamingBatches(archive, "train")


def test_decoded_total_is_bounded(tmp_path, rng, monkeypatch):
    """Images each under the pixel cap still stop at the decoded-bytes cap (lowered here)."""
    from convforge.data import _safety

    monkeypatch.setattr(_safety, "MAX_DECODED_BYTES", 5 * 3 * 32 * 32)
    members = [(f"train/a/{k}.png", small_png(rng)) for k in range(6)]
    archive = tar_gz(tmp_path / "t.tar.gz", members + [("test/a/0.png", small_png(rng))])
    with pytest.raises(DataError, match=r"decoded images pass 15360 bytes"):
        load_image_tree(archive, cache=False)


def test_cifar10_images_must_be_32x32(tmp_path, rng):
    """CIFAR-10's size is known: a tree of 64x64 images is not CIFAR-10 (old: loaded), and one
    odd image is refused from its header."""
    classes = list(datasets.CIFAR10_CLASSES)
    members = [(f"{s}/{c}/0.png", small_png(rng, (64, 64)))
               for s in ("train", "test") for c in classes]
    with pytest.raises(DataError, match=r"airplane/0.png: has shape HxW = 64x64, expected 32x32"):
        load_cifar10(tar_gz(tmp_path / "c64.tar.gz", members), cache=False)
    members = [(f"{s}/{c}/0.png", small_png(rng)) for s in ("train", "test") for c in classes]
    members.append(("train/cat/1.png", small_png(rng, (33, 32))))
    archive = tar_gz(tmp_path / "c.tar.gz", members)
    with pytest.raises(DataError, match=r"train/cat/1.png: has shape HxW = 33x32, expected 32x32"):
        load_cifar10(archive, cache=False)


def test_pil_decompression_bomb_is_a_data_error():
    # PIL's own checks (warning past 89 M pixels, error past 179 M), even with our cap off
    for side in (12000, 20000):
        with pytest.raises(DataError, match="mem.png: image too large to decode"):
            datasets._decode_image(png_bytes(side, side, rows=0), "mem.png", "L",
                                   max_pixels=None)
    # below PIL's threshold, our default cap refuses from the header alone
    with pytest.raises(DataError, match=r"mem.png: image is 5000x5000 \(HxW\), more than"):
        datasets._decode_image(png_bytes(5000, 5000, rows=0), "mem.png", "L")


def test_streaming_cache_is_bounded_and_holds_only_images(tmp_path, rng):
    """Old behaviour: a 2 MiB .tar.gz wrote GiBs of cache. Now a bomb member is refused before
    anything is written, and no partial cache file stays behind."""
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "convforge"
    ok = [("train/a/0.png", small_png(rng)), ("test/a/0.png", small_png(rng))]
    bomb = tar_gz(tmp_path / "s.tar.gz", ok + [("train/a/1.png", 200 * MiB)])
    with pytest.raises(DataError, match=r"train/a/1.png.*declares 209715200 bytes"):
        StreamingBatches(bomb, "train")
    assert not cache.exists() or not list(cache.iterdir()), "nothing left in the cache"
    junk = tar_gz(tmp_path / "j.tar.gz", ok + [("README.bin", 200 * MiB)])
    with pytest.raises(DataError, match="inflates to more than"):
        StreamingBatches(junk, "train")
    assert not cache.exists() or not list(cache.iterdir())
    # a good archive with a non-image member: only the images reach the cache
    good = tar_gz(tmp_path / "g.tar.gz", ok + [("notes/big.txt", 5 * MiB)])
    s = StreamingBatches(good, "train", batch_size=1)
    (plain,) = cache.glob("stream-g-*.tar")
    assert plain.stat().st_size < 64 * 1024
    assert s.sample_shape == (3, 32, 32) and len(list(s)) == 1


# --------------------------------------------------------------------------- item 11: errors

def test_data_error_is_exported_value_error():
    assert issubclass(DataError, ValueError) and issubclass(ChecksumError, DataError)
    assert cfdata.DataError is DataError and "DataError" in cfdata.__all__


@pytest.mark.parametrize("damage", ["truncated", "bad_gzip", "bad_magic", "trailing"])
def test_corrupt_idx_raises_one_line_data_error(tmp_path, rng, damage):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem, _ in datasets._MNIST.files.values():
        n = 10 if "t10k" in stem else 20
        write_idx(folder / (stem + ".gz"),
                  rng.integers(0, 10, (n, 28, 28) if "images" in stem else (n,)).astype(np.uint8))
    target = folder / "train-images-idx3-ubyte.gz"
    blob = target.read_bytes()
    raw = gzip.decompress(blob)
    target.write_bytes({"truncated": blob[: len(blob) // 2],
                        "bad_gzip": blob[:20] + b"\xff" * 40 + blob[60:],
                        "bad_magic": gzip.compress(b"\x01\x02" + raw[2:]),
                        "trailing": gzip.compress(raw + b"x")}[damage])
    with pytest.raises(DataError) as e:
        load_mnist(folder, verify=False)
    msg = str(e.value)
    assert "\n" not in msg and str(target) in msg


def test_checksum_mismatch_is_one_line_data_error(tmp_path, rng):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem, _ in datasets._MNIST.files.values():
        write_idx(folder / (stem + ".gz"),
                  np.zeros((3, 28, 28) if "images" in stem else (3,), np.uint8))
    with pytest.raises(DataError) as e:
        load_mnist(folder)
    assert isinstance(e.value, ChecksumError)
    assert "\n" not in str(e.value) and "train-images-idx3-ubyte.gz" in str(e.value)


def test_corrupt_image_in_tree_names_member(tmp_path, rng):
    archive = tar_gz(tmp_path / "t.tar.gz", [("train/a/0.png", small_png(rng)),
                                             ("train/a/1.png", b"\x89PNG\r\n\x1a\n garbage"),
                                             ("test/a/0.png", small_png(rng))])
    with pytest.raises(DataError, match=r"t.tar.gz:train/a/1.png: corrupt") as e:
        load_image_tree(archive, cache=False)
    assert "\n" not in str(e.value)


def test_not_found_names_the_cli_option(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--data PATH"):
        load_mnist(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match=r"--data PATH"):
        load_cifar10()
