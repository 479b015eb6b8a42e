"""Pretrained weights (convforge.io, models.vgg16(weights=...)): a PyTorch VGG-16 with
torchvision's module names and random weights, its state dict saved as .safetensors, .npz and
.pth, loaded into convforge's vgg16 and compared logit for logit with torch's eval() output;
mismatch errors (all or nothing); file safety. Keras files: tests/nn/test_pretrained_keras.py.

torchvision itself is not needed: TorchVGG below registers the same modules under the same
names (features.0 ... features.28, avgpool, classifier.0/3/6), so its state dict keys are
torchvision's. The full-size (224x224, 138M parameters) comparison runs for .pth by default
(about 10 s); CONVFORGE_RUN_SLOW=1 adds .safetensors and .npz. The same checks at 32x32 with a
1x1 average pool run for every format.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from convforge import io, models

torch = pytest.importorskip("torch")

CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
SLOW = pytest.mark.skipif(not os.environ.get("CONVFORGE_RUN_SLOW"),
                          reason="full-size VGG-16 in this format; set CONVFORGE_RUN_SLOW=1")


class TorchVGG(torch.nn.Module):
    """torchvision.models.vgg16's modules and names; `pool` is the AdaptiveAvgPool2d size (7 in
    torchvision, which at 224x224 input is the identity)."""

    def __init__(self, num_classes=1000, pool=7, hidden=4096):
        super().__init__()
        layers, c = [], 3
        for v in CFG_D:
            if v == "M":
                layers.append(torch.nn.MaxPool2d(2, 2))
            else:
                layers += [torch.nn.Conv2d(c, v, 3, padding=1), torch.nn.ReLU(inplace=True)]
                c = v
        self.features = torch.nn.Sequential(*layers)
        self.avgpool = torch.nn.AdaptiveAvgPool2d((pool, pool))
        self.classifier = torch.nn.Sequential(
            torch.nn.Linear(512 * pool * pool, hidden), torch.nn.ReLU(True), torch.nn.Dropout(),
            torch.nn.Linear(hidden, hidden), torch.nn.ReLU(True), torch.nn.Dropout(),
            torch.nn.Linear(hidden, num_classes))
        # torchvision's initialisation, with random biases so that they are checked too
        for m in self.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                torch.nn.init.uniform_(m.bias, -0.1, 0.1)
            elif isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, 0, 0.01)
                torch.nn.init.uniform_(m.bias, -0.1, 0.1)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def torch_vgg(seed=0, **kwargs) -> TorchVGG:
    torch.manual_seed(seed)
    with torch.no_grad():
        return TorchVGG(**kwargs).eval()


def state_dict(model) -> dict:
    return {k: v.numpy() for k, v in model.state_dict().items()}


def save(sd: dict, path, fmt: str) -> str:
    path = str(path) + fmt
    if fmt == ".safetensors":
        io.write_safetensors(path, sd)
    elif fmt == ".npz":
        np.savez(path, **sd)
    else:
        torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, path)
    return path


def torch_out(model, x, features_only=False) -> np.ndarray:
    with torch.no_grad():
        t = torch.from_numpy(x)
        return (model.features(t) if features_only else model(t)).numpy()


def assert_rel(actual, expected, rel=1e-4, what=""):
    """|actual - expected| <= rel * max|expected| everywhere (logits near 0 make a pure
    element-wise relative test meaningless in float32)."""
    scale = float(np.abs(expected).max())
    err = float(np.abs(actual - expected).max())
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    print(f"{what}: max error / max |expected| = {err / scale:.2e}")
    assert scale > 0 and err <= rel * scale, f"{what}: max error {err:.3g}, scale {scale:.3g}"


def images(n, size, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


# --------------------------------------------------------------------------- logits vs torch

@pytest.fixture(scope="module")
def small_torch():
    """Full-width VGG-16 for 32x32 input: 1x1 features, AdaptiveAvgPool2d((1, 1)), 10 classes."""
    return torch_vgg(pool=1, num_classes=10)


@pytest.mark.parametrize("fmt", [".safetensors", ".npz", ".pth"])
def test_vgg16_logits_match_torch_at_32px(small_torch, tmp_path, fmt):
    path = save(state_dict(small_torch), tmp_path / "vgg", fmt)
    m = models.vgg16(num_classes=10, input_shape=(3, 32, 32), preprocess=None, weights=path)
    x = images(2, 32)
    assert_rel(m(x), torch_out(small_torch, x), what=fmt)


@pytest.mark.parametrize("fmt", [
    ".pth", pytest.param(".safetensors", marks=[pytest.mark.slow, SLOW]),
    pytest.param(".npz", marks=[pytest.mark.slow, SLOW])])
def test_vgg16_logits_match_torch_full_size(tmp_path, fmt):
    """The issue's check: torchvision-named VGG-16 (random weights, eval()) at 224x224."""
    tm = torch_vgg()
    path = save(state_dict(tm), tmp_path / "vgg16", fmt)
    x = images(2, 224)
    want = torch_out(tm, x)
    del tm
    m = models.vgg16(weights=path, preprocess=None)
    assert m.count_params() == 138_357_544
    assert_rel(m(x), want, what=fmt)


