"""convforge.io.safetensors: the pure-Python .safetensors reader and writer (round trips, the
safetensors package reading our files and we its, and damaged files refused before any
allocation they ask for)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from convforge import io
from convforge.io import safetensors as st


def craft(path, header, buffer: bytes = b"", header_len=None) -> str:
    """A .safetensors file from a header (dict, or raw bytes) and a byte buffer."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if header_len is None else header_len
    path.write_bytes(struct.pack("<Q", n) + raw + buffer)
    return str(path)


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


ALL_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
              np.uint64, np.uint32, np.uint16, np.uint8, np.bool_]


def test_round_trip_every_dtype_and_shape(tmp_path, rng):
    tensors = {f"t{i}/{np.dtype(dt).name}": (rng.standard_normal((3, 2)) * 50).astype(dt)
               for i, dt in enumerate(ALL_DTYPES)}
    tensors["scalar"] = np.float32(2.5).reshape(())
    tensors["empty"] = np.zeros((0, 4), np.float32)
    tensors["fortran"] = np.asfortranarray(rng.standard_normal((3, 4)))
    tensors["big_endian"] = np.arange(5, dtype=">i4")
    path = tmp_path / "t.safetensors"
    io.write_safetensors(path, tensors, metadata={"format": "np"})
    back, meta = io.open_safetensors(path)
    assert meta == {"format": "np"} and list(back) == list(tensors)   # order kept
    for k, a in tensors.items():
        b = back[k].read()
        assert b.shape == a.shape and b.dtype == a.dtype.newbyteorder("="), k
        assert np.array_equal(a, b), k
        assert b.flags.writeable and b.dtype.isnative
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    assert n % 8 == 0                                  # the buffer starts 8-byte aligned


def test_bf16_reads_as_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 0.0], np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")          # exact in bfloat16
    path = craft(tmp_path / "b.safetensors", {"w": entry("BF16", (4,), (0, 8))}, bits.tobytes())
    got = io.read_safetensors(path)["w"]
    assert got.dtype == np.float32 and np.array_equal(got, values)


def test_writer_refuses_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="complex128"):
        io.write_safetensors(tmp_path / "c.safetensors", {"z": np.zeros(2, complex)})
    with pytest.raises(ValueError, match="__metadata__"):
        io.write_safetensors(tmp_path / "c.safetensors", {"__metadata__": np.zeros(2)})
    with pytest.raises(TypeError, match="metadata"):
        io.write_safetensors(tmp_path / "c.safetensors", {}, metadata={"a": 1})
    assert not (tmp_path / "c.safetensors").exists()


def test_interop_with_the_safetensors_package(tmp_path, rng):
    stn = pytest.importorskip("safetensors.numpy")
    tensors = {"b.weight": rng.standard_normal((3, 4)).astype(np.float32),
               "a.bias": rng.standard_normal(5), "c": np.arange(7, dtype=np.int64),
               "d": np.zeros((0,), np.float16)}
    ours = tmp_path / "ours.safetensors"
    io.write_safetensors(ours, tensors)
    theirs = stn.load_file(str(ours))
    assert all(np.array_equal(theirs[k], v) for k, v in tensors.items())
    path = tmp_path / "theirs.safetensors"
    stn.save_file(tensors, str(path), metadata={"m": "1"})
    back, meta = io.open_safetensors(path)
    assert meta == {"m": "1"}
    assert all(np.array_equal(back[k].read(), v) for k, v in tensors.items())


GOOD = entry()


