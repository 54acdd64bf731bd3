"""Real fluorescence microscopy: stained cell nuclei with ground-truth instance masks.

The image and its instance labels come from the 2018 Data Science Bowl (BBBC038), as shipped with
the ``stardist`` package; they ship inside seglab (``seglab/data/nuclei_sample/``, with
``PROVENANCE.md`` and ``LICENSE.md``), so an installed seglab needs no repository. One 512x512 image
is split by region: the left ``1 - val_fraction`` of the columns is for training, the rest for
validation, so no pixel is in both.

Labels: ``"binary"`` (background, nucleus) or ``"3class"`` (background, interior, boundary). As in
the U-Net paper, the boundary class separates touching nuclei: a nucleus pixel is "boundary" when
one of its 4 neighbours belongs to a different label (background or another nucleus), so two
touching nuclei are always divided by a line of boundary pixels.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["DEFAULT_ROOT", "NucleiDataset", "instance_boundaries", "load_nuclei"]

DEFAULT_ROOT = Path(__file__).resolve().parent / "nuclei_sample"  # package data: works from a wheel too
LABELS = {"binary": ("background", "nucleus"), "3class": ("background", "interior", "boundary")}
PALETTES = {"binary": ((0, 0, 0), (0, 200, 120)), "3class": ((0, 0, 0), (0, 200, 120), (255, 60, 60))}


def load_nuclei(root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The image ``(512, 512)`` float32 in [0, 1] and its instance ids ``(512, 512)`` int64."""
    from PIL import Image

    root = Path(root) if root is not None else DEFAULT_ROOT
    files = [root / "image.png", root / "instances.png"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"nuclei data not found: missing {', '.join(missing)}. Expected layout:\n"
            f"  {root}/image.png       8-bit grayscale image\n"
            f"  {root}/instances.png   8-bit instance ids (0 = background)\n"
            "It ships inside the seglab package (seglab/data/nuclei_sample/): reinstall seglab, or pass root= "
            "to a folder with those two files.")
    image = np.asarray(Image.open(files[0]), dtype=np.float32) / 255.0
    instances = np.asarray(Image.open(files[1])).astype(np.int64)
    if image.ndim != 2 or image.shape != instances.shape:
        raise ValueError(f"expected one grayscale image and instance map of the same size, got {image.shape} "
                         f"and {instances.shape}")
    return image, instances


def instance_boundaries(instances: np.ndarray) -> np.ndarray:
    """Boolean map of nucleus pixels with a 4-neighbour of a different label (edges count as same)."""
    padded = np.pad(instances, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    differs = np.zeros(instances.shape, bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        differs |= padded[1 + dy:padded.shape[0] - 1 + dy, 1 + dx:padded.shape[1] - 1 + dx] != centre
    return differs & (instances > 0)


def _semantic_labels(instances: np.ndarray, labels: str) -> np.ndarray:
    semantic = (instances > 0).astype(np.int64)  # 0 background, 1 nucleus
    if labels == "3class":
        semantic[instance_boundaries(instances)] = 2
    return semantic


@functools.lru_cache(maxsize=2)
def _whole_weight_map(root: str) -> np.ndarray:
    """The weight map of the whole image in ``root``, made once per process (1–2 s) for both splits."""
    from seglab.data.weight_map import unet_weight_map

    weights = unet_weight_map(load_nuclei(root)[1]).numpy()
    weights.flags.writeable = False  # shared by every data set made from this image
    return weights


class NucleiDataset(Dataset):
    """Crops of the nuclei image: ``(image (1, crop, crop) float32, mask (crop, crop) int64)``.

    ``split="train"``: ``n`` random crops of the training region, each with a random flip and 90°
    rotation applied to image and mask together (deterministic per ``(seed, index)``).
    ``split="val"``: the validation region cut into non-overlapping tiles, without augmentation.
    ``weight_map=True``: each sample also has the U-Net paper's loss weights ``(crop, crop)`` float32
    (:func:`seglab.data.weight_map.unet_weight_map` of the whole image, cropped and turned with it), for
    ``fit``.

    >>> train, val = NucleiDataset("train", n=8), NucleiDataset("val")
    >>> train[0][0].shape, len(val) > 0, train.class_names
    (torch.Size([1, 64, 64]), True, ('background', 'interior', 'boundary'))
    """

    in_channels = 1
    ignore_index = 255

    def __init__(self, split: str = "train", *, crop: int = 64, n: int = 256, labels: str = "3class",
                 val_fraction: float = 0.25, augment: bool | None = None, seed: int = 0,
                 root: str | Path | None = None, weight_map: bool = False):
        if split not in ("train", "val"):
            raise ValueError(f'split must be "train" or "val", got {split!r}')
        if labels not in LABELS:
            raise ValueError(f"labels must be one of {sorted(LABELS)}, got {labels!r}")
        image, instances = load_nuclei(root)
        width = image.shape[1]
        cut = round(width * (1 - val_fraction))
        columns = slice(0, cut) if split == "train" else slice(cut, width)
        self.image = np.ascontiguousarray(image[:, columns])
        self.mask = _semantic_labels(instances, labels)[:, columns]  # boundaries use the full image
        self.weights = None
        if weight_map:  # computed on the whole image, so objects beyond a crop's edge still count
            self.weights = np.ascontiguousarray(_whole_weight_map(str(root or DEFAULT_ROOT))[:, columns])
        height, region_width = self.image.shape
        if crop > min(height, region_width):
            raise ValueError(f"crop {crop} is larger than the {split} region ({height}x{region_width}): "
                             "use a smaller crop or another val_fraction")
        self.split, self.crop, self.seed, self.labels = split, crop, seed, labels
        self.augment = (split == "train") if augment is None else augment
        self.class_names = LABELS[labels]
        self.palette = PALETTES[labels]
        self.num_classes = len(self.class_names)
        if split == "train":
            self.n = n
        else:
            self.tiles = [(y, x) for y in range(0, height - crop + 1, crop)
                          for x in range(0, region_width - crop + 1, crop)]
            self.n = len(self.tiles)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} crops")
        index %= self.n
        rng = np.random.default_rng([self.seed, index])
        if self.split == "train":
            y = int(rng.integers(0, self.image.shape[0] - self.crop + 1))
            x = int(rng.integers(0, self.image.shape[1] - self.crop + 1))
        else:
            y, x = self.tiles[index]
        window = (slice(y, y + self.crop), slice(x, x + self.crop))
        arrays = [self.image[window], self.mask[window]] + ([self.weights[window]] if self.weights is not None else [])
        if self.augment:  # the same flip and rotation for image, mask (and weights)
            if rng.random() < 0.5:
                arrays = [a[:, ::-1] for a in arrays]
            turns = int(rng.integers(0, 4))
            arrays = [np.rot90(a, turns) for a in arrays]
        image, mask, *weights = (torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)
        return (image[None], mask, *weights)  # (1, crop, crop) float32, (crop, crop) int64[, (crop, crop) float32]
