"""convforge.optim: single steps against hand-computed updates (momentum, Nesterov, weight
decay, RMSprop, Adam bias correction, AdamW), several steps against torch.optim when torch is
installed, and the zero_grad / skip / argument rules."""

from __future__ import annotations

import numpy as np
import pytest

import convforge
from convforge import nn, optim


class P:
    """Minimal parameter: .data and .grad."""

    def __init__(self, data, grad=None):
        self.data = np.array(data, dtype=np.float64)
        self.grad = None if grad is None else np.array(grad, dtype=np.float64)


def step(opt, p, grads):
    """Runs opt over the given gradients; returns the parameter after each step."""
    out = []
    for g in grads:
        p.grad = np.array(g, dtype=p.data.dtype)
        opt.step([p])
        out.append(p.data.copy())
    return out


def close(a, b, tol=1e-12):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    i = int(np.argmax(np.abs(a - b)))
    assert np.allclose(a, b, rtol=tol, atol=tol), \
        f"worst mismatch at {i}: got {a.flat[i]!r}, expected {b.flat[i]!r}"


P0 = np.array([1.0, -2.0, 0.5])
G1 = np.array([0.5, -1.0, 2.0])
G2 = np.array([-0.25, 0.75, 1.0])


def test_sgd_plain():
    (p1,) = step(optim.SGD(0.1), P(P0), [G1])
    close(p1, P0 - 0.1 * G1)


def test_sgd_momentum():
    p1, p2 = step(optim.SGD(0.1, momentum=0.9), P(P0), [G1, G2])
    buf1 = G1
    close(p1, P0 - 0.1 * buf1)
    buf2 = 0.9 * buf1 + G2
    close(p2, p1 - 0.1 * buf2)


def test_sgd_nesterov():
    p1, p2 = step(optim.SGD(0.1, momentum=0.9, nesterov=True), P(P0), [G1, G2])
    buf1 = G1
    close(p1, P0 - 0.1 * (G1 + 0.9 * buf1))
    buf2 = 0.9 * buf1 + G2
    close(p2, p1 - 0.1 * (G2 + 0.9 * buf2))


def test_sgd_weight_decay():
    p1, p2 = step(optim.SGD(0.1, momentum=0.5, weight_decay=0.01), P(P0), [G1, G2])
    g1 = G1 + 0.01 * P0
    close(p1, P0 - 0.1 * g1)
    g2 = G2 + 0.01 * p1
    close(p2, p1 - 0.1 * (0.5 * g1 + g2))


def test_rmsprop():
    eps = 1e-7
    p1, p2 = step(optim.RMSprop(0.01, rho=0.9), P(P0), [G1, G2])
    sq1 = 0.1 * G1**2
    close(p1, P0 - 0.01 * G1 / (np.sqrt(sq1) + eps))
    sq2 = 0.9 * sq1 + 0.1 * G2**2
    close(p2, p1 - 0.01 * G2 / (np.sqrt(sq2) + eps))


def test_rmsprop_centered_momentum():
    eps = 1e-7
    p1, p2 = step(optim.RMSprop(0.01, rho=0.8, momentum=0.5, centered=True), P(P0), [G1, G2])
    sq1, ga1 = 0.2 * G1**2, 0.2 * G1
    buf1 = G1 / (np.sqrt(sq1 - ga1**2) + eps)
    close(p1, P0 - 0.01 * buf1)
    sq2, ga2 = 0.8 * sq1 + 0.2 * G2**2, 0.8 * ga1 + 0.2 * G2
    buf2 = 0.5 * buf1 + G2 / (np.sqrt(sq2 - ga2**2) + eps)
    close(p2, p1 - 0.01 * buf2)


def test_adam_bias_correction():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    p1, p2 = step(optim.Adam(lr), P(P0), [G1, G2])
    # step 1: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps)
    close(p1, P0 - lr * G1 / (np.abs(G1) + eps))
    m = b1 * (1 - b1) * G1 + (1 - b1) * G2
    v = b2 * (1 - b2) * G1**2 + (1 - b2) * G2**2
    m_hat, v_hat = m / (1 - b1**2), v / (1 - b2**2)
    close(p2, p1 - lr * m_hat / (np.sqrt(v_hat) + eps))


def test_adam_weight_decay_and_amsgrad():
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.99, 1e-8, 0.1
    p1, p2 = step(optim.Adam(lr, b1, b2, eps, amsgrad=True, weight_decay=wd), P(P0), [G1, G2])
    g1 = G1 + wd * P0
    m1, v1 = (1 - b1) * g1, (1 - b2) * g1**2
    close(p1, P0 - lr / (1 - b1) * m1 / (np.sqrt(v1) / np.sqrt(1 - b2) + eps))
    g2 = G2 + wd * p1
    m2, v2 = b1 * m1 + (1 - b1) * g2, b2 * v1 + (1 - b2) * g2**2
    vmax = np.maximum(v1, v2)
    close(p2, p1 - lr / (1 - b1**2) * m2 / (np.sqrt(vmax) / np.sqrt(1 - b2**2) + eps))


