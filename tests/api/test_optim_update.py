"""F.sgd_update / adam_update / rmsprop_update (multi-tensor optimiser steps, in place): every
option of each op on every backend and both dtypes against a float64 implementation of the
formulas written here, over several steps and parameters of odd sizes; bits independent of the
thread count and ISA, and equal to NumPy's float32/float64 expressions; zero-size parameters
and empty lists; argument errors (functional and the compiled binding's own checks); the
optimisers on top (per-parameter step counts, repeated parameters, state left untouched by a
failed step)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import convforge
import convforge.backends
from convforge import functional as F
from convforge import optim
from convforge.backends import _xp_optim
from convforge.functional import optim as functional_optim

from conftest import DTYPES, assert_close, assert_same_bits, available_isas

RNG_SEED = 14
BACKENDS = ("cpu", "numba", "reference", "cuda")
SHAPES = [(1,), (7,), (10, 100), (17, 241)]        # 1, 7, 1000 and 4097 elements
STEPS = 4


def _need(name: str) -> None:
    reason = convforge.backends.unavailable_reason(name)
    if reason is not None:
        pytest.skip(f"backend {name!r} not available: {reason}")


# --------------------------------------------------------------------------- float64 oracle
# The formulas of functional.optim's docstring, one parameter at a time, in float64.

def sgd64(p, g, st, first, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    d = g + weight_decay * p
    if momentum:
        st["buf"] = d.copy() if first else momentum * st["buf"] + d
        d = d + momentum * st["buf"] if nesterov else st["buf"]
    return p - lr * d


def adam64(p, g, st, t, lr, beta_1, beta_2, epsilon, weight_decay=0.0, decoupled=False,
           amsgrad=False):
    if decoupled:
        p, d = p * (1 - lr * weight_decay), g
    else:
        d = g + weight_decay * p
    st["m"] = beta_1 * st["m"] + (1 - beta_1) * d
    st["v"] = beta_2 * st["v"] + (1 - beta_2) * d * d
    v = st["v"]
    if amsgrad:
        v = st["v_max"] = np.maximum(st["v_max"], st["v"])
    return p - lr / (1 - beta_1 ** t) * st["m"] / (np.sqrt(v) / math.sqrt(1 - beta_2 ** t) +
                                                  epsilon)


def rmsprop64(p, g, st, lr, rho, epsilon, momentum=0.0, centered=False, weight_decay=0.0):
    d = g + weight_decay * p
    st["sq"] = rho * st["sq"] + (1 - rho) * d * d
    if centered:
        st["ga"] = rho * st["ga"] + (1 - rho) * d
        den = np.sqrt(st["sq"] - st["ga"] ** 2) + epsilon
    else:
        den = np.sqrt(st["sq"]) + epsilon
    if momentum:
        st["buf"] = momentum * st["buf"] + d / den
        return p - lr * st["buf"]
    return p - lr * d / den


# --------------------------------------------------------------------------- running the ops

SGD_CASES = [dict(lr=0.1), dict(lr=0.1, weight_decay=0.05), dict(lr=0.1, momentum=0.9),
             dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)]
ADAM_CASES = [dict(lr=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
              dict(lr=0.01, beta_1=0.8, beta_2=0.9, epsilon=1e-6, weight_decay=0.05),
              dict(lr=0.01, beta_1=0.9, beta_2=0.99, epsilon=1e-8, amsgrad=True),
              dict(lr=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=0.1,
                   decoupled=True),
              dict(lr=0.02, beta_1=0.5, beta_2=0.7, epsilon=1e-7, weight_decay=0.1,
                   decoupled=True, amsgrad=True)]
RMS_CASES = [dict(lr=0.01, rho=0.9, epsilon=1e-7), dict(lr=0.01, rho=0.8, epsilon=1e-6,
                                                       centered=True),
             dict(lr=0.01, rho=0.9, epsilon=1e-7, momentum=0.5),
             dict(lr=0.01, rho=0.95, epsilon=1e-6, momentum=0.5, centered=True,
                  weight_decay=0.1)]
CASES = [("sgd", c) for c in SGD_CASES] + [("adam", c) for c in ADAM_CASES] + \
    [("rmsprop", c) for c in RMS_CASES]
STATE = {"sgd": ("buf",), "adam": ("m", "v", "v_max"), "rmsprop": ("sq", "ga", "buf")}
ADAM_OFFSETS = (0, 2, 0, 5, 1, 3)     # per-parameter step counts: t = step + offset


def _case_id(c):
    op, kw = c
    return op + "-" + "-".join(k if v is True else f"{k}{v}" for k, v in kw.items()
                               if k not in ("lr", "beta_1", "beta_2", "epsilon", "rho"))


def _uses(op, kw, key):
    """Whether state `key` of `op` is used with the options kw."""
    return {"buf": bool(kw.get("momentum")), "m": True, "v": True,
            "v_max": bool(kw.get("amsgrad")), "sq": True,
            "ga": bool(kw.get("centered"))}[key]


def _to(xp, arrays):
    return None if arrays is None else [xp.asarray(a) for a in arrays]


def step_op(op, kw, params, grads, state, s, backend):
    """Step s (0-based) of op over lists params/grads/state[key] (lists or None), in place."""
    if op == "sgd":
        F.sgd_update(params, grads, state["buf"], first_step=s == 0, backend=backend, **kw)
    elif op == "adam":
        kw = dict(kw)
        amsgrad = kw.pop("amsgrad", False)
        steps = [s + 1 + ADAM_OFFSETS[i % len(ADAM_OFFSETS)] for i in range(len(params))]
        F.adam_update(params, grads, state["m"], state["v"], step=steps,
                      v_max=state["v_max"] if amsgrad else None, backend=backend, **kw)
    else:
        F.rmsprop_update(params, grads, state["sq"], momentum_buffers=state["buf"],
                         grad_avg=state["ga"], backend=backend, **kw)


def run(op, kw, backend, p0, grads):
    """The op over len(grads) steps from params p0 (copied); returns (params, {key: list})."""
    xp = np
    if backend == "cuda":
        import cupy as xp
    params = _to(xp, p0)
    params = [a.copy() for a in params]
    # SGD's buffers start as NaN: the first step must overwrite them
    state = {k: ([xp.full(a.shape, np.nan if k == "buf" and op == "sgd" else 0, a.dtype)
                  for a in params] if _uses(op, kw, k) else None) for k in STATE[op]}
    for s, g in enumerate(grads):
        step_op(op, kw, params, _to(xp, g), state, s, backend)
    host = (lambda a: a.get()) if xp is not np else (lambda a: a)
    return [host(a) for a in params], {k: None if v is None else [host(a) for a in v]
                                       for k, v in state.items()}


def oracle(op, kw, p0, grads):
    """The float64 formulas over the same steps (inputs taken as exact float64 values)."""
    params = [a.astype(np.float64) for a in p0]
    state = [{k: np.zeros(a.shape) for k in STATE[op]} for a in params]
    kw = dict(kw)
    for s, g in enumerate(grads):
        for i, (p, gi) in enumerate(zip(params, g)):
            gi = gi.astype(np.float64)
            if op == "sgd":
                params[i] = sgd64(p, gi, state[i], s == 0, **kw)
            elif op == "adam":
                params[i] = adam64(p, gi, state[i], s + 1 + ADAM_OFFSETS[i % len(ADAM_OFFSETS)],
                                   **kw)
            else:
                params[i] = rmsprop64(p, gi, state[i], **kw)
    return params, {k: [st[k] for st in state] for k in STATE[op]}


def data(rng, dtype, shapes=SHAPES, steps=STEPS):
    p0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    return p0, grads


# --------------------------------------------------------------------------- against the oracle

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
@pytest.mark.parametrize("be", BACKENDS)
def test_matches_the_formulas(be, case, dtype, rng):
    _need(be)
    op, kw = case
    p0, grads = data(rng, dtype)
    got, got_state = run(op, kw, be, p0, grads)
    want, want_state = oracle(op, kw, p0, grads)
    # each value is a few rounded operations per step, STEPS steps
    for i, (a, e) in enumerate(zip(got, want)):
        assert_close(a, e, dtype, 4 * STEPS, f"{be} {op} params[{i}]")
    for k, lists in got_state.items():
        if lists is None:
            continue
        for i, (a, e) in enumerate(zip(lists, want_state[k])):
            assert_close(a, e, dtype, 4 * STEPS, f"{be} {op} {k}[{i}]")


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
@pytest.mark.parametrize("be", ["cpu", "numba"])
def test_float32_bits_equal_numpy_expressions(be, case, rng, monkeypatch):
    """In float32 the cpu backend gives NumPy's bits for the same expressions (_xp_optim on NumPy
    arrays, the cuda backend's code): no fused multiply-adds, scalars rounded once, the same
    order. numba may fuse multiply-adds (its kernels' flags): there only to rounding."""
    _need(be)
    op, kw = case
    p0, grads = data(rng, np.float32)
    got, got_state = run(op, kw, be, p0, grads)
    # the same calls with _xp_optim as the backend, on NumPy arrays
    monkeypatch.setattr(functional_optim, "_backend_for",
                        lambda name, gpu, params: _xp_optim if params else None)
    want, want_state = run(op, kw, None, p0, grads)
    for i, (a, e) in enumerate(zip(got, want)):
        if be == "cpu":
            assert_same_bits(a, e, f"{op} params[{i}]")
        else:
            assert_close(a, e, np.float32, 4 * STEPS, f"{op} params[{i}]")
    if be == "cpu":
        for k, lists in got_state.items():
            for i, (a, e) in enumerate(zip(lists or (), want_state[k] or ())):
                assert_same_bits(a, e, f"{op} {k}[{i}]")


# --------------------------------------------------------------------------- threads and ISAs

BIG = [(3,), (70001,), (5, 7), (40000,)]       # several blocks of 2^15: a parallel pass


def _state_bits(result):
    params, state = result
    return [a.tobytes() for a in params] + [a.tobytes() for v in state.values() if v
                                            for a in v]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_cpu_bits_independent_of_threads_and_isa(rng, restore_core, dtype):
    from convforge import _core

    p0, grads = data(rng, dtype, BIG, 2)
    for op, kw in CASES:
        results = []
        for isa in available_isas(_core):
            _core.set_isa(isa)
            for threads in (1, 2, 3):
                convforge.set_num_threads(threads)
                results.append((isa, threads, _state_bits(run(op, kw, "cpu", p0, grads))))
        for isa, threads, bits in results[1:]:
            assert bits == results[0][2], f"{op} {kw}: {isa} with {threads} threads differs " \
                                          f"from {results[0][0]} with 1 thread"


def test_numba_bits_independent_of_threads(rng):
    _need("numba")
    import numba

    from convforge.backends import numba as numba_backend

    p0, grads = data(rng, np.float32, BIG, 2)
    run(*CASES[0], "numba", p0, grads)       # loads the kernels (and picks the threading layer)
    before = numba.get_num_threads()
    try:
        for op, kw in CASES:
            bits = []
            for threads in (1, 2):
                numba_backend.set_num_threads(threads)
                bits.append(_state_bits(run(op, kw, "numba", p0, grads)))
            assert bits[0] == bits[1], f"{op} {kw}"
    finally:
        numba_backend.set_num_threads(before)


# --------------------------------------------------------------------------- edge cases

@pytest.mark.parametrize("be", BACKENDS)
def test_empty_lists_and_zero_size_params(be, rng):
    _need(be)
    F.sgd_update([], [], None, lr=0.1, backend=be)
    F.adam_update([], [], [], [], lr=0.1, beta_1=0.9, beta_2=0.9, epsilon=1e-7, step=[],
                  backend=be)
    F.rmsprop_update([], [], [], lr=0.1, rho=0.9, epsilon=1e-7, backend=be)
    shapes = [(0,), (5,), (3, 0)]
    for op, kw in [CASES[3], CASES[8], CASES[-1]]:
        p0, grads = data(rng, np.float64, shapes, 2)
        got, _ = run(op, kw, be, p0, grads)
        want, _ = oracle(op, kw, p0, grads)
        assert got[0].shape == (0,) and got[2].shape == (3, 0)
        assert_close(got[1], want[1], np.float64, 8, f"{op} with zero-size neighbours")


@pytest.mark.parametrize("be", ["cpu", "numba", "reference"])
def test_mixed_dtypes_and_strided_grads(be, rng):
    """Entries of different dtypes in one call (one backend call per dtype); a non-contiguous
    gradient is read through a contiguous copy."""
    _need(be)
    p = [rng.standard_normal(9).astype(np.float32), rng.standard_normal((4, 3))]
    g = [rng.standard_normal(18).astype(np.float32)[::2], rng.standard_normal((3, 4)).T]
    m, v = [np.zeros_like(a) for a in p], [np.zeros_like(a) for a in p]
    want = [adam64(a.astype(np.float64), b.astype(np.float64),
                   {"m": 0.0, "v": 0.0}, 1, 0.01, 0.9, 0.999, 1e-7) for a, b in zip(p, g)]
    F.adam_update(p, g, m, v, lr=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=1,
                  backend=be)
    assert p[0].dtype == np.float32 and p[1].dtype == np.float64
    for a, e in zip(p, want):
        assert_close(a, e, a.dtype, 4)


def test_amsgrad_max_propagates_nan():
    """v_max = max(v_max, v) with NaN kept (numpy.maximum's rule) on every CPU backend."""
    for backend in ("cpu", "numba", "reference"):
        if convforge.backends.unavailable_reason(backend):
            continue
        p = [np.zeros(4)]
        g = [np.array([1.0, np.nan, 2.0, 0.0])]
        m, v, vm = [np.zeros(4)], [np.zeros(4)], [np.array([0.0, 0.0, np.nan, 5.0])]
        F.adam_update(p, g, m, v, lr=0.1, beta_1=0.9, beta_2=0.9, epsilon=1e-7, step=1,
                      v_max=vm, backend=backend)
        assert np.isnan(vm[0][1]) and np.isnan(vm[0][2]), backend
        assert vm[0][0] == pytest.approx(0.1) and vm[0][3] == 5.0, backend


# --------------------------------------------------------------------------- argument errors

def _adam(**over):
    a = dict(lr=0.1, beta_1=0.9, beta_2=0.99, epsilon=1e-7, step=1)
    a.update(over)
    return a


@pytest.mark.parametrize("be", ["reference", "cpu", "numba"])
def test_argument_errors(be):
    _need(be)
    p = [np.zeros(3), np.zeros((2, 2))]
    g = [np.ones(3), np.ones((2, 2))]
    z = [np.zeros(3), np.zeros((2, 2))]
    with pytest.raises(ValueError, match=r"grads has 1 entries but params has 2"):
        F.sgd_update(p, g[:1], None, lr=0.1, backend=be)
    with pytest.raises(ValueError, match=r"grads\[1\] has shape \(4,\) but params\[1\] has "
                                         r"shape \(2, 2\)"):
        F.sgd_update(p, [g[0], np.ones(4)], None, lr=0.1, backend=be)
    with pytest.raises(ValueError, match=r"v\[0\] has shape \(2,\) but params\[0\]"):
        F.adam_update(p, g, z, [np.zeros(2), z[1]], **_adam(), backend=be)
    with pytest.raises(TypeError, match=r"m\[1\] has dtype float32 but params\[1\] has dtype "
                                        "float64"):
        F.adam_update(p, g, [z[0], z[1].astype(np.float32)], z, **_adam(), backend=be)
    with pytest.raises(TypeError, match=r"grads\[0\] must have dtype float32 or float64"):
        F.sgd_update(p, [np.ones(3, np.int64), g[1]], None, lr=0.1, backend=be)
    with pytest.raises(TypeError, match="params must be a list of arrays"):
        F.sgd_update(np.zeros(3), g, None, lr=0.1, backend=be)
    with pytest.raises(TypeError, match=r"params\[1\] must be a numpy.ndarray"):
        F.sgd_update([p[0], [1.0, 2.0]], g, None, lr=0.1, backend=be)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        F.sgd_update(p, g, None, lr=-0.1, backend=be)
    with pytest.raises(ValueError, match="lr must be >= 0.0, got nan"):
        F.rmsprop_update(p, g, z, lr=float("nan"), rho=0.9, epsilon=1e-7, backend=be)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        F.sgd_update(p, g, None, lr=0.1, weight_decay=-1, backend=be)
    with pytest.raises(ValueError, match=r"beta_2 must be in \[0.0, 1.0\)"):
        F.adam_update(p, g, z, z, **_adam(beta_2=1.0), backend=be)
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        F.adam_update(p, g, z, z, **_adam(epsilon=-1e-8), backend=be)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        F.sgd_update(p, g, z, lr=0.1, nesterov=True, backend=be)
    with pytest.raises(ValueError, match="momentum_buffers are needed"):
        F.sgd_update(p, g, None, lr=0.1, momentum=0.9, backend=be)
    with pytest.raises(ValueError, match="momentum_buffers are needed"):
        F.rmsprop_update(p, g, z, lr=0.1, rho=0.9, epsilon=1e-7, momentum=0.5, backend=be)
    with pytest.raises(ValueError, match="grad_avg is needed"):
        F.rmsprop_update(p, g, z, lr=0.1, rho=0.9, epsilon=1e-7, centered=True, backend=be)
    with pytest.raises(ValueError, match="step must be >= 1"):
        F.adam_update(p, g, z, z, **_adam(step=0), backend=be)
    with pytest.raises(ValueError, match="step has 1 entries but params has 2"):
        F.adam_update(p, g, z, z, **_adam(step=[1]), backend=be)
    with pytest.raises(TypeError, match="step must be an int or a list of ints"):
        F.adam_update(p, g, z, z, **_adam(step=1.5), backend=be)
    with pytest.raises(TypeError, match="lr must be a number"):
        F.sgd_update(p, g, None, lr="0.1", backend=be)
    strided = np.zeros(6)[::2]
    with pytest.raises(ValueError, match=r"params\[0\] \(shape \(3,\)\) must be C-contiguous"):
        F.sgd_update([strided, p[1]], g, None, lr=0.1, backend=be)
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"square_avg\[0\] is read-only"):
        F.rmsprop_update(p, g, [ro, z[1]], lr=0.1, rho=0.9, epsilon=1e-7, backend=be)
    assert not p[0].any() and not p[1].any()          # nothing was updated by any of these


