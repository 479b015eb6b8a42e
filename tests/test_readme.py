"""README's Python examples run as written, in order, in one namespace (a later block may use
what an earlier one defined), so they stay true. The PyTorch example (a block importing torch)
is left out where torch is not installed (it is optional)."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run():
    pytest.importorskip("convforge._core")
    if not os.environ.get("CONVFORGE_DATA"):
        pytest.skip("the nn example loads MNIST: set CONVFORGE_DATA")
    import convforge

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    threads = convforge.get_num_threads()
    namespace: dict = {}
    no_torch = importlib.util.find_spec("torch") is None
    try:
        for i, code in enumerate(blocks):
            if no_torch and re.search(r"^(import|from) torch\b", code, re.M):
                continue
            exec(compile(code, f"README.md python block {i}", "exec"), namespace)
    finally:   # the examples change global settings
        convforge.set_backend(None)
        convforge.set_autotune(False)
        convforge.set_conv_exact(False)
        convforge.set_num_threads(threads)
    assert set(namespace["scores"]) == {"loss", "accuracy"}
    assert namespace["probs"].shape == (4, 10)
