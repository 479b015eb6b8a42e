"""convforge.nn layers: finite-difference gradient checks (float64) of every layer, forward
semantics, modes, freezing, initialisers and argument errors. Tiny shapes: runs in seconds on
the reference backend; uses the compiled cpu backend when it is available."""

from __future__ import annotations

import numpy as np
import pytest

from convforge import nn
from convforge.nn import initializers as init

from conftest import assert_within, fd_grad

pytestmark = pytest.mark.usefixtures("nn_backend")  # conftest: cpu, else reference
RNG_SEED = 1234   # the seed of conftest's `rng` (and of nn.set_seed) in this module


# --------------------------------------------------------------------------- helpers

def numeric_grad(f, arr, eps=1e-6, max_entries=None, rng=None):
    """Central differences of scalar f() w.r.t. arr (perturbed in place). Returns (grad, index
    array of the flat entries checked)."""
    flat = arr.reshape(-1)
    assert flat.base is arr or flat is arr or np.shares_memory(flat, arr)
    idx = np.arange(flat.size)
    if max_entries is not None and flat.size > max_entries:
        idx = np.sort(rng.choice(flat.size, max_entries, replace=False))
    return fd_grad(f, arr, eps, idx), idx


def gradcheck_layer(layer, xs, rng, training=False, what=""):
    """Checks backward of `layer` against central differences of sum(forward(x) * r), for the
    input(s) and every trainable parameter."""
    multi = isinstance(xs, list)
    y = layer.forward(xs, training)
    r = rng.standard_normal(y.shape)

    def f():
        return float((layer.forward(xs, training) * r).sum())

    for p in layer.params:
        p.grad = None
    layer.forward(xs, training)
    dx = layer.backward(r)
    dxs = dx if multi else [dx]
    for k, (x, d) in enumerate(zip(xs if multi else [xs], dxs)):
        num, idx = numeric_grad(f, x, max_entries=200, rng=rng)
        assert d.shape == x.shape, f"{what} dx shape"
        assert_within(d.reshape(-1)[idx], num, 1e-5, 1e-7, f"{what} dx[{k}]")
    for p in layer.trainable_params:
        num, idx = numeric_grad(f, p.data, max_entries=200, rng=rng)
        assert p.grad is not None, f"{what}: no gradient for {p.name}"
        assert_within(p.grad.reshape(-1)[idx], num, 1e-5, 1e-7, f"{what} d{p.name}")
    return y


# --------------------------------------------------------------------------- gradient checks

CONV_CASES = [
    dict(filters=3, kernel_size=3),
    dict(filters=4, kernel_size=3, strides=2, padding="same", activation="relu"),
    dict(filters=2, kernel_size=(2, 3), dilation_rate=2, padding=(1, 2), activation="tanh"),
    dict(filters=4, kernel_size=3, groups=2, use_bias=False, activation="sigmoid",
         padding=(0, 1, 1, 0)),
    dict(filters=3, kernel_size=1, activation="softmax"),
]


@pytest.mark.parametrize("kw", CONV_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in
                                                                    kw.items()))
def test_conv2d_gradients(kw, rng):
    layer = nn.Conv2D(**kw, dtype="float64", bias_initializer="random_normal")
    x = rng.standard_normal((2, 4, 6, 7))
    y = gradcheck_layer(layer, x, rng, what="Conv2D")
    assert y.shape[1:] == layer.compute_output_shape((4, 6, 7))


def test_conv2d_golden_examples():
    x = np.zeros((1, 1, 6, 6), np.float32)
    x[..., :3] = 10
    layer = nn.Conv2D(1, 3, kernel_initializer=lambda shape, dtype, rng:
                      np.tile([1.0, 0.0, -1.0], (3, 1)).reshape(shape))
    assert np.array_equal(layer(x)[0, 0], np.tile([0, 30, 30, 0], (4, 1)))
    img = np.array([[1, 2, 0, 3, 1], [1, 0, 0, 2, 2], [2, 1, 2, 1, 1], [0, 0, 1, 0, 0],
                    [1, 2, 1, 1, 1]], np.float64)[None, None]
    k = np.array([[-1, 1, 2], [1, 1, 0], [-1, -2, 0]], np.float64).reshape(1, 1, 3, 3)
    same = nn.Conv2D(1, 3, padding="same", use_bias=False, dtype="float64")
    same(img)
    same.set_weights([k])
    assert np.array_equal(same(img)[0, 0, 0], [-1, 2, 2, -1, -2])
    strided = nn.Conv2D(1, 3, strides=2, use_bias=False, dtype="float64")
    strided(img)
    strided.set_weights([k])
    assert np.array_equal(strided(img)[0, 0], [[-2, 3], [-2, -1]])