def test_backend_choice_errors():
    p, g = [np.zeros(3)], [np.ones(3)]
    with pytest.raises(ValueError, match="unknown backend"):
        F.sgd_update(p, g, None, lr=0.1, backend="nope")
    with pytest.raises(ValueError, match="unknown backend"):
        F.sgd_update([], [], None, lr=0.1, backend="nope")
    # cuda: "cannot take NumPy arrays" where it is available, else "not available"
    with pytest.raises((TypeError, ValueError), match="cannot take NumPy|not available"):
        F.sgd_update(p, g, None, lr=0.1, backend="cuda")
    with convforge.use_backend("reference"):            # the chosen backend, like other ops
        F.sgd_update(p, g, None, lr=0.5)
    np.testing.assert_array_equal(p[0], -0.5 * np.ones(3))


def test_binding_checks_memory_safety():
    """The compiled binding, called directly, checks what its kernels need."""
    from convforge import _core

    p, g, m, v = [np.zeros(3)], [np.ones(3)], [np.zeros(3)], [np.zeros(3)]
    args = (0.9, 0.999, 1e-7, 0.0, 1.0)          # beta_1, beta_2, epsilon, wd, decay
    with pytest.raises(ValueError, match=r"v has 2 entries but params has 1"):
        _core.adam_update(p, g, m, v * 2, None, [0.1], [0.5], *args)
    with pytest.raises(ValueError, match=r"m\[0\] has shape \(4,\) but params\[0\] has shape"):
        _core.adam_update(p, g, [np.zeros(4)], v, None, [0.1], [0.5], *args)
    with pytest.raises(TypeError, match=r"grads\[0\] has dtype float32 but params\[0\]"):
        _core.adam_update(p, [np.ones(3, np.float32)], m, v, None, [0.1], [0.5], *args)
    with pytest.raises(ValueError, match="one value per parameter"):
        _core.adam_update(p, g, m, v, None, [], [0.5], *args)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.sgd_update([np.zeros(6)[::2]], g, None, 0.1, 0.0, False, 0.0, False)
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] is read-only"):
        _core.sgd_update([ro], g, None, 0.1, 0.0, False, 0.0, False)
    with pytest.raises(ValueError, match="momentum_buffers are needed"):
        _core.rmsprop_update(p, g, m, None, None, 0.1, 0.9, 1e-7, 0.5, 0.0)
    with pytest.raises(TypeError):
        _core.sgd_update([[0.0, 1.0]], g, None, 0.1, 0.0, False, 0.0, False)   # no conversion
    assert not p[0].any()


