"""Data augmentation on NCHW float batches, vectorised over the batch and seeded.

Every step is callable `step(x, rng) -> new array`: x a float32/float64 NumPy or CuPy array
(N, C, H, W), rng a numpy.random.Generator. The input is never modified. Random parameters
(one small draw per image) always come from the NumPy Generator, so a given seed gives the same
augmentation on NumPy and on CuPy arrays.

Geometric steps (shift, rotation, zoom) are one affine *inverse map* per image: output pixel
(row, col) samples the input at M @ (row, col, 1), with nearest or bilinear sampling. Pixels
are centred on integer coordinates; rotation and zoom act about the image centre
((H-1)/2, (W-1)/2). Samples that fall outside the image are filled by `fill_mode`
(Keras' names, shown for a row `abcd`):
    constant  kkkk|abcd|kkkk   (k = cval)
    nearest   aaaa|abcd|dddd
    reflect   dcba|abcd|dcba   (edge pixel repeated, period 2W)
    wrap      abcd|abcd|abcd
`Augment` fuses consecutive geometric steps that share fill mode, cval and interpolation into a
single resampling (one interpolation, not one per step).

Values are in the units of the batch: the CLI and model.fit feed raw 0..255 pixels (the model
zoo rescales inside the model), so GaussianNoise(std=8.0) means 8 grey levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

from .._array import array_module, int_at_least

__all__ = [
    "FILL_MODES",
    "Augment",
    "Cutout",
    "GaussianNoise",
    "RandomCrop",
    "RandomFlip",
    "RandomRotation",
    "RandomShift",
    "RandomZoom",
    "Step",
    "affine_resample",
]

FILL_MODES = ("constant", "nearest", "reflect", "wrap")
INTERPOLATIONS = ("nearest", "bilinear")
Range = Union[float, tuple[float, float]]


def _check_batch(x, name: str = "x") -> None:
    if not hasattr(x, "ndim") or not hasattr(x, "dtype"):
        raise TypeError(f"{name} must be a NumPy or CuPy array, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be a 4-D NCHW batch, got shape {tuple(x.shape)}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64 (cast explicitly before augmenting), "
                        f"got {x.dtype} with shape {tuple(x.shape)}")


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _check_fill(fill_mode: str, interpolation: str) -> None:
    if fill_mode not in FILL_MODES:
        raise ValueError(f"fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")


def _fmt(v: float) -> str:
    return f"{v:g}"


# --------------------------------------------------------------------------- affine resampling

def _fold(i, n: int, fill_mode: str, xp):
    """Integer coordinates i (any shape) -> (indices in [0, n), valid mask or None)."""
    if fill_mode == "nearest":
        return xp.clip(i, 0, n - 1), None
    if fill_mode == "wrap":
        return i % n, None
    if fill_mode == "reflect":
        m = i % (2 * n)
        return xp.where(m >= n, 2 * n - 1 - m, m), None
    valid = (i >= 0) & (i < n)  # constant
    return xp.clip(i, 0, n - 1), valid


def _gather(flat, ri, ci, H: int, W: int, fill_mode: str, cval: float, xp):
    """flat (N, C, H*W); ri, ci (N, P) integer coordinates -> values (N, C, P)."""
    r, rvalid = _fold(ri, H, fill_mode, xp)
    c, cvalid = _fold(ci, W, fill_mode, xp)
    idx = (r * W + c)[:, None, :]                            # (N, 1, P)
    vals = xp.take_along_axis(flat, idx, axis=2)             # (N, C, P)
    if rvalid is not None:
        valid = (rvalid & cvalid)[:, None, :]                # (N, 1, P)
        vals = xp.where(valid, vals, flat.dtype.type(cval))
    return vals


def affine_resample(x, matrices, fill_mode: str = "constant", cval: float = 0.0,
                    interpolation: str = "nearest"):
    """Resamples each image through its own inverse map.

    x (N, C, H, W) float; matrices (N, 3, 3) or (N, 2, 3): output pixel (row, col) reads the
    input at `matrices[n] @ (row, col, 1)` (pixel units). Returns a new (N, C, H, W) array.
    """
    _check_batch(x)
    _check_fill(fill_mode, interpolation)
    m = np.asarray(matrices, dtype=np.float64)
    N, C, H, W = x.shape
    if m.ndim != 3 or m.shape[0] != N or m.shape[1:] not in ((2, 3), (3, 3)):
        raise ValueError(f"matrices must have shape (N, 2, 3) or (N, 3, 3) with N={N}, "
                         f"got {m.shape}")
    xp = array_module(x)
    rows, cols = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64),
                             indexing="ij")
    grid = xp.asarray(np.stack([rows.ravel(), cols.ravel(), np.ones(H * W)]))  # (3, P)
    src = xp.asarray(m[:, :2, :]) @ grid                     # (N, 2, P): input (row, col)
    flat = x.reshape(N, C, H * W)
    if interpolation == "nearest":
        ri = xp.floor(src[:, 0] + 0.5).astype(np.int64)     # round half up, (N, P)
        ci = xp.floor(src[:, 1] + 0.5).astype(np.int64)
        out = _gather(flat, ri, ci, H, W, fill_mode, cval, xp)
    else:
        r0 = xp.floor(src[:, 0])
        c0 = xp.floor(src[:, 1])
        fr = (src[:, 0] - r0).astype(x.dtype)[:, None, :]    # (N, 1, P) weights of row r0+1
        fc = (src[:, 1] - c0).astype(x.dtype)[:, None, :]
        r0 = r0.astype(np.int64)
        c0 = c0.astype(np.int64)
        one = x.dtype.type(1)
        out = ((one - fr) * (one - fc) * _gather(flat, r0, c0, H, W, fill_mode, cval, xp)
               + (one - fr) * fc * _gather(flat, r0, c0 + 1, H, W, fill_mode, cval, xp)
               + fr * (one - fc) * _gather(flat, r0 + 1, c0, H, W, fill_mode, cval, xp)
               + fr * fc * _gather(flat, r0 + 1, c0 + 1, H, W, fill_mode, cval, xp))
    return out.reshape(N, C, H, W).astype(x.dtype, copy=False)


def _about_centre(a: np.ndarray, H: int, W: int) -> np.ndarray:
    """(N, 2, 2) linear maps acting on offsets from the centre -> (N, 3, 3) inverse maps."""
    ctr = np.array([(H - 1) / 2.0, (W - 1) / 2.0])
    m = np.zeros((a.shape[0], 3, 3))
    m[:, :2, :2] = a
    m[:, :2, 2] = ctr - a @ ctr                              # src = a @ (p - ctr) + ctr
    m[:, 2, 2] = 1.0
    return m


# --------------------------------------------------------------------------- steps

class Step:
    """One augmentation: `step(x, rng) -> new array` on an NCHW float batch."""

    def __call__(self, x, rng: np.random.Generator):
        _check_batch(x)
        return self._apply(x, _check_rng(rng))

    def _apply(self, x, rng: np.random.Generator):
        raise NotImplementedError

    def spec(self) -> str:
        """This step in Augment.from_spec syntax (symmetric ranges; fill options not included)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class _AffineStep(Step):
    """A geometric step: draws one (N, 3, 3) inverse map per batch; Augment may fuse these."""

    def __init__(self, fill_mode: str, cval: float, interpolation: str):
        _check_fill(fill_mode, interpolation)
        self.fill_mode = fill_mode
        self.cval = float(cval)
        self.interpolation = interpolation

    def sample(self, n: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def sampling(self) -> tuple[str, float, str]:
        return self.fill_mode, self.cval, self.interpolation

    def _apply(self, x, rng):
        N, _, H, W = x.shape
        return affine_resample(x, self.sample(N, H, W, rng), *self.sampling())


def _range(value: Range, name: str, centre: float = 0.0) -> tuple[float, float]:
    """f -> (centre - f, centre + f); (lo, hi) kept; checks lo <= hi."""
    if isinstance(value, (tuple, list)):
        lo, hi = (float(v) for v in value)
    else:
        f = float(value)
        if f < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
        lo, hi = centre - f, centre + f
    if not lo <= hi:
        raise ValueError(f"{name} range must have low <= high, got ({lo}, {hi})")
    return lo, hi


class RandomFlip(Step):
    """Mirrors each image with probability p: 'horizontal' (W axis), 'vertical' (H) or both."""

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode: str = "horizontal", p: float = 0.5):
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.mode = mode
        self.p = float(p)

    def _apply(self, x, rng):
        xp = array_module(x)
        out = x
        for axis, active in ((3, self.mode != "vertical"), (2, self.mode != "horizontal")):
            if active:
                flip = xp.asarray(rng.random(x.shape[0]) < self.p)[:, None, None, None]
                out = xp.where(flip, xp.flip(out, axis=axis), out)  # new array, (N, C, H, W)
        return out if out is not x else x.copy()

    def spec(self) -> str:
        code = {"horizontal": "h", "vertical": "v", "horizontal_and_vertical": "hv"}[self.mode]
        return f"flip={code}" + ("" if self.p == 0.5 else f":{_fmt(self.p)}")


