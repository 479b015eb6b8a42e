"""convforge.optim.schedules against their closed forms and torch.optim.lr_scheduler (when torch
imports), optimisers driven by a schedule (the rate of each step, step counted from 0), and the
callbacks LearningRateScheduler, ReduceLROnPlateau and TerminateOnNaN in fit on a tiny model."""

from __future__ import annotations

import math

import numpy as np
import pytest

import convforge
from convforge import nn, optim
from convforge.optim import schedules as S

from conftest import assert_within

pytestmark = pytest.mark.usefixtures("nn_backend")  # conftest: cpu, else reference
N_STEPS = 50


def values(schedule, n=N_STEPS):
    return np.array([schedule(k) for k in range(n)])


# --------------------------------------------------------------------------- closed forms

def test_step_decay():
    s = S.StepDecay(0.1, 3, gamma=0.5)
    assert_within(values(s, 10), [0.1] * 3 + [0.05] * 3 + [0.025] * 3 + [0.0125], 0, 1e-15)


def test_exponential_decay_smooth_and_staircase():
    k = np.arange(N_STEPS)
    assert_within(values(S.ExponentialDecay(0.2, 10, 0.5)), 0.2 * 0.5 ** (k / 10), 1e-15, 0)
    assert_within(values(S.ExponentialDecay(0.2, 10, 0.5, staircase=True)),
                  0.2 * 0.5 ** (k // 10), 1e-15, 0)


def test_cosine_decay_holds_its_minimum():
    s = S.CosineDecay(1.0, 20, alpha=0.1)
    k = np.arange(N_STEPS)
    want = np.where(k <= 20, 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * np.minimum(k, 20) / 20)), 0.1)
    assert_within(values(s), want, 1e-14, 0)
    assert s(0) == 1.0 and s(10) == pytest.approx(0.55) and s(20) == pytest.approx(0.1)


def test_cosine_decay_with_linear_warmup():
    s = S.CosineDecay(0.0, 30, warmup_steps=10, warmup_target=0.5)
    assert_within(values(s, 11), [0.05 * k for k in range(10)] + [0.5], 1e-15, 1e-17)
    assert s(25) == pytest.approx(0.25) and s(40) == pytest.approx(0.0, abs=1e-17)
    assert s(1000) == s(40)


def test_one_cycle_shape():
    s = S.OneCycle(0.1, 100, pct_start=0.25, div_factor=10.0, final_div_factor=100.0)
    v = values(s, 100)
    assert v[0] == pytest.approx(0.01) and v.argmax() == 24 and v[24] == pytest.approx(0.1)
    assert v[-1] == pytest.approx(1e-4) and np.all(np.diff(v[:25]) > 0)
    assert np.all(np.diff(v[24:]) < 0) and s(500) == v[-1]
    lin = S.OneCycle(1.0, 11, pct_start=6 / 11, anneal="linear", div_factor=2.0,
                     final_div_factor=1.0)
    assert_within(values(lin, 11), [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5],
                  1e-15, 0)


def test_constant_and_get():
    assert values(S.Constant(0.3), 5).tolist() == [0.3] * 5
    s = S.get("cosine", initial_lr=1e-3, decay_steps=10)
    assert isinstance(s, S.CosineDecay) and s.decay_steps == 10
    assert S.get(s) is s and S.get("OneCycle", max_lr=1.0, total_steps=5).total_steps == 5
    assert "CosineDecay(initial_lr=0.001, decay_steps=10" in repr(s)
    with pytest.raises(ValueError, match="schedule must be one of"):
        S.get("linear")


@pytest.mark.parametrize("make,match", [
    (lambda: S.StepDecay(0.1, 0), "step_size"),
    (lambda: S.ExponentialDecay(-1.0, 10, 0.5), "initial_lr"),
    (lambda: S.CosineDecay(0.1, 10, warmup_steps=5), "warmup_target"),
    (lambda: S.OneCycle(0.1, 10, pct_start=1.5), "pct_start"),
    (lambda: S.OneCycle(0.1, 10, anneal="exp"), "anneal"),
    (lambda: S.StepDecay(0.1, 2)(-1), "step must be"),
    (lambda: S.StepDecay(0.1, 2)(1.5), "step must be"),
])
def test_schedule_argument_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# --------------------------------------------------------------------------- against PyTorch

def torch_rates(make, base_lr, n=N_STEPS):
    """The rate torch's optimiser uses at each of n steps, scheduler.step() after each."""
    torch = pytest.importorskip("torch")
    t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([t], lr=base_lr, momentum=0.9)
    sched = make(torch.optim.lr_scheduler, opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out, dtype=np.float64)


