"""Training keeps tensors on the device: no host round trip per batch or per layer.

Two parts:
- CPU (always runs): fit / evaluate / train_on_batch on NumPy arrays, with the loss and metric
  values wrapped in a 0-d array type that counts every conversion to a Python number (on CuPy
  such a conversion is a device-to-host copy that waits for the GPU), and with
  `convforge.nn._loop.to_host` (RunningMeans'), the model's one host-transfer point, counted.
  Per-batch code may do neither; the epoch end calls to_host exactly once.
- GPU (skipped without CuPy and a CUDA device): LeNet-5 trained with Model.fit on CuPy arrays
  (3,000 MNIST images, 6 epochs) and through `convforge train lenet5 --backend cuda`; the
  parameters and optimiser state must stay CuPy arrays and test accuracy must pass 0.9. (With
  1,000 images x 8 epochs the same run on the CPU backend ends at exactly 0.900: too close.)
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from convforge import backends, losses, models, nn
from convforge.nn import _loop as loop_mod
from convforge.nn import model as model_mod

# --------------------------------------------------------------------------- CPU: sync counting


class DeviceScalar(np.ndarray):
    """A 0-d array standing in for a CuPy scalar: arithmetic keeps the type (as it stays on the
    device), while float()/int()/bool()/item()/format() - a blocking device-to-host copy on
    CuPy - are counted, unless they happen inside to_host."""

    conversions: list[str] = []
    inside_to_host = False

    @classmethod
    def wrap(cls, value):
        return np.asarray(value).view(cls)

    def _count(self, how):
        if not DeviceScalar.inside_to_host:
            DeviceScalar.conversions.append(how)

    def __float__(self):
        self._count("float")
        return float(self.view(np.ndarray))

    def __int__(self):
        self._count("int")
        return int(self.view(np.ndarray))

    def __bool__(self):
        self._count("bool")
        return bool(self.view(np.ndarray))

    def __format__(self, spec):
        self._count("format")
        return format(self.view(np.ndarray)[()], spec)

    def item(self, *args):
        self._count("item")
        return self.view(np.ndarray).item(*args)

    def tolist(self):
        self._count("tolist")
        return self.view(np.ndarray).tolist()


class CountingLoss(losses.SparseCategoricalCrossentropy):
    def forward_backward(self, y_true, y_pred):
        loss, grad = super().forward_backward(y_true, y_pred)
        return DeviceScalar.wrap(loss), grad


def counting_accuracy(y_true, y_pred):
    return DeviceScalar.wrap(nn.metrics.sparse_categorical_accuracy(y_true, y_pred))


@pytest.fixture
def counted(monkeypatch):
    """Counts calls of the model's host-transfer helper; conversions inside it are allowed."""
    calls = []
    real = loop_mod.to_host

    def to_host(a):
        calls.append(1)
        DeviceScalar.inside_to_host = True
        try:
            return real(a)
        finally:
            DeviceScalar.inside_to_host = False

    monkeypatch.setattr(loop_mod, "to_host", to_host)
    DeviceScalar.conversions = []
    yield calls
    DeviceScalar.conversions = []


def _tiny_model():
    nn.set_seed(0)
    m = nn.Sequential([
        nn.Conv2D(4, 3, activation="relu", input_shape=(1, 8, 8)),
        nn.MaxPooling2D(2),
        nn.Flatten(),
        nn.Dense(3),
    ])
    m.compile("adam", CountingLoss(), metrics=[counting_accuracy])
    return m


def _data(n=40):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, n)
    return x, y


def test_fit_brings_logs_to_host_once_per_epoch(counted):
    x, y = _data(40)
    m = _tiny_model()
    hist = m.fit(x, y, batch_size=8, epochs=3, verbose=0, seed=0)   # 5 batches per epoch
    assert DeviceScalar.conversions == [], \
        f"per-batch host conversions of loss/metric values: {DeviceScalar.conversions}"
    assert len(counted) == 3, f"to_host called {len(counted)} times for 3 epochs of 5 batches"
    assert set(hist.history) == {"loss", "counting_accuracy", "learning_rate"}
    for vals in hist.history.values():
        assert len(vals) == 3 and all(type(v) is float and np.isfinite(v) for v in vals)


def test_fit_with_validation_and_callbacks_without_batch_hooks(counted, tmp_path):
    x, y = _data(40)
    m = _tiny_model()
    cbs = [nn.EarlyStopping("val_loss", patience=5), nn.CSVLogger(str(tmp_path / "log.csv"))]
    m.fit(x[:32], y[:32], batch_size=8, epochs=2, validation_data=(x[32:], y[32:]), verbose=0,
          callbacks=cbs)
    assert DeviceScalar.conversions == []
    assert len(counted) == 4            # per epoch: the training logs + one evaluate


def test_evaluate_and_train_on_batch_transfer_once(counted):
    x, y = _data(40)
    m = _tiny_model()
    res = m.evaluate(x, y, batch_size=8)                 # 5 batches
    assert DeviceScalar.conversions == [] and len(counted) == 1
    assert all(type(v) is float for v in res.values())
    logs = m.train_on_batch(x[:8], y[:8])
    assert DeviceScalar.conversions == [] and len(counted) == 2
    assert set(logs) == {"loss", "counting_accuracy"}


