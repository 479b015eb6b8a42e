"""Smoke test of an installed convforge (a wheel), run from outside the source tree: .ci/run and
cibuildwheel's test-command run it in a fresh venv holding only NumPy and the wheel.

    python tools/smoke_test.py [--readme README.md]

Checks: convforge imports from site-packages (not from a source tree), the compiled core loads;
every public op of convforge.functional runs once on each available backend (cpu, numba when
installed, reference) on small float32 inputs and agrees with the float64 reference backend;
README's first Python example runs as written (when --readme is given or README.md is found
next to this script's folder). Prints one line per backend and a summary; exits 1 on failure.
"""

from __future__ import annotations

import argparse
import re
import sys
import traceback
from pathlib import Path

import numpy as np

RTOL, ATOL = 1e-4, 1e-5   # float32 kernels against the float64 reference


def _inputs(rng: np.random.Generator) -> dict:
    f = np.float32
    return {
        "x": rng.standard_normal((2, 4, 9, 9)).astype(f),
        "w": rng.standard_normal((6, 2, 3, 3)).astype(f), "b": rng.standard_normal(6).astype(f),
        "dy_conv": rng.standard_normal((2, 6, 5, 5)).astype(f),
        "dy_pool": rng.standard_normal((2, 4, 5, 5)).astype(f),
        "dy_global": rng.standard_normal((2, 4)).astype(f),
        "logits": rng.standard_normal((5, 7)).astype(f), "labels": np.arange(5) % 7,
        "params": [rng.standard_normal((3, 4)).astype(f), rng.standard_normal(5).astype(f)],
        "grads": [rng.standard_normal((3, 4)).astype(f), rng.standard_normal(5).astype(f)],
    }


def _run_ops(F, be: str, a: dict) -> dict:
    """Every public functional op once on backend `be`: {op name: result (arrays)}."""
    x, w, b = a["x"], a["w"], a["b"]
    conv = {"stride": 2, "padding": 1, "dilation": 1, "groups": 2}   # (2, 6, 5, 5)
    r = {}
    r["conv2d"] = F.conv2d(x, w, b, **conv, activation="relu", backend=be)
    r["conv2d_backward"] = F.conv2d_backward(a["dy_conv"], x, w, **conv, backend=be)
    cols = F.im2col(x, 3, stride=2, padding=1, backend=be)
    r["im2col"] = cols
    r["col2im"] = F.col2im(cols, x.shape, 3, stride=2, padding=1, backend=be)
    for mode in ("max", "min"):
        y, idx = getattr(F, f"{mode}_pool2d")(x, 3, 2, padding=1, return_indices=True, backend=be)
        r[f"{mode}_pool2d"] = (y, idx)
        r[f"{mode}_pool2d_backward"] = getattr(F, f"{mode}_pool2d_backward")(
            a["dy_pool"], x, 3, 2, padding=1, indices=idx, backend=be)
    r["avg_pool2d"] = F.avg_pool2d(x, 3, 2, padding=1, backend=be)
    r["avg_pool2d_backward"] = F.avg_pool2d_backward(a["dy_pool"], x, 3, 2, padding=1, backend=be)
    r["global_avg_pool2d"] = F.global_avg_pool2d(x, backend=be)
    r["global_avg_pool2d_backward"] = F.global_avg_pool2d_backward(a["dy_global"], x, backend=be)
    gy, gi = F.global_max_pool2d(x, return_indices=True, backend=be)
    r["global_max_pool2d"] = (gy, gi)
    r["global_max_pool2d_backward"] = F.global_max_pool2d_backward(a["dy_global"], x, gi,
                                                                   backend=be)
    mean, var = F.batch_norm_stats(x, backend=be)
    r["batch_norm_stats"] = (mean, var)
    gamma, beta = np.linspace(0.5, 1.5, 4, dtype=np.float32), np.full(4, 0.1, np.float32)
    r["batch_norm"] = F.batch_norm(x, mean, var, gamma, beta, relu=True, backend=be)
    r["batch_norm_backward"] = F.batch_norm_backward(x, x, mean, var, gamma, beta, relu=True,
                                                     backend=be)
    r["conv_output_size"] = np.array(F.conv_output_size((9, 9), (3, 3), (2, 2), (1, 1, 1, 1),
                                                        (1, 1)))
    r["pool_output_size"] = np.array(F.pool_output_size((9, 9), (3, 3), (2, 2), (1, 1), True))
    r["dropout"] = F.dropout(x, 0.3, 1234, backend=be)
    y = F.activation(x, "tanh", backend=be)
    r["activation"] = y
    r["activation_backward"] = F.activation_backward(x, y, "tanh", backend=be)
    r["softmax_cross_entropy"] = F.softmax_cross_entropy(a["logits"], a["labels"],
                                                         label_smoothing=0.1, backend=be)

    def fresh():
        return [p.copy() for p in a["params"]]

    p, bufs = fresh(), [np.zeros_like(q) for q in a["params"]]
    F.sgd_update(p, a["grads"], bufs, lr=0.1, momentum=0.9, nesterov=True, first_step=True,
                 backend=be)
    r["sgd_update"] = p + bufs
    p, m, v = fresh(), [np.zeros_like(q) for q in p], [np.zeros_like(q) for q in p]
    F.adam_update(p, a["grads"], m, v, lr=1e-2, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=1,
                  backend=be)
    r["adam_update"] = p + m + v
    p, sq = fresh(), [np.zeros_like(q) for q in a["params"]]
    F.rmsprop_update(p, a["grads"], sq, lr=1e-2, rho=0.9, epsilon=1e-7, backend=be)
    r["rmsprop_update"] = p + sq
    return r