class RandomShift(_AffineStep):
    """Translates by up to `height`*H rows and `width`*W columns (fractions; uniform draws)."""

    def __init__(self, height: Range = 0.1, width: Range | None = None,
                 fill_mode: str = "constant", cval: float = 0.0, interpolation: str = "nearest"):
        super().__init__(fill_mode, cval, interpolation)
        self.height = _range(height, "height")
        self.width = _range(height if width is None else width, "width")

    def sample(self, n, h, w, rng):
        dy = rng.uniform(*self.height, size=n) * h
        dx = rng.uniform(*self.width, size=n) * w
        m = np.tile(np.eye(3), (n, 1, 1))
        m[:, 0, 2] = -dy                                     # content moves by +dy: src = p - d
        m[:, 1, 2] = -dx
        return m

    def spec(self) -> str:
        h, w = self.height[1], self.width[1]
        return f"shift={_fmt(h)}" + ("" if h == w else f":{_fmt(w)}")


class RandomRotation(_AffineStep):
    """Rotates about the centre by an angle drawn from [-degrees, degrees] (or (lo, hi)).

    Positive angles turn the content counter-clockwise (as numpy.rot90 does for 90).
    """

    def __init__(self, degrees: Range = 10.0, fill_mode: str = "constant", cval: float = 0.0,
                 interpolation: str = "nearest"):
        super().__init__(fill_mode, cval, interpolation)
        self.degrees = _range(degrees, "degrees")

    def sample(self, n, h, w, rng):
        a = np.deg2rad(rng.uniform(*self.degrees, size=n))
        cos, sin = np.cos(a), np.sin(a)
        lin = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], 1)  # (N, 2, 2)
        return _about_centre(lin, h, w)

    def spec(self) -> str:
        return f"rotate={_fmt(self.degrees[1])}"