@pytest.mark.parametrize("activation", [None, "relu", "softmax"])
def test_dense_gradients(activation, rng):
    layer = nn.Dense(5, activation=activation, dtype="float64", bias_initializer="ones")
    gradcheck_layer(layer, rng.standard_normal((3, 6)), rng, what="Dense")


def test_dense_on_last_axis(rng):
    layer = nn.Dense(4, dtype="float64")
    x = rng.standard_normal((2, 3, 5))
    y = gradcheck_layer(layer, x, rng, what="Dense 3-D")
    assert_within(y, x @ layer.kernel.data + layer.bias.data, 1e-12, 1e-12, "Dense forward")


POOL_CASES = [
    (nn.MaxPooling2D, dict(pool_size=2)),
    (nn.MaxPooling2D, dict(pool_size=3, strides=2, padding="same")),
    (nn.MaxPooling2D, dict(pool_size=3, strides=1, padding=1)),
    (nn.MinPooling2D, dict(pool_size=2, strides=1)),
    (nn.MinPooling2D, dict(pool_size=2, padding="same")),
    (nn.AveragePooling2D, dict(pool_size=2)),
    (nn.AveragePooling2D, dict(pool_size=2, padding="same")),
    (nn.AveragePooling2D, dict(pool_size=3, strides=2, padding="same")),
    (nn.AveragePooling2D, dict(pool_size=3, strides=2, padding=1)),
    (nn.AveragePooling2D, dict(pool_size=3, strides=2, padding=1, count_include_pad=False)),
]


@pytest.mark.parametrize("cls,kw", POOL_CASES,
                         ids=[f"{c.__name__}-{k}" for c, k in POOL_CASES])
def test_pool_gradients(cls, kw, rng):
    layer = cls(**kw, dtype="float64")
    x = rng.standard_normal((2, 3, 5, 7))
    y = gradcheck_layer(layer, x, rng, what=cls.__name__)
    assert y.shape[1:] == layer.compute_output_shape((3, 5, 7))


def _brute_same_pool(x, k, s, mode):
    """TensorFlow 'same' pooling by loops: windows clipped to the input."""
    n, c, h, w = x.shape
    oh, ow = -(-h // s), -(-w // s)
    ph = max((oh - 1) * s + k - h, 0) // 2
    pw = max((ow - 1) * s + k - w, 0) // 2
    y = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s - ph, j * s - pw
            win = x[:, :, max(h0, 0):h0 + k, max(w0, 0):w0 + k].reshape(n, c, -1)
            y[:, :, i, j] = {"max": win.max, "min": win.min, "avg": win.mean}[mode](-1)
    return y


@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (3, 1), (2, 3)])
@pytest.mark.parametrize("cls,mode", [(nn.MaxPooling2D, "max"), (nn.MinPooling2D, "min"),
                                      (nn.AveragePooling2D, "avg")])
def test_same_pooling_semantics(cls, mode, k, s, rng):
    x = rng.standard_normal((2, 2, 5, 6))
    y = cls(k, s, padding="same", dtype="float64")(x)
    assert_within(y, _brute_same_pool(x, k, s, mode), 1e-12, 1e-12, f"{mode} same")


def test_pool_golden_example():
    x = np.array([[2, 1, 0, -1], [-3, 8, 2, 5], [1, -1, 3, 4], [0, 1, 1, -2]],
                 np.float32)[None, None]
    assert np.array_equal(nn.MaxPooling2D(2)(x)[0, 0], [[8, 5], [1, 4]])
    assert np.array_equal(nn.AveragePooling2D(2)(x)[0, 0], [[2, 1.5], [0.25, 1.5]])
    assert nn.GlobalAveragePooling2D()(x)[0, 0] == 1.3125


@pytest.mark.parametrize("cls", [nn.GlobalAveragePooling2D, nn.GlobalMaxPooling2D])
def test_global_pool_gradients(cls, rng):
    layer = cls(dtype="float64")
    y = gradcheck_layer(layer, rng.standard_normal((2, 3, 4, 5)), rng, what=cls.__name__)
    assert y.shape == (2, 3)


