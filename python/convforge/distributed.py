"""Data-parallel training over MPI: `mpiexec -n P convforge train ...`, or in a script

    from convforge import distributed
    world = distributed.init()                  # under mpiexec: the MPI world (else size 1)
    distributed.data_parallel(model, world)     # fit / evaluate / train_on_batch go parallel
    model.fit(x, y, batch_size=256, seed=0)     # batch_size is the GLOBAL batch

Each rank runs the same script on the same data. fit cuts every global batch (the same batch
order on every rank: the seed is taken from rank 0) into P contiguous shards, rank r training on
shard r. The parameter gradients are summed with MPI Allreduce, each rank's weighted by its
share of the batch (n_r / N), so a step equals the single-process step on the whole batch up to
the order of the floating-point sums. Gradients go out in buckets of about `bucket_mb` MB, in
the order backward finishes the layers (last layer first), each bucket's non-blocking
Iallreduce started as soon as it is full, so the exchange overlaps the backward of the layers
below; all are waited for before the optimiser step. (Open MPI moves a non-blocking collective
on only while some MPI call runs: every finished layer tests the requests to give it that.)

BatchNormalization is synchronised: the batch mean and variance are those of the global batch
(an Allgather of each rank's count, mean and variance, combined in rank order), and its
backward's two per-channel sums are summed over the ranks too; so the moving statistics stay
identical on every rank. Dropout draws its masks per rank (a step is then not the
single-process one, only equally random). A global batch with fewer samples than ranks is
skipped (on every rank). evaluate (and fit's validation) splits array data over the ranks
and averages; predict is not distributed (every rank predicts what it is given).

With CuPy arrays (the cuda backend) the buckets go through NCCL (`cupy.cuda.nccl`), queued on
the current stream, so no host wait is needed; `init()` picks the GPU local_rank % count.

Failures: `init()` installs an excepthook that prints the error and calls MPI Abort, so a rank
that raises ends every rank (instead of leaving them blocked in a collective); the CLI does the
same for errors it would otherwise turn into an exit status (`World.guard`).

mpi4py is imported only when the environment shows an MPI launcher (Open MPI's
OMPI_COMM_WORLD_SIZE, MPICH/Hydra's PMI_SIZE, PMIx's PMIX_RANK) or when asked (`init(mpi=True)`);
convforge itself never needs it (`pip install "convforge[mpi]"` brings mpi4py and Open MPI).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from typing import Optional

import numpy as np

__all__ = ["World", "DataParallel", "launched", "init", "data_parallel"]

_LAUNCHER_ENV = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")
_LOCAL_RANK_ENV = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK")
_LOCAL_SIZE_ENV = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE")


def launched() -> bool:
    """Whether this process was started by an MPI launcher (mpiexec / mpirun)."""
    return any(k in os.environ for k in _LAUNCHER_ENV)


def _env_int(names, default: int) -> int:
    for k in names:
        v = os.environ.get(k, "")
        if v.isdigit():
            return int(v)
    return default


class World:
    """The ranks of one run: `comm` (an mpi4py communicator, None for a single process),
    `rank`, `size`, `local_rank` / `local_size` (ranks on this node), `is_root` (rank 0)."""

    def __init__(self, comm=None):
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        self.local_rank = _env_int(_LOCAL_RANK_ENV, 0) if comm is not None else 0
        self.local_size = _env_int(_LOCAL_SIZE_ENV, self.size) if comm is not None else 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def bcast(self, obj, root: int = 0):
        """rank `root`'s obj on every rank (any picklable object)."""
        return obj if self.comm is None else self.comm.bcast(obj, root=root)

    def allreduce_sum(self, a: np.ndarray) -> np.ndarray:
        """The element-wise sum over the ranks of a host array (a new array)."""
        a = np.ascontiguousarray(a)
        if self.comm is None:
            return a.copy()
        out = np.empty_like(a)
        self.comm.Allreduce(a, out)
        return out

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on some rank."""
        return bool(self.allreduce_sum(np.array([1 if flag else 0], np.int64))[0])

    def select_gpu(self) -> None:
        """With several ranks: GPU local_rank % count for this process (CuPy), before any
        array is made on it. Nothing to do for one process."""
        if self.size > 1:
            import cupy

            cupy.cuda.Device(self.local_rank % cupy.cuda.runtime.getDeviceCount()).use()

    def abort(self, status: int = 1) -> None:
        """Ends every rank now (MPI Abort); a single process exits."""
        sys.stderr.flush()
        sys.stdout.flush()
        if self.comm is None:
            os._exit(status)
        self.comm.Abort(status)

    @contextlib.contextmanager
    def guard(self):
        """Any exception leaving the block (SystemExit included, unless its status is 0) is
        printed with this rank's number and ends every rank: nobody waits forever in a
        collective for a rank that is gone. A single process just re-raises."""
        try:
            yield
        except BaseException as e:
            if self.size == 1 or (isinstance(e, SystemExit) and not e.code):
                raise
            sys.stderr.write(f"convforge.distributed: rank {self.rank} of {self.size} failed: "
                             f"{type(e).__name__}: {e}\n")
            self.abort(1)

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size})"


_world: Optional[World] = None


def init(mpi: Optional[bool] = None, threads: Optional[int] = None) -> World:
    """The world of this run (made once, then returned again). mpi=None: MPI only under a
    launcher (see launched()); True: MPI always (an error without mpi4py); False: a single
    process. With several ranks: an excepthook that aborts every rank on an uncaught exception,
    and `threads` convforge threads per rank (None: OMP_NUM_THREADS if set, else the CPUs this
    process may use divided by the ranks on this node, at least 1)."""
    global _world
    if _world is not None:
        return _world
    use_mpi = launched() if mpi is None else bool(mpi)
    if not use_mpi:
        _world = World(None)
        return _world
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"MPI needs mpi4py ({e}): pip install 'convforge[mpi]' (mpi4py and "
                          "Open MPI from wheels)") from None
    _world = World(MPI.COMM_WORLD)
    if _world.size > 1:
        _install_excepthook(_world)
        _set_threads(_world, threads)
    return _world


def _install_excepthook(world: World) -> None:
    def hook(etype, value, tb):
        traceback.print_exception(etype, value, tb)
        sys.stderr.write(f"convforge.distributed: rank {world.rank} of {world.size} raised "
                         f"{etype.__name__}: aborting every rank\n")
        world.abort(1)

    sys.excepthook = hook


def _set_threads(world: World, threads: Optional[int]) -> None:
    import convforge

    if threads is None:
        if os.environ.get("OMP_NUM_THREADS", "").isdigit():
            return   # convforge's default already follows it
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
            (os.cpu_count() or 1)
        threads = max(1, cpus // max(1, world.local_size))
    convforge.set_num_threads(int(threads))


def data_parallel(model, world: Optional[World] = None, bucket_mb: float = 25.0):
    """Makes model's fit / evaluate / train_on_batch data-parallel over `world` (default
    init()) and returns the DataParallel. Every rank must then make the same calls."""
    dp = DataParallel(world or init(), bucket_mb)
    model._dist = dp
    return dp


def _is_cupy(a) -> bool:
    return type(a).__module__.split(".")[0] == "cupy"


class _NcclReducer:
    """Sums flat CuPy buffers over the ranks with NCCL, on the current stream (nothing to wait
    for on the host: later kernels on that stream see the sums). Needs GPUs (skipped without)."""

    def __init__(self, world: World):
        from cupy.cuda import nccl

        self.nccl = nccl
        uid = world.bcast(nccl.get_unique_id() if world.is_root else None)
        self.comm = nccl.NcclCommunicator(world.size, uid, world.rank)

    def start(self, buf):
        import cupy

        nccl = self.nccl
        kind = {np.dtype(np.float32): nccl.NCCL_FLOAT32,
                np.dtype(np.float64): nccl.NCCL_FLOAT64}[np.dtype(buf.dtype)]
        self.comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, kind, nccl.NCCL_SUM,
                            cupy.cuda.get_current_stream().ptr)
        return None


class DataParallel:
    """Model's hooks for data-parallel training (see the module docstring). Also counts, per
    step, the gradient bytes sent and the seconds spent waiting for the sums (`stats`)."""

    def __init__(self, world: World, bucket_mb: float = 25.0):
        if not bucket_mb > 0:
            raise ValueError(f"bucket_mb must be > 0, got {bucket_mb!r}")
        self.world = world
        self.bucket_bytes = int(bucket_mb * 2**20)
        self._nccl = None
        self._active = False
        self.stats = {"steps": 0, "grad_bytes": 0, "wait_seconds": 0.0}

    @property
    def rank(self) -> int:
        return self.world.rank

    @property
    def size(self) -> int:
        return self.world.size

    @property
    def is_root(self) -> bool:
        return self.world.is_root

    # ---------------------------------------------------------------- set-up and batches
    def setup(self, model) -> None:
        """At the start of fit: rank 0's weights (moving statistics too) on every rank, and the
        BatchNormalization layers (nested models' too) synchronised."""
        from .nn.layers import BatchNormalization, bn_sync

        if self.size == 1:   # nothing to share: the layers keep their own (fused) kernels
            return
        for la in _all_layers(model):
            if isinstance(la, BatchNormalization):
                bn_sync[la] = self
        for p in model.params:
            host = self.world.bcast(_host(p.data) if self.is_root else None)
            p.data[...] = host if not _is_cupy(p.data) else _to_like(host, p.data)

    def start_fit(self, seed: int, verbose: int):
        """At the start of fit: (rank 0's seed, verbose on rank 0 and 0 elsewhere)."""
        self._set_up = False
        return int(self.world.bcast(seed)), (verbose if self.is_root else 0)

    def shard(self, xb, yb, model=None):
        """This rank's contiguous part of a global batch (sizes differ by at most one), or
        (None, None) when the batch has fewer samples than ranks. The first call of a fit
        (the model is built by then) runs setup(model)."""
        if model is not None and not getattr(self, "_set_up", True):
            self.setup(model)
            self._set_up = True
        n, p, r = len(xb), self.size, self.rank
        if n < p:
            return None, None
        lo, hi = r * n // p, (r + 1) * n // p
        return xb[lo:hi], (None if yb is None else yb[lo:hi])

    def shard_arrays(self, data):
        """(x, y) arrays split like a batch (for evaluate); a batch source is left whole."""
        x, y = data
        n, p, r = len(x), self.size, self.rank
        lo, hi = r * n // p, (r + 1) * n // p
        return x[lo:hi], y[lo:hi]

    def reduce(self, running) -> None:
        """A model's running means (sample-weighted sums and their count) summed over the
        ranks, in place: its means() are then those of every rank's samples."""
        host = [float(s) for s in _host_list(running.sums)] + [float(running.count)]
        total = self.world.allreduce_sum(np.array(host, np.float64))
        running.sums, running.count = [float(v) for v in total[:-1]], int(round(total[-1]))

    def agree(self, flag: bool) -> bool:
        return self.world.any(flag) if self.size > 1 else bool(flag)

    # ---------------------------------------------------------------- one training step
    def begin_step(self, n_local: int, params: list) -> None:
        """Before the forward of a step on n_local samples: this rank's weight n_local / N."""
        counts = self.world.allreduce_sum(np.array([n_local], np.int64))
        self._weight = n_local / int(counts[0])
        self._params = list(params)
        self._done: set = set()
        self._bucket: list = []
        self._bucket_bytes = 0
        self._pending: list = []   # (flat buffer, params, MPI request or None)
        self._active = True

    def layer_done(self, layer) -> None:
        """Called by backward when `layer`'s parameter gradients are complete: they join the
        current bucket, which is sent once it holds bucket_mb."""
        if not self._active:
            return
        for p in layer.trainable_params:
            if p.grad is None or id(p) in self._done:
                continue
            if self._bucket and self._bucket[0].grad.dtype != p.grad.dtype:
                self._send()
            self._done.add(id(p))
            self._bucket.append(p)
            self._bucket_bytes += p.grad.nbytes
        if self._bucket_bytes >= self.bucket_bytes:
            self._send()
        if self._pending and self._pending[-1][2] is not None:
            from mpi4py import MPI

            MPI.Request.Testall([r for _, _, r in self._pending if r is not None])

    def _send(self) -> None:
        params, self._bucket, self._bucket_bytes = self._bucket, [], 0
        if not params:
            return
        g0 = params[0].grad
        xp = _module_of(g0)
        buf = xp.concatenate([p.grad.ravel() for p in params])
        buf *= buf.dtype.type(self._weight)
        self.stats["grad_bytes"] += buf.nbytes
        if self.size == 1:
            self._pending.append((buf, params, None))
        elif _is_cupy(buf):
            if self._nccl is None:
                self._nccl = _NcclReducer(self.world)
            self._pending.append((buf, params, self._nccl.start(buf)))
        else:
            from mpi4py import MPI

            req = self.world.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            self._pending.append((buf, params, req))

    def finish_step(self) -> None:
        """After backward, before the optimiser step: the remaining gradients are sent (in the
        model's parameter order), every sum is waited for and copied back into .grad."""
        for p in self._params:
            if p.grad is not None and id(p) not in self._done:
                self._done.add(id(p))
                self._bucket.append(p)
        self._send()
        t0 = time.perf_counter()
        reqs = [r for _, _, r in self._pending if r is not None]
        if reqs:
            from mpi4py import MPI

            MPI.Request.Waitall(reqs)
        self.stats["wait_seconds"] += time.perf_counter() - t0
        for buf, params, _ in self._pending:
            o = 0
            for p in params:
                k = p.grad.size
                p.grad[...] = buf[o:o + k].reshape(p.grad.shape)
                o += k
        self._pending = []
        self._active = False
        self.stats["steps"] += 1

    # ---------------------------------------------------------------- BatchNormalization
    def bn_stats(self, n: int, mean, var):
        """The global batch's per-channel mean and biased variance from each rank's count n,
        mean and variance (float64, combined in rank order: the same result on every rank);
        returns (mean, var, (n, N))."""
        if self.size == 1:
            return mean, var, (n, n)
        c = mean.shape[0]
        local = np.concatenate([[float(n)], _host(mean), _host(var)]).astype(np.float64)
        every = np.empty((self.size, 2 * c + 1), np.float64)
        self.world.comm.Allgather(local, every)
        counts, means, vars_ = every[:, 0], every[:, 1:c + 1], every[:, c + 1:]
        total = counts.sum()
        gmean = (counts[:, None] * means).sum(axis=0) / total
        gvar = (counts[:, None] * (vars_ + (means - gmean) ** 2)).sum(axis=0) / total
        return _to_like(gmean, mean), _to_like(gvar, var), (n, int(total))

    def bn_backward(self, dy, x, mean, var, gamma, beta, eps, relu, counts):
        """batch_norm_backward for statistics of the global batch: the per-channel sums of dy
        and dy * xhat are summed over the ranks (each weighted n_r / N, as the gradients are),
        then dx = gamma / std * (dy - (sum dy + xhat * sum dy xhat) / (n_r * spatial))."""
        from . import functional as F

        dx_c, dgamma, dbeta = F.batch_norm_backward(dy, x, mean, var, gamma, beta, eps, relu,
                                                    batch_stats=False)
        n, total = counts
        xp = _module_of(x)
        both = xp.concatenate([dgamma.astype(np.float64), dbeta.astype(np.float64)])
        both = both * (n / total)
        if self.size > 1:
            both = _to_like(self.world.allreduce_sum(_host(both)), both)
        c = dgamma.shape[0]
        s_gamma, s_beta = both[:c], both[c:]
        m = n * int(np.prod(x.shape[2:], dtype=np.int64))
        scale = 1.0 / xp.sqrt(xp.asarray(var, dtype=np.float64) + eps)   # (C,)
        if gamma is not None:
            scale = scale * gamma.astype(np.float64)
        shape = (1, c) + (1,) * (x.ndim - 2)
        xhat = F.batch_norm(x, mean, var, None, None, eps)
        dx = dx_c - ((scale / m).reshape(shape) * (s_beta.reshape(shape)
                                                   + xhat * s_gamma.reshape(shape)))
        return dx.astype(x.dtype), dgamma, dbeta


def _all_layers(model):
    for la in model.layers:
        inner = getattr(la, "model", None)
        if inner is not None and hasattr(inner, "layers"):
            yield from _all_layers(inner)
        else:
            yield la


def _module_of(a):
    if _is_cupy(a):
        import cupy

        return cupy
    return np


def _host(a) -> np.ndarray:
    return a.get() if _is_cupy(a) else np.asarray(a)


def _host_list(values) -> list:
    return [_host(v) if hasattr(v, "dtype") else v for v in values]


def _to_like(host: np.ndarray, like):
    """`host` on the device of `like` (NumPy stays NumPy)."""
    if _is_cupy(like):
        import cupy

        return cupy.asarray(host)
    return np.asarray(host)
