"""Data-parallel scaling on one machine: P = 2 MPI ranks x 1 thread against P = 1 x 2 threads,
LeNet-5 (MNIST-shaped, 1x32x32) and VGG-small (CIFAR-shaped, 3x32x32), global batch 64, random
data, float32. Per configuration: images/s (median step after warm-up), the gradient bytes
each rank sends per step, the compute time per step (the step minus the wait for the sums) and
two allreduce times: the wait left after overlapping with backward, and one blocking Allreduce
of the whole gradient alone (the unhidden cost, for docs/scaling.md's model).

    python bench/mpi_scaling.py                 # the table (needs mpi4py and mpiexec)
    python bench/mpi_scaling.py --steps 3 --warmup 1   # a quick check that it runs

It starts itself once per configuration (under mpiexec for P = 2) in --worker mode, which prints
one JSON line from rank 0. Run it on an otherwise idle machine: the ranks share its cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

NETS = {"lenet5": (1, 32, 32), "vgg_small": (3, 32, 32)}
CONFIGS = [(1, 2), (2, 1)]   # (ranks, threads per rank)


def worker(a: argparse.Namespace) -> None:
    import numpy as np

    import convforge
    from convforge import distributed, models

    world = distributed.init(threads=a.threads)
    convforge.set_num_threads(a.threads)
    convforge.set_seed(0)
    shape = NETS[a.model]
    model = getattr(models, a.model)(10, shape)
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (a.batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, a.batch)
    dp = distributed.data_parallel(model, world)
    xb, yb = dp.shard(x, y)
    model._batch(xb, yb)          # builds the model
    dp.setup(model)               # rank 0's weights everywhere, BatchNorm synchronised
    step_s, wait_s = [], []
    for i in range(a.warmup + a.steps):
        if world.comm is not None:
            world.comm.Barrier()
        w0 = dp.stats["wait_seconds"]
        t0 = time.perf_counter()
        model._train_step(xb, yb)
        if i >= a.warmup:
            step_s.append(time.perf_counter() - t0)
            wait_s.append(dp.stats["wait_seconds"] - w0)
    grads = [p.grad for p in model.trainable_params]
    grad_bytes = sum(g.nbytes for g in grads)
    flat = np.concatenate([g.ravel() for g in grads])
    alone = []
    for _ in range(max(3, a.steps)):   # one blocking Allreduce of the whole gradient
        t0 = time.perf_counter()
        world.allreduce_sum(flat)
        alone.append(time.perf_counter() - t0)
    step, wait = statistics.median(step_s), statistics.median(wait_s)
    if world.is_root:
        print(json.dumps({
            "model": a.model, "ranks": world.size, "threads": a.threads, "batch": a.batch,
            "images_per_s": a.batch / step, "step_s": step, "compute_s": step - wait,
            "wait_s": wait, "allreduce_alone_s": statistics.median(alone) if world.size > 1
            else 0.0, "grad_bytes": grad_bytes,
            "params": sum(p.size for p in model.trainable_params)}))


def run_config(a: argparse.Namespace, model: str, ranks: int, threads: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model", model,
           "--threads", str(threads), "--steps", str(a.steps), "--warmup", str(a.warmup),
           "--batch", str(a.batch)]
    if ranks > 1:
        cmd = [a.mpiexec, "-n", str(ranks), "--oversubscribe"] + cmd
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.timeout)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--batch", type=int, default=64, help="global batch")
    ap.add_argument("--models", default="lenet5,vgg_small")
    ap.add_argument("--mpiexec", default=str(Path(sys.executable).with_name("mpiexec")))
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="lenet5", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    rows = [run_config(a, m, r, t) for m in a.models.split(",") for r, t in CONFIGS]
    print(f"global batch {a.batch}, median of {a.steps} steps after {a.warmup} warm-up, "
          "float32, times in ms per step")
    head = (f"{'model':<10} {'P x thr':>8} {'img/s':>8} {'step':>8} {'compute':>8} "
            f"{'wait':>7} {'allred.':>8} {'grad MB':>8} {'params':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:<10} {r['ranks']:>4} x {r['threads']:<2} "
              f"{r['images_per_s']:>8.0f} {1e3 * r['step_s']:>8.2f} "
              f"{1e3 * r['compute_s']:>8.2f} {1e3 * r['wait_s']:>7.2f} "
              f"{1e3 * r['allreduce_alone_s']:>8.2f} {r['grad_bytes'] / 2**20:>8.3f} "
              f"{r['params']:>9,}")
    print("wait: the step's wait for the gradient sums left after overlapping with backward; "
          "allred.: one blocking Allreduce of the whole gradient, alone")


if __name__ == "__main__":
    main()
