"""GPU benchmarks (issue #5): convforge's cuda backend against cuDNN (through PyTorch) and a CuPy
baseline, on identical device inputs, in one run. Prints one markdown table.

    python bench/bench_cuda.py              # conv2d fwd/bwd + pooling fwd/bwd (VGG-CIFAR, LeNet-5)
    python bench/bench_cuda.py --quick      # fewer shapes and rounds
    python bench/bench_cuda.py --train      # also one LeNet-5 training step (batch 64)
    python bench/bench_cuda.py -k vgg --out gpu.md --json-out gpu.json

Implementations per group:
  convforge-cuda   convforge.F.* with backend="cuda" (NVRTC-compiled kernels from csrc/cuda)
  torch-cudnn      torch.nn.functional.conv2d / aten.convolution_backward (cuDNN; TF32 off,
                   cudnn.benchmark on, so its algorithm is tuned during warm-up)
  torch            torch pooling ops (PyTorch's own CUDA kernels; cuDNN has no part in them)
  cupy-im2col      convforge's im2col/col2im kernels + cupy.matmul (cuBLAS), the plain GEMM
                   route; cupy-reshape: 2x2/2 pooling as a CuPy reshape + max/mean (no indices)
Inputs are CuPy arrays shared with PyTorch without a copy (torch.as_tensor on
__cuda_array_interface__), so every implementation reads the same device memory.

Timing: CUDA events (cupy.cuda.Event) on the one stream every library uses. After warm-up (which
also compiles the kernels and lets cuDNN pick algorithms) each implementation gets a repeat count
so that one sample lasts about 2 ms (calls are queued back to back, so launch overhead counts
only where the host cannot keep ahead of the GPU); the implementations of a group then run
round-robin (the first one rotates each round) and the table shows the median per call over
the rounds. Allocation policy: every implementation allocates fresh outputs on each call, from
its library's caching pool (CuPy's memory pool, PyTorch's caching allocator), so no call pays
cudaMalloc. Rates: conv GFLOP/s count 2 x multiply-adds (backward = dx + dw, 2x forward, as in
bench_conv2d.py); pooling GB/s count the bytes each call must read and write (float32 data,
int64 max indices); "% copy" compares that with a device-to-device copy (2 x bytes / time)
measured at the start of the same run. The ratio column is (torch median) / (implementation
median): above 1 is faster than PyTorch/cuDNN.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from shapes import Conv, Pool  # noqa: E402

SAMPLE_SECONDS = 2e-3     # aim for this much GPU time per timed sample
MAX_REPEAT = 200          # calls per sample at most
COPY_BYTES = 1 << 30      # the copy-bandwidth probe moves this many bytes each way

# conv2d at N=64: VGG on CIFAR-10 (3x3, pad 1) and LeNet-5 (5x5, valid)
CONV = [
    Conv("vgg-3-64-32px-n64", 64, 3, 32, 32, 64, 3, 3, pad=1),
    Conv("vgg-64-64-32px-n64", 64, 64, 32, 32, 64, 3, 3, pad=1),
    Conv("vgg-128-128-16px-n64", 64, 128, 16, 16, 128, 3, 3, pad=1),
    Conv("vgg-256-256-8px-n64", 64, 256, 8, 8, 256, 3, 3, pad=1),
    Conv("vgg-512-512-4px-n64", 64, 512, 4, 4, 512, 3, 3, pad=1),
    Conv("lenet-c1-n64", 64, 1, 32, 32, 6, 5, 5),
    Conv("lenet-c3-n64", 64, 6, 14, 14, 16, 5, 5),
]
POOL = [
    Pool("vgg-pool-64-32px-n64", 64, 64, 32, 32, 2, 2),
    Pool("lenet-pool1-n64", 64, 6, 28, 28, 2, 2),
]
QUICK = {"vgg-64-64-32px-n64", "vgg-256-256-8px-n64", "lenet-c3-n64", "vgg-pool-64-32px-n64",
         "lenet-pool1-n64"}
IMPLS = ["convforge-cuda", "torch-cudnn", "torch", "cupy-im2col", "cupy-reshape"]


@dataclass
class Group:
    """One shape and direction: make(impl) -> zero-argument callable or None (not offered)."""

    name: str
    make: Callable[[str], Optional[Callable[[], object]]]
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- environment

def skip_reason() -> Optional[str]:
    """None when CuPy, a CUDA device and convforge's cuda backend are all usable."""
    try:
        import cupy
    except Exception as e:  # noqa: BLE001 - ImportError, or a broken CUDA install
        return f"CuPy is not importable ({type(e).__name__}: {e}); pip install '.[cuda]'"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - no driver, no device
        return f"no usable CUDA device ({type(e).__name__}: {e})"
    if count < 1:
        return "CuPy sees no CUDA device"
    import convforge

    reason = convforge.backends.unavailable_reason("cuda")
    return None if reason is None else f"convforge's cuda backend is unavailable: {reason}"