class RandomZoom(_AffineStep):
    """Scales about the centre by a magnification drawn from [1 - z, 1 + z] (or (lo, hi)).

    Magnification > 1 zooms in (content grows), < 1 zooms out (borders get filled).
    """

    def __init__(self, zoom: Range = 0.1, fill_mode: str = "constant", cval: float = 0.0,
                 interpolation: str = "nearest"):
        super().__init__(fill_mode, cval, interpolation)
        self.zoom = _range(zoom, "zoom", centre=1.0)
        if self.zoom[0] <= 0:
            raise ValueError(f"zoom magnifications must be > 0, got {self.zoom}")

    def sample(self, n, h, w, rng):
        s = rng.uniform(*self.zoom, size=n)
        lin = np.zeros((n, 2, 2))
        lin[:, 0, 0] = lin[:, 1, 1] = 1.0 / s
        return _about_centre(lin, h, w)

    def spec(self) -> str:
        return f"zoom={_fmt(self.zoom[1] - 1.0)}"


class RandomCrop(Step):
    """Pads `padding` pixels on every side (fill_mode/cval) and crops back a random H x W window.

    The same as a random whole-pixel shift in [-padding, padding] per axis.
    """

    def __init__(self, padding: int = 4, fill_mode: str = "constant", cval: float = 0.0):
        int_at_least(padding, "padding", 0)
        _check_fill(fill_mode, "nearest")
        self.padding = int(padding)
        self.fill_mode = fill_mode
        self.cval = float(cval)

    def _apply(self, x, rng):
        N = x.shape[0]
        off = rng.integers(-self.padding, self.padding + 1, size=(N, 2))  # window offsets
        m = np.tile(np.eye(3), (N, 1, 1))
        m[:, 0, 2] = off[:, 0]                               # src = p + offset (integers)
        m[:, 1, 2] = off[:, 1]
        return affine_resample(x, m, self.fill_mode, self.cval, "nearest")

    def spec(self) -> str:
        return f"crop={self.padding}"


