"""Augmentation: determinism, shapes/dtypes, hand-checked geometry per fill mode, fusion."""

import numpy as np
import pytest

from convforge.data import (
    FILL_MODES,
    Augment,
    Cutout,
    GaussianNoise,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomShift,
    RandomZoom,
    affine_resample,
)

RNG_SEED = 1234   # the seed of the `rng` fixture (conftest) in this module


def batch(rng, n=6, c=3, h=8, w=8, dtype=np.float32):
    """Integer-valued float batch (exact comparisons), (N, C, H, W)."""
    return rng.integers(0, 256, size=(n, c, h, w)).astype(dtype)


def assert_equal(got, want, what=""):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        i = tuple(bad[0])
        raise AssertionError(f"{what}: {len(bad)} mismatches, first at {i}: "
                             f"got {got[i]}, want {want[i]}")


def translation(n, dy, dx):
    """(N, 3, 3) inverse maps that move content by (+dy, +dx)."""
    m = np.tile(np.eye(3), (n, 1, 1))
    m[:, 0, 2] = -dy
    m[:, 1, 2] = -dx
    return m


ALL_STEPS = [
    RandomFlip("horizontal"), RandomFlip("vertical"), RandomFlip("horizontal_and_vertical"),
    RandomShift(0.2, fill_mode="reflect"), RandomShift(0.2, interpolation="bilinear"),
    RandomRotation(20, fill_mode="nearest"), RandomRotation(20, interpolation="bilinear"),
    RandomZoom(0.3, fill_mode="wrap"), RandomCrop(2), GaussianNoise(5.0), Cutout(3),
]


