"""Race checks of the CUDA kernels on the CPU emulator, and checks of the emulator itself.

- Block and thread order: every kernel (every extern "C" entry, both dtypes) runs under the
  backend's own grids in forward order, then with grids of 2 and 3 blocks run in reverse and
  shuffled block and thread orders, other output poisons and other shared-memory poisons: the
  results must be bit-identical (random inputs, so any change of summation order shows too).
- The checks have teeth: the emulator built from sources with one __syncthreads() removed (a
  staging barrier and a reuse barrier of the tiled conv, the tree barrier of cf_block_sum and of
  the global max) must fail them, and a thread returning before a barrier is reported.
- ThreadSanitizer: the launches of the kernels whose threads share data, recorded, replayed by
  a standalone harness with one OS thread per CUDA thread (skipped where -fsanitize=thread does
  not work); it must report no race on the real kernels, one on a kernel without its barrier,
  and match the fiber results bit for bit.
- The emulator catches what it claims: host arrays, wrong dtypes and Python ints as kernel
  arguments, out-of-bounds writes, unwritten outputs.
"""

from __future__ import annotations

import cuda_emu
import numpy as np
import pytest
from devices import EmuOps

from convforge.backends import cuda

pytestmark = [pytest.mark.cuda_emu,
              pytest.mark.skipif(cuda_emu.skip_reason() is not None,
                                 reason=str(cuda_emu.skip_reason()))]

DTYPES = [np.float32, np.float64]
# Schedules compared with the backend's own grid run in forward order.
SCHEDULES = {
    "reverse": dict(max_blocks=2, block_order="reverse", thread_order="reverse",
                    shared_poison=0x7F, poison="finite"),
    "shuffle": dict(max_blocks=3, block_order="shuffle", thread_order="shuffle", seed=11,
                    shared_poison=0x00, poison="finite"),
}


# --------------------------------------------------------------------------- workloads

def _randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _conv_tiled(cu, r):
    # K = 70: two channel tiles; R = 36 and 50: partial reduction chunks; P > 64: pixel tiles
    y = cu.conv2d(r((2, 4, 9, 7)), r((70, 4, 3, 3)), r((70,)), padding=(1, 2, 0, 1),
                  algo="tiled")
    yg = cu.conv2d(r((1, 4, 11, 10)), r((16, 2, 5, 5)), None, stride=(2, 1), padding=2,
                   dilation=(1, 2), groups=2, algo="tiled")
    return {"y": y, "y groups": yg}


def _conv_naive(cu, r):
    return {"y": cu.conv2d(r((2, 6, 7, 8)), r((6, 2, 3, 3)), r((6,)), padding=1, groups=3,
                           algo="naive")}


def _conv_backward(cu, r):
    x, w = r((2, 4, 9, 7)), r((12, 2, 3, 2))
    dx, dw, db = cu.conv2d_backward(r((2, 12, 5, 7)), x, w, stride=(2, 1), padding=1,
                                    dilation=(1, 2), groups=2)
    return {"dx": dx, "dw": dw, "db": db}


def _unfold(cu, r):
    kw = dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2))
    x = r((2, 3, 9, 8))
    cols = cu.im2col(x, **kw)
    return {"cols": cols, "x": cu.col2im(cu.dev(cu.host(cols) * 0.5), (2, 3, 9, 8), **kw)}


def _pool(mode):
    def run(cu, r):
        kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x = r((2, 3, 9, 10))
        y, idx = cu.pool(mode, x, **kw, count_include_pad=False)
        dx = cu.pool_backward(mode, r(tuple(y.shape)), (2, 3, 9, 10), **kw,
                              count_include_pad=False, indices=idx)
        out = {"y": y, "dx": dx}
        if idx is not None:
            out["indices"] = idx
        return out
    return run


def _global(mode):
    def run(cu, r):
        x = r((2, 3, 17, 19))
        y, idx = cu.global_pool(mode, x)
        out = {"y": y, "dx": cu.global_pool_backward(mode, r((2, 3)), x.shape, indices=idx)}
        if idx is not None:
            out["indices"] = idx
        return out
    return run


WORKLOADS = {"conv_tiled": _conv_tiled, "conv_naive": _conv_naive,
             "conv_backward": _conv_backward, "im2col_col2im": _unfold,
             "pool_max": _pool("max"), "pool_min": _pool("min"), "pool_avg": _pool("avg"),
             "global_max": _global("max"), "global_avg": _global("avg")}


def run_workload(name, dtype, lib=None, **options):
    """({output name: host array}, device) of workload `name` on a fresh emulator device."""
    device = cuda_emu.EmuDevice(lib, **options)
    cu = EmuOps(device)
    rng = np.random.default_rng(20261207)
    with cuda.use_device(device):
        out = WORKLOADS[name](cu, lambda shape: cu.dev(_randn(rng, shape, dtype)))
    return {k: cu.host(v) for k, v in out.items()}, device