@pytest.mark.parametrize("header,buffer,header_len,match", [
    ({"w": GOOD}, b"\0" * 8, 10**9, "header length 1000000000 exceeds the file"),
    (b"not json", b"", None, "not UTF-8 JSON"),
    (b"\xff\xfe", b"", None, "not UTF-8 JSON"),
    (b"[1, 2]", b"", None, "not a JSON object"),
    (b'{"w": %s, "w": %s}' % (json.dumps(GOOD).encode(), json.dumps(GOOD).encode()),
     b"\0" * 8, None, "names a tensor twice"),
    ({"w": dict(GOOD, extra=1)}, b"\0" * 8, None, "exactly dtype, shape and data_offsets"),
    ({"w": "F32"}, b"", None, "exactly dtype"),
    ({"w": entry("F128")}, b"\0" * 8, None, "unsupported dtype 'F128'"),
    ({"w": entry("object")}, b"\0" * 8, None, "unsupported dtype"),
    ({"w": entry(shape=(-2,))}, b"\0" * 8, None, "shape"),
    ({"w": entry(shape=(2.0,))}, b"\0" * 8, None, "shape"),
    ({"w": dict(GOOD, shape=2)}, b"\0" * 8, None, "shape"),
    ({"w": entry(offsets=(0, 16))}, b"\0" * 8, None, "outside the 8-byte buffer"),
    ({"w": entry(offsets=(8, 0))}, b"\0" * 8, None, "outside"),
    ({"w": entry(offsets=(-8, 0))}, b"\0" * 8, None, "outside"),
    ({"w": entry(offsets=(0,))}, b"\0" * 8, None, "outside"),
    ({"w": entry(offsets=(0, 4))}, b"\0" * 8, None, "needs 8 bytes but its offsets span 4"),
    # a huge claimed shape is compared as an exact integer, never allocated
    ({"w": entry(shape=(2**40, 2**40), offsets=(0, 8))}, b"\0" * 8, None, "needs"),
    ({"w": entry(), "v": entry(offsets=(4, 12))}, b"\0" * 12, None, "overlaps"),
    ({"w": entry(), "v": entry(offsets=(12, 20))}, b"\0" * 20, None, "leaves a hole at byte 8"),
    ({"w": entry()}, b"\0" * 12, None, "cover 8 of the 12 buffer bytes"),
    ({"w": GOOD, "__metadata__": {"a": 1}}, b"\0" * 8, None, "__metadata__ must map strings"),
    ({"w": GOOD, "__metadata__": [1]}, b"\0" * 8, None, "__metadata__ must map strings"),
])
def test_damaged_headers_are_refused(tmp_path, header, buffer, header_len, match):
    path = craft(tmp_path / "bad.safetensors", header, buffer, header_len)
    with pytest.raises(ValueError, match=match):
        io.read_safetensors(path)


def test_short_files_and_the_header_limit(tmp_path, monkeypatch):
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"\1\0\0")
    with pytest.raises(ValueError, match="shorter than the 8-byte header length"):
        io.read_safetensors(tiny)
    path = craft(tmp_path / "h.safetensors", {"w": GOOD}, b"\0" * 8)
    monkeypatch.setattr(st, "MAX_HEADER_BYTES", 16)
    with pytest.raises(ValueError, match="16-byte limit"):
        io.read_safetensors(path)


def test_a_file_cut_after_opening_fails_on_read(tmp_path):
    path = tmp_path / "cut.safetensors"
    io.write_safetensors(path, {"w": np.arange(4, dtype=np.float32)})
    tensors, _ = io.open_safetensors(path)
    data = path.read_bytes()
    path.write_bytes(data[:-4])
    with pytest.raises(ValueError, match="cut short"):
        tensors["w"].read()


def test_model_weights_round_trip_without_the_package(tmp_path, rng):
    """nn save_weights / load_weights use this module for .safetensors."""
    from convforge import nn

    m = nn.Sequential([nn.Conv2D(2, 3, input_shape=(1, 5, 5)), nn.Flatten(), nn.Dense(3)])
    path = tmp_path / "w.safetensors"
    m.save_weights(path)
    m2 = nn.Sequential([nn.Conv2D(2, 3, input_shape=(1, 5, 5)), nn.Flatten(), nn.Dense(3)])
    m2.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), m2.get_weights()))
    assert sorted(io.read_safetensors(path)) == ["conv2d/bias", "conv2d/kernel", "dense/bias",
                                                 "dense/kernel"]
    craft(path, {"w": entry(offsets=(0, 4))}, b"\0" * 8)
    with pytest.raises(ValueError, match="not a valid .safetensors file"):
        m2.load_weights(path)
