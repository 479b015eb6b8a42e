"""Measure every kernel against the references in one run and print one table per thread count:
median time, GFLOP/s (or GB/s, images/s), "x torch" (torch median / implementation median) and
% of the float32 FMA peak measured in the same run at the same thread count.

    python bench/compare.py --threads 1,2              # all shapes (bench/shapes.py), conv + pool
    python bench/compare.py --quick --threads 2        # a representative subset
    python bench/compare.py --suites conv,pool,train --out table.md --json-out run.json
    python bench/compare.py --json out.json            # print from a pytest-benchmark JSON
    python bench/compare.py --isa avx2 --suites train  # both libraries on AVX2 (see --isa)

Every group (one shape and direction) runs its implementations interleaved, round-robin, after
warm-up, and reports medians (bench/harness.py); `convforge bench ...` runs this script.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SUITES = {"conv": "bench_conv2d", "pool": "bench_pool2d", "train": "bench_train_step"}
# --isa: PyTorch's settings for the same instruction set (oneDNN's cap, ATen's kernels)
TORCH_ISA = {"avx2": ("AVX2", "avx2"), "avx512": ("AVX512_CORE", "avx512"),
             "baseline": ("SSE41", "default")}


def table(data: dict) -> str:
    """Markdown table of a run: data = {"machine": str, "fma_peak": float|None, "benchmarks":
    [{"group", "stats": {"median"}, "extra_info": {"impl", flops|bytes|images}}]}."""
    peak = data.get("fma_peak")
    groups: dict[str, list] = {}
    for b in data["benchmarks"]:
        groups.setdefault(b["group"], []).append(b)
    lines = [f"machine: {data.get('machine', '?')}", "",
             "| group | impl | median ms | GFLOP/s, GB/s or img/s | x torch | % FMA peak |",
             "|---|---|---:|---:|---:|---:|"]
    for g in groups:
        rows = groups[g]
        torch_t = next((r["stats"]["median"] for r in rows if r["extra_info"]["impl"] == "torch"),
                       None)
        for r in sorted(rows, key=lambda r: r["extra_info"]["impl"]):
            t, ex = r["stats"]["median"], r["extra_info"]
            if "flops" in ex:
                rate = ex["flops"] / t / 1e9
                pct = f"{100 * rate / peak:.0f}%" if peak else ""
            elif "images" in ex:
                rate, pct = ex["images"] / t, "(img/s)"
            else:
                rate, pct = ex["bytes"] / t / 1e9, "(GB/s)"
            ratio = f"{torch_t / t:.2f}x" if torch_t else ""
            lines.append(f"| {g} | {ex['impl']} | {t * 1e3:.3f} | {rate:.1f} | {ratio} | {pct} |")
    return "\n".join(lines)


def run(threads: int, suites: list[str], quick: bool, match: str | None) -> dict:
    """One interleaved run of the selected suites at `threads`."""
    import harness

    harness.set_threads(threads)
    fma = harness.fma_peak_gflops(threads)
    sgemm = harness.sgemm_gflops(threads)
    harness.set_threads(threads)
    impls = harness.all_impls()
    out = {"threads": threads, "fma_peak": fma, "sgemm": sgemm,
           "machine": harness.machine_line(threads, fma, sgemm), "benchmarks": []}
    for suite in suites:
        for group in importlib.import_module(SUITES[suite]).groups(quick):
            if match and match not in group.name:
                continue
            t0 = time.perf_counter()
            times = harness.run_interleaved(group, impls)
            for impl, ts in times.items():
                ts = sorted(ts)
                out["benchmarks"].append({"group": group.name,
                                          "stats": {"median": ts[len(ts) // 2], "min": ts[0],
                                                    "rounds": len(ts)},
                                          "extra_info": dict(group.extra, impl=impl)})
            print(f"  {group.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return out


def from_pytest_benchmark(path: str) -> dict:
    with open(path) as f:
        data = json.load(f)
    info = data.get("convforge_info", {})
    return {"machine": f"{info.get('cpu')} | threads {data.get('threads')} | isa "
                       f"{info.get('isa')} | convforge {info.get('version')} (pytest-benchmark, "
                       "not interleaved)",
            "fma_peak": None, "benchmarks": data["benchmarks"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="print from this pytest-benchmark JSON instead of running")
    p.add_argument("--threads", default=str(os.cpu_count() or 1),
                   help="thread counts, comma-separated (default: all cores)")
    p.add_argument("--quick", action="store_true", help="a few representative shapes only")
    p.add_argument("--suites", default="conv,pool", help="comma-separated: conv, pool, train")
    p.add_argument("-k", default=None, help="only groups whose name contains this")
    p.add_argument("--out", help="also write the tables (markdown) to this file")
    p.add_argument("--json-out", help="also write the raw results (JSON) to this file")
    p.add_argument("--isa", choices=sorted(TORCH_ISA),
                   help="run convforge's kernels of this instruction set (CONVFORGE_ISA) and hold "
                        "PyTorch to the same one (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY): "
                        "what an AVX2 machine would measure, on an AVX-512 one")
    args = p.parse_args(argv)
    if args.isa:  # before convforge or torch is imported: both read these at import time
        os.environ["CONVFORGE_ISA"] = args.isa
        os.environ["ONEDNN_MAX_CPU_ISA"], os.environ["ATEN_CPU_CAPABILITY"] = TORCH_ISA[args.isa]
    if args.json:
        runs = [from_pytest_benchmark(args.json)]
    else:
        suites = [s.strip() for s in args.suites.split(",") if s.strip()]
        bad = [s for s in suites if s not in SUITES]
        if bad:
            p.error(f"unknown suite(s) {bad}; choose from {sorted(SUITES)}")
        runs = [run(int(t), suites, args.quick, args.k) for t in args.threads.split(",")]
    text = "\n\n".join(f"### {r.get('threads', '?')} thread(s)\n\n```\n" +
                       table(r).replace("\n\n", "\n```\n\n", 1) for r in runs)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(runs, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
