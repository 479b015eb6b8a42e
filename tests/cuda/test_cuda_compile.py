"""Checks of the CUDA backend that need no GPU.

- every csrc/cuda/*.cu compiles to PTX with nvcc (sm_80 and sm_90) and exports each expected
  `extern "C"` entry point (skipped when nvcc is not on PATH);
- the exact source strings the backend hands to cupy.RawModule compile with NVRTC, the compiler
  CuPy uses (skipped when no libnvrtc is found, e.g. from the nvidia-cuda-nvrtc-cu12 wheel);
- every launch the Python backend makes names an exported entry and passes exactly as many
  arguments as that entry's PTX declares (the backend runs on a recording device object with
  NumPy arrays as memory: launches recorded instead of run);
- the sources are NVRTC-ready (no system headers) and agree with the Python constants;
- without CuPy, the backend reports itself unavailable.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import re
import shutil
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest

from convforge import backends

from conftest import REPO

ROOT = REPO
CUDA_DIR = ROOT / "csrc" / "cuda"
NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH")

# extern "C" entry points per source, without the _f32 / _f64 suffix
ENTRIES = {
    "conv2d.cu": ["conv2d_forward", "conv2d_forward_naive", "conv2d_backward_data",
                  "conv2d_backward_weight", "conv2d_backward_bias"],
    "im2col.cu": ["im2col", "col2im"],
    "pool2d.cu": ["pool2d_max_forward", "pool2d_min_forward", "pool2d_avg_forward",
                  "pool2d_index_backward", "pool2d_avg_backward",
                  "global_pool2d_avg_forward", "global_pool2d_max_forward",
                  "global_pool2d_avg_backward", "global_pool2d_max_backward"],
}
SUFFIXES = ("f32", "f64")


def _cuda_module():
    """convforge.backends.cuda imported directly (it imports CuPy only when used)."""
    from convforge.backends import cuda

    return cuda


def _nvcc_ptx(name: str, arch: str, out_dir: Path) -> str:
    out = out_dir / f"{Path(name).stem}_{arch}.ptx"
    r = subprocess.run([NVCC, "-ptx", "-std=c++17", f"-arch={arch}", "-o", str(out),
                        str(CUDA_DIR / name)], capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 0, f"nvcc -ptx -arch={arch} {name} failed:\n{r.stderr}"
    return out.read_text()


def _entry_params(ptx: str) -> dict[str, int]:
    """{entry name: number of .param} for every .entry in a PTX text."""
    out = {}
    for m in re.finditer(r"\.entry\s+(\w+)\s*\(([^)]*)\)", ptx):
        out[m.group(1)] = len(re.findall(r"\.param\b", m.group(2)))
    return out


@pytest.fixture(scope="module")
def sm80_entries(tmp_path_factory) -> dict[str, int]:
    """{entry: parameter count} over all sources, compiled once for sm_80."""
    out_dir = tmp_path_factory.mktemp("ptx")
    entries: dict[str, int] = {}
    for name in ENTRIES:
        entries.update(_entry_params(_nvcc_ptx(name, "sm_80", out_dir)))
    return entries


def test_every_source_is_listed():
    assert sorted(p.name for p in CUDA_DIR.glob("*.cu")) == sorted(ENTRIES)


@needs_nvcc
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_ptx_compiles_and_exports_entries(name, arch, tmp_path):
    found = _entry_params(_nvcc_ptx(name, arch, tmp_path))
    want = {f"{e}_{s}" for e in ENTRIES[name] for s in SUFFIXES}
    missing = sorted(want - set(found))
    assert not missing, f"{name} ({arch}): entries missing from the PTX: {missing}; " \
                        f"found {sorted(found)}"


def test_sources_are_nvrtc_ready():
    """NVRTC has no system headers: the only include is common.cuh, which the backend pastes
    in, so the string handed to cupy.RawModule has no #include left."""
    cuda = _cuda_module()
    for name, entries in ENTRIES.items():
        text = (CUDA_DIR / name).read_text()
        includes = re.findall(r"^\s*#\s*include\s*(\S+)", text, re.MULTILINE)
        assert includes == ['"common.cuh"'], f"{name} includes {includes}"
        full = cuda.source(Path(name).stem)
        assert not re.search(r"^\s*#\s*include", full, re.MULTILINE), f"{name}: #include left"
        for entry in entries:
            for s in SUFFIXES:
                assert f"{entry}_##SUFFIX" in text or f"{entry}_{s}" in text, \
                    f"{name} does not define {entry}_{s}"
    common = (CUDA_DIR / "common.cuh").read_text()
    assert re.search(rf"#define CF_THREADS {cuda.THREADS}\b", common), "CF_THREADS != THREADS"
    conv = (CUDA_DIR / "conv2d.cu").read_text()
    assert re.search(rf"#define CF_TM {cuda.TILE_M}\b", conv), "CF_TM != TILE_M"
    assert re.search(rf"#define CF_TP {cuda.TILE_P}\b", conv), "CF_TP != TILE_P"