def test_adamw_decoupled_decay():
    lr, wd, eps = 0.01, 0.1, 1e-7
    (p1,) = step(optim.AdamW(lr, weight_decay=wd), P(P0), [G1])
    close(p1, P0 * (1 - lr * wd) - lr * G1 / (np.abs(G1) + eps))


def test_per_parameter_step_counts():
    """A parameter joining later gets its own bias correction (step 1 for it)."""
    opt = optim.Adam(0.01)
    a, b = P(P0), P(P0)
    a.grad = G1.copy()
    opt.step([a, b])                 # b has no gradient yet: skipped
    assert np.array_equal(b.data, P0)
    a.grad, b.grad = G2.copy(), G1.copy()
    opt.step([a, b])
    close(b.data, P0 - 0.01 * G1 / (np.abs(G1) + 1e-7))
    assert opt.iterations == 2


def test_zero_grad_and_dtype():
    p = P(P0)
    p.data = p.data.astype(np.float32)
    p.grad = G1.astype(np.float32)
    for opt in (optim.SGD(0.1, momentum=0.9), optim.RMSprop(), optim.Adam(), optim.AdamW()):
        opt.step([p])
        assert p.data.dtype == np.float32
    buf = p.grad
    optim.SGD().zero_grad([p, P(P0)])
    assert p.grad is buf and not p.grad.any()


def test_get_and_bad_arguments():
    assert isinstance(optim.get("sgd"), optim.SGD) and isinstance(optim.get("Adam"), optim.Adam)
    assert isinstance(optim.get("rmsprop"), optim.RMSprop)
    o = optim.SGD(0.5)
    assert optim.get(o) is o
    assert optim.RMSprop().learning_rate == 0.001 and optim.SGD().learning_rate == 0.01
    with pytest.raises(ValueError, match="optimizer"):
        optim.get("adagrad")
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning_rate"):
        optim.Adam(-1.0)
    with pytest.raises(ValueError, match="beta_1"):
        optim.Adam(beta_1=1.0)
    p = P(P0, grad=[1.0, 2.0])
    with pytest.raises(ValueError, match="gradient shape"):
        optim.SGD().step([p])


def test_works_on_nn_parameters():
    layer = nn.Dense(2, dtype="float64")
    layer(np.ones((1, 3)))
    layer.backward(np.ones((1, 2)))
    w0 = layer.kernel.data.copy()
    optim.SGD(0.5).step(layer.trainable_params)
    close(layer.kernel.data, w0 - 0.5 * np.ones((3, 2)))


TORCH_CASES = [
    ("SGD", dict(learning_rate=0.1), dict(lr=0.1)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
     dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("RMSprop", dict(learning_rate=0.01, rho=0.9, epsilon=1e-8),
     dict(lr=0.01, alpha=0.9, eps=1e-8)),
    ("RMSprop", dict(learning_rate=0.01, rho=0.95, momentum=0.5, centered=True, epsilon=1e-6,
                     weight_decay=0.1),
     dict(lr=0.01, alpha=0.95, momentum=0.5, centered=True, eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(learning_rate=0.01, epsilon=1e-8), dict(lr=0.01, eps=1e-8)),
    ("Adam", dict(learning_rate=0.01, beta_1=0.8, beta_2=0.9, epsilon=1e-6, amsgrad=True,
                  weight_decay=0.05),
     dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, amsgrad=True, weight_decay=0.05)),
    ("AdamW", dict(learning_rate=0.01, epsilon=1e-8, weight_decay=0.1),
     dict(lr=0.01, eps=1e-8, weight_decay=0.1)),
]


def test_matches_torch_optim():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for name, ours, theirs in TORCH_CASES:
        x0 = rng.standard_normal(7)
        grads = rng.standard_normal((6, 7))
        mine = step(getattr(optim, name)(**ours), P(x0), grads)[-1]
        t = torch.tensor(x0, requires_grad=True)
        opt = getattr(torch.optim, name)([t], **theirs)
        for g in grads:
            t.grad = torch.tensor(g)
            opt.step()
        close(mine, t.detach().numpy(), 1e-12)


@pytest.mark.parametrize("opt", ["adam", "sgd", "rmsprop"])
def test_deep_copy_of_a_trained_model_keeps_its_optimiser_state(monkeypatch, opt):
    # the copy's optimiser state is keyed by the copy's parameters: both continue alike
    import copy

    from convforge import models

    monkeypatch.setenv("CONVFORGE_STEP_PLAN", "0")
    convforge.set_seed(1)
    m = models.lenet5()
    m.compile(optim.SGD(0.05, momentum=0.9) if opt == "sgd" else opt,
              "sparse_categorical_crossentropy")
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (8, 1, 32, 32)).astype(np.float32)
    y = np.arange(8) % 10
    m.train_on_batch(x, y)
    twin = copy.deepcopy(m)
    assert all(p in twin.optimizer._state for p in twin.trainable_params)
    assert not any(p in twin.optimizer._state for p in m.trainable_params)
    assert m.train_on_batch(x, y) == twin.train_on_batch(x, y)
    for a, b in zip(m.get_weights(), twin.get_weights()):
        assert np.array_equal(a, b)