@pytest.mark.parametrize("padding", [1, (2, 0), ((1, 0), (2, 3))])
def test_zero_padding_gradients(padding, rng):
    layer = nn.ZeroPadding2D(padding, dtype="float64")
    x = rng.standard_normal((2, 2, 3, 4))
    y = gradcheck_layer(layer, x, rng, what="ZeroPadding2D")
    t, b, lf, r = layer.padding
    assert y.shape == (2, 2, 3 + t + b, 4 + lf + r)
    assert np.array_equal(y[:, :, t:t + 3, lf:lf + 4], x)
    assert y.sum() == pytest.approx(x.sum())


def test_flatten_gradients(rng):
    layer = nn.Flatten(dtype="float64")
    x = rng.standard_normal((2, 3, 2, 2))
    y = gradcheck_layer(layer, x, rng, what="Flatten")
    assert np.array_equal(y, x.reshape(2, 12))        # C, H, W order


@pytest.mark.parametrize("layer_fn", [
    lambda: nn.Activation("relu"), lambda: nn.Activation("sigmoid"),
    lambda: nn.Activation("tanh"), lambda: nn.Activation("softmax"),
    lambda: nn.Activation("linear"), lambda: nn.Activation(None), nn.ReLU, nn.Sigmoid,
    nn.Softmax, lambda: nn.Softmax(axis=2), lambda: nn.Rescaling(0.5, offset=-1.0),
    lambda: nn.Normalization((1.0, -2.0, 0.5), (2.0, 0.5, 4.0), bgr=True),
], ids=["relu", "sigmoid", "tanh", "softmax", "linear", "none", "ReLU", "Sigmoid", "Softmax",
        "Softmax-axis2", "Rescaling", "Normalization-bgr"])
def test_elementwise_gradients(layer_fn, rng):
    layer = layer_fn()
    layer.dtype = np.dtype(np.float64)
    gradcheck_layer(layer, rng.standard_normal((2, 3, 2, 3)), rng, what=type(layer).__name__)


def test_activation_values_are_stable():
    x = np.array([[-1000.0, 0.0, 1000.0]], np.float32)
    s = nn.Sigmoid()(x)
    assert np.all(np.isfinite(s)) and s[0, 0] == 0.0 and s[0, 1] == 0.5 and s[0, 2] == 1.0
    p = nn.Softmax()(x)
    assert np.all(np.isfinite(p)) and p[0, 2] == 1.0
    assert np.array_equal(nn.ReLU()(x), [[0, 0, 1000]])


@pytest.mark.parametrize("shape", [(4, 3, 2, 3), (5, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients(shape, training, rng):
    layer = nn.BatchNormalization(dtype="float64", gamma_initializer="random_normal",
                                  beta_initializer="random_normal")
    x = rng.standard_normal(shape) * 2 + 1
    layer.forward(x)                                   # build
    layer.moving_mean.data[...] = rng.standard_normal(shape[1])
    layer.moving_variance.data[...] = rng.uniform(0.5, 2, shape[1])
    gradcheck_layer(layer, x, rng, training=training, what=f"BN training={training}")


def test_batchnorm_modes_and_moving_stats(rng):
    layer = nn.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype="float64")
    x = rng.standard_normal((6, 3, 4, 4)) * 3 + 2
    y = layer(x, training=True)
    axes = (0, 2, 3)
    assert_within(y.mean(axis=axes), np.zeros(3), 0, 1e-12, "BN mean")
    assert_within(y.var(axis=axes), np.full(3, 1.0), 1e-4, 0, "BN var")
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    assert_within(y, (x - mu) / np.sqrt(var + 1e-5), 1e-12, 1e-12, "BN training formula")
    # moving statistics follow Keras' rule with the biased batch variance
    assert_within(layer.moving_mean.data, 0.1 * x.mean(axis=axes), 1e-12, 1e-12, "moving mean")
    assert_within(layer.moving_variance.data, 0.9 + 0.1 * x.var(axis=axes), 1e-12, 1e-12,
                 "moving var")
    # inference uses the moving statistics and leaves them alone
    before = layer.moving_mean.data.copy()
    y_inf = layer(x, training=False)
    want = (x - layer.moving_mean.data[None, :, None, None]) / \
        np.sqrt(layer.moving_variance.data[None, :, None, None] + 1e-5)
    assert_within(y_inf, want, 1e-12, 1e-12, "BN inference")
    assert np.array_equal(layer.moving_mean.data, before)
    # frozen BN runs in inference mode even while training (Keras) and gets no gradients
    layer.trainable = False
    assert_within(layer(x, training=True), want, 1e-12, 1e-12, "frozen BN")
    layer.backward(np.ones_like(x))
    assert layer.gamma.grad is None and np.array_equal(layer.moving_mean.data, before)
    assert layer.count_params() == 12 and len(layer.trainable_params) == 0


@pytest.mark.parametrize("k", [2, 3])
def test_add_gradients(k, rng):
    layer = nn.Add(dtype="float64")
    xs = [rng.standard_normal((2, 3, 2, 2)) for _ in range(k)]
    y = gradcheck_layer(layer, xs, rng, what="Add")
    assert_within(y, sum(xs), 1e-12, 1e-12, "Add forward")


def test_add_rejects_mismatched_shapes(rng):
    a, b = nn.Input((2, 3, 3)), nn.Input((2, 3, 4))
    with pytest.raises(ValueError, match="one shape"):
        nn.Add()([a, b])
    with pytest.raises(ValueError, match="one shape"):
        nn.Add()([np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 3, 4))])


