"""Test accuracy against training wall time for runs' metrics.json files (convforge train or
bench/train_torch.py): one curve per run, the per-epoch accuracy on the test set (val_accuracy
when the run validated on the test set), the flip-TTA curve where the run has one
(val_accuracy_tta, train_torch.py --probe-tta), and the final test accuracy as a marker; plus
a table of when each run first reached each --target. Time axis: epoch_end_seconds, or for
older runs without it train_seconds spread evenly over the epochs.

    cd bench/results/issue17
    python ../../time_to_accuracy.py vgg_fast-16ep-s0 torch-vgg_fast-16ep-s0 \\
        torch-anchor-26ep-s0 --target 0.885 --out time_to_accuracy.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load(path: Path) -> dict:
    p = path / "metrics.json" if path.is_dir() else path
    m = json.loads(p.read_text())
    epochs = len(m["history"]["val_accuracy"])
    ends = m.get("epoch_end_seconds") or [m["train_seconds"] * (i + 1) / epochs
                                          for i in range(epochs)]
    label = m.get("framework", "convforge") + f" {m['model']} {m['epochs']} ep s{m['seed']}"
    return {"label": label, "minutes": [t / 60 for t in ends],
            "plain": m["history"]["val_accuracy"], "tta": m["history"].get("val_accuracy_tta"),
            "final": m["test_accuracy"],
            "final_min": m["train_seconds"] / 60, "tta_kind": m.get("tta", "none")}


def first_reach(minutes, acc, target):
    return next((t for t, a in zip(minutes, acc) if a >= target), None)


def when(minutes) -> str:
    return "never" if minutes is None else f"{minutes:.1f} min"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--target", type=float, action="append", default=None)
    ap.add_argument("--out", type=Path, default=None, help="PNG to write (needs matplotlib)")
    a = ap.parse_args(argv)
    runs = [load(p) for p in a.runs]
    for t in a.target or [0.885]:
        print(f"first reaching {t:.1%}:")
        for r in runs:
            plain = first_reach(r["minutes"], r["plain"], t)
            tta = first_reach(r["minutes"], r["tta"], t) if r["tta"] else None
            end = r["final_min"] if r["final"] >= t else None
            print(f"  {r['label']}: per-epoch curve {when(plain)}, flip-TTA curve "
                  f"{when(tta) if r['tta'] else 'not measured'}; final test {r['final']:.2%} "
                  f"({r['tta_kind']} TTA) at {r['final_min']:.1f} min: {when(end)}")
    if a.out:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for r in runs:
            line, = ax.plot(r["minutes"], r["plain"], label=r["label"])
            if r["tta"]:
                ax.plot(r["minutes"], r["tta"], ls="--", color=line.get_color(),
                        label=r["label"] + " (flip TTA)")
            ax.plot([r["final_min"]], [r["final"]], "o", color=line.get_color())
        for t in a.target or [0.885]:
            ax.axhline(t, color="grey", lw=0.8, ls=":")
        ax.set(xlabel="training wall time (min)", ylabel="test accuracy", ylim=(0.6, 0.95))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        tmp = a.out.with_name(f".{a.out.name}.tmp.png")
        fig.savefig(tmp, dpi=110)
        tmp.replace(a.out)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
