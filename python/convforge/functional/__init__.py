"""Public ops (convforge.functional, `F`): normalise arguments once, check shapes, pick a backend,
call it. One module per op family: conv, pool, norm, elementwise, loss, optim (the optimiser
updates, lists of arrays updated in place); _common holds the checks.

Arrays: NCHW activations, OIHW weights (K, C/groups, KH, KW), float32 or float64.
NumPy in -> NumPy out (cpu, numba, reference backends); CuPy in -> CuPy out (cuda backend).
Inputs are never modified (except by the optimiser updates, whose params and state lists are
updated in place). Non-contiguous, Fortran-order or read-only inputs are copied once, here, into
C order (no dtype conversion ever happens silently: mixed dtypes raise).

Validation contract (one layer validates, the others trust it):
- This module normalises and validates every argument once, with the messages users see:
  array kind (all NumPy or all CuPy), float32/float64 and one dtype for all, ranks and shapes
  that agree with each other, ints (via convforge._array and convforge._shapes), sizes that fit
  in int64, and the backend that takes this kind of array. Calls with N = 0 return here.
- Backends (convforge.backends) receive only such normalised arguments and do not check them
  again. A backend checks only what its kernels' memory safety needs and nothing upstream
  covers: the max/min pool backward's index range and the softmax cross-entropy's class ids,
  data that no shape check sees (a backend that checks them itself sets CHECKS_INDICES /
  CHECKS_LABELS; see pool._indices and loss.softmax_cross_entropy).
- The compiled bindings (convforge._core), which tests and benchmarks also call directly,
  check shapes against buffer sizes and dtypes: what memory safety needs.
"""


from __future__ import annotations

from .._shapes import conv_output_size, pool_output_size
from . import _interop
from .conv import col2im, conv2d, conv2d_backward, im2col
from .elementwise import activation, activation_backward, dropout
from .loss import softmax_cross_entropy
from .norm import batch_norm, batch_norm_backward, batch_norm_stats
from .optim import adam_update, rmsprop_update, sgd_update
from .pool import (
    avg_pool2d,
    avg_pool2d_backward,
    global_avg_pool2d,
    global_avg_pool2d_backward,
    global_max_pool2d,
    global_max_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
    min_pool2d,
    min_pool2d_backward,
)

__all__ = [
    "conv2d", "conv2d_backward", "im2col", "col2im",
    "max_pool2d", "max_pool2d_backward", "min_pool2d", "min_pool2d_backward",
    "avg_pool2d", "avg_pool2d_backward",
    "global_avg_pool2d", "global_avg_pool2d_backward",
    "global_max_pool2d", "global_max_pool2d_backward",
    "batch_norm_stats", "batch_norm", "batch_norm_backward", "dropout",
    "activation", "activation_backward", "softmax_cross_entropy",
    "sgd_update", "adam_update", "rmsprop_update",
    "conv_output_size", "pool_output_size",
]

# Every op also takes DLPack arrays (torch, JAX, ...) and answers in the caller's library.
for _name in __all__:
    if not _name.endswith("_size"):
        globals()[_name] = _interop.dlpack_in_out(globals()[_name])
del _name
