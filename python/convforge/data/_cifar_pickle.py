"""CIFAR-10 python batches (`data_batch_1..5`, `test_batch`) read with a restricted unpickler.

The batches are pickles (Python 2 cPickle, protocol 2) of a dict
`{'batch_label': str, 'labels': [int], 'data': uint8 ndarray (N, 3072), 'filenames': [str]}`.
A pickle may call any importable function, so `pickle.loads` on a user's file runs whatever
the file says. Here `find_class` admits only the names these files (and re-pickles of them by
Python 3 / NumPy 1.x-2.x, protocols 2-5) reference, and each resolves to a checking stand-in
written here, never to the real NumPy constructor:
  numpy.core.multiarray._reconstruct / numpy._core.multiarray._reconstruct -> _ArrayProxy
  numpy.ndarray (only as _reconstruct's first argument), numpy.dtype -> _DtypeProxy
  numpy.core.numeric._frombuffer / numpy._core.numeric._frombuffer (protocol 5)
  _codecs.encode(str, 'latin1') (how Python 3 writes bytes at protocol 2)
The stand-ins accept only plain numeric dtypes (no object arrays, no records) and raw data of
exactly the declared size. Everything else (os.system, builtins.eval, subprocess, ...) raises
DataError before anything is called.
"""

from __future__ import annotations

import io
import pickle
import re

import numpy as np

from ._safety import DataError

# the longest data_batch is 31,035,704 bytes; leave room for re-pickles at other protocols
MAX_BATCH_BYTES = 64 << 20
_SIMPLE_DTYPE = re.compile(r"^[<>|=]?[biuf][1248]$")


class _NdarrayMarker:
    """Stands for numpy.ndarray: valid only as _reconstruct's subtype argument, not callable."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayMarker()


def _text(v, what: str) -> str:
    if isinstance(v, bytes):
        v = v.decode("latin1")
    if not isinstance(v, str):
        raise DataError(f"{what} must be a string, got {type(v).__name__}")
    return v


class _DtypeProxy:
    """numpy.dtype(spec, align, copy) for plain numbers only; __setstate__ sets the byte order."""

    def __init__(self, spec, align=False, copy=True):
        spec = _text(spec, "dtype spec")
        if not _SIMPLE_DTYPE.match(spec):
            raise DataError(f"dtype {spec!r} is not a plain numeric dtype")
        self.dtype = np.dtype(spec)

    def __setstate__(self, state) -> None:
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
        if not isinstance(state, tuple) or len(state) < 5 or any(v is not None
                                                                  for v in state[2:5]):
            raise DataError(f"dtype state {state!r} is not a plain numeric dtype's")
        order = _text(state[1], "dtype byte order")
        if order not in ("<", ">", "|", "="):
            raise DataError(f"dtype byte order {order!r}")
        if order != "|":
            self.dtype = self.dtype.newbyteorder(order)


def _array(raw, dtype, shape, order: str, what: str) -> np.ndarray:
    """A fresh array from raw bytes, checked: dtype, shape of ints, len(raw) == size."""
    if not isinstance(dtype, _DtypeProxy):
        raise DataError(f"{what}: dtype must come from numpy.dtype, got {type(dtype).__name__}")
    if isinstance(raw, str):
        raw = raw.encode("latin1")
    if not isinstance(raw, (bytes, bytearray)):
        raise DataError(f"{what}: raw data must be bytes, got {type(raw).__name__}")
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        raise DataError(f"{what}: shape must be a tuple of ints >= 0, got {shape!r}")
    count = 1
    for d in shape:
        count *= d
    if count * dtype.dtype.itemsize != len(raw):
        raise DataError(f"{what}: shape {shape} of {dtype.dtype} needs "
                        f"{count * dtype.dtype.itemsize} bytes, the pickle holds {len(raw)}")
    a = np.frombuffer(raw, dtype=dtype.dtype, count=count).reshape(shape, order=order)
    return np.array(a, dtype=dtype.dtype.newbyteorder("="))   # own, writable, native order


class _ArrayProxy:
    """What _reconstruct returns; BUILD's __setstate__ turns it into `self.array`."""

    def __init__(self):
        self.array: np.ndarray | None = None

    def __setstate__(self, state) -> None:
        # (version, shape, dtype, is_fortran, rawdata); NumPy before 1.0 left out the version
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise DataError(f"ndarray state must be a 4- or 5-tuple, got {type(state).__name__}")
        shape, dtype, fortran, raw = state
        self.array = _array(raw, dtype, shape, "F" if fortran else "C", "ndarray")