def setup_torch():
    """torch with CUDA configured for a like-for-like comparison (no TF32, cuDNN autotuning),
    its work on CuPy's current stream; (None, reason) when unusable."""
    try:
        import torch
    except ImportError as e:
        return None, f"torch not installed ({e})"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} has no CUDA (CPU-only build?)"
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch, None


def _version(v: int) -> str:
    """CUDA's integer version (12040) as text (12.4)."""
    return f"{v // 1000}.{v % 1000 // 10}"


def machine_line(copy_gbs: float, torch) -> str:
    import cupy

    import convforge

    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    parts = [f"{name} (sm_{props.get('major', '?')}{props.get('minor', '?')}, "
             f"{props.get('totalGlobalMem', 0) / 2**30:.0f} GiB)",
             f"CUDA runtime {_version(cupy.cuda.runtime.runtimeGetVersion())}",
             f"driver {_version(cupy.cuda.runtime.driverGetVersion())}",
             f"cupy {cupy.__version__}", f"convforge {convforge.__version__}",
             f"numpy {np.__version__}", f"python {platform.python_version()}"]
    if torch is not None:
        parts.append(f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN "
                     f"{torch.backends.cudnn.version()})")
    parts.append(f"D2D copy {copy_gbs:.0f} GB/s (measured in this run)")
    return " | ".join(parts)


# --------------------------------------------------------------------------- timing

def _stream_guard(torch):
    """A context running torch's kernels on CuPy's current stream (the one the events time)."""
    import contextlib

    import cupy

    if torch is None:
        return contextlib.nullcontext()
    ptr = cupy.cuda.get_current_stream().ptr
    if torch.cuda.current_stream().cuda_stream == ptr:
        return contextlib.nullcontext()
    wrap = getattr(torch.cuda, "get_stream_from_external", None) or torch.cuda.ExternalStream
    return torch.cuda.stream(wrap(ptr))


def time_per_call(fn, repeat: int) -> float:
    """Seconds per call of fn, from CUDA events around `repeat` back-to-back calls."""
    import cupy

    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(repeat):
        fn()
    end.record()
    end.synchronize()
    return cupy.cuda.get_elapsed_time(start, end) / 1e3 / repeat


def copy_bandwidth() -> float:
    """Device-to-device copy rate in GB/s (bytes read + bytes written per second)."""
    import cupy

    seconds = _copy_seconds(cupy)
    cupy.get_default_memory_pool().free_all_blocks()   # the two buffers are gone by now
    return 2 * COPY_BYTES / seconds / 1e9