def _flat(v) -> list:
    if v is None:
        return []
    if isinstance(v, (tuple, list)):
        return [a for item in v for a in _flat(item)]
    return [np.asarray(v)]


def _compare(got: dict, want: dict) -> list[str]:
    errors = []
    for name, ref in want.items():
        g, r = _flat(got[name]), _flat(ref)
        if len(g) != len(r):
            errors.append(f"{name}: {len(g)} outputs, reference {len(r)}")
            continue
        for i, (ga, ra) in enumerate(zip(g, r)):
            if ga.shape != ra.shape:
                errors.append(f"{name}[{i}]: shape {ga.shape}, reference {ra.shape}")
            elif ga.dtype.kind in "iu":
                if not np.array_equal(ga, ra):
                    errors.append(f"{name}[{i}]: indices differ from the reference")
            elif not np.allclose(ga, ra, rtol=RTOL, atol=ATOL):
                err = float(np.max(np.abs(ga.astype(np.float64) - ra.astype(np.float64))))
                errors.append(f"{name}[{i}]: max abs error {err:.3g} against the reference")
    return errors


def _readme_example(readme: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)
    if not blocks:
        raise RuntimeError(f"no ```python block in {readme}")
    exec(compile(blocks[0], f"{readme} python block 0", "exec"), {})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", type=Path, default=None,
                    help="README.md whose first Python example to run (default: ../README.md "
                         "from this script, if there)")
    args = ap.parse_args(argv)
    failures: list[str] = []

    import convforge
    from convforge import functional as F

    where = Path(convforge.__file__).resolve().parent
    print(f"convforge {convforge.__version__} from {where}")
    if (where.parents[1] / "pyproject.toml").is_file():   # <checkout>/python/convforge
        failures.append(f"convforge imported from a source tree ({where}), not an install")
    import convforge._core  # noqa: F401  the compiled kernels load (libgomp bundled or found)

    names = [n for n in ("cpu", "numba", "reference") if n in convforge.available()]
    missing = [n for n in ("cpu", "reference") if n not in names]
    if missing:
        failures.append(f"backends unavailable: {missing} (available: {convforge.available()})")
    inputs = _inputs(np.random.default_rng(0))
    want: dict = {}
    for be in sorted(names, key=lambda n: n != "reference"):   # the reference first
        try:
            got = _run_ops(F, be, inputs)
            want = want or (got if be == "reference" else {})
            errors = _compare(got, want) if want else ["no reference results to compare with"]
        except Exception:
            errors = [traceback.format_exc()]
        failures += [f"{be}: {e}" for e in errors]
        print(f"  {be:10s} {len(want)} ops {'ok' if not errors else f'{len(errors)} FAILED'}")

    readme = args.readme or (Path(__file__).resolve().parents[1] / "README.md")
    if readme.is_file():
        try:
            _readme_example(readme)
            print(f"  README example ({readme.name}, first python block) ok")
        except Exception:
            failures.append(f"README example: {traceback.format_exc()}")
    elif args.readme:
        failures.append(f"no README at {args.readme}")
    else:
        print("  README example: no README.md found, skipped")

    for f in failures:
        print("FAIL", f, file=sys.stderr)
    print(f"smoke test: {'FAILED' if failures else 'passed'} (backends: {', '.join(names)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