class GaussianNoise(Step):
    """Adds N(0, std^2) noise per element (in the batch's units); `clip=(lo, hi)` optional."""

    def __init__(self, std: float = 0.1, clip: tuple[float, float] | None = None):
        if std < 0:
            raise ValueError(f"std must be >= 0, got {std}")
        self.std = float(std)
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))

    def _apply(self, x, rng):
        xp = array_module(x)
        noise = rng.standard_normal(x.shape, dtype=x.dtype.type)  # host draw: same on CuPy
        out = x + xp.asarray(noise) * x.dtype.type(self.std)
        if self.clip is not None:
            out = xp.clip(out, *self.clip)
        return out

    def spec(self) -> str:
        return f"noise={_fmt(self.std)}"


class Cutout(Step):
    """Sets one `size` x `size` square per image (fully inside it, random place) to `value`.

    Applied to each image with probability p (DeVries & Taylor 2017, "cutout" / occlusion).
    """

    def __init__(self, size: int = 8, value: float = 0.0, p: float = 1.0):
        int_at_least(size, "size", 1)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.size = int(size)
        self.value = float(value)
        self.p = float(p)

    def _apply(self, x, rng):
        xp = array_module(x)
        N, _, H, W = x.shape
        if self.size > H or self.size > W:
            raise ValueError(f"Cutout size {self.size} does not fit images of shape {x.shape}")
        top = rng.integers(0, H - self.size + 1, size=N)
        left = rng.integers(0, W - self.size + 1, size=N)
        on = rng.random(N) < self.p
        r = np.arange(H)
        c = np.arange(W)
        rows = (r >= top[:, None]) & (r < top[:, None] + self.size) & on[:, None]  # (N, H)
        cols = (c >= left[:, None]) & (c < left[:, None] + self.size)              # (N, W)
        mask = xp.asarray(rows[:, None, :, None] & cols[:, None, None, :])         # (N,1,H,W)
        return xp.where(mask, x.dtype.type(self.value), x)

    def spec(self) -> str:
        return f"cutout={self.size}"


# --------------------------------------------------------------------------- pipeline

_SPEC_HELP = (
    "comma-separated items: flip[=h|v|hv[:P]], shift=F[:FW], rotate=DEG, zoom=F, crop=PAD, "
    "noise=STD, cutout=SIZE, and options for the geometric items that follow: "
    "fill=constant|nearest|reflect|wrap, cval=V, interp=nearest|bilinear; 'none' for no "
    "augmentation. Example: 'flip,shift=0.1,crop=4'"
)