# --------------------------------------------------------------------------- the optimisers

class P:
    def __init__(self, data, grad=None):
        self.data, self.grad = data, grad


OPTIMISERS = {"SGD": lambda: optim.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
              "RMSprop": lambda: optim.RMSprop(0.01, momentum=0.5, centered=True,
                                               weight_decay=0.1),
              "Adam": lambda: optim.Adam(0.01, amsgrad=True, weight_decay=0.05),
              "AdamW": lambda: optim.AdamW(0.01)}


@pytest.mark.parametrize("be", ["cpu", "numba", "reference"])
@pytest.mark.parametrize("name", OPTIMISERS)
def test_optimiser_steps_on_each_backend(be, name, rng):
    """One step() over several parameters, one joining late (its own first step and step
    count) and one listed twice (updated twice, as by a loop over the list), equals stepping
    each parameter on its own (reference backend, float64)."""
    _need(be)
    p0, grads = data(rng, np.float64, SHAPES, 3)
    ps, alone = [P(a.copy()) for a in p0], [P(a.copy()) for a in p0]
    opt, opt_alone = OPTIMISERS[name](), OPTIMISERS[name]()
    for s, g in enumerate(grads):
        for i in range(len(ps)):
            ps[i].grad = alone[i].grad = None if (s == 0 and i == 2) else g[i]
        with convforge.use_backend(be):
            opt.step(ps + [ps[3]])
        with convforge.use_backend("reference"):
            for i, p in enumerate(alone):
                for _ in range(2 if i == 3 else 1):
                    opt_alone.step([p])
    for i, (p, q) in enumerate(zip(ps, alone)):
        assert_close(p.data, q.data, np.float64, 24, f"{name} on {be}: param {i}")