def differences(got: dict, want: dict) -> list[str]:
    """'<output>: k of n elements differ' for every output not bit-identical to want's."""
    out = []
    for key, w in want.items():
        g = got[key]
        bad = g.view(np.uint8).reshape(g.size, -1) != w.view(np.uint8).reshape(w.size, -1)
        count = int(bad.any(axis=1).sum())
        if count:
            out.append(f"{key}: {count} of {w.size} elements differ")
    return out


# --------------------------------------------------------------------------- race checks

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_results_do_not_depend_on_scheduling(workload, dtype):
    base, _ = run_workload(workload, dtype)
    for name, options in SCHEDULES.items():
        other, _ = run_workload(workload, dtype, **options)
        diff = differences(other, base)
        assert not diff, f"{workload} ({name} schedule vs forward): {diff}"


def test_workloads_launch_every_kernel():
    lib = cuda_emu.library()
    every = {n for _, names in lib.families().values() for n in names}
    launched = set()
    for dtype in DTYPES:
        for name in WORKLOADS:
            launched |= {la.name for la in run_workload(name, dtype)[1].launches}
    assert launched == every, f"never launched: {sorted(every - launched)}"


def test_emulator_covers_every_shared_array():
    # ws + xs of the tiled conv, the reduction scratch of the backward weight / bias kernels
    # and global avg / max (values and indices), per dtype: all inside the poisoned section
    per = {np.float32: 4, np.float64: 8}
    want = sum(16 * 65 * s + 16 * 64 * s + 2 * 256 * s + 256 * 8 + 256 * s + 256 * 8
               for s in per.values())
    got = cuda_emu.library().shared_bytes()
    assert got == want, f"{got} bytes of __shared__ storage are poisoned, the kernels declare " \
                        f"{want} (a new __shared__ array? update this count)"


def _without_barrier(code: str, function: str, nth: int) -> str:
    """code with the nth (1-based) `__syncthreads();` after the definition of `function`
    removed."""
    pos = code.find(function)
    for _ in range(nth):
        pos = code.find("__syncthreads();", pos + 1) if pos >= 0 else -1
    if pos < 0:
        raise ValueError(f"no barrier {nth} after {function!r}: the kernel changed, update the "
                         f"mutants of this test")
    return code[:pos] + "/* barrier removed */" + code[pos + len("__syncthreads();"):]


def _mutant_sources(group: str) -> dict[str, str]:
    src = {f: cuda.source(f) for f in cuda._FAMILIES}
    if group == "a":     # tiled conv staging barrier; global max tree barrier; early return
        src["conv2d"] = _without_barrier(src["conv2d"], "void conv2d_forward_tiled(", 1)
        src["pool2d"] = _without_barrier(src["pool2d"], "void global_pool2d_max_forward(", 2)
        body = "void global_pool2d_avg_forward("
        at = src["pool2d"].index("CF_BLOCK_STRIDE", src["pool2d"].index(body))
        src["pool2d"] = src["pool2d"][:at] + "if (threadIdx.x == 255) return;\n  " + \
            src["pool2d"][at:]
    else:                # tiled conv reuse barrier; cf_block_sum tree barrier (common.cuh)
        src["conv2d"] = _without_barrier(src["conv2d"], "void conv2d_forward_tiled(", 2)
        for f in ("conv2d", "pool2d"):
            src[f] = _without_barrier(src[f], "A cf_block_sum(", 2)
    return src


@pytest.fixture(scope="module")
def mutant_libs():
    return {g: cuda_emu.load(cuda_emu.build(_mutant_sources(g))) for g in ("a", "b")}


@pytest.mark.parametrize("group, workload", [("a", "conv_tiled"), ("a", "global_max"),
                                             ("b", "conv_tiled"), ("b", "conv_backward"),
                                             ("b", "global_avg")])
def test_race_check_fails_without_a_barrier(group, workload, mutant_libs):
    real, _ = run_workload(workload, np.float32)
    runs = {name: run_workload(workload, np.float32, mutant_libs[group], check_source=False,
                               **options)[0]
            for name, options in dict(forward={}, **SCHEDULES).items()}
    wrong = {name: differences(out, real) for name, out in runs.items()}
    # the race check fails: some schedule disagrees with forward order (reverse order alone
    # can hide a tree reduction without barriers: each level then reads finished partners)
    assert any(differences(runs[name], runs["forward"]) for name in SCHEDULES), \
        f"the schedules agree although a barrier is missing; vs the real kernels: {wrong}"
    assert wrong["forward"], "the backend's own grid gives the right results without the barrier"


