"""The host GEMM behind Dense (forward and backward)."""

from __future__ import annotations

import numpy as np

_core_module: list = []   # [convforge._core or None] once looked up


def _gemm_core():
    """convforge._core when it loads, else None (then NumPy's matmul is used)."""
    if not _core_module:
        try:
            from .. import _core
        except ImportError:
            _core = None
        _core_module.append(_core)
    return _core_module[0]


def matmul(a, b, trans_a: bool = False, trans_b: bool = False):
    """op(a) @ op(b). NumPy float arrays go through the compiled core's blocked GEMM: it runs on
    convforge's OpenMP threads (NumPy's OpenBLAS threads keep spinning after a call and, on a
    small machine, steal the cores from the conv kernels that follow and slow them down)
    and its sums do not depend on the batch size or thread count. Anything else: `@`."""
    core = _gemm_core() if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) else None
    if (core is not None and a.dtype == b.dtype and a.dtype in (np.float32, np.float64)
            and a.flags.c_contiguous and b.flags.c_contiguous and a.size and b.size):
        return core.gemm(a, b, trans_a, trans_b)
    return (a.T if trans_a else a) @ (b.T if trans_b else b)