def _reconstruct(subtype, shape, typecode):
    if subtype is not _NDARRAY or shape != (0,):
        raise DataError(f"_reconstruct({subtype!r}, {shape!r}) is not a plain ndarray's")
    return _ArrayProxy()


def _frombuffer(buf, dtype, shape, order):
    if isinstance(buf, pickle.PickleBuffer):
        buf = bytes(buf)
    order = _text(order, "order")
    if order not in ("C", "F"):
        raise DataError(f"_frombuffer order {order!r}")
    return _array(buf, dtype, shape, order, "_frombuffer")


def _codecs_encode(obj, encoding="utf-8", errors="strict"):
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise DataError(f"_codecs.encode({type(obj).__name__}, {encoding!r}) is not bytes' "
                        "protocol-2 form")
    return obj.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DtypeProxy,
    ("_codecs", "encode"): _codecs_encode,
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(f"refers to {module}.{name}, which a CIFAR-10 batch never does "
                            "(a crafted file?); nothing was run") from None

    def persistent_load(self, pid):
        raise DataError("uses persistent ids, which a CIFAR-10 batch never does")


def _resolve(v):
    if isinstance(v, _ArrayProxy):
        if v.array is None:
            raise DataError("an ndarray without its data")
        return v.array
    if isinstance(v, (_DtypeProxy, _NdarrayMarker)):
        raise DataError(f"a bare {type(v).__name__.strip('_')} where data was expected")
    return v


def load_cifar_batch(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's bytes -> (x uint8 (N, 3, 32, 32), y int64 (N,)); DataError if the file
    is not a CIFAR-10 batch (crafted pickles included: nothing they name is called)."""
    if len(data) > MAX_BATCH_BYTES:
        raise DataError(f"{source}: {len(data)} bytes, more than a CIFAR-10 batch "
                        f"({MAX_BATCH_BYTES} at most)")
    try:
        d = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except DataError as e:
        raise DataError(f"{source}: not a CIFAR-10 batch: {e}") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt file
        detail = " ".join(str(e).split())
        raise DataError(f"{source}: not a CIFAR-10 batch (unpickling failed: "
                        f"{type(e).__name__}: {detail})") from None
    if not isinstance(d, dict):
        raise DataError(f"{source}: not a CIFAR-10 batch (a {type(d).__name__}, not a dict)")
    d = {(k.encode("latin1") if isinstance(k, str) else k): v for k, v in d.items()}
    if b"data" not in d or b"labels" not in d:
        raise DataError(f"{source}: not a CIFAR-10 batch (keys {sorted(map(repr, d))}, "
                        "needs b'data' and b'labels')")
    x = _resolve(d[b"data"])
    labels = _resolve(d[b"labels"])
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 \
            or x.shape[1] != 3 * 32 * 32:
        raise DataError(f"{source}: data must be a uint8 array (N, 3072), got "
                        f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    if not isinstance(labels, list) or not all(type(v) is int for v in labels):
        raise DataError(f"{source}: labels must be a list of ints")
    y = np.array(labels, dtype=np.int64).reshape(-1)
    if y.shape[0] != x.shape[0]:
        raise DataError(f"{source}: {x.shape[0]} images but {y.shape[0]} labels")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{source}: labels must be 0..9, got {y.min()}..{y.max()}")
    return x.reshape(-1, 3, 32, 32), y
