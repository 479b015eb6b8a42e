"""The step buffer cache (issue #14 item 4, convforge.nn.reuse_step_buffers): NumPy arrays of
this thread go through it inside the block, same-sized blocks are reused, values never
change (a fit is bit-identical with it off), other threads and a fork child are safe, and
the idle blocks are freed when the last block exits."""

from __future__ import annotations

import gc
import os
import threading

import numpy as np
import pytest

import convforge
from convforge import models, nn
from convforge.nn import _buffers

pytestmark = pytest.mark.skipif(_buffers._core() is None, reason="needs the compiled core")

BIG = 1 << 16   # float32 elements: 256 KiB, above the cache's 64 KiB floor


@pytest.fixture(autouse=True)
def _no_plan_holds():
    """Models of earlier tests whose step plans hold the cache (nn/_plan.py) are collected
    first: these tests count the cache's users from zero."""
    gc.collect()
    assert _buffers.stats()["users"] == 0


def _handler(a):
    try:
        from numpy._core.multiarray import get_handler_name
    except ImportError:   # NumPy 1.x
        from numpy.core.multiarray import get_handler_name
    return get_handler_name(a)


def test_arrays_inside_use_the_cache_and_reuse_blocks():
    before = _buffers.stats()
    with nn.reuse_step_buffers():
        a = np.full(BIG, 7.0, np.float32)
        assert _handler(a) == "convforge_step_buffers"
        del a
        assert _buffers.stats()["blocks"] == before["blocks"] + 1
        b = np.zeros(BIG, np.float32)      # the freed block, zeroed again
        assert _buffers.stats()["hits"] == before["hits"] + 1
        assert not b.any()
        c = np.empty(BIG + 1, np.float32)   # another size: a miss
        assert _buffers.stats()["misses"] >= before["misses"] + 2
        del b, c
    after = _buffers.stats()
    assert after["held_bytes"] == 0 and after["blocks"] == 0 and after["users"] == 0
    assert _handler(np.ones(BIG, np.float32)) != "convforge_step_buffers"


def test_nested_blocks_keep_the_cache_until_the_last_exits():
    with nn.reuse_step_buffers():
        with nn.reuse_step_buffers():
            a = np.ones(BIG, np.float32)
        assert _handler(np.ones(BIG, np.float32)) == "convforge_step_buffers"
        del a
        assert _buffers.stats()["held_bytes"] >= 4 * BIG
    assert _buffers.stats()["held_bytes"] == 0
    with nn.reuse_step_buffers():
        late = np.ones(BIG, np.float32)
    del late   # outlived the block: freed, not kept
    assert _buffers.stats()["held_bytes"] == 0


def test_realloc_keeps_contents():
    with nn.reuse_step_buffers():
        a = np.arange(BIG, dtype=np.float32)
        a.resize(2 * BIG, refcheck=False)   # NumPy's realloc
        assert np.array_equal(a[:BIG], np.arange(BIG, dtype=np.float32))
        assert not a[BIG:].any()
        a.resize(10, refcheck=False)
        assert np.array_equal(a, np.arange(10, dtype=np.float32))


def test_other_threads_keep_numpys_allocator():
    names = []
    with nn.reuse_step_buffers():
        t = threading.Thread(target=lambda: names.append(_handler(np.ones(BIG, np.float32))))
        t.start()
        t.join()
    assert names == ["default_allocator"]


def test_off_switch(monkeypatch):
    monkeypatch.setenv("CONVFORGE_STEP_BUFFERS", "0")
    with nn.reuse_step_buffers():
        assert _handler(np.ones(BIG, np.float32)) != "convforge_step_buffers"
    with nn.reuse_step_buffers(enabled=True):
        assert _handler(np.ones(BIG, np.float32)) != "convforge_step_buffers"


def test_numpy_without_the_handler_api_gets_plain_memory(monkeypatch):
    def missing(handler):
        raise ImportError("no numpy._core._multiarray_umath")
    monkeypatch.setattr(convforge._core, "set_mem_handler", missing)
    with nn.reuse_step_buffers():
        assert _handler(np.ones(BIG, np.float32)) != "convforge_step_buffers"
        assert _buffers.stats()["users"] == 0


def test_set_mem_handler_rejects_other_objects():
    with pytest.raises(TypeError, match="handler"):
        convforge._core.set_mem_handler(object())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_allocates_inside_the_block():
    with nn.reuse_step_buffers():
        keep = [np.ones(BIG, np.float32) for _ in range(3)]
        del keep[0]
        pid = os.fork()
        if pid == 0:   # child: allocate, reuse, free; exit without pytest's teardown
            ok = False
            try:
                x = np.zeros(BIG, np.float32)
                x += 1
                del x
                ok = float(np.ones(BIG, np.float32).sum()) == BIG
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def _fit_weights(monkeypatch, on):
    monkeypatch.setenv("CONVFORGE_STEP_BUFFERS", "1" if on else "0")
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (96, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 96)
    nn.set_seed(0)
    m = models.lenet5()
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = m.fit(x, y, batch_size=32, epochs=2, seed=1, verbose=0, validation_data=(x[:40], y[:40]))
    return m.get_weights(), hist.history


def test_fit_is_bit_identical_with_and_without(monkeypatch):
    hits = _buffers.stats()["hits"]
    w_on, h_on = _fit_weights(monkeypatch, True)
    assert _buffers.stats()["hits"] > hits          # the fit did reuse blocks
    gc.collect()                                    # the model and its step plan are gone:
    assert _buffers.stats()["held_bytes"] == 0      # its blocks were freed
    w_off, h_off = _fit_weights(monkeypatch, False)
    assert all(np.array_equal(a, b) for a, b in zip(w_on, w_off))
    assert h_on == h_off
