"""Step buffers (issue #14 item 4): inside `reuse_step_buffers()`, the NumPy arrays a training
step allocates take their memory from the compiled core's buffer cache
(csrc/runtime/buffer_cache.hpp): a block of 64 KiB or more that an array frees waits there,
keyed by its exact size, for the array of the same size in the next step (the same layer's
output or gradient), instead of going back to the C library and coming back as fresh pages
that fault on first touch. `Model.fit` runs inside it; the idle blocks (at most 1 GiB) are freed
when the last `reuse_step_buffers()` of the process exits, and blocks freed after that (arrays
that outlived the loop) go straight back to the C library. `train_on_batch` runs inside it too,
and a step plan run layer by layer (nn/_plan.py) holds the cache (hold()) so that its idle
blocks wait from one train_on_batch call to the next.

NumPy keeps its allocator in a context variable: only the thread (context) that entered uses
the cache, a data-loading thread next to it does not. Values are untouched (only where bytes
live changes); `CONVFORGE_STEP_BUFFERS=0` turns it off, and it is off without the compiled
core."""

from __future__ import annotations

import functools
import weakref
from contextlib import contextmanager
from typing import Iterator

from .._env import flag


def _core():
    """convforge._core where the cpu backend can run (it holds the cache), else None."""
    from .. import backends

    if backends.unavailable_reason("cpu") is not None:
        return None
    from .. import _core

    return _core


def stats() -> dict:
    """The cache's counters: hits, misses (allocations of a cacheable size that found no idle
    block), held_bytes and blocks (idle now), users (reuse_step_buffers() blocks open); zeros
    without the compiled core."""
    core = _core()
    if core is None:
        return {"hits": 0, "misses": 0, "held_bytes": 0, "blocks": 0, "users": 0}
    return core.buffer_cache_stats()


@contextmanager
def reuse_step_buffers(enabled: bool = True) -> Iterator[None]:
    """NumPy allocations of this thread go through the step buffer cache until exit."""
    core = _core() if enabled and flag("CONVFORGE_STEP_BUFFERS") is not False else None
    previous = None
    if core is not None:
        try:
            previous = core.set_mem_handler(core.step_buffer_handler())
        except (ImportError, AttributeError):   # a NumPy without the C-API slot: plain memory
            previous = None
    if previous is None:
        yield
        return
    core.buffer_cache_begin()
    try:
        yield
    finally:
        core.set_mem_handler(previous)
        core.buffer_cache_end()


class Hold:
    """While it lives, the cache keeps its idle blocks between reuse_step_buffers() blocks (one
    more user, hold())."""


def hold():
    """A Hold (None without the cache): the blocks a step frees wait for the next step even
    when the steps are separate reuse_step_buffers() blocks (train_on_batch calls of a model
    whose step plan runs layer by layer, nn/_plan.py), until the Hold is garbage-collected."""
    core = _core() if flag("CONVFORGE_STEP_BUFFERS") is not False else None
    if core is None:
        return None
    token = Hold()
    core.buffer_cache_begin()
    weakref.finalize(token, core.buffer_cache_end)
    return token


def reusing_step_buffers(fn):
    """Decorator: `fn` runs inside reuse_step_buffers() (Model.fit)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with reuse_step_buffers():
            return fn(*args, **kwargs)
    return wrapper