def test_failed_step_leaves_state_untouched():
    opt = optim.Adam(0.01)
    a, b = P(np.zeros(3), np.ones(3)), P(np.zeros(2), np.ones(2, np.float32))
    with pytest.raises(TypeError, match=r"grads\[1\] has dtype float32"):
        opt.step([a, b])
    assert not opt._state.get(a) and not a.data.any()
    sgd = optim.SGD(0.1, momentum=0.9)
    with pytest.raises(TypeError):
        sgd.step([a, b])
    assert "momentum_buffer" not in sgd._state.get(a, {})
    b.grad = np.ones(2)
    sgd.step([a, b])
    np.testing.assert_array_equal(a.data, -0.1 * np.ones(3))       # buf = g on its first step


def test_cpu_common_call_goes_to_the_core_and_falls_back_to_the_checks(rng, monkeypatch):
    # The common call (lists of NumPy arrays, one step count) goes straight to the compiled
    # core, which checks every entry before it updates one; a call it refuses runs
    # functional's checks, which name the argument (and nothing was updated).
    _need("cpu")
    monkeypatch.delenv("CONVFORGE_BACKEND", raising=False)
    backend = convforge.backends.get("cpu")
    calls = []
    real = backend.adam_update
    monkeypatch.setattr(backend, "adam_update", lambda *a: (calls.append(1), real(*a)))
    p = [rng.standard_normal(5).astype(np.float32) for _ in range(3)]
    g = [rng.standard_normal(5).astype(np.float32) for _ in range(3)]
    m, v = [np.zeros(5, np.float32) for _ in p], [np.zeros(5, np.float32) for _ in p]
    kw = dict(lr=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=1)
    F.adam_update(p, g, m, v, **kw)
    assert len(calls) == 1 and all(mi.any() for mi in m)
    before = [a.copy() for a in p + m + v]
    v[2] = v[2].copy()
    v[2].flags.writeable = False
    with pytest.raises(ValueError, match=r"v\[2\] is read-only"):
        F.adam_update(p, g, m, v, **kw)
    assert len(calls) == 2   # the core refused (raising), then the checks named v[2]
    for a, b in zip(p + m + v, before):
        assert_same_bits(a, b)
