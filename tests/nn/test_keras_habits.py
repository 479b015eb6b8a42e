"""Habits of Keras users that convforge meets (issue #15 item 6): channels-last shapes get an
error that says convforge is channels-first and how to transpose, data_format='channels_first'
is accepted and 'channels_last' refused with that advice, utils.to_categorical, and a model
ending in a softmax compiled with a cross-entropy by name takes probabilities (never a second
softmax; predict returns the softmax rows)."""

from __future__ import annotations

import numpy as np
import pytest

import convforge
from convforge import losses, nn

pytestmark = pytest.mark.usefixtures("nn_backend")  # conftest: cpu, else reference


def test_channels_last_shapes_get_a_hint():
    with pytest.raises(ValueError, match=r"channels-first \(NCHW\): \(28, 28, 1\) looks like "
                                         r"\(H, W, C\); use input_shape=\(1, 28, 28\)"):
        nn.Sequential([nn.Conv2D(8, 3, input_shape=(28, 28, 1))])
    model = nn.Sequential([nn.Conv2D(8, 3, input_shape=(1, 28, 28)), nn.Flatten(), nn.Dense(2)])
    with pytest.raises(ValueError, match=r"x.transpose\(0, 3, 1, 2\)"):
        model.forward(np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(ValueError) as e:        # a plain mismatch: no layout sentence
        model.forward(np.zeros((2, 1, 27, 28), np.float32))
    assert "channels-first" not in str(e.value)


def test_data_format():
    nn.Conv2D(4, 3, data_format="channels_first")
    nn.MaxPooling2D(2, data_format="channels_first")
    for make in (lambda: nn.Conv2D(4, 3, data_format="channels_last"),
                 lambda: nn.AveragePooling2D(2, data_format="channels_last")):
        with pytest.raises(ValueError, match="channels-first .*transpose"):
            make()


def test_to_categorical():
    got = convforge.utils.to_categorical(np.array([[2], [0], [1]]))
    np.testing.assert_array_equal(got, np.eye(3, dtype=np.float32)[[2, 0, 1]])
    assert got.dtype == np.float32
    assert convforge.utils.to_categorical([1], 4, dtype="float64").tolist() == [[0, 1, 0, 0]]
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 3\)"):
        convforge.utils.to_categorical([3], 3)
    with pytest.raises(TypeError, match="integer class ids"):
        convforge.utils.to_categorical([0.5])


def _softmax_model():
    nn.set_seed(1)
    return nn.Sequential([nn.Conv2D(3, 3, input_shape=(1, 6, 6)), nn.Flatten(),
                          nn.Dense(4, activation="softmax")])


def test_softmax_output_takes_probabilities(rng):
    x = rng.standard_normal((8, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 4, 8)
    model = _softmax_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    loss = model.train_on_batch(x, y)["loss"]
    assert model.loss.from_logits is False
    p = model.forward(x)
    want = -np.mean(np.log(p[np.arange(8), y]))
    assert abs(model.evaluate(x, y)["loss"] - want) < 1e-5 and np.isfinite(loss)
    pred = model.predict(x)                         # the softmax rows, not a softmax of them
    np.testing.assert_allclose(pred, model.forward(x), rtol=1e-6)
    assert pred.max() > 0.3 or pred.std() > 1e-3
    strict = _softmax_model()
    strict.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="ends with a softmax.*from_logits=False"):
        strict.train_on_batch(x, y)