# --------------------------------------------------------------------------- general contract

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("step", ALL_STEPS, ids=lambda s: repr(s)[:40])
def test_step_preserves_shape_dtype_and_input(step, dtype, rng):
    x = batch(rng, dtype=dtype)
    x_before = x.copy()
    y = step(x, np.random.default_rng(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert not np.shares_memory(x, y), "output must be a new array"
    assert_equal(x, x_before, "input modified")


@pytest.mark.parametrize("step", ALL_STEPS, ids=lambda s: repr(s)[:40])
def test_step_is_deterministic_for_a_seed(step, rng):
    x = batch(rng, n=16)
    a = step(x, np.random.default_rng(7))
    b = step(x, np.random.default_rng(7))
    assert_equal(a, b, "same seed")
    c = step(x, np.random.default_rng(8))
    assert not np.array_equal(a, c), "a different seed should give a different batch"


def test_rejects_integer_batches_and_bad_rng(rng):
    with pytest.raises(TypeError, match="float32 or float64"):
        RandomFlip()(batch(rng).astype(np.uint8), rng)
    with pytest.raises(ValueError, match="4-D"):
        RandomFlip()(np.zeros((3, 8, 8), np.float32), rng)
    with pytest.raises(TypeError, match="Generator"):
        RandomFlip()(batch(rng), 0)


# --------------------------------------------------------------------------- flips

@pytest.mark.parametrize("mode", RandomFlip.MODES)
def test_flip_twice_is_identity(mode, rng):
    x = batch(rng)
    flip = RandomFlip(mode, p=1.0)
    assert_equal(flip(flip(x, rng), rng), x, mode)


def test_flip_directions(rng):
    x = batch(rng)
    assert_equal(RandomFlip("horizontal", p=1.0)(x, rng), x[:, :, :, ::-1], "horizontal")
    assert_equal(RandomFlip("vertical", p=1.0)(x, rng), x[:, :, ::-1, :], "vertical")
    assert_equal(RandomFlip("horizontal", p=0.0)(x, rng), x, "p=0")


def test_flip_is_per_image(rng):
    x = batch(rng, n=64)
    y = RandomFlip("horizontal", p=0.5)(x, np.random.default_rng(0))
    flipped = [np.array_equal(y[i], x[i, :, :, ::-1]) for i in range(64)]
    kept = [np.array_equal(y[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54, sum(flipped)


# --------------------------------------------------------------------------- affine geometry

# row abcd = 1 2 3 4 moved right by 2 pixels, for each fill mode (cval 9)
SHIFT_BY_2 = {
    "constant": [9, 9, 1, 2],   # kkkk|abcd
    "nearest": [1, 1, 1, 2],    # aaaa|abcd
    "reflect": [2, 1, 1, 2],    # dcba|abcd (edge repeated)
    "wrap": [3, 4, 1, 2],       # abcd|abcd
}


@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_shift_fill_modes_hand_checked(fill_mode):
    x = np.array([1, 2, 3, 4], np.float32).reshape(1, 1, 1, 4)
    want = np.array(SHIFT_BY_2[fill_mode], np.float32).reshape(1, 1, 1, 4)
    got = affine_resample(x, translation(1, 0, 2), fill_mode, cval=9.0)
    assert_equal(got, want, fill_mode)
    # the same through RandomShift: width range fixed at 2/4 = 0.5 of the width
    step = RandomShift(height=(0, 0), width=(0.5, 0.5), fill_mode=fill_mode, cval=9.0)
    assert_equal(step(x, np.random.default_rng(0)), want, f"RandomShift {fill_mode}")


@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_shift_left_and_up_hand_checked(fill_mode):
    x = np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]
    got = affine_resample(x, translation(1, -1, -1), fill_mode, cval=0.0)[0, 0]
    want = {
        "constant": [[5, 6, 0], [8, 9, 0], [0, 0, 0]],
        "nearest": [[5, 6, 6], [8, 9, 9], [8, 9, 9]],
        "reflect": [[5, 6, 6], [8, 9, 9], [8, 9, 9]],
        "wrap": [[5, 6, 4], [8, 9, 7], [2, 3, 1]],
    }[fill_mode]
    assert_equal(got, np.array(want, np.float64), fill_mode)


def test_bilinear_half_pixel_shift_hand_checked():
    x = np.array([0, 2, 4, 6], np.float32).reshape(1, 1, 1, 4)
    got = affine_resample(x, translation(1, 0, 0.5), "nearest", interpolation="bilinear")
    assert_equal(got, np.array([0, 1, 3, 5], np.float32).reshape(1, 1, 1, 4), "bilinear")


def test_bilinear_equals_nearest_on_whole_pixel_shifts(rng):
    x = batch(rng, n=4)
    m = translation(4, np.array([1, -2, 0, 3]), np.array([0, 1, -3, 2]))
    for fill in FILL_MODES:
        a = affine_resample(x, m, fill, interpolation="nearest")
        b = affine_resample(x, m, fill, interpolation="bilinear")
        assert_equal(a, b, fill)


@pytest.mark.parametrize("degrees,k", [(90, 1), (-90, -1), (180, 2)])
def test_rotation_by_right_angles_matches_rot90(degrees, k, rng):
    x = batch(rng, h=7, w=7)
    got = RandomRotation((degrees, degrees))(x, rng)
    assert_equal(got, np.rot90(x, k, axes=(2, 3)), f"{degrees} degrees")


def test_zoom_in_by_two_hand_checked():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    got = RandomZoom((2.0, 2.0))(x, np.random.default_rng(0))
    # centre 1.5: output i samples (i - 1.5) / 2 + 1.5 = 0.75, 1.25, 1.75, 2.25 -> rows 1 1 2 2
    idx = np.array([1, 1, 2, 2])
    assert_equal(got, x[:, :, idx][:, :, :, idx], "zoom x2")


def test_shift_is_per_image_and_within_range(rng):
    x = np.zeros((50, 1, 9, 9), np.float32)
    x[:, :, 4, 4] = 1.0                                        # one dot in the centre
    y = RandomShift(height=2 / 9, width=2 / 9)(x, np.random.default_rng(0))
    pos = [tuple(np.argwhere(y[i, 0] == 1.0)[0]) for i in range(50)]
    assert all(2 <= r <= 6 and 2 <= c <= 6 for r, c in pos), pos
    assert len(set(pos)) > 5, "each image should get its own shift"


def test_fused_geometry_equals_single_transform(rng):
    x = batch(rng, h=9, w=9)
    # two 45-degree turns fused into one exact 90-degree resampling
    two = Augment(RandomRotation((45, 45)), RandomRotation((45, 45)))
    assert_equal(two(x, rng), np.rot90(x, 1, axes=(2, 3)), "45 + 45")
    # shifts of 2 and 1 pixels with wrap: one roll by 3
    shifts = Augment(RandomShift((0, 0), (2 / 9, 2 / 9), fill_mode="wrap"),
                     RandomShift((0, 0), (1 / 9, 1 / 9), fill_mode="wrap"))
    assert_equal(shifts(x, rng), np.roll(x, 3, axis=3), "shift 2 + 1")


def test_affine_resample_checks_matrix_shape(rng):
    with pytest.raises(ValueError, match="matrices"):
        affine_resample(batch(rng, n=2), np.zeros((3, 2, 3)))
    with pytest.raises(ValueError, match="fill_mode"):
        affine_resample(batch(rng, n=1), translation(1, 0, 0), "mirror")


# --------------------------------------------------------------------------- crop, noise, cutout

def test_crop_with_padding_is_a_window_of_the_padded_image(rng):
    x = batch(rng, n=40, c=2, h=6, w=6) + 1.0                  # no zeros inside the image
    p = 2
    y = RandomCrop(p)(x, np.random.default_rng(0))
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    offsets = set()
    for i in range(len(x)):
        found = [(r, c) for r in range(2 * p + 1) for c in range(2 * p + 1)
                 if np.array_equal(y[i], padded[i, :, r:r + 6, c:c + 6])]
        assert found, f"image {i} is not a 6x6 window of the zero-padded image"
        offsets.add(found[0])
    assert len(offsets) > 5, offsets


def test_crop_zero_padding_is_identity(rng):
    x = batch(rng)
    assert_equal(RandomCrop(0)(x, rng), x, "crop=0")


def test_cutout_zeroes_one_square(rng):
    x = batch(rng, n=20, c=3, h=10, w=10) + 1.0                # strictly positive
    size = 4
    y = Cutout(size)(x, np.random.default_rng(0))
    for i in range(len(x)):
        zero = y[i] == 0                                       # (C, H, W)
        assert (zero == zero[0]).all(), "same square in every channel"
        rows, cols = np.nonzero(zero[0])
        assert zero[0].sum() == size * size
        assert rows.max() - rows.min() == size - 1 and cols.max() - cols.min() == size - 1
        assert_equal(y[i][~zero], x[i][~zero], "outside the square")


def test_gaussian_noise_statistics_and_dtype(rng):
    x = np.full((8, 3, 16, 16), 100.0, np.float32)
    y = GaussianNoise(std=4.0)(x, np.random.default_rng(0))
    d = (y - x).astype(np.float64)
    assert y.dtype == np.float32
    assert abs(d.mean()) < 0.2 and abs(d.std() - 4.0) < 0.2, (d.mean(), d.std())
    clipped = GaussianNoise(std=50.0, clip=(0.0, 120.0))(x, np.random.default_rng(0))
    assert clipped.min() >= 0.0 and clipped.max() <= 120.0


# --------------------------------------------------------------------------- pipeline and spec

def test_pipeline_is_deterministic_and_leaves_input(rng):
    aug = Augment.from_spec("flip,shift=0.1,rotate=10,zoom=0.1,crop=2,noise=2,cutout=3")
    x = batch(rng, n=16)
    x_before = x.copy()
    a = aug(x, np.random.default_rng(5))
    b = aug(x, np.random.default_rng(5))
    assert_equal(a, b, "same seed")
    assert_equal(x, x_before, "input modified")
    assert a.dtype == x.dtype and a.shape == x.shape


def test_empty_pipeline_returns_a_copy(rng):
    x = batch(rng)
    y = Augment()(x, rng)
    assert_equal(y, x)
    assert not np.shares_memory(x, y)
    assert len(Augment.from_spec("none")) == 0


def test_from_spec_builds_steps_and_round_trips():
    spec = ("flip=hv,shift=0.1:0.2,fill=reflect,interp=bilinear,rotate=15,zoom=0.2,"
            "fill=constant,crop=4,noise=3,cutout=8")
    aug = Augment.from_spec(spec)
    kinds = [type(s).__name__ for s in aug.steps]
    assert kinds == ["RandomFlip", "RandomShift", "RandomRotation", "RandomZoom", "RandomCrop",
                     "GaussianNoise", "Cutout"]
    assert aug.steps[0].mode == "horizontal_and_vertical"
    assert aug.steps[1].height == (-0.1, 0.1) and aug.steps[1].width == (-0.2, 0.2)
    assert aug.steps[1].fill_mode == "constant"
    assert aug.steps[2].fill_mode == "reflect" and aug.steps[2].interpolation == "bilinear"
    assert aug.steps[4].fill_mode == "constant"
    assert Augment.from_spec(aug.spec()).spec() == aug.spec()
    assert Augment.from_spec("flip,shift=0.1,crop=4").spec() == "flip=h,shift=0.1,crop=4"


def test_from_spec_rejects_options_that_apply_to_nothing():
    """fill/cval/interp apply to the geometric items after them: a trailing one (Keras users
    write it last) is an error rather than silently ignored."""
    with pytest.raises(ValueError, match="'fill=reflect' applies to the geometric items after"):
        Augment.from_spec("shift=0.1,flip,fill=reflect")
    assert Augment.from_spec("fill=reflect,shift=0.1,flip").steps[0].fill_mode == "reflect"


@pytest.mark.parametrize("bad", ["blur=3", "flip=x", "shift=", "fill=mirror", "crop=1.5",
                                 "rotate=abc", "interp=cubic"])
def test_from_spec_rejects_bad_items(bad):
    with pytest.raises(ValueError, match="augment spec"):
        Augment.from_spec(bad)


def test_augment_rejects_non_steps():
    with pytest.raises(TypeError, match="steps"):
        Augment(lambda x, rng: x)
