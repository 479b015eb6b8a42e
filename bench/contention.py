"""LeNet-5 training throughput on a quiet machine and next to busy processes, for several OpenMP
wait settings (issue 11 item 6).

OpenMP workers that wait for each other at every parallel region fall apart when another
process takes one of the cores. convforge's default (convforge._threads) follows the load: it
measures the CPU time other processes take and uses only the cores they leave, with libgomp's
fast spinning wait. This script measures each setting in a fresh subprocess (libgomp reads its
settings once, when it loads), first with the machine quiet, then with --competitors spinning
Python processes started by the script; rounds interleave the settings; it prints the median
images/s per setting and the machine line.

    python bench/contention.py                       # every setting, quiet and busy
    python bench/contention.py --steps 20 --configs default,fixed-2 --loads busy

Settings (environment of the measuring subprocess; the rest of the environment is kept, minus
the variables below):
    default        convforge's default: threads follow the load, libgomp's spinning wait
    fixed-2        CONVFORGE_DYNAMIC_THREADS=0: always the default count (2 here), spinning
    passive        the same with OMP_WAIT_POLICY=passive (workers sleep at once)
    spin-1000      the same with GOMP_SPINCOUNT=1000 (a short spin, then sleep)
    1-thread       OMP_NUM_THREADS=1 (the reference point under contention)
The timed steps start after --warmup-seconds of steps (the default samples the load every 0.5 s).
Do not run it on a machine where others are working: it loads every core on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "default": {},
    "fixed-2": {"CONVFORGE_DYNAMIC_THREADS": "0"},
    "passive": {"CONVFORGE_DYNAMIC_THREADS": "0", "OMP_WAIT_POLICY": "passive"},
    "spin-1000": {"CONVFORGE_DYNAMIC_THREADS": "0", "GOMP_SPINCOUNT": "1000"},
    "1-thread": {"OMP_NUM_THREADS": "1"},
}
# Removed from the environment of every measuring subprocess before a setting's own are added.
CONTROLLED = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS",
              "CONVFORGE_DYNAMIC_THREADS")
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
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < args.warmup_seconds:
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
           "--warmup-seconds", str(args.warmup_seconds), "--batch-size", str(args.batch_size),
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
    p.add_argument("--warmup-seconds", type=float, default=1.5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0,
                   help="convforge threads (0: its default; 1-thread setting: always 1)")
    p.add_argument("--backend", default="cpu", choices=("cpu", "numba"))
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help=f"comma-separated, from {','.join(CONFIGS)}")
    p.add_argument("--loads", default="quiet,busy", help="quiet, busy or both")
    p.add_argument("--competitors", type=int, default=1, help="busy processes when 'busy'")
    p.add_argument("--repeats", type=int, default=3,
                   help="rounds over the settings (interleaved); the table shows medians")
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

    # results[(load, setting)]: images/s of each round; rounds interleave the settings so that
    # drifts of this noisy VM spread over all of them alike
    results: dict = {}
    threads, waits, info = {}, {}, {}
    for load in loads:
        spinners = []
        if load == "busy":
            spinners = [subprocess.Popen([sys.executable, "-c", SPINNER])
                        for _ in range(args.competitors)]
            time.sleep(0.5)  # let them reach their loop
        try:
            for _ in range(args.repeats):
                for name in configs:
                    res = _measure(args, name)
                    if not info or name == "default":  # the machine line shows the default's
                        info = res["info"]
                    results.setdefault((load, name), []).append(res["images_per_s"])
                    threads[load, name], waits[name] = res["threads"], res["wait_policy"]
                    print(f"{load:5s}  {name:12s}  {res['images_per_s']:9.1f} images/s  "
                          f"threads {res['threads']}  wait {res['wait_policy']}", flush=True)
        finally:
            for s in spinners:
                s.kill()
                s.wait()
    print()
    print(f"| load | setting | images/s (median of {args.repeats}) | min - max | threads | "
          "OpenMP wait |")
    print("|---|---|---:|---|---:|---|")
    for (load, name), v in results.items():
        print(f"| {load} | {name} | {statistics.median(v):.0f} | {min(v):.0f} - {max(v):.0f} | "
              f"{threads[load, name]} | {waits[name]} |")
    print()
    print(_machine_line(info, args))


if __name__ == "__main__":
    main()