TORCH_CASES = [
    ("StepLR", S.StepDecay(0.1, 7, 0.5), 0.1, lambda L, o: L.StepLR(o, 7, gamma=0.5)),
    ("ExponentialLR", S.ExponentialDecay(0.1, 1, 0.95), 0.1,
     lambda L, o: L.ExponentialLR(o, gamma=0.95)),
    ("StepLR as staircase", S.ExponentialDecay(0.1, 5, 0.3, staircase=True), 0.1,
     lambda L, o: L.StepLR(o, 5, gamma=0.3)),
    ("CosineAnnealingLR", S.CosineDecay(0.1, N_STEPS, alpha=0.1), 0.1,
     lambda L, o: L.CosineAnnealingLR(o, T_max=N_STEPS, eta_min=0.01)),
    ("LinearLR + CosineAnnealingLR", S.CosineDecay(0.02, 40, warmup_steps=10, warmup_target=0.1),
     0.1, lambda L, o: L.SequentialLR(o, [L.LinearLR(o, start_factor=0.2, total_iters=10),
                                          L.CosineAnnealingLR(o, T_max=40)], milestones=[10])),
    ("OneCycleLR cos", S.OneCycle(0.1, N_STEPS), 0.1,
     lambda L, o: L.OneCycleLR(o, max_lr=0.1, total_steps=N_STEPS)),
    ("OneCycleLR linear", S.OneCycle(0.5, N_STEPS, pct_start=0.4, div_factor=10.0,
                                     final_div_factor=100.0, anneal="linear"), 0.5,
     lambda L, o: L.OneCycleLR(o, max_lr=0.5, total_steps=N_STEPS, pct_start=0.4,
                               div_factor=10.0, final_div_factor=100.0,
                               anneal_strategy="linear")),
]


@pytest.mark.parametrize("name,ours,base_lr,make", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_matches_torch_lr_scheduler(name, ours, base_lr, make):
    # rtol 1e-12: torch's chained (recursive) forms round differently from the closed forms
    assert_within(values(ours), torch_rates(make, base_lr), 1e-12, 1e-16, name)


# --------------------------------------------------------------------------- optimisers

class P:
    def __init__(self, data):
        self.data = np.array(data, dtype=np.float64)
        self.grad = None


def test_sgd_uses_the_scheduled_rate_from_step_zero():
    sched = S.StepDecay(0.1, 2, gamma=0.5)
    opt = optim.SGD(lr=sched)
    assert opt.schedule is sched and opt.learning_rate == 0.1
    p, rng = P([1.0, -2.0, 0.5]), np.random.default_rng(0)
    want = p.data.copy()
    for k in range(5):
        g = rng.standard_normal(3)
        p.grad = g.copy()
        assert opt.learning_rate == sched(k)      # the rate of the next step
        opt.step([p])
        want = want - sched(k) * g
        assert_within(p.data, want, 1e-15, 1e-15, f"step {k}")
    assert opt.iterations == 5 and opt.learning_rate == sched(5)


def test_adam_with_one_cycle_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x0, grads = rng.standard_normal(6), rng.standard_normal((8, 6))
    opt = optim.Adam(learning_rate=S.OneCycle(0.05, 8), epsilon=1e-8)
    p = P(x0)
    for g in grads:
        p.grad = g.copy()
        opt.step([p])
    t = torch.tensor(x0, requires_grad=True)
    topt = torch.optim.Adam([t], lr=0.05, eps=1e-8)
    sched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.05, total_steps=8,
                                                cycle_momentum=False)
    for g in grads:
        t.grad = torch.tensor(g)
        topt.step()
        sched.step()
    assert_within(p.data, t.detach().numpy(), 1e-12, 1e-14, "Adam + OneCycle")


def test_the_fused_update_gets_a_float_rate(monkeypatch):
    seen = []
    real = convforge.functional.sgd_update

    def spy(*args, **kw):
        seen.append(kw["lr"])
        return real(*args, **kw)

    monkeypatch.setattr(convforge.functional, "sgd_update", spy)
    opt = optim.SGD(learning_rate=lambda step: np.float32(0.5) ** step, momentum=0.9)
    p = P([1.0, 2.0])
    for _ in range(3):
        p.grad = np.ones(2)
        opt.step([p])
    assert seen == [1.0, 0.5, 0.25] and all(type(v) is float for v in seen)


def test_learning_rate_alias_and_errors():
    assert optim.RMSprop(lr=0.05).learning_rate == 0.05
    assert optim.AdamW(lr=S.Constant(0.2)).learning_rate == 0.2
    with pytest.raises(ValueError, match="not both"):
        optim.SGD(0.1, lr=0.2)
    opt = optim.SGD(lr=S.Constant(0.1))
    with pytest.raises(TypeError, match="schedule"):
        opt.learning_rate = 0.5
    opt.learning_rate = S.Constant(0.3)                  # a schedule replaces the schedule
    assert opt.learning_rate == 0.3 and "Constant(learning_rate=0.3)" in repr(opt)
    bad = optim.SGD(lr=lambda step: float("nan"))
    p = P([1.0])
    p.grad = np.ones(1)
    with pytest.raises(ValueError, match="finite number >= 0"):
        bad.step([p])


# --------------------------------------------------------------------------- callbacks in fit