# --------------------------------------------------------------------------- Dropout

def test_dropout_modes(rng):
    layer = nn.Dropout(0.25, seed=3)
    x = rng.standard_normal((200, 50)).astype(np.float32) + 5.0      # no zeros in x
    assert layer(x) is x or np.array_equal(layer(x), x)               # inference: identity
    assert np.array_equal(layer.backward(x), x)
    y = layer(x, training=True)
    kept = y != 0
    assert abs(1 - kept.mean() - 0.25) < 0.01
    assert_within(y[kept], x[kept] / 0.75, 1e-6, 0, "kept values scaled by 1/(1-rate)")
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = layer.backward(dy)
    assert_within(dx, np.where(kept, dy / 0.75, 0), 1e-6, 0, "Dropout backward")
    assert y.dtype == np.float32 and dx.dtype == np.float32
    # same seed, same masks; a new draw each call
    y2 = nn.Dropout(0.25, seed=3)(x, training=True)
    assert np.array_equal(y, y2)
    assert not np.array_equal(layer(x, training=True), y)
    with pytest.raises(ValueError, match="rate"):
        nn.Dropout(1.0)


# --------------------------------------------------------------------------- parameters

def test_gradients_accumulate_and_freeze(rng):
    layer = nn.Conv2D(2, 3, dtype="float64")
    x = rng.standard_normal((1, 1, 4, 4))
    dy = rng.standard_normal((1, 2, 2, 2))
    layer(x)
    layer.backward(dy)
    g1 = layer.kernel.grad.copy()
    layer.backward(dy)
    assert_within(layer.kernel.grad, 2 * g1, 1e-12, 0, "accumulated grad")
    layer.kernel.grad = None
    layer.bias.grad = None
    layer.trainable = False
    dx = layer.backward(dy)
    assert layer.kernel.grad is None and layer.bias.grad is None and dx.shape == x.shape
    assert layer.trainable_params == [] and len(layer.params) == 2


def test_lazy_init_is_deterministic():
    """Seeds are taken when a layer is built; values are drawn on first access, in any order."""
    layers = []
    for _ in range(2):
        nn.set_seed(7)
        t = nn.Input((4,))
        pair_ = [nn.Dense(3), nn.Dense(2)]
        pair_[1](pair_[0](t))                  # build only: nothing drawn yet
        assert all(p._data is None for la in pair_ for p in la.params)
        layers.append(pair_)
    a, b = layers
    wa = [la.kernel.data for la in a]
    wb = [la.kernel.data for la in reversed(b)][::-1]
    for x, y in zip(wa, wb):
        assert np.array_equal(x, y)
    assert wa[0].dtype == np.float32 and not np.array_equal(wa[0][:2, :2], wa[1][:2, :2])


def test_layer_dtype_and_casting(rng):
    layer = nn.Conv2D(2, 3)
    y = layer(rng.integers(0, 255, (1, 1, 5, 5)).astype(np.uint8))
    assert y.dtype == np.float32 and layer.kernel.data.dtype == np.float32
    layer64 = nn.Dense(2, dtype="float64")
    assert layer64(np.ones((1, 3), np.float32)).dtype == np.float64