@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_vgg16_without_top_from_a_full_state_dict(small_torch, pooling):
    """include_top=False skips the classifier; the state dict may be given as a mapping of
    tensors; pooling as in Keras."""
    sd = small_torch.state_dict()                             # torch tensors
    m = models.vgg16(input_shape=(3, 64, 64), include_top=False, pooling=pooling,
                     preprocess=None, weights=sd)
    x = images(2, 64)
    feats = torch_out(small_torch, x, features_only=True)     # (2, 512, 2, 2)
    want = {None: feats, "avg": feats.mean(axis=(2, 3)), "max": feats.max(axis=(2, 3))}[pooling]
    assert_rel(m(x), want, what=str(pooling))


def test_vgg16_preprocess_torch_then_weights(small_torch):
    """preprocess="torch" on 0..255 pixels == torch on (x/255 - mean)/std."""
    m = models.vgg16(num_classes=10, input_shape=(3, 32, 32), preprocess="torch",
                     weights=state_dict(small_torch))
    raw = np.random.default_rng(3).integers(0, 256, (2, 3, 32, 32)).astype(np.uint8)
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    x = ((raw / 255.0 - mean) / std).astype(np.float32)
    assert_rel(m(raw), torch_out(small_torch, x))


def test_text_sorted_safetensors_and_explicit_mapping(small_torch, tmp_path):
    """The safetensors package writes names sorted as text (classifier before features,
    features.10 before features.2): modules pair by kind, numbers by value."""
    sd = state_dict(small_torch)
    path = str(tmp_path / "sorted.safetensors")
    io.write_safetensors(path, {k: sd[k] for k in sorted(sd)})
    assert list(io.read_safetensors(path))[:3] == ["classifier.0.bias", "classifier.0.weight",
                                                   "classifier.3.bias"]
    x = images(1, 32)
    m = models.vgg16(num_classes=10, input_shape=(3, 32, 32), preprocess=None, weights=path)
    assert_rel(m(x), torch_out(small_torch, x))
    # the same through an explicit {torch module: convforge layer} mapping
    convs = [la.name for la in m.layers if "_conv" in la.name]
    mapping = {f"features.{k}": name for k, name in zip(_conv_indices(), convs)}
    mapping.update({"classifier.0": "fc1", "classifier.3": "fc2", "classifier.6": "predictions"})
    m2 = models.vgg16(num_classes=10, input_shape=(3, 32, 32), preprocess=None)
    io.load_torchvision(m2, path, mapping=mapping)
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), m2.get_weights()))
    assert _conv_indices()[:3] == [0, 2, 5] and _conv_indices()[-1] == 28


def _conv_indices() -> list:
    """torchvision's features.N index of each conv: conv, ReLU pairs and MaxPool modules."""
    out, i = [], 0
    for v in CFG_D:
        if v == "M":
            i += 1
        else:
            out.append(i)
            i += 2
    return out


# --------------------------------------------------------------------------- mismatches

@pytest.fixture()
def features_model():
    """convforge VGG-16 without top at 32x32: parameters not drawn yet (p._data is None)."""
    return models.vgg16(input_shape=(3, 32, 32), include_top=False, preprocess=None)


def untouched(model) -> bool:
    return all(p._data is None for p in model.params)


def features_sd(small_torch) -> dict:
    return {k: v for k, v in state_dict(small_torch).items() if k.startswith("features.")}


def test_mismatch_missing_key(small_torch, features_model):
    sd = features_sd(small_torch)
    del sd["features.28.bias"]
    with pytest.raises(ValueError, match=r"(?s)nothing was loaded.*missing:\n    "
                                         r"block5_conv3/bias \(512,\) \(features.28 has none\)"):
        io.load_torchvision(features_model, sd)
    assert untouched(features_model)


