"""Property tests (hypothesis): random valid configurations, including empty batches, unbatched
inputs and extreme strides / paddings / dilations, give the reference's results on every
backend under test; random bad arguments raise ValueError or TypeError and nothing else.

The runs are derandomized (the same examples on every run, so CI is reproducible) and sized
to take well under a minute in all.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convforge import functional as F

from conftest import assert_close, ref

SETTINGS = dict(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# Strides, paddings and dilations: small ones, and huge ones whose output is still small
# (the kernels must index them without overflow and without materialising the padding).
HUGE = [2**20, 2**40, 2**60 - 1, 2**61]
step = st.one_of(st.integers(1, 3), st.sampled_from(HUGE))


@st.composite
def conv_axis(draw):
    """(input size, kernel size, stride, pad before, pad after, dilation) of one spatial axis:
    all small, or with a huge stride and possibly huge paddings and dilation (output <= 4)."""
    n, k = draw(st.integers(1, 9)), draw(st.integers(1, 4))
    if draw(st.booleans()):
        s, d = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        p0, p1 = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    else:
        s = draw(st.sampled_from(HUGE))
        p0, p1 = (draw(st.sampled_from([0, 1, 2, s // 2, s])) for _ in range(2))
        d = draw(st.sampled_from([1, 2, s // 4]))
    ek = d * (k - 1) + 1
    if ek > n + p0 + p1:   # make the dilated kernel fit: grow the input, or the padding
        if ek <= 64:
            n = ek - p0 - p1
        else:
            p0 = p1 = ek
    return n, k, s, p0, p1, d


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, kh, sh, pt, pb, dh = draw(conv_axis())
    w, kw, sw, pl, pr, dw = draw(conv_axis())
    n = draw(st.sampled_from([0, 1, 2, 3]))
    unbatched = draw(st.booleans()) and n == 1
    x_shape = (cg * groups, h, w) if unbatched else (n, cg * groups, h, w)
    return dict(x_shape=x_shape, w_shape=(kg * groups, cg, kh, kw), groups=groups,
                stride=(sh, sw), padding=(pt, pb, pl, pr), dilation=(dh, dw),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                seed=draw(st.integers(0, 2**16)))


def _fits(cfg) -> bool:
    """Whether the configuration is valid and its output small enough to compare."""
    try:
        oh, ow = F.conv_output_size(cfg["x_shape"][-2:], cfg["w_shape"][2:], cfg["stride"],
                                    cfg["padding"], cfg["dilation"])
    except ValueError:
        return False
    return oh * ow <= 400


@settings(max_examples=300, **SETTINGS)
@given(cfg=conv_configs())
def test_conv2d_matches_reference(backend, cfg):
    assume(_fits(cfg))   # a valid configuration with a small output
    rng = np.random.default_rng(cfg["seed"])
    dt = cfg["dtype"]
    x = rng.integers(-3, 4, cfg["x_shape"]).astype(dt)
    w = rng.integers(-3, 4, cfg["w_shape"]).astype(dt)
    b = rng.integers(-3, 4, cfg["w_shape"][0]).astype(dt)
    kw = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
              groups=cfg["groups"])
    red = int(np.prod(cfg["w_shape"][1:]))
    y = backend("conv2d", x, w, b, **kw)
    y_ref = ref("conv2d", x, w, b, **kw)
    assert_close(y, y_ref, dt, red, what=f"conv2d {cfg}")
    dy = rng.integers(-3, 4, y_ref.shape).astype(dt)
    got = backend("conv2d_backward", dy, x, w, **kw)
    want = ref("conv2d_backward", dy, x, w, **kw)
    n_out = max(int(np.prod(y_ref.shape[-2:])) * (x.shape[0] if x.ndim == 4 else 1), 1)
    for name, a, e, r in zip(("dx", "dw", "db"), got, want, (red, n_out, n_out)):
        assert_close(a, e, dt, r, what=f"{name} {cfg}")


@st.composite
def pool_configs(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(kh - 2 * ph, 1), 9))
    w = draw(st.integers(max(kw - 2 * pw, 1), 9))
    n = draw(st.sampled_from([0, 1, 2]))
    unbatched = draw(st.booleans()) and n == 1
    c = draw(st.integers(1, 3))
    return dict(x_shape=(c, h, w) if unbatched else (n, c, h, w), kernel=(kh, kw),
                stride=(draw(step), draw(step)), padding=(ph, pw),
                ceil_mode=draw(st.booleans()), mode=draw(st.sampled_from(["max", "min", "avg"])),
                count_include_pad=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                seed=draw(st.integers(0, 2**16)))


@settings(max_examples=200, **SETTINGS)
@given(cfg=pool_configs())
def test_pool2d_matches_reference(backend, cfg):
    rng = np.random.default_rng(cfg["seed"])
    dt = cfg["dtype"]
    # distinct values: no ties, so the index of the max/min is unambiguous
    size = int(np.prod(cfg["x_shape"]))
    x = (rng.permutation(size) - size / 2).reshape(cfg["x_shape"]).astype(dt)
    kw = dict(kernel_size=cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"],
              ceil_mode=cfg["ceil_mode"])
    mode = cfg["mode"]
    if mode == "avg":
        kw["count_include_pad"] = cfg["count_include_pad"]
        y = backend("avg_pool2d", x, **kw)
        y_ref = ref("avg_pool2d", x, **kw)
    else:
        y, idx = backend(f"{mode}_pool2d", x, return_indices=True, **kw)
        y_ref, idx_ref = ref(f"{mode}_pool2d", x, return_indices=True, **kw)
        np.testing.assert_array_equal(idx, idx_ref, err_msg=str(cfg))
    red = cfg["kernel"][0] * cfg["kernel"][1]
    assert_close(y, y_ref, dt, red, what=f"{mode} pool {cfg}")
    dy = rng.integers(-3, 4, y_ref.shape).astype(dt)
    dx = backend(f"{mode}_pool2d_backward", dy, x, **kw)
    dx_ref = ref(f"{mode}_pool2d_backward", dy, x, **kw)
    assert_close(dx, dx_ref, dt, red, what=f"{mode} pool backward {cfg}")


# --------------------------------------------------------------------------- bad arguments

junk = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=4),
    st.integers(-2**70, 2**70), st.sampled_from([-1, 0, 2**63, -2**63, 2**64, 1.5, "same"]),
    st.tuples(st.integers(-3, 2**64), st.integers(-3, 3)),
    st.lists(st.integers(-2, 4), max_size=5),
)


def _array_strategy():
    shapes = st.lists(st.integers(0, 4), min_size=0, max_size=5).map(tuple)
    dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.complex64, np.bool_, object])
    return st.tuples(shapes, dtypes).map(lambda sd: np.zeros(sd[0], dtype=sd[1]))


any_arg = st.one_of(junk, _array_strategy())

OPS = {
    "conv2d": ("x", "w", "b", "stride", "padding", "dilation", "groups"),
    "conv2d_backward": ("dy", "x", "w", "stride", "padding", "dilation", "groups"),
    "im2col": ("x", "kernel_size", "stride", "padding", "dilation"),
    "col2im": ("cols", "input_shape", "kernel_size", "stride", "padding", "dilation"),
    "max_pool2d": ("x", "kernel_size", "stride", "padding", "ceil_mode"),
    "avg_pool2d": ("x", "kernel_size", "stride", "padding", "ceil_mode"),
    "max_pool2d_backward": ("dy", "x", "kernel_size", "stride", "padding", "ceil_mode",
                            "indices"),
    "global_avg_pool2d": ("x",),
    "global_max_pool2d_backward": ("dy", "x", "indices"),
}
GOOD = {"x": np.zeros((2, 3, 6, 5)), "w": np.zeros((4, 3, 3, 3)), "b": np.zeros(4),
        "dy": np.zeros((2, 4, 4, 3)), "cols": np.zeros((2, 27, 12)),
        "input_shape": (2, 3, 6, 5), "kernel_size": 3, "stride": 1, "padding": 0,
        "dilation": 1, "groups": 1, "ceil_mode": False, "indices": None}


@settings(max_examples=400, **SETTINGS)
@given(op=st.sampled_from(sorted(OPS)), data=st.data())
def test_bad_arguments_raise_value_or_type_error(backend, op, data):
    """Some arguments replaced by junk: the op either works or raises ValueError/TypeError
    (never another exception, a crash or a hang)."""
    names = OPS[op]
    bad = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    kwargs = {k: GOOD[k] for k in names}
    for k in bad:
        kwargs[k] = data.draw(any_arg, label=k)
    args = [kwargs.pop(k) for k in names if k in ("x", "w", "dy", "cols")]
    try:
        backend(op, *args, **kwargs)
    except (ValueError, TypeError):
        pass
