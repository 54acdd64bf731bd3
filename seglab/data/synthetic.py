"""A procedural segmentation data set that needs no download: shapes on a textured background.

Each class teaches something about segmentation networks:

=========  =================================  ==============================================
class      what                               what it tests
=========  =================================  ==============================================
0          background: smooth texture, a      a threshold on intensity fails; context matters
           gradient and noise
1 blob     large ellipses                     coarse predictions suffice (even FCN-32s)
2 polygon  sharp-cornered triangles and       corners need fine resolution
           quadrilaterals
3 curve    thin curves, 1–2 pixels wide       lost by coarse upsampling; needs shallow features
4 spot     small spots of a few pixels        lost by pooling; needs skip-connections
=========  =================================  ==============================================

Objects are brighter *or* darker than the background around them, by a random amount, so only
their shape tells the class. Every image is a pure function of ``(seed, index)``: the same in any
worker process, in any order. A data set keeps the images it has made (up to ``CACHE_BYTES``), so the
second and later epochs cost no generation time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["CLASS_NAMES", "PALETTE", "ShapesConfig", "SyntheticShapes", "render_shapes"]

CLASS_NAMES = ("background", "blob", "polygon", "curve", "spot")
#: RGB colours (0..255) of the classes, used by seglab.notebook.viz for masks and overlays.
PALETTE = ((0, 0, 0), (230, 159, 0), (86, 180, 233), (240, 228, 66), (213, 94, 0))
#: The most memory a SyntheticShapes keeps for made images (1,000 of 64x64 take 20 MB); larger sets regenerate.
CACHE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class ShapesConfig:
    """Difficulty knobs of :class:`SyntheticShapes` (the defaults are the course's task)."""

    blobs: tuple[int, int] = (1, 3)  # number of objects per image, inclusive range
    polygons: tuple[int, int] = (1, 3)
    curves: tuple[int, int] = (1, 2)
    spots: tuple[int, int] = (2, 6)
    curve_width: tuple[int, int] = (1, 2)  # pixels
    spot_radius: tuple[float, float] = (1.0, 2.2)  # pixels: a few pixels each
    contrast: tuple[float, float] = (0.25, 0.6)  # object minus local background, either sign
    texture: float = 0.35  # amplitude of the smooth background texture
    gradient: float = 0.3  # amplitude of the linear ramp
    noise: float = 0.08  # standard deviation of the pixel noise


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency texture: a random ``cells x cells`` grid interpolated bilinearly to ``size``."""
    grid = rng.standard_normal((cells, cells))
    positions = np.linspace(0, cells - 1, size)
    low = np.floor(positions).astype(int).clip(0, cells - 2)
    frac = positions - low
    rows = grid[low] * (1 - frac)[:, None] + grid[low + 1] * frac[:, None]  # (size, cells)
    return rows[:, low] * (1 - frac) + rows[:, low + 1] * frac  # (size, size)


def _ellipse(rng, size, yy, xx):
    cy, cx = rng.uniform(0.15, 0.85, 2) * size
    ry, rx = rng.uniform(0.09, 0.2, 2) * size
    t = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u, v = dx * np.cos(t) + dy * np.sin(t), -dx * np.sin(t) + dy * np.cos(t)
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1


def _polygon(rng, size, yy, xx):
    """A convex triangle or quadrilateral, corners spread evenly so that it is never a sliver."""
    corners = int(rng.integers(3, 5))
    cy, cx = rng.uniform(0.15, 0.85, 2) * size
    radius = rng.uniform(0.09, 0.18) * size
    jitter = 0.4 if corners == 4 else 0.3
    angles = rng.uniform(0, 2 * np.pi) + np.arange(corners) * 2 * np.pi / corners + rng.uniform(-jitter, jitter,
                                                                                                 corners)
    py, px = cy + radius * np.sin(angles), cx + radius * np.cos(angles)
    inside = np.ones((size, size), bool)
    for i in range(corners):  # inside every half-plane left of the edges, taken in order
        j = (i + 1) % corners
        inside &= (px[j] - px[i]) * (yy - py[i]) - (py[j] - py[i]) * (xx - px[i]) >= 0
    return inside


def _curve(rng, size, width_range):
    """A thin sine-like curve, ``width`` pixels wide."""
    width = rng.integers(width_range[0], width_range[1] + 1)
    t = np.linspace(0, 1, 4 * size)
    start, direction = rng.uniform(0.1, 0.9, 2) * size, rng.uniform(0, 2 * np.pi)
    length = rng.uniform(0.5, 0.9) * size
    bend, waves, phase = rng.uniform(2, 7), rng.uniform(0.5, 2), rng.uniform(0, 2 * np.pi)
    along, across = t * length, bend * np.sin(2 * np.pi * waves * t + phase)
    cy = start[0] + along * np.sin(direction) + across * np.cos(direction)
    cx = start[1] + along * np.cos(direction) - across * np.sin(direction)
    region = np.zeros((size, size), bool)
    for oy in range(width):
        for ox in range(width):
            iy, ix = np.floor(cy).astype(int) + oy, np.floor(cx).astype(int) + ox
            keep = (iy >= 0) & (iy < size) & (ix >= 0) & (ix < size)
            region[iy[keep], ix[keep]] = True
    return region


def _spot(rng, size, yy, xx, radius_range):
    cy, cx = rng.uniform(2, size - 2, 2)
    radius = rng.uniform(*radius_range)
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2


def _grow(region: np.ndarray) -> np.ndarray:
    """``region`` plus its 8 neighbours (so objects placed outside it never touch it)."""
    grown = region.copy()
    grown[1:] |= region[:-1]
    grown[:-1] |= region[1:]
    grown[:, 1:] |= grown[:, :-1].copy()
    grown[:, :-1] |= grown[:, 1:].copy()
    return grown


def render_shapes(rng: np.random.Generator, size: int = 64,
                  config: ShapesConfig = ShapesConfig()) -> tuple[np.ndarray, np.ndarray]:
    """One image ``(size, size)`` float32 in about [0, 1] and its mask ``(size, size)`` uint8.

    Blobs, polygons and spots never overlap or touch (up to 4 tries each to find a free place, else
    the object is left out); curves may cross them. Each object is brighter or darker than what lies
    under it, so its whole outline is visible and only its shape tells its class.
    """
    c = config
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / size  # (size, size), about [-1.4, 1.4]
    image = (0.5 + c.texture * _smooth_field(rng, size, 4) * 0.5 + c.gradient * (ramp - ramp.mean())).astype(
        np.float32)
    mask = np.zeros((size, size), np.uint8)

    makers = (
        (1, c.blobs, lambda: _ellipse(rng, size, yy, xx)),
        (2, c.polygons, lambda: _polygon(rng, size, yy, xx)),
        (3, c.curves, lambda: _curve(rng, size, c.curve_width)),
        (4, c.spots, lambda: _spot(rng, size, yy, xx, c.spot_radius)),
    )
    for label, (low, high), make in makers:
        for _ in range(rng.integers(low, high + 1)):
            for _attempt in range(4):
                region = make()
                if label == 3 or not (region & _grow(mask > 0)).any():
                    image[region] += rng.choice((-1.0, 1.0)) * rng.uniform(*c.contrast)
                    mask[region] = label
                    break

    image += rng.normal(0, c.noise, image.shape).astype(np.float32)
    return image, mask


class SyntheticShapes(Dataset):
    """``n`` procedural images of ``size x size`` pixels: ``(image (1, H, W) float32, mask (H, W) int64)``.

    >>> data = SyntheticShapes(10, size=48)
    >>> image, mask = data[3]
    >>> image.shape, mask.shape, mask.dtype
    (torch.Size([1, 48, 48]), torch.Size([48, 48]), torch.int64)

    Made images are kept (``cache=False``, or more than ``CACHE_BYTES`` of them, makes them anew each
    time; they are the same either way).
    """

    class_names = CLASS_NAMES
    palette = PALETTE
    num_classes = len(CLASS_NAMES)
    in_channels = 1
    ignore_index = 255

    def __init__(self, n: int, size: int = 64, seed: int = 0, config: ShapesConfig | None = None, *,
                 cache: bool = True, **knobs):
        if n < 1 or size < 16:
            raise ValueError(f"SyntheticShapes needs n >= 1 and size >= 16, got n={n}, size={size}")
        self.n, self.size, self.seed = n, size, seed
        self.config = config or ShapesConfig(**knobs)
        # made images by index: image float32 + mask uint8 = 5 bytes per pixel
        self._made: dict[int, tuple[np.ndarray, np.ndarray]] | None = (
            {} if cache and n * size * size * 5 <= CACHE_BYTES else None)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} images")
        index %= self.n
        made = self._made.get(index) if self._made is not None else None
        if made is None:
            made = render_shapes(np.random.default_rng([self.seed, index]), self.size, self.config)
            if self._made is not None:
                self._made[index] = made
        image, mask = made
        return torch.from_numpy(image.copy())[None], torch.from_numpy(mask).long()  # (1, H, W), (H, W): copies
