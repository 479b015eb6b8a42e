"""Run the benchmark suites (or read a pytest-benchmark JSON) and print one table per run:
median time, GFLOP/s (or GB/s), ratio to PyTorch (x torch = torch time / impl time) and % of the
SGEMM peak measured on this machine at the same thread count.

    python bench/compare.py                       # run bench_conv2d + bench_pool2d, print table
    python bench/compare.py --json out.json       # only print from an existing JSON
    python bench/compare.py --quick --threads 1   # the quick subset on one thread
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def sgemm_peak(threads: int, n: int = 2048) -> float:
    """Measured float32 GEMM GFLOP/s (PyTorch's, else NumPy's BLAS), median of 5."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    try:
        import torch

        torch.set_num_threads(threads)
        ta = torch.from_numpy(a)
        mm = lambda: torch.mm(ta, ta)  # noqa: E731
    except ImportError:
        mm = lambda: a @ a  # noqa: E731
    mm()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        mm()
        times.append(time.perf_counter() - t)
    return 2.0 * n**3 / sorted(times)[2] / 1e9


def table(data: dict, peak: float) -> str:
    groups: dict[str, list] = {}
    for b in data["benchmarks"]:
        groups.setdefault(b["group"], []).append(b)
    info = data.get("convforge_info", {})
    lines = [
        f"machine: {info.get('cpu')} | threads {data.get('threads')} | isa {info.get('isa')} | "
        f"convforge {info.get('version')} | numpy {info.get('numpy')} | python "
        f"{info.get('python')} | SGEMM peak {peak:.1f} GFLOP/s (measured)",
        "",
        "| group | impl | median ms | GFLOP/s, GB/s or img/s | x torch | % SGEMM peak |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for g in sorted(groups):
        rows = groups[g]
        torch_t = next((r["stats"]["median"] for r in rows if r["extra_info"]["impl"] == "torch"),
                       None)
        for r in sorted(rows, key=lambda r: r["extra_info"]["impl"]):
            t = r["stats"]["median"]
            ex = r["extra_info"]
            if "flops" in ex:
                rate = ex["flops"] / t / 1e9
                pct = f"{100 * rate / peak:.0f}%"
            elif "images" in ex:
                rate, pct = ex["images"] / t, "(images/s)"
            else:
                rate, pct = ex["bytes"] / t / 1e9, ""
            ratio = f"{torch_t / t:.2f}x" if torch_t else ""
            lines.append(f"| {g} | {ex['impl']} | {t * 1e3:.3f} | {rate:.1f} | {ratio} | {pct} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="print from this pytest-benchmark JSON instead of running")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--quick", action="store_true", help="a few representative shapes only")
    p.add_argument("--suites", default="bench_conv2d.py,bench_pool2d.py")
    p.add_argument("-k", default=None, help="pytest -k expression to select benchmarks")
    args = p.parse_args(argv)
    path = args.json
    if path is None:
        path = os.path.join(tempfile.mkdtemp(), "bench.json")
        env = dict(os.environ, CONVFORGE_BENCH_THREADS=str(args.threads),
                   CONVFORGE_BENCH_QUICK="1" if args.quick else "0",
                   OMP_NUM_THREADS=str(args.threads))
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               *[os.path.join(HERE, s) for s in args.suites.split(",")],
               f"--benchmark-json={path}", "--benchmark-disable-gc"]
        if args.k:
            cmd += ["-k", args.k]
        subprocess.run(cmd, env=env, check=True)
    with open(path) as f:
        data = json.load(f)
    print(table(data, sgemm_peak(int(data.get("threads") or args.threads))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
