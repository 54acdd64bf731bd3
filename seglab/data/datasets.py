"""Adapters for real segmentation data sets on disk, read through torchvision.

Nothing is downloaded: each adapter checks the folder first and, when it is missing, says which
layout it expects and where to get the data. Image and mask are transformed together with
``torchvision.transforms.v2`` (the mask as a ``tv_tensors.Mask``, so it is resized with nearest
neighbours), and every adapter returns ``(image (3, H, W) float32 in [0, 1], mask (H, W) int64)``
with ``255`` marking pixels to ignore.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import datasets as tv_datasets
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

__all__ = ["IGNORE_INDEX", "CityscapesSegmentation", "PetSegmentation", "VOCSegmentation", "segmentation_transforms"]

IGNORE_INDEX = 255


def segmentation_transforms(size: int, *, train: bool) -> Callable:
    """Joint transforms for (image, mask): random resized crop and flip for training, a resize and
    centre crop otherwise. Masks are resized with nearest neighbours (they are ``tv_tensors.Mask``)."""
    if train:
        return v2.Compose([v2.RandomResizedCrop(size, scale=(0.3, 1.0), antialias=True), v2.RandomHorizontalFlip()])
    return v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])


class _Adapter(Dataset):
    """Wraps a torchvision data set of (PIL image, PIL mask) pairs; subclasses set the label map."""

    class_names: tuple[str, ...] = ()
    in_channels = 3
    ignore_index = IGNORE_INDEX
    layout = ""
    source = ""

    def __init__(self, base: Dataset, transforms: Callable | None, label_map: np.ndarray | None):
        self.base, self.transforms, self.label_map = base, transforms, label_map
        self.num_classes = len(self.class_names)
        self.palette = _palette(self.num_classes)

    @classmethod
    def _require(cls, root: str | Path, *paths: str) -> Path:
        root = Path(root)
        missing = [p for p in paths if not (root / p).exists()]
        if missing:
            raise FileNotFoundError(
                f"{cls.__name__}: no data at {root} (missing {', '.join(missing)}). Expected layout:\n"
                f"{cls.layout.format(root=root)}\nGet it from {cls.source} and unpack it there; "
                "seglab never downloads data.")
        return root

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = self.base[index]
        image = tv_tensors.Image(TF.pil_to_tensor(image.convert("RGB")))  # (3, H, W) uint8
        mask = torch.from_numpy(np.array(target, dtype=np.int64))  # (H, W)
        if self.label_map is not None:
            mask = torch.from_numpy(self.label_map)[mask]
        mask = tv_tensors.Mask(mask)
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return TF.to_dtype(image, torch.float32, scale=True).as_subclass(torch.Tensor), \
            mask.as_subclass(torch.Tensor).long()


def _palette(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """The PASCAL VOC colour map: distinct colours from the bits of the class index."""
    colours = []
    for i in range(num_classes):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append((r, g, b))
    return tuple(colours)


class VOCSegmentation(_Adapter):
    """PASCAL VOC 2012 segmentation: 21 classes (0 = background), object borders are 255 (ignored)."""

    class_names = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
                   "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
                   "train", "tvmonitor")
    layout = ("  {root}/VOCdevkit/VOC2012/JPEGImages/*.jpg\n"
              "  {root}/VOCdevkit/VOC2012/SegmentationClass/*.png\n"
              "  {root}/VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt, val.txt")
    source = "the PASCAL VOC 2012 page (VOCtrainval_11-May-2012.tar)"

    def __init__(self, root: str | Path, split: str = "train", *, size: int = 256,
                 transforms: Callable | None = None):
        root = self._require(root, "VOCdevkit/VOC2012/JPEGImages", "VOCdevkit/VOC2012/SegmentationClass",
                             f"VOCdevkit/VOC2012/ImageSets/Segmentation/{split}.txt")
        base = tv_datasets.VOCSegmentation(root, year="2012", image_set=split, download=False)
        super().__init__(base, transforms or segmentation_transforms(size, train=split == "train"), None)


class PetSegmentation(_Adapter):
    """Oxford-IIIT Pet trimaps: 0 background, 1 pet; the uncertain border (trimap 3) is ignored."""

    class_names = ("background", "pet")
    layout = ("  {root}/oxford-iiit-pet/images/*.jpg\n"
              "  {root}/oxford-iiit-pet/annotations/trimaps/*.png\n"
              "  {root}/oxford-iiit-pet/annotations/trainval.txt, test.txt")
    source = "the Oxford-IIIT Pet page (images.tar.gz and annotations.tar.gz)"

    def __init__(self, root: str | Path, split: str = "trainval", *, size: int = 256,
                 transforms: Callable | None = None):
        root = self._require(root, "oxford-iiit-pet/images", "oxford-iiit-pet/annotations/trimaps",
                             f"oxford-iiit-pet/annotations/{split}.txt")
        base = tv_datasets.OxfordIIITPet(root, split=split, target_types="segmentation", download=False)
        label_map = np.full(256, IGNORE_INDEX, np.int64)
        label_map[1], label_map[2] = 1, 0  # trimap: 1 pet, 2 background, 3 border
        super().__init__(base, transforms or segmentation_transforms(size, train=split == "trainval"), label_map)


class CityscapesSegmentation(_Adapter):
    """Cityscapes fine annotations mapped to the 19 train ids; every other label id is ignored."""

    class_names = tuple(c.name for c in sorted(
        (c for c in tv_datasets.Cityscapes.classes if c.train_id not in (-1, 255)), key=lambda c: c.train_id))

    layout = ("  {root}/leftImg8bit/train/<city>/*_leftImg8bit.png\n"
              "  {root}/gtFine/train/<city>/*_gtFine_labelIds.png (and val/, test/)")
    source = "the Cityscapes download page (leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip; registration)"

    def __init__(self, root: str | Path, split: str = "train", *, size: int = 256,
                 transforms: Callable | None = None):
        root = self._require(root, f"leftImg8bit/{split}", f"gtFine/{split}")
        base = tv_datasets.Cityscapes(root, split=split, mode="fine", target_type="semantic")
        label_map = np.full(256, IGNORE_INDEX, np.int64)
        for cls in tv_datasets.Cityscapes.classes:
            if 0 <= cls.id < 256 and cls.train_id not in (-1, 255):
                label_map[cls.id] = cls.train_id
        super().__init__(base, transforms or segmentation_transforms(size, train=split == "train"), label_map)
