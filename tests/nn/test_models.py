"""convforge.models: LeNet-5 (61,706 parameters, summary), vgg_small (params, FLOPs, forward,
one training step), vgg16 (architecture and parameter count without drawing its weights)."""

from __future__ import annotations

import numpy as np
import pytest

from convforge import models, nn

pytestmark = pytest.mark.usefixtures("nn_backend")  # conftest: cpu, else reference


def test_lenet5_parameters_and_shapes():
    m = models.lenet5()
    assert m.count_params() == 61_706
    counts = {la.name: la.count_params() for la in m.layers}
    assert counts == {"rescaling": 0, "conv2d": 156, "max_pooling2d": 0, "conv2d_1": 2_416,
                      "max_pooling2d_1": 0, "flatten": 0, "dense": 48_120, "dense_1": 10_164,
                      "dense_2": 850}
    shapes = [n.output.shape for n in m._nodes]
    assert shapes == [(1, 32, 32), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (400,),
                      (120,), (84,), (10,)]
    assert m.dtype == np.float32 and m.count_flops() == 839_558
    assert models.lenet5(num_classes=26).count_params() == 61_706 - 850 + 85 * 26


def test_lenet5_summary_text():
    text = models.lenet5().summary(print_fn=None)
    lines = text.splitlines()
    assert lines[0] == 'Model: "lenet5"'
    assert lines[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    rows = [line.split() for line in lines if line.startswith(("conv2d", "dense"))]
    assert rows[0] == ["conv2d", "(Conv2D)", "(None,", "6,", "28,", "28)", "156"]
    assert rows[1] == ["conv2d_1", "(Conv2D)", "(None,", "16,", "10,", "10)", "2,416"]
    assert [r[-1] for r in rows[2:]] == ["48,120", "10,164", "850"]
    assert "Total params: 61,706" in lines and "Trainable params: 61,706" in lines
    assert "Non-trainable params: 0" in lines


def test_lenet5_runs_on_uint8_images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 1, 32, 32)).astype(np.uint8)
    m = models.lenet5()
    logits = m(x)
    assert logits.shape == (3, 10) and logits.dtype == np.float32
    ref = m(x.astype(np.float32))                     # Rescaling(1/255) is inside the model
    assert np.array_equal(logits, ref)
    assert np.array_equal(m.predict(x), logits)       # uncompiled: raw outputs
    m.compile("adam", "sparse_categorical_crossentropy")
    p = m.predict(x)                                  # compiled from logits: probabilities
    assert np.allclose(p.sum(axis=1), 1, atol=1e-6)


def test_vgg_small_budget_and_training_step():
    m = models.vgg_small()
    assert m.count_params() == 551_914
    assert sum(p.size for p in m.trainable_params) == 551_018
    assert m.count_flops() == 78_023_306
    kinds = [type(la).__name__ for la in m.layers]
    assert kinds.count("Conv2D") == 6 and kinds.count("BatchNormalization") == 6
    assert kinds.count("MaxPooling2D") == 3 and kinds[0] == "Rescaling"
    wide = models.vgg_small(widths=(64, 128, 256))
    assert wide.count_params() == 1_673_802 and wide.count_flops() == 307_038_858
    # one training step on two tiny CIFAR-shaped images (float64 keeps it exact enough)
    # (training-mode loss: with BatchNorm, evaluate() uses moving statistics that 5 steps have
    # not settled yet, so its loss is no measure of progress)
    nn.set_seed(0)
    small = models.vgg_small(num_classes=3, input_shape=(3, 8, 8), widths=(4, 4, 4),
                             dense_units=8, dtype="float64")
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (4, 3, 8, 8)).astype(np.uint8)
    y = np.array([0, 1, 2, 1])
    small.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    losses = [small.train_on_batch(x, y)["loss"] for _ in range(10)]
    assert losses[-1] < losses[0], losses
    assert small.predict(x).shape == (4, 3)


def test_vgg16_architecture_without_weights():
    m = models.vgg16()
    assert m.count_params() == 138_357_544
    assert all(p._data is None for p in m.params)       # nothing drawn: architecture only
    kinds = [type(la).__name__ for la in m.layers]
    assert kinds.count("Conv2D") == 13 and kinds.count("Dense") == 3
    assert kinds.count("MaxPooling2D") == 5
    assert m.layers[-5].output.shape == (4096,) and m.output.shape == (1000,)
    assert m.count_flops() == 30_954_085_352
    cifar = models.vgg16(num_classes=10, input_shape=(3, 32, 32))
    assert cifar.count_params() == 14_714_688 + 512 * 4096 + 4096 + 4096 * 4096 + 4096 + 40_970
    with pytest.raises(ValueError, match="H, W >= 32"):
        models.vgg16(input_shape=(3, 16, 16))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        models.lenet5(input_shape=(32, 32))


@pytest.mark.parametrize("size,pooling,shape", [
    (224, None, (512, 7, 7)), (64, None, (512, 2, 2)), (224, "avg", (512,)), (64, "max", (512,))])
def test_vgg16_without_top(size, pooling, shape):
    m = models.vgg16(input_shape=(3, size, size), include_top=False, pooling=pooling)
    assert m.output.shape == shape
    assert m.count_params() == 14_714_688                 # the 13 convolutions only
    assert [la.name for la in m.layers][-1] == {None: "block5_pool", "avg": "avg_pool",
                                                "max": "max_pool"}[pooling]
    x = np.random.default_rng(0).integers(0, 256, (1, 3, size, size)).astype(np.uint8)
    if size == 64:
        assert m(x).shape == (1,) + shape


def test_vgg16_layer_names_and_argument_errors():
    m = models.vgg16()
    names = [la.name for la in m.layers]
    assert names[:4] == ["rescaling", "normalization", "block1_conv1", "block1_conv2"]
    assert names[-6:] == ["flatten", "fc1", "dropout", "fc2", "dropout_1", "predictions"]
    with pytest.raises(ValueError, match="pooling='avg' applies only with include_top=False"):
        models.vgg16(pooling="avg")
    with pytest.raises(ValueError, match="pooling must be None, 'avg' or 'max'"):
        models.vgg16(include_top=False, pooling="mean")


def test_zoo_dtype_argument():
    m = models.lenet5(dtype="float64")
    assert m.dtype == np.float64 and m.layers[1].kernel.data.dtype == np.float64
    assert m(np.zeros((1, 1, 32, 32), np.uint8)).dtype == np.float64
    assert isinstance(m, nn.Sequential)
