"""LeNet-5 training throughput on a quiet machine and next to busy processes, for several OpenMP
wait settings (issue 11 item 6).

Spinning OpenMP workers (OMP_WAIT_POLICY=active, or libgomp's default spin of 300,000 pause
iterations per wait) take the cores that the rest of the work needs when another process is
busy. convforge now starts OpenMP with OMP_WAIT_POLICY=PASSIVE unless the user chose a policy
(convforge._threads). This script measures each setting in a fresh subprocess (the policy is
read once, when libgomp loads), first with the machine quiet, then with --competitors spinning
Python processes started by the script, and prints images/s per setting and the machine line.

    python bench/contention.py                       # every setting, quiet and busy
    python bench/contention.py --steps 20 --configs default,active --loads busy

Settings (environment of the measuring subprocess; the rest of the environment is kept, minus
the variables below):
    default        convforge's default (passive wait unless the user set a policy)
    libgomp-spin   GOMP_SPINCOUNT=300000: libgomp's own default, convforge's before this change
    active         OMP_WAIT_POLICY=active: spin until work arrives
    short-spin     GOMP_SPINCOUNT=10000: a short spin, then sleep
    1-thread       OMP_NUM_THREADS=1 (the reference point under contention)
Do not run it on a machine where others are working: it loads every core on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

CONFIGS = {
    "default": {},
    "libgomp-spin": {"GOMP_SPINCOUNT": "300000"},
    "active": {"OMP_WAIT_POLICY": "active"},
    "short-spin": {"GOMP_SPINCOUNT": "10000"},
    "1-thread": {"OMP_NUM_THREADS": "1"},
}
# Removed from the environment of every measuring subprocess before a setting's own are added.
CONTROLLED = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS")
SPINNER = "while True:\n    pass\n"


def worker(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process: LeNet-5 train_on_batch steps on a fixed random
    batch; prints one JSON line."""
    import numpy as np

    import convforge
    from convforge import models, nn

    if args.threads and "OMP_NUM_THREADS" not in os.environ:
        convforge.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch_size, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, args.batch_size).astype(np.int64)
    nn.set_seed(0)
    model = models.lenet5()
    model.compile("adam", "sparse_categorical_crossentropy")
    with convforge.use_backend(args.backend):
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(x, y)
        seconds = time.perf_counter() - t0
    info = convforge.info()
    print(json.dumps({"images_per_s": args.steps * args.batch_size / seconds,
                      "seconds": seconds, "threads": convforge.get_num_threads(),
                      "wait_policy": info.get("omp_wait_policy"), "info": info}))


def _measure(args: argparse.Namespace, config: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    env.update(CONFIGS[config])
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
           "--backend", args.backend, "--threads", str(args.threads or 0)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{config}: worker failed (rc {r.returncode}):\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _machine_line(info: dict, args: argparse.Namespace) -> str:
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count()
    from convforge import _threads

    quota = _threads.cgroup_cpu_limit()
    return (f"{info.get('cpu')} | {info.get('cpu_count')} cores, affinity {affinity}, cgroup "
            f"quota {quota if quota else 'none'} | convforge {info.get('version')} isa "
            f"{info.get('isa')} default threads {info.get('default_num_threads')} | backend "
            f"{args.backend} | LeNet-5 batch {args.batch_size}, {args.steps} steps | "
            f"{args.competitors} busy process(es) when busy | python {platform.python_version()}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=100, help="timed steps (100 x 64 = 6400 images)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0,
                   help="convforge threads (0: its default; 1-thread setting: always 1)")
    p.add_argument("--backend", default="cpu", choices=("cpu", "numba"))
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help=f"comma-separated, from {','.join(CONFIGS)}")
    p.add_argument("--loads", default="quiet,busy", help="quiet, busy or both")
    p.add_argument("--competitors", type=int, default=1, help="busy processes when 'busy'")
    p.add_argument("--timeout", type=float, default=900, help="seconds per measurement")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    loads = [x.strip() for x in args.loads.split(",") if x.strip()]
    for name in configs:
        if name not in CONFIGS:
            p.error(f"--configs: unknown setting {name!r}; choose from {list(CONFIGS)}")
    for load in loads:
        if load not in ("quiet", "busy"):
            p.error(f"--loads: unknown load {load!r}; choose quiet and/or busy")

    rows, info = [], {}
    for load in loads:
        spinners = []
        if load == "busy":
            spinners = [subprocess.Popen([sys.executable, "-c", SPINNER])
                        for _ in range(args.competitors)]
            time.sleep(0.5)  # let them reach their loop
        try:
            for name in configs:
                res = _measure(args, name)
                if not info or name == "default":  # the machine line shows the default's info
                    info = res["info"]
                rows.append((load, name, res))
                print(f"{load:5s}  {name:12s}  {res['images_per_s']:9.1f} images/s  "
                      f"threads {res['threads']}  wait {res['wait_policy']}", flush=True)
        finally:
            for s in spinners:
                s.kill()
                s.wait()
    print()
    print("| load | setting | images/s | threads | OpenMP wait |")
    print("|---|---|---:|---:|---|")
    for load, name, res in rows:
        print(f"| {load} | {name} | {res['images_per_s']:.0f} | {res['threads']} | "
              f"{res['wait_policy']} |")
    print()
    print(_machine_line(info, args))


if __name__ == "__main__":
    main()
