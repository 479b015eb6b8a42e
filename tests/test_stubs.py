"""The committed type stubs of the compiled modules (python/convforge/_core.pyi, _peak.pyi) are
what tools/gen_stubs.py generates from the modules built now (issue #16 item 3): a binding
changed without regenerating them fails here. Skipped without pybind11-stubgen, and with other
pybind11-stubgen / pybind11 versions than the stubs' header names (their formatting differs)."""

from __future__ import annotations

import importlib.util
import os
import re

import pytest

import convforge.backends as backends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _gen_stubs():
    spec = importlib.util.spec_from_file_location(
        "gen_stubs", os.path.join(ROOT, "tools", "gen_stubs.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_stubs_are_fresh():
    pytest.importorskip("pybind11_stubgen")
    if backends.unavailable_reason("cpu") is not None:
        pytest.skip("the compiled core is not built")
    gen = _gen_stubs()
    with open(os.path.join(ROOT, "python", "convforge", "_core.pyi")) as f:
        first = f.readline()
    m = re.search(r"\((.*)\)", first)
    assert m, f"no generator versions in the stub's header: {first!r}"
    if m.group(1) != gen.versions():
        pytest.skip(f"stubs generated with {m.group(1)}, installed: {gen.versions()}")
    diffs = gen.stale()
    assert not diffs, ("stale stubs: run `python tools/gen_stubs.py`\n" + "".join(diffs))[:6000]


def test_stubs_name_every_public_function():
    # independent of the generator: each public name of _core is declared in _core.pyi
    if backends.unavailable_reason("cpu") is not None:
        pytest.skip("the compiled core is not built")
    from convforge import _core

    with open(os.path.join(ROOT, "python", "convforge", "_core.pyi")) as f:
        text = f.read()
    declared = set(re.findall(r"^(?:def |class )?(\w+)(?:\(|:| =)", text, re.M))
    missing = [n for n in dir(_core) if not n.startswith("_") and n not in declared]
    assert not missing, f"not in _core.pyi (run tools/gen_stubs.py): {missing}"