def tiny_model(lr=0.1):
    nn.set_seed(3)
    m = nn.Sequential([nn.Dense(3, input_shape=(4,), dtype="float64")])
    m.compile(optim.SGD(lr), "sparse_categorical_crossentropy")
    return m


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def test_learning_rate_scheduler_sets_the_rate_each_epoch(capsys):
    x, y = data()
    m = tiny_model(0.1)
    cb = nn.LearningRateScheduler(lambda epoch, lr: 0.2 * 0.5 ** epoch, verbose=1)
    h = m.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[cb])
    assert h.history["learning_rate"] == [0.2, 0.1, 0.05]
    assert m.optimizer.learning_rate == 0.05
    out = capsys.readouterr().out
    assert "Epoch 3: LearningRateScheduler setting learning rate to 0.05." in out
    m = tiny_model(0.1)    # a one-argument schedule(epoch)
    h = m.fit(x, y, batch_size=8, epochs=2, verbose=0,
              callbacks=[nn.LearningRateScheduler(lambda epoch: [0.3, 0.01][epoch])])
    assert h.history["learning_rate"] == [0.3, 0.01]


def test_learning_rate_scheduler_refuses_a_scheduled_optimizer():
    x, y = data()
    m = tiny_model()
    m.compile(optim.SGD(lr=S.Constant(0.1)), "sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="schedule"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[nn.LearningRateScheduler(lambda e: 0.1)])


def test_fit_logs_the_rate_of_each_epochs_last_step():
    x, y = data(32)
    m = tiny_model()
    sched = S.StepDecay(0.1, 3, 0.5)
    m.compile(optim.SGD(lr=sched), "sparse_categorical_crossentropy")
    h = m.fit(x, y, batch_size=8, epochs=3, verbose=0)         # 4 steps per epoch
    assert h.history["learning_rate"] == [sched(3), sched(7), sched(11)]
    assert m.optimizer.iterations == 12


def test_reduce_lr_on_plateau_in_fit():
    # a rate too small to move the loss: no epoch improves on the first (min_delta 1e-4)
    x, y = data()
    m = tiny_model(1e-9)
    cb = nn.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=1,
                              min_lr=2.5e-10)
    h = m.fit(x, y, batch_size=16, epochs=8, verbose=0, callbacks=[cb])
    lr = 1e-9
    assert_within(h.history["learning_rate"],
                  [lr, lr, lr, lr / 2, lr / 2, lr / 4, lr / 4, lr / 4], 1e-15, 0)
    assert m.optimizer.learning_rate == pytest.approx(2.5e-10)


class _StubModel:
    def __init__(self, lr):
        self.optimizer = optim.SGD(lr)
        self.stop_training = False


def test_reduce_lr_on_plateau_counts_like_keras():
    cb = nn.ReduceLROnPlateau(monitor="val_accuracy", factor=0.1, patience=1, min_delta=0.0)
    cb.set_model(_StubModel(1.0))
    cb.on_train_begin()
    rates = []
    for v in [0.5, 0.6, 0.6, 0.7, 0.7, 0.6]:     # mode auto: accuracy is maximised
        cb.on_epoch_end(len(rates), {"val_accuracy": v})
        rates.append(cb.model.optimizer.learning_rate)
    assert_within(rates, [1.0, 1.0, 0.1, 0.1, 0.01, 0.001], 1e-15, 0)
    with pytest.raises(ValueError, match="factor"):
        nn.ReduceLROnPlateau(factor=1.0)
    with pytest.warns(UserWarning, match="not in the logs"):
        cb.on_epoch_end(6, {"loss": 1.0})


def test_terminate_on_nan_stops_at_the_bad_batch(capsys):
    x, y = data(32)
    x[12] = np.nan                                    # in the second batch of 8 (no shuffle)
    m = tiny_model()
    h = m.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
              callbacks=[nn.TerminateOnNaN()])
    assert h.epoch == [0] and math.isnan(h.history["loss"][0])
    assert m.optimizer.iterations == 2 and m.stop_training
    assert "Batch 1: invalid loss, terminating training" in capsys.readouterr().out
    m = tiny_model()                                  # finite data: runs to the end
    h = m.fit(*data(16), batch_size=8, epochs=2, verbose=0, callbacks=[nn.TerminateOnNaN()])
    assert h.epoch == [0, 1]


def test_epoch_timer_counts_from_the_start_of_fit():
    timer = nn.EpochTimer()
    m = tiny_model()
    m.fit(*data(16), batch_size=8, epochs=3, verbose=0, validation_data=data(8),
          callbacks=[timer])
    assert len(timer.seconds) == 3 and 0 < timer.seconds[0] <= timer.seconds[1] <= timer.seconds[2]
    m.fit(*data(16), batch_size=8, epochs=1, verbose=0, callbacks=[timer])   # a new fit: anew
    assert len(timer.seconds) == 1


def test_callbacks_are_exported():
    for name in ("LearningRateScheduler", "ReduceLROnPlateau", "TerminateOnNaN", "EpochTimer"):
        assert name in nn.__all__ and getattr(nn, name) is getattr(nn.callbacks, name)
    assert "schedules" in optim.__all__