def test_mismatch_unexpected_keys_and_classifier(small_torch, features_model):
    sd = features_sd(small_torch)
    sd["extra.scale"] = np.ones(3, np.float32)
    sd["features.0.weight_g"] = np.ones((64, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"(?s)unexpected:\n    extra.scale \(3,\)\n    "
                                         r"features.0.weight_g \(64, 1, 1, 1\)$"):
        io.load_torchvision(features_model, sd)
    full = state_dict(small_torch)
    with pytest.raises(ValueError, match=r"(?s)unexpected:.*classifier.0.weight \(4096, 512\)"
                                         r".*the model has 0 Dense layers, the source 3"):
        io.load_torchvision(features_model, full)
    assert untouched(features_model)
    io.load_torchvision(features_model, full, ignore=["classifier"])     # what vgg16 does
    assert not untouched(features_model)


def test_mismatch_shapes_and_dtypes(small_torch, features_model):
    sd = features_sd(small_torch)
    sd["features.0.weight"] = np.zeros((64, 4, 3, 3), np.float32)        # 4 input channels
    sd["features.2.bias"] = np.zeros(64, np.int64)
    with pytest.raises(ValueError) as info:
        io.load_torchvision(features_model, sd)
    msg = str(info.value)
    assert "features.0.weight has shape (64, 4, 3, 3); block1_conv1/kernel (64, 3, 3, 3) " \
           "needs (64, 3, 3, 3) there" in msg
    assert "features.2.bias has dtype int64; weights must be floating-point" in msg
    assert untouched(features_model)


def test_mismatch_classifier_shapes_name_the_torch_layout(small_torch):
    """A Linear weight is (out, in): the message gives the shape the file must hold."""
    m = models.vgg16(num_classes=7, input_shape=(3, 32, 32), preprocess=None)
    with pytest.raises(ValueError, match=r"classifier.6.weight has shape \(10, 4096\); "
                                         r"predictions/kernel \(4096, 7\) needs \(7, 4096\)"):
        io.load_torchvision(m, state_dict(small_torch))
    assert untouched(m)


def test_torchvision_at_other_sizes_needs_no_top(tmp_path):
    """torchvision's 7x7 average pool before the classifier is the identity only at 224."""
    sd = {k: np.zeros(v.shape, np.float32) for k, v in
          torch_vgg(hidden=8, num_classes=3).state_dict().items()}
    with pytest.raises(ValueError, match=r"classifier.0.weight has shape \(8, 25088\)"):
        models.vgg16(num_classes=3, input_shape=(3, 64, 64), preprocess=None, weights=sd)


def test_source_errors(tmp_path, features_model):
    with pytest.raises(ValueError, match="must end in .safetensors, .npz, .pth or .pt"):
        io.load_torchvision(features_model, str(tmp_path / "w.bin"))
    with pytest.raises(TypeError, match="mapping of names to arrays or a path"):
        io.load_torchvision(features_model, 3)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        io.load_torchvision(features_model, bad)
    with pytest.raises(TypeError, match="weights must be None, a path or a state dict"):
        models.vgg16(weights=3)
    assert untouched(features_model)


# --------------------------------------------------------------------------- file safety

class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pth_goes_through_weights_only_torch_load(tmp_path, features_model):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _Evil(str(marker))}, path)
    with pytest.raises(ValueError, match="not a plain state dict"):
        io.load_torchvision(features_model, path)
    assert not marker.exists()
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        io.load_torchvision(features_model, tmp_path / "list.pth")


def test_pth_without_torch_is_a_clear_error(tmp_path, features_model, monkeypatch):
    path = tmp_path / "w.pth"
    torch.save({"a": torch.zeros(1)}, path)
    monkeypatch.setitem(sys.modules, "torch", None)          # import torch now fails
    with pytest.raises(ImportError, match="convforge does not unpickle files itself"):
        io.load_torchvision(features_model, path)


def test_npz_object_arrays_are_refused_unread(tmp_path, features_model):
    path = tmp_path / "obj.npz"
    weight = np.full((64, 3, 3, 3), None, dtype=object)
    weight[0, 0, 0, 0] = {"a": 1}                           # np.savez pickles object arrays
    np.savez(path, **{"features.0.weight": weight})
    with pytest.raises(ValueError, match=r"features.0.weight has dtype object"):
        io.load_torchvision(features_model, path)
    assert untouched(features_model)


def test_nested_model_takes_its_layers_in_place(small_torch):
    """A convforge base model inside an outer Sequential: its layers pair in their place."""
    from convforge import nn

    base = models.vgg16(input_shape=(3, 32, 32), include_top=False, preprocess=None)
    m = nn.Sequential([base, nn.Flatten(), nn.Dense(4096, activation="relu"), nn.Dropout(0.5),
                       nn.Dense(4096, activation="relu"), nn.Dropout(0.5), nn.Dense(10)])
    io.load_torchvision(m, state_dict(small_torch))
    x = images(1, 32)
    assert_rel(m(x), torch_out(small_torch, x), what="nested")
