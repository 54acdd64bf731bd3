"""U-Net's loss weights for touching objects (Ronneberger et al. 2015, eq. 2).

    w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / (2σ²))

``d1`` and ``d2`` are the distances from pixel ``x`` to the nearest and the second nearest object; the
separation term is added on background pixels, so the thin gaps between touching nuclei weigh up to
``w_c + w0`` and the network is pushed to keep them open. ``w_c`` balances the class frequencies:
with ``"balanced"`` every pixel of a class that covers ``N_c`` of the image's ``N`` pixels weighs
``N / (2 N_c)`` (background and objects, so the mean weight of ``w_c`` is 1).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["class_balance", "unet_weight_map"]


def class_balance(instances: torch.Tensor) -> torch.Tensor:
    """``w_c``: ``N / (2 N_c)`` for background and for object pixels (1 everywhere when one class is absent)."""
    objects = instances > 0
    count = objects.sum().item()
    total = objects.numel()
    if count in (0, total):
        return torch.ones(instances.shape, dtype=torch.float32)
    return torch.where(objects, total / (2 * count), total / (2 * (total - count))).float()


def _as_instances(instances) -> torch.Tensor:
    if isinstance(instances, np.ndarray):
        instances = torch.from_numpy(instances)
    if not isinstance(instances, torch.Tensor) or instances.ndim != 2 or instances.is_floating_point():
        raise ValueError("instances must be an (H, W) integer map, 0 = background and one id per object; got "
                         f"{type(instances).__name__} {getattr(instances, 'shape', '')}")
    if (instances < 0).any():
        raise ValueError("instance ids must be >= 0 (0 = background)")
    return instances.long()


def _boundary(mask: torch.Tensor) -> torch.Tensor:
    """Pixels of ``mask`` with a 4-neighbour outside it: the only candidates for the nearest pixel."""
    padded = torch.nn.functional.pad(mask[None, None].float(), (1, 1, 1, 1), value=0.0)[0, 0].bool()
    inside = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inside


def _boxes(instances: torch.Tensor, margin: int) -> dict[int, tuple[int, int, int, int]]:
    """Each object's bounding box grown by ``margin`` (clipped to the image): ``{id: (top, bottom, left, right)}``."""
    height, width = instances.shape
    rows, cols = torch.nonzero(instances, as_tuple=True)
    labels, which = instances[rows, cols].unique(return_inverse=True)
    boxes = []
    for coordinate, size in ((rows, height), (cols, width)):
        low = torch.full((len(labels),), size).scatter_reduce(0, which, coordinate, "amin")
        high = torch.full((len(labels),), -1).scatter_reduce(0, which, coordinate, "amax")
        boxes.append(((low - margin).clamp(min=0), (high + margin + 1).clamp(max=size)))
    (top, bottom), (left, right) = boxes
    return {label: (t, b, l_, r) for label, t, b, l_, r in zip(labels.tolist(), top.tolist(), bottom.tolist(),
                                                                 left.tolist(), right.tolist(), strict=True)}


def unet_weight_map(instances, *, w0: float = 10.0, sigma: float = 5.0, class_weights="balanced",
                    tolerance: float = 1e-6) -> torch.Tensor:
    """The weight map ``w`` (H, W) float32 of an instance map (H, W) (0 = background, one id per object).

    ``class_weights``: ``"balanced"`` (``w_c``, above), ``None`` (1 everywhere) or a ``(background,
    objects)`` pair. Distances are Euclidean between pixel centres. Each object's distances are computed
    only within the reach where the separation term can exceed ``tolerance · w0``, so a whole 512x512
    image takes about a second.

    >>> instances = torch.zeros(9, 9, dtype=torch.long)
    >>> instances[:, :4], instances[:, 5:] = 1, 2     # two objects, a one-pixel gap at column 4
    >>> w = unet_weight_map(instances, w0=10, sigma=5, class_weights=None)
    >>> round(w[4, 4].item(), 3), w[4, 0].item()      # the gap: d1 = d2 = 1, so 1 + 10·exp(-4/50)
    (10.231, 1.0)
    """
    instances = _as_instances(instances)
    if not (w0 >= 0 and sigma > 0):
        raise ValueError(f"need w0 >= 0 and sigma > 0, got w0={w0}, sigma={sigma}")
    height, width = instances.shape
    if class_weights == "balanced":
        weights = class_balance(instances)
    elif class_weights is None:
        weights = torch.ones(height, width)
    else:
        background, objects = class_weights
        weights = torch.where(instances > 0, float(objects), float(background))
    reach = math.ceil(sigma * math.sqrt(2 * math.log(1 / tolerance)))  # beyond it: term < tolerance · w0
    d1 = torch.full((height, width), math.inf)
    d2 = torch.full((height, width), math.inf)
    for label, (top, bottom, left, right) in _boxes(instances, reach).items():
        window = instances[top:bottom, left:right]
        mask = window == label
        border = torch.nonzero(_boundary(mask)).float()  # (n, 2), window coordinates
        ys, xs = torch.meshgrid(torch.arange(bottom - top), torch.arange(right - left), indexing="ij")
        pixels = torch.stack([ys.flatten(), xs.flatten()], dim=1).float()
        distance = torch.cdist(pixels, border).min(dim=1).values.view(bottom - top, right - left)
        distance[mask] = 0.0
        near, second = d1[top:bottom, left:right], d2[top:bottom, left:right]
        d2[top:bottom, left:right] = torch.minimum(second, torch.maximum(near, distance))
        d1[top:bottom, left:right] = torch.minimum(near, distance)
    separation = w0 * torch.exp(-((d1 + d2) ** 2) / (2 * sigma ** 2))  # exp(-inf) = 0 with fewer than 2 near
    return (weights + torch.where(instances == 0, separation, 0.0)).float()