def test_regularised_fit_and_evaluate_stay_on_the_device(counted):
    """The penalties of kernel_regularizer join the loss on the device: no host round trip."""
    x, y = _data(40)
    m = _tiny_model()
    m.layers[0].kernel.regularizer = nn.regularizers.L2(0.01)
    m.fit(x[:32], y[:32], batch_size=8, epochs=2, validation_data=(x[32:], y[32:]), verbose=0)
    assert DeviceScalar.conversions == [] and len(counted) == 4
    m.evaluate(x, y, batch_size=8)
    assert DeviceScalar.conversions == [] and len(counted) == 5


def test_running_means_match_per_batch_floats():
    """The device-side accumulation gives the same epoch logs as float() per batch did."""
    x, y = _data(40)
    m = _tiny_model()
    m.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    ref = _tiny_model()
    ref.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    loss_sum = acc_sum = 0.0
    for s in range(0, 40, 8):
        logs = ref.train_on_batch(x[s:s + 8], y[s:s + 8])
        loss_sum += logs["loss"] * 8
        acc_sum += logs["accuracy"] * 8
    assert hist.history["loss"] == [loss_sum / 40]
    assert hist.history["accuracy"] == [acc_sum / 40]


def test_batch_callbacks_still_get_host_logs():
    """A callback that asks for per-batch logs gets floats every batch (on a GPU that costs a
    synchronisation per batch, which such a callback opts into)."""
    seen = []

    class Batchy(nn.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((batch, dict(logs)))

    x, y = _data(24)
    m = _tiny_model()
    m.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[Batchy()])
    assert [b for b, _ in seen] == [0, 1, 2]
    assert all(type(v) is float for _, logs in seen for v in logs.values())
    assert set(seen[-1][1]) == {"loss", "counting_accuracy"}


def test_host_labels_checked_before_they_move(monkeypatch):
    """Out-of-range class ids are caught on the host, before a batch goes to the device."""
    x, y = _data(16)
    m = _tiny_model()
    # a fake "device": _to_device moves batches to a module other than numpy
    moved = []

    class FakeXP:
        @staticmethod
        def asarray(a):
            moved.append(a)
            return a

    monkeypatch.setattr(model_mod, "_device_module", lambda a: FakeXP)
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 3\)"):
        m._to_device(x[:8], y[:8] + 3)
    assert len(moved) == 1                  # x moved; the bad labels were stopped first
    xb, yb = m._to_device(x[:8], y[:8].astype(np.float64))
    assert yb.dtype == np.int64


# --------------------------------------------------------------------------- GPU

def needs_gpu(test):
    """Marker `cuda` (run by tests/gpu/run_on_gpu.sh), skipped without CuPy and a device."""
    skip = pytest.mark.skipif("cuda" not in backends.available(),
                              reason=f"cuda backend unavailable: "
                                     f"{backends.unavailable_reason('cuda')}")
    return pytest.mark.cuda(skip(test))


@pytest.fixture(scope="module")
def mnist_small():
    from convforge import data

    try:
        (xtr, ytr), (xte, yte) = data.load_mnist(download=False)
    except FileNotFoundError as e:
        pytest.skip(f"MNIST not found (set CONVFORGE_DATA): {e}")
    return (data.pad_images(xtr[:3000], 2), ytr[:3000]), (data.pad_images(xte[:1000], 2),
                                                          yte[:1000])


@needs_gpu
def test_lenet5_fit_on_gpu_stays_on_device(mnist_small):
    import cupy

    (xtr, ytr), (xte, yte) = mnist_small
    nn.set_seed(0)
    m = models.lenet5()
    m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    gx, gy = cupy.asarray(xtr), cupy.asarray(ytr)
    hist = m.fit(gx, gy, batch_size=32, epochs=6, verbose=0, seed=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    for p in m.params:
        assert isinstance(p.data, cupy.ndarray), f"{p.name} left the device"
        assert p.grad is None or isinstance(p.grad, cupy.ndarray), f"{p.name}.grad on host"
    for state in m.optimizer._state.values():
        for k, v in state.items():
            assert not isinstance(v, np.ndarray), f"optimiser state {k} on the host"
    probs = m.predict(cupy.asarray(xte))
    assert isinstance(probs, cupy.ndarray)
    res = m.evaluate(cupy.asarray(xte), cupy.asarray(yte))
    # the same run on the CPU backend (NumPy arrays) ends at 0.948 (loss 0.177)
    assert res["accuracy"] > 0.9, res


@needs_gpu
def test_cli_train_lenet5_on_cuda(tmp_path, mnist_small):
    from convforge import cli

    out = tmp_path / "run"
    rc = cli.main(["train", "lenet5", "--backend", "cuda", "--epochs", "6", "--batch-size", "32",
                   "--limit", "3000", "--test-limit", "1000", "--val-split", "0", "--quiet",
                   "--out", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == "cuda"
    assert metrics["test_accuracy"] > 0.9, metrics