class Augment:
    """A pipeline of steps, applied in order: `aug(x, rng) -> new array` (x is not modified).

        aug = Augment(RandomFlip(), RandomShift(0.1), RandomRotation(10))
        aug = Augment.from_spec("flip,shift=0.1,rotate=10")
        xb_aug = aug(xb.astype(np.float32), np.random.default_rng(0))

    Consecutive geometric steps with the same fill mode, cval and interpolation are composed
    into one inverse map per image and resampled once.
    """

    def __init__(self, *steps: Step | Sequence[Step]):
        if len(steps) == 1 and isinstance(steps[0], (list, tuple)):
            steps = tuple(steps[0])
        for i, s in enumerate(steps):
            if not isinstance(s, Step):
                raise TypeError(f"steps[{i}] must be an augmentation Step, got {type(s).__name__}")
        self.steps: list[Step] = list(steps)

    def __call__(self, x, rng: np.random.Generator):
        _check_batch(x)
        _check_rng(rng)
        out = x
        i = 0
        while i < len(self.steps):
            step = self.steps[i]
            if isinstance(step, _AffineStep):
                # fuse the run of geometric steps sharing one sampling; first step acts first,
                # so the inverse maps compose as M_first @ M_second @ ...
                N, _, H, W = out.shape
                m = step.sample(N, H, W, rng)
                j = i + 1
                while (j < len(self.steps) and isinstance(self.steps[j], _AffineStep)
                       and self.steps[j].sampling() == step.sampling()):
                    m = m @ self.steps[j].sample(N, H, W, rng)
                    j += 1
                out = affine_resample(out, m, *step.sampling())
                i = j
            else:
                out = step(out, rng)
                i += 1
        return out if out is not x else x.copy()

    def __len__(self) -> int:
        return len(self.steps)

    def spec(self) -> str:
        """The pipeline in from_spec syntax (fill options written before each geometric step)."""
        items: list[str] = []
        current = ("constant", 0.0, "nearest")
        for s in self.steps:
            sampling = None
            if isinstance(s, _AffineStep):
                sampling = s.sampling()
            elif isinstance(s, RandomCrop):
                sampling = (s.fill_mode, s.cval, current[2])
            if sampling is not None and sampling != current:
                names = ("fill", "cval", "interp")
                items += [f"{k}={_fmt(v) if k == 'cval' else v}"
                          for k, v, old in zip(names, sampling, current) if v != old]
                current = sampling
            items.append(s.spec())
        return ",".join(items) if items else "none"

    def __repr__(self) -> str:
        return f"Augment.from_spec({self.spec()!r})"

    @classmethod
    def from_spec(cls, spec: str | None) -> Augment:
        """Builds a pipeline from a string such as 'flip,shift=0.1,crop=4' (see _SPEC_HELP)."""
        if spec is None or spec.strip().lower() in ("", "none"):
            return cls()
        fill, cval, interp = "constant", 0.0, "nearest"
        steps: list[Step] = []
        pending = None   # an option item not yet followed by a geometric item
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            name, _, value = item.partition("=")
            name, value = name.strip().lower(), value.strip()
            try:
                if name == "fill":
                    _check_fill(value, "nearest")
                    fill = value
                elif name == "cval":
                    cval = float(value)
                elif name == "interp":
                    _check_fill("constant", value)
                    interp = value
                elif name == "flip":
                    code, _, p = (value or "h").partition(":")
                    modes = {"h": "horizontal", "v": "vertical", "hv": "horizontal_and_vertical"}
                    if code not in modes:
                        raise ValueError(f"flip takes h, v or hv, got {code!r}")
                    steps.append(RandomFlip(modes[code], float(p) if p else 0.5))
                elif name == "shift":
                    h, _, w = value.partition(":")
                    steps.append(RandomShift(float(h), float(w) if w else None, fill, cval,
                                             interp))
                elif name in ("rotate", "rotation"):
                    steps.append(RandomRotation(float(value), fill, cval, interp))
                elif name == "zoom":
                    steps.append(RandomZoom(float(value), fill, cval, interp))
                elif name == "crop":
                    steps.append(RandomCrop(int(value), fill, cval))
                elif name == "noise":
                    steps.append(GaussianNoise(float(value)))
                elif name == "cutout":
                    steps.append(Cutout(int(value)))
                else:
                    raise ValueError(f"unknown item {name!r}")
            except ValueError as e:
                raise ValueError(f"augment spec {spec!r}: bad item {item!r}: {e}. "
                                 f"Syntax: {_SPEC_HELP}") from None
            if name in ("fill", "cval", "interp"):
                pending = item
            elif name in ("shift", "rotate", "rotation", "zoom", "crop"):
                pending = None
        if pending is not None:   # an option after the last item it could apply to
            raise ValueError(f"augment spec {spec!r}: {pending!r} applies to the geometric items "
                             "after it (shift, rotate, zoom, crop) and none follows: put it "
                             f"before them. Syntax: {_SPEC_HELP}")
        return cls(steps)
