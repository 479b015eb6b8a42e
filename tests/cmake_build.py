"""Builds the C++ test programs and modules under tests/ (CMake projects: tests/cuda/emu, the CUDA
emulator; tests/core/cpp, the GEMM geometry check) into a cache folder keyed by the SHA-256 of
their inputs, once: reused across runs and processes (a file lock serialises concurrent
builds). Outputs (executables, modules) land in <folder>/out; generated sources in <folder>/gen.

The cache is $CONVFORGE_TEST_BUILD_CACHE, else <XDG cache>/convforge/test-builds. `skip_reason()`
says why nothing can be built here (no cmake or no C++ compiler); the tests that need a build
skip only then, with that reason.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping, Optional


def cxx() -> Optional[str]:
    """The C++ compiler the builds use: $CXX, else c++ or g++ on PATH."""
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")


@functools.lru_cache(maxsize=None)
def skip_reason() -> Optional[str]:
    if shutil.which("cmake") is None:
        return "cmake not on PATH (pip install '.[test]' brings it)"
    if cxx() is None:
        return "no C++ compiler (c++ / g++ / $CXX)"
    return None


def cache_root() -> Path:
    if os.environ.get("CONVFORGE_TEST_BUILD_CACHE"):
        return Path(os.environ["CONVFORGE_TEST_BUILD_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "convforge" / "test-builds"


def _run(cmd: list, log: Path, what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    log.write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise RuntimeError(f"building {what} failed ({' '.join(map(str, cmd))}):\n"
                           f"{(r.stdout + r.stderr)[-6000:]}")


def build(project: Path, *, inputs: tuple = (), generated: Optional[Mapping[str, str]] = None,
          defines: Optional[Callable[[Path], Mapping[str, str]]] = None, key: str = "") -> Path:
    """The build folder of CMake project `project`, configured and built if not cached.

    The cache key covers the project's own files, the files in `inputs` (sources it compiles
    from elsewhere, e.g. csrc/), `generated` ({file name: text}, written to <folder>/gen and
    passed as -DGEN_DIR), the -D `defines` (a function of the build folder, for names that must
    be unique per build), `key`, the compiler and this Python."""
    generated = dict(generated or {})
    h = hashlib.sha256()
    for path in sorted(project.rglob("*")) + sorted(Path(p) for p in inputs):
        if path.is_file():
            h.update(str(path.name).encode() + path.read_bytes())
    for name, text in sorted(generated.items()):
        h.update(name.encode() + text.encode())
    h.update(f"{sys.version} {cxx()} {key}".encode())
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"{project.name}_{h.hexdigest()[:20]}"  # a name usable as an identifier
    if folder.name in _failed:   # once per process: every test needing it fails fast
        raise RuntimeError(_failed[folder.name])
    try:
        _build_locked(project, folder, generated, defines)
    except RuntimeError as e:
        _failed[folder.name] = str(e)
        raise
    return folder


_failed: dict[str, str] = {}   # build folder name -> the error of its failed build


def _build_locked(project: Path, folder: Path, generated: Mapping[str, str],
                  defines: Optional[Callable[[Path], Mapping[str, str]]]) -> None:
    root = folder.parent
    with open(root / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # one build per key at a time, across processes
        if not (folder / "ok").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            (folder / "gen").mkdir(parents=True)
            for name, text in generated.items():
                (folder / "gen" / name).write_text(text)
            configure = ["cmake", "-S", str(project), "-B", str(folder / "build"),
                         "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_CXX_COMPILER={cxx()}",
                         f"-DGEN_DIR={folder / 'gen'}", f"-DPython_EXECUTABLE={sys.executable}",
                         f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={folder / 'out'}",
                         f"-DCMAKE_RUNTIME_OUTPUT_DIRECTORY={folder / 'out'}"]
            configure += [f"-D{k}={v}" for k, v in (defines(folder) if defines else {}).items()]
            if shutil.which("ninja"):
                configure += ["-G", "Ninja"]
            _run(configure, folder / "configure.log", project.name)
            _run(["cmake", "--build", str(folder / "build"), "-j", str(os.cpu_count() or 2)],
                 folder / "build.log", project.name)
            (folder / "ok").write_text("built\n")
