"""The FMA peak microbenchmark (convforge._peak.fma_peak, csrc/peak: a module of its own, used by
bench/ for "% of peak"): documented keys, positive finite rates on every ISA, argument checks."""

from __future__ import annotations

import math

import pytest

from conftest import available_isas

core = pytest.importorskip("convforge._core")
peak = pytest.importorskip("convforge._peak")

AVAILABLE_ISAS = available_isas(core)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fma_peak_keys_and_values(dtype):
    r = peak.fma_peak(dtype, 0.02, threads=2)
    assert r["dtype"] == dtype
    assert r["isa"] == core.detected_isa()   # isa=None: the best this CPU has, as _core's
    assert r["threads"] == 2
    assert r["fma"] is (r["isa"] != "baseline")
    widths = {"baseline": [128], "avx2": [256], "avx512": [512, 256]}[r["isa"]]
    rates = [r[f"gflops_{w}"] for w in widths]
    for x in rates + [r["gflops"], r["gflops_per_thread"], r["gflops_median"]] + r["per_thread"]:
        assert math.isfinite(x) and x > 0, r
    assert len(r["per_thread"]) == 2
    assert r["bits"] in widths
    assert r["gflops"] == max(rates) == r[f"gflops_{r['bits']}"]
    assert r["gflops"] == pytest.approx(sum(r["per_thread"]))
    assert r["gflops_per_thread"] == pytest.approx(r["gflops"] / 2)
    assert r["gflops_median"] <= r["gflops"] * (1 + 1e-12)


def test_fma_peak_every_isa_and_dtype_ratio():
    """Per ISA: positive rates; float32 lanes are twice float64's (tolerant: a busy machine)."""
    for isa in AVAILABLE_ISAS:
        f32 = peak.fma_peak("float32", 0.05, threads=1, isa=isa)
        f64 = peak.fma_peak("float64", 0.05, threads=1, isa=isa)
        assert f32["isa"] == f64["isa"] == isa and f32["threads"] == 1
        assert f32["gflops"] > 0 and f64["gflops"] > 0
        assert 1.3 < f32["gflops"] / f64["gflops"] < 3.0, (isa, f32, f64)


def test_fma_peak_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dtype"):
        peak.fma_peak("float16")
    with pytest.raises(ValueError, match="seconds"):
        peak.fma_peak("float32", 0.0)
    with pytest.raises(ValueError, match="threads"):
        peak.fma_peak("float32", 0.01, threads=0)
    with pytest.raises(ValueError, match="isa must be"):
        peak.fma_peak("float32", 0.01, isa="sse9")


def test_core_carries_no_benchmark_or_test_hooks():
    """The production module has neither the peak benchmark nor per-kernel test entry points
    (naive kernels run through algo="naive", Winograd through algo="winograd")."""
    names = set(dir(core))
    assert "fma_peak" not in names
    assert not {n for n in names if n.endswith("_naive") or n.startswith("winograd")}