def test_divergent_barrier_is_reported(mutant_libs):
    with pytest.raises(RuntimeError, match="divergent barrier"):
        run_workload("global_avg", np.float32, mutant_libs["a"], check_source=False)


# --------------------------------------------------------------------------- ThreadSanitizer

needs_tsan = pytest.mark.skipif(cuda_emu.tsan_reason() is not None,
                                reason=str(cuda_emu.tsan_reason()))


# The workloads whose threads share data (__shared__, barriers); one block per launch (blocks
# run one after another, so TSan could see no race between blocks anyway).
TSAN_WORKLOADS = ["conv_tiled", "conv_backward", "global_max", "global_avg"]


def _replay(tmp_path, sources, workloads):
    """Records `workloads` (float32) on the emulator, replays them in the TSan harness built
    from `sources`; returns (harness result, recorded launches, outputs file)."""
    launches = []
    for name in workloads:
        launches += run_workload(name, np.float32, max_blocks=1, record_args=True)[1].launches
    replay, outputs = tmp_path / "replay.bin", tmp_path / "outputs.bin"
    cuda_emu.write_replay(launches, replay)
    result = cuda_emu.run_harness(cuda_emu.build(sources, tsan=True), replay, outputs)
    return result, launches, outputs


@needs_tsan
def test_threadsanitizer_finds_no_race(tmp_path):
    result, launches, outputs = _replay(tmp_path, None, TSAN_WORKLOADS)
    assert result.returncode == 0 and "ThreadSanitizer" not in result.stderr, \
        result.stderr[-6000:]
    got = cuda_emu.read_outputs(outputs)
    want = [a.tobytes() for la in launches for a in la.after]
    assert len(got) == len(want)
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not bad, f"OS-thread and fiber results differ in {len(bad)} arrays"


@needs_tsan
def test_threadsanitizer_reports_a_missing_barrier(tmp_path):
    result, _, _ = _replay(tmp_path, _mutant_sources("b"), ["conv_tiled"])
    assert "WARNING: ThreadSanitizer: data race" in result.stderr, result.stderr[-3000:]


# --------------------------------------------------------------------------- the emulator

@pytest.fixture
def device():
    dev = cuda_emu.EmuDevice()
    with cuda.use_device(dev):
        yield dev


def _im2col_launch(device, cols, x, n):
    """im2col_f32 straight through the device: 3x3 unfold of x (n, 1, 4, 4), valid."""
    kernel = cuda_emu.EmuModule(device.lib, "im2col").get_function("im2col_f32")
    dims = tuple(np.int64(v) for v in (n, 1, 4, 4, 3, 3, 1, 1, 0, 0, 1, 1, 2, 2))
    device.launch(kernel, 1, cuda.THREADS, (cols, x) + dims, 0)


def test_outputs_start_poisoned(device):
    x = device.asarray(np.ones((2, 1, 4, 4), np.float32))
    cols = device.empty((2, 9, 4), np.float32)
    _im2col_launch(device, cols, x, 1)           # writes the first image only
    assert np.all(cols[0] == 1) and np.all(np.isnan(cols[1]))


def test_out_of_bounds_write_is_reported(device):
    x = device.asarray(np.ones((2, 1, 4, 4), np.float32))
    cols = device.empty((1, 9, 4), np.float32)   # room for one image, the kernel writes two
    with pytest.raises(AssertionError, match="out of bounds"):
        _im2col_launch(device, cols, x, 2)


@pytest.mark.parametrize("bad, match", [
    ("host", "not device memory"), ("dtype", "dtype float64"), ("int", "want a numpy.int64"),
    ("int32", "want a numpy.int64"), ("count", "arguments passed")])
def test_bad_kernel_arguments_are_refused(device, bad, match):
    x = device.asarray(np.ones((1, 1, 4, 4), np.float32))
    cols = device.empty((1, 9, 4), np.float32)
    kernel = cuda_emu.EmuModule(device.lib, "im2col").get_function("im2col_f32")
    dims = [np.int64(v) for v in (1, 1, 4, 4, 3, 3, 1, 1, 0, 0, 1, 1, 2, 2)]
    args = [cols, x] + dims
    if bad == "host":
        args[1] = np.ones((1, 1, 4, 4), np.float32)
    elif bad == "dtype":
        args[1] = device.asarray(np.ones((1, 1, 4, 4)))
    elif bad in ("int", "int32"):
        args[2] = 1 if bad == "int" else np.int32(1)
    else:
        args.pop()
    with pytest.raises(TypeError, match=match):
        device.launch(kernel, 1, cuda.THREADS, tuple(args), 0)


def test_module_refuses_other_sources(device):
    with pytest.raises(RuntimeError, match="another conv2d source"):
        device.load("conv2d", cuda.source("conv2d") + "\n// changed\n", (), 0)