def _find_nvrtc() -> str | None:
    """Path or name of libnvrtc: on the library path, or inside the nvidia-cuda-nvrtc wheel."""
    found = ctypes.util.find_library("nvrtc")
    if found:
        return found
    try:
        import nvidia.cuda_nvrtc as pkg  # the wheel CuPy's CUDA 12 builds can use
    except ImportError:
        return None
    for base in getattr(pkg, "__path__", []):
        libs = sorted(Path(base, "lib").glob("libnvrtc.so*")) + \
            sorted(Path(base, "bin").glob("nvrtc64*.dll"))
        if libs:
            return str(libs[0])
    return None


NVRTC = _find_nvrtc()


def _nvrtc_compile(lib, code: str, name: str, options: list[str]) -> tuple[int, str, str]:
    """(result code, log, ptx) of one NVRTC compilation."""
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), code.encode(), name.encode(), 0, None,
                                  None) == 0
    try:
        opts = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
        rc = lib.nvrtcCompileProgram(prog, len(options), opts)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        ptx = ""
        if rc == 0:
            lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
            buf = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetPTX(prog, buf)
            ptx = buf.value.decode()
        return rc, log.value.decode(errors="replace"), ptx
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


@pytest.mark.skipif(NVRTC is None, reason="libnvrtc not found")
@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
def test_nvrtc_compiles_backend_sources(arch):
    cuda = _cuda_module()
    lib = ctypes.CDLL(NVRTC)
    for name, entries in ENTRIES.items():
        family = Path(name).stem
        rc, log, ptx = _nvrtc_compile(lib, cuda.source(family), name,
                                      list(cuda._OPTIONS) + [f"-arch={arch}"])
        assert rc == 0, f"NVRTC failed on {name} ({arch}), result {rc}:\n{log}"
        found = set(_entry_params(ptx))
        want = {f"{e}_{s}" for e in entries for s in SUFFIXES}
        assert want <= found, f"{name}: entries missing: {sorted(want - found)}"


class RecordingDevice:
    """A device object for the backend (see backends/cuda.py: CupyDevice) that records each
    launch as (family, entry, grid, args) instead of running it; NumPy arrays as memory."""

    def __init__(self):
        self.modules, self.kernels, self.calls = {}, {}, []

    def empty(self, shape, dtype):
        return np.zeros(shape, dtype)

    def device_id(self, like) -> int:
        return 0

    def load(self, family, code, options, device_id):
        return types.SimpleNamespace(get_function=lambda name: (family, name))

    def launch(self, kernel, grid, block, args, device_id):
        assert block == _cuda_module().THREADS
        self.calls.append(kernel + (grid, args))


def _run_every_op(cuda, dtype):
    x = np.zeros((2, 4, 9, 8), dtype)
    w = np.zeros((6, 2, 3, 2), dtype)
    conv = ((2, 1), (1, 0, 2, 1), (1, 2), 2)
    for algo in ("tiled", "naive"):
        cuda.conv2d(x, w, np.zeros(6, dtype), *conv, algo=algo)
    y = cuda.conv2d(x, w, None, *conv)
    cuda.conv2d_backward(np.zeros(y.shape, dtype), x, w, *conv, True)
    cols = cuda.im2col(x, (3, 2), (2, 1), (1, 0, 2, 1), (1, 2))
    cuda.col2im(cols, x.shape, (3, 2), (2, 1), (1, 0, 2, 1), (1, 2))
    pool = ((3, 3), (2, 2), (1, 1), (5, 4))
    for mode in ("max", "min", "avg"):
        cuda.pool2d(x, mode, *pool, True)
        cuda.pool2d_backward(np.zeros((2, 4, 5, 4), dtype), np.zeros((2, 4, 5, 4), np.int64),
                             x.shape, mode, *pool[:3], True)
    for mode in ("max", "avg"):
        cuda.global_pool2d(x, mode)
        cuda.global_pool2d_backward(np.zeros((2, 4), dtype), np.zeros((2, 4), np.int64),
                                    x.shape, mode)


@needs_nvcc
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_launches_match_kernel_signatures(dtype, sm80_entries):
    cuda, device = _cuda_module(), RecordingDevice()
    with cuda.use_device(device):
        _run_every_op(cuda, dtype)
    calls = device.calls
    launched = {name for _, name, _, _ in calls}
    want = {f"{e}_{cuda._SUFFIX[np.dtype(dtype)]}" for es in ENTRIES.values() for e in es}
    assert launched == want, f"not launched: {sorted(want - launched)}; " \
                             f"unknown: {sorted(launched - want)}"
    for family, name, grid, args in calls:
        assert name.rsplit("_", 1)[0] in ENTRIES[f"{family}.cu"], \
            f"{name} launched from family {family}"
        assert name in sm80_entries, f"{name} is not an entry of {family}.cu"
        assert len(args) == sm80_entries[name], \
            f"{name}: {len(args)} arguments passed, the kernel takes {sm80_entries[name]}"
        assert 0 < grid <= cuda.MAX_BLOCKS
        for a in args:
            assert a is cuda.NULL or isinstance(a, (np.ndarray, np.int64)), \
                f"{name}: argument of type {type(a).__name__}"


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="cupy is installed")
def test_unavailable_without_cupy():
    reason = _cuda_module().probe()
    assert isinstance(reason, str) and reason
    assert backends.unavailable_reason("cuda")
    assert "cuda" not in backends.available()
