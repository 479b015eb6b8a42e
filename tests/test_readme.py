"""README's Python examples run as written, in order, in one namespace (a later block may use
what an earlier one defined), so they stay true. A block starting with `# needs: MODULE` (the
PyTorch, JAX and CuPy examples: optional libraries) is left out where MODULE does not import."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _importable(module: str) -> bool:
    """Whether `module` imports and, for CuPy, has a GPU to run on."""
    try:
        mod = importlib.import_module(module)
        if module == "cupy":
            return mod.cuda.runtime.getDeviceCount() > 0
    except Exception:   # ImportError, or CuPy without a driver
        return False
    return True


def test_readme_examples_run():
    pytest.importorskip("convforge._core")
    if not os.environ.get("CONVFORGE_DATA"):
        pytest.skip("the nn example loads MNIST: set CONVFORGE_DATA")
    import convforge

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    threads = convforge.get_num_threads()
    namespace: dict = {}
    try:
        for i, code in enumerate(blocks):
            needs = re.match(r"# needs: (\S+)\n", code)     # a block for an optional library
            if needs and not _importable(needs.group(1)):
                continue
            exec(compile(code, f"README.md python block {i}", "exec"), namespace)
    finally:   # the examples change global settings
        convforge.set_backend(None)
        convforge.set_autotune(False)
        convforge.set_conv_exact(False)
        convforge.set_num_threads(threads)
    assert set(namespace["scores"]) == {"loss", "accuracy"}
    assert namespace["probs"].shape == (4, 10)