def _copy_seconds(cupy) -> float:
    """Median time of one cudaMemcpyAsync of COPY_BYTES between two device buffers."""
    src = cupy.ones(COPY_BYTES // 4, dtype=cupy.float32)
    dst = cupy.empty_like(src)

    def copy():
        dst.data.copy_from_device_async(src.data, src.nbytes)

    for _ in range(3):
        copy()
    return float(np.median([time_per_call(copy, 5) for _ in range(7)]))


def run_group(group: Group, impls: list[str], rounds: int, warmup: int = 3) -> dict:
    """{impl: [seconds per call, one per round]} measured round-robin, plus skipped impls."""
    import cupy

    fns, notes = {}, {}
    for impl in impls:
        try:
            fn = group.make(impl)
        except Exception as e:  # noqa: BLE001 - report it, keep benchmarking the others
            notes[impl] = f"{type(e).__name__}: {e}"
            continue
        if fn is not None:
            fns[impl] = fn
    repeat = {}
    for impl, fn in list(fns.items()):
        try:
            for _ in range(warmup):   # NVRTC compile, cuDNN autotuning, pool growth
                fn()
            cupy.cuda.get_current_stream().synchronize()
            t = time_per_call(fn, 1)
        except Exception as e:  # noqa: BLE001
            notes[impl] = f"{type(e).__name__}: {e}"
            del fns[impl]
            continue
        repeat[impl] = int(min(MAX_REPEAT, max(1, SAMPLE_SECONDS // max(t, 1e-7))))
    order = list(fns)
    times: dict[str, list[float]] = {impl: [] for impl in order}
    for r in range(rounds):
        k = r % max(1, len(order))
        for impl in order[k:] + order[:k]:
            times[impl].append(time_per_call(fns[impl], repeat[impl]))
    return {"times": times, "repeat": repeat, "notes": notes}


# --------------------------------------------------------------------------- groups

def _rand(cp, shape, seed):
    return cp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _conv_inputs(case: Conv):
    import cupy as cp

    oh, ow = case.out_hw
    return (_rand(cp, (case.N, case.C, case.H, case.W), 1),
            _rand(cp, (case.K, case.C // case.groups, case.KH, case.KW), 2),
            _rand(cp, (case.K,), 3), _rand(cp, (case.N, case.K, oh, ow), 4))


def _conv_make(impl: str, case: Conv, direction: str, torch):
    import cupy as cp

    import convforge

    F = convforge.F
    x, w, b, dy = _conv_inputs(case)
    s, p = case.stride, case.pad
    if impl == "convforge-cuda":
        if direction == "fwd":
            return lambda: F.conv2d(x, w, b, s, p, groups=case.groups, backend="cuda")
        return lambda: F.conv2d_backward(dy, x, w, s, p, groups=case.groups, backend="cuda")
    if impl == "torch-cudnn":
        if torch is None:
            return None
        tx, tw, tb, tdy = (torch.as_tensor(a, device="cuda") for a in (x, w, b, dy))
        if direction == "fwd":
            return lambda: torch.nn.functional.conv2d(tx, tw, tb, s, p, 1, case.groups)
        # the three gradients convforge computes: grad_input, grad_weight, grad_bias
        return lambda: torch.ops.aten.convolution_backward(
            tdy, tx, tw, [case.K], [s, s], [p, p], [1, 1], False, [0, 0], case.groups,
            [True, True, True])
    if impl == "cupy-im2col" and case.groups == 1:
        ks = (case.KH, case.KW)
        w2 = w.reshape(case.K, -1)                                  # (K, C*KH*KW)
        oh, ow = case.out_hw
        if direction == "fwd":
            def fwd():
                cols = F.im2col(x, ks, s, p, backend="cuda")        # (N, C*KH*KW, OH*OW)
                y = cp.matmul(w2, cols)                             # (N, K, OH*OW)
                y += b[None, :, None]
                return y.reshape(case.N, case.K, oh, ow)
            return fwd

        dy3 = dy.reshape(case.N, case.K, oh * ow)

        def bwd():
            cols = F.im2col(x, ks, s, p, backend="cuda")
            dw = cp.matmul(dy3, cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
            dcols = cp.matmul(w2.T, dy3)                            # (N, C*KH*KW, OH*OW)
            dx = F.col2im(dcols, x.shape, ks, s, p, backend="cuda")
            return dx, dw, dy.sum(axis=(0, 2, 3))
        return bwd
    return None


def pool_bytes(case: Pool, mode: str, direction: str) -> float:
    """Bytes a pooling call must move: float32 input/output planes, int64 indices for max."""
    oh = (case.H + 2 * case.pad - case.k) // case.stride + 1
    ow = (case.W + 2 * case.pad - case.k) // case.stride + 1
    big, small = case.N * case.C * case.H * case.W, case.N * case.C * oh * ow
    idx = 8 * small if mode == "max" else 0      # written by forward, read by backward
    return 4.0 * (big + small) + idx


def _pool_make(impl: str, case: Pool, mode: str, direction: str, torch):
    import cupy as cp

    import convforge

    F = convforge.F
    x = _rand(cp, (case.N, case.C, case.H, case.W), 5)
    k, s, p = case.k, case.stride, case.pad
    if impl == "convforge-cuda":
        if mode == "max":
            y, idx = F.max_pool2d(x, k, s, p, return_indices=True, backend="cuda")
            if direction == "fwd":
                return lambda: F.max_pool2d(x, k, s, p, return_indices=True, backend="cuda")
            return lambda: F.max_pool2d_backward(y, x.shape, k, s, p, indices=idx,
                                                 backend="cuda")
        y = F.avg_pool2d(x, k, s, p, backend="cuda")
        if direction == "fwd":
            return lambda: F.avg_pool2d(x, k, s, p, backend="cuda")
        return lambda: F.avg_pool2d_backward(y, x.shape, k, s, p, backend="cuda")
    if impl == "torch":
        if torch is None:
            return None
        tx = torch.as_tensor(x, device="cuda")
        if mode == "max":
            ty, tidx = torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=True)
            if direction == "fwd":
                return lambda: torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=True)
            return lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                ty, tx, [k, k], [s, s], [p, p], [1, 1], False, tidx)
        ty = torch.nn.functional.avg_pool2d(tx, k, s, p)
        if direction == "fwd":
            return lambda: torch.nn.functional.avg_pool2d(tx, k, s, p)
        return lambda: torch.ops.aten.avg_pool2d_backward(ty, tx, [k, k], [s, s], [p, p], False,
                                                          True, None)
    if impl == "cupy-reshape" and direction == "fwd" and k == s and not p \
            and case.H % k == 0 and case.W % k == 0:
        x6 = x.reshape(case.N, case.C, case.H // k, k, case.W // k, k)
        return (lambda: x6.max(axis=(3, 5))) if mode == "max" else (lambda: x6.mean(axis=(3, 5)))
    return None


def _train_make(impl: str, torch):
    """One LeNet-5 training step (forward, loss, backward, Adam), batch 64, 1x32x32 inputs."""
    import cupy as cp

    rng = np.random.default_rng(0)
    x = cp.asarray(rng.integers(0, 256, (64, 1, 32, 32)).astype(np.float32))
    y = cp.asarray(rng.integers(0, 10, 64).astype(np.int64))
    if impl.startswith("convforge-cuda"):
        from convforge import models, nn

        nn.set_seed(0)
        m = models.lenet5()
        m.compile("adam", "sparse_categorical_crossentropy")
        if impl == "convforge-cuda":
            return lambda: m.train_on_batch(x, y)   # returns the loss as a float: 1 sync/step
        return lambda: m._train_step(x, y)          # the same step, loss left on the device
    if impl == "torch-cudnn" and torch is not None:
        from bench_train_step import _torch_net  # the same LeNet-5 as the CPU suite

        net = _torch_net("lenet5").cuda()
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        tx, ty = torch.as_tensor(x, device="cuda") / 255, torch.as_tensor(y, device="cuda")

        def step():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(tx), ty)
            loss.backward()
            opt.step()
            return loss
        return step
    return None


def groups(quick: bool, train: bool, torch) -> list[Group]:
    out = []
    for direction in ("fwd", "bwd"):
        for case in CONV:
            if quick and case.name not in QUICK:
                continue
            flops = case.flops * (1 if direction == "fwd" else 2)
            out.append(Group(f"conv2d-{direction}-{case.name}",
                             lambda impl, c=case, d=direction: _conv_make(impl, c, d, torch),
                             {"flops": flops}))
    for direction in ("fwd", "bwd"):
        for mode in ("max", "avg"):
            for case in POOL:
                if quick and case.name not in QUICK:
                    continue
                out.append(Group(f"{mode}_pool2d-{direction}-{case.name}",
                                 lambda impl, c=case, m=mode, d=direction:
                                 _pool_make(impl, c, m, d, torch),
                                 {"bytes": pool_bytes(case, mode, direction)}))
    if train:
        out.append(Group("train_step-lenet5-n64", lambda impl: _train_make(impl, torch),
                         {"images": 64}))
    return out


# --------------------------------------------------------------------------- report

def table(results: list[dict], machine: str, copy_gbs: float) -> str:
    """Markdown: median ms, rate, x torch/cuDNN, % of the copy bandwidth (pooling)."""
    lines = [f"machine: {machine}", "",
             "| group | impl | median ms | GFLOP/s, GB/s or img/s | x torch/cuDNN | % copy BW |",
             "|---|---|---:|---:|---:|---:|"]
    for res in results:
        meds = {impl: float(np.median(ts)) for impl, ts in res["times"].items() if ts}
        ref = next((meds[i] for i in ("torch-cudnn", "torch") if i in meds), None)
        ex = res["extra"]
        for impl in sorted(meds):
            t = meds[impl]
            pct = ""
            if "flops" in ex:
                rate = f"{ex['flops'] / t / 1e9:.1f}"
            elif "images" in ex:
                rate = f"{ex['images'] / t:.0f}"
            else:
                gbs = ex["bytes"] / t / 1e9
                rate, pct = f"{gbs:.1f}", f"{100 * gbs / copy_gbs:.0f}%"
            ratio = f"{ref / t:.2f}x" if ref else ""
            lines.append(f"| {res['group']} | {impl} | {t * 1e3:.4f} | {rate} | {ratio} | "
                         f"{pct} |")
        for impl, why in res["notes"].items():
            lines.append(f"| {res['group']} | {impl} | failed: {why} | | | |")
    lines += ["", "Each sample: CUDA events around back-to-back calls; median over round-robin "
              "rounds. Fresh outputs per call from each library's caching pool. "
              "train_step: convforge-cuda = Model.train_on_batch (returns the loss as a float: "
              "one device sync per step); convforge-cuda-nosync = the same step without it."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few representative shapes, fewer "
                   "rounds")
    p.add_argument("--train", action="store_true",
                   help="also time a LeNet-5 training step (batch 64) against PyTorch")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds per group "
                   "(default 21, 9 with --quick)")
    p.add_argument("-k", default=None, help="only groups whose name contains this")
    p.add_argument("--out", help="also write the table (markdown) to this file")
    p.add_argument("--json-out", help="also write the raw per-round times (JSON) to this file")
    args = p.parse_args(argv)

    reason = skip_reason()
    if reason is not None:
        print(f"skipped: {reason}")
        return 0
    import cupy

    torch, torch_reason = setup_torch()
    if torch_reason:
        print(f"note: PyTorch columns skipped: {torch_reason}", file=sys.stderr)
    rounds = args.rounds or (9 if args.quick else 21)
    impls = IMPLS + (["convforge-cuda-nosync"] if args.train else [])
    results = []
    with _stream_guard(torch):
        copy_gbs = copy_bandwidth()
        machine = machine_line(copy_gbs, torch)
        for group in groups(args.quick, args.train, torch):
            if args.k and args.k not in group.name:
                continue
            res = run_group(group, impls, rounds)
            res.update(group=group.name, extra=group.extra)
            results.append(res)
            print(f"  {group.name}: " + ", ".join(
                f"{i} {np.median(ts) * 1e3:.4f} ms" for i, ts in res["times"].items()),
                file=sys.stderr)
            cupy.get_default_memory_pool().free_all_blocks()
    text = table(results, machine, copy_gbs)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"machine": machine, "copy_gbs": copy_gbs, "results": results}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