def test_set_and_get_weights(rng):
    layer = nn.Dense(2)
    layer(np.ones((1, 3), np.float32))
    w = [rng.standard_normal((3, 2)), rng.standard_normal(2)]
    layer.set_weights(w)
    got = layer.get_weights()
    assert got[0].dtype == np.float32 and np.array_equal(got[0], w[0].astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        layer.set_weights([np.zeros((2, 3)), np.zeros(2)])
    with pytest.raises(ValueError, match="2 weights"):
        layer.set_weights([np.zeros((3, 2))])


# --------------------------------------------------------------------------- argument errors

def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="filters"):
        nn.Conv2D(0, 3)
    with pytest.raises(ValueError, match="activation"):
        nn.Conv2D(2, 3, activation="swish")
    with pytest.raises(ValueError, match="padding"):
        nn.Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2D(3, 3, groups=2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(None, 5\)"):
        nn.Conv2D(2, 3)(nn.Input((5,)))
    with pytest.raises(ValueError, match="groups=2 must divide the 3 input channels"):
        nn.Conv2D(4, 3, groups=2)(nn.Input((3, 8, 8)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        nn.Conv2D(2, 5)(nn.Input((1, 3, 3)))
    with pytest.raises(ValueError, match="padding"):
        nn.MaxPooling2D(2, padding="full")
    with pytest.raises(ValueError, match="half the kernel"):
        nn.MaxPooling2D(2, padding=2)
    with pytest.raises(ValueError, match="units"):
        nn.Dense(-1)
    with pytest.raises(ValueError, match="expects 4 input features"):
        layer = nn.Dense(2)
        layer(np.ones((1, 4), np.float32))
        layer(np.ones((1, 5), np.float32))
    with pytest.raises(ValueError, match="built for input shape"):
        layer = nn.Dense(2)
        layer(nn.Input((4,)))
        layer(nn.Input((5,)))
    with pytest.raises(TypeError, match="array"):
        nn.Dense(2)([1.0, 2.0])
    with pytest.raises(RuntimeError, match="before forward"):
        nn.ReLU().backward(np.ones((1, 2)))


# --------------------------------------------------------------------------- initialisers

def test_compute_fans():
    assert init.compute_fans((5, 7)) == (5, 7)
    assert init.compute_fans((8, 3, 5, 5)) == (75, 200)
    assert init.compute_fans((4,)) == (4, 4)


@pytest.mark.parametrize("name,std", [
    ("glorot_normal", np.sqrt(2 / (300 + 200))),
    ("glorot_truncated_normal", np.sqrt(2 / (300 + 200))),
    ("he_normal", np.sqrt(2 / 300)),
    ("he_truncated_normal", np.sqrt(2 / 300)),
    ("glorot_uniform", np.sqrt(2 / (300 + 200))),
    ("he_uniform", np.sqrt(2 / 300)),
    ("lecun_normal", np.sqrt(1 / 300)),
])
def test_variance_scaling_stats(name, std):
    w = init.get(name)((300, 200), "float32", np.random.default_rng(0))
    assert w.shape == (300, 200) and w.dtype == np.float32
    assert abs(w.std() / std - 1) < 0.02 and abs(w.mean()) < 0.05 * std
    if "uniform" in name:
        assert np.abs(w).max() <= np.sqrt(3) * std * (1 + 1e-6)
    if "truncated" in name:
        assert np.abs(w).max() <= 2 * std / 0.87962566103423978 * (1 + 1e-6)


def test_simple_initializers():
    rng = np.random.default_rng(0)
    assert np.array_equal(init.get("zeros")((2, 3), "float64", rng), np.zeros((2, 3)))
    assert np.array_equal(init.get("ones")((4,), "float32", rng), np.ones(4))
    t = init.TruncatedNormal(1.0, 0.1)((10000,), "float64", rng)
    assert t.min() >= 0.8 and t.max() <= 1.2
    u = init.get("random_uniform")((1000,), "float64", rng)
    assert u.min() >= -0.05 and u.max() <= 0.05
    with pytest.raises(ValueError, match="unknown initializer"):
        init.get("glorot")
    layer = nn.Dense(3, kernel_initializer=lambda shape, dtype, rng: np.full(shape, 2.0))
    layer(np.ones((1, 2), np.float32))
    assert np.array_equal(layer.kernel.data, np.full((2, 3), 2.0, np.float32))
