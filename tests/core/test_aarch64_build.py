"""The aarch64 build (issue #16): the portable baseline kernels cross-compile for aarch64 with
Debian's cross compiler (aarch64-linux-gnu-g++: `apt-get install g++-aarch64-linux-gnu`) and,
where qemu-user is installed (`apt-get install qemu-user`), the C++ check of tests/core/
cpp_portable runs under qemu-aarch64: every conv algorithm in all three directions against the
naive loops, the pools, the GEMM, on the baseline dispatch. Skips without the cross compiler.

What is built is the set the top-level CMakeLists.txt builds on a CPU that is not x86: csrc/
without the *_avx2 / *_avx512 copies and csrc/peak, without CONVFORGE_X86 (csrc/runtime/isa.hpp),
as a shared library linked with --no-undefined; the bindings are left out (they would need
aarch64 Python headers)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

CROSS = "aarch64-linux-gnu-g++"
SYSROOT = Path("/usr/aarch64-linux-gnu")   # Debian's multiarch cross sysroot


def _build() -> Path:
    import cmake_build

    if cmake_build.skip_reason():
        pytest.skip(cmake_build.skip_reason())
    cross = shutil.which(CROSS)
    if cross is None:
        pytest.skip(f"no {CROSS} (apt-get install g++-aarch64-linux-gnu)")
    csrc = REPO / "csrc"
    inputs = tuple(p for p in csrc.rglob("*") if p.suffix in (".cpp", ".hpp", ".inc"))
    # The later -D of CMAKE_CXX_COMPILER wins over cmake_build's native one.
    defines = {"CMAKE_SYSTEM_NAME": "Linux", "CMAKE_SYSTEM_PROCESSOR": "aarch64",
               "CMAKE_CXX_COMPILER": cross}
    return cmake_build.build(REPO / "tests" / "core" / "cpp_portable", inputs=inputs,
                             defines=lambda folder: defines, key=f"aarch64 {cross}")


def test_baseline_kernels_cross_compile_and_run_under_qemu():
    out = _build() / "out"
    exe = out / "portable_check"
    head = exe.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183  # EM_AARCH64
    qemu = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
    if qemu is None:
        pytest.skip("built for aarch64; no qemu-aarch64 to run it (apt-get install qemu-user)")
    env = dict(os.environ, QEMU_LD_PREFIX=str(SYSROOT), OMP_NUM_THREADS="2")
    run = subprocess.run([qemu, str(exe)], capture_output=True, text=True, timeout=600, env=env,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "isa baseline:" in run.stdout and run.stdout.rstrip().endswith(", 0 bad"), run.stdout
    assert int(run.stdout.split(":")[1].split()[0]) > 100, run.stdout
