"""Using a trained model: ``evaluate`` (loss and metrics over a data set) and ``predict`` (labels or
probabilities), with the batch helpers that ``fit`` shares."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from seglab.layers import center_crop
from seglab.metrics import ConfusionMatrix, check_labels
from seglab.training import distributed
from seglab.training.device import DeviceSettings, pick_device
from seglab.training.modes import eval_mode
from seglab.training.threads import limit_threads

__all__ = ["evaluate", "predict"]


def match_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Centre-crop the targets to the logits' size (a valid-padding U-Net's output is smaller)."""
    if logits.shape[-2:] == target.shape[-2:]:
        return target
    if logits.shape[-2] > target.shape[-2] or logits.shape[-1] > target.shape[-1]:
        raise ValueError(f"the model's output {tuple(logits.shape[-2:])} is larger than the targets "
                         f"{tuple(target.shape[-2:])}")
    return center_crop(target, *logits.shape[-2:])


def split_batch(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(images, masks, pixel weights or None)`` of a batch ``(images, masks)`` or ``(images, masks, weights)``."""
    if not (isinstance(batch, (tuple, list)) and len(batch) in (2, 3)):
        raise ValueError("each batch must be (images (B, C, H, W), masks (B, H, W)) or (images, masks, per-pixel "
                         "loss weights (B, H, W)); got "
                         f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}")
    weights = batch[2] if len(batch) == 3 else None
    if weights is not None and (not isinstance(weights, torch.Tensor) or weights.shape != batch[1].shape):
        raise ValueError(f"per-pixel loss weights must have the masks' shape {tuple(batch[1].shape)}, got "
                         f"{tuple(getattr(weights, 'shape', ())) or type(weights).__name__}")
    return batch[0], batch[1], weights


@torch.no_grad()
def evaluate(model: nn.Module, loader, num_classes: int | None = None, *, ignore_index: int = 255,
             device: str | torch.device = "auto", amp=False, channels_last="auto") -> dict:
    """Loss and metrics of ``model`` over ``loader``: ``loss``, ``pixel_accuracy``, ``iou``, ``miou``,
    ``dice``, ``mean_dice`` and ``matrix`` (see :class:`seglab.metrics.ConfusionMatrix`)."""
    num_classes = num_classes or getattr(model, "num_classes", None)
    if num_classes is None:
        raise ValueError("pass num_classes= (the model has no num_classes attribute)")
    settings = DeviceSettings.choose(device, amp, channels_last)
    limit_threads()
    loader = distributed.shard_loader(loader, train=False)  # under torchrun: each sample in one process
    model.to(settings.device)
    matrix = ConfusionMatrix(num_classes, ignore_index, device=settings.device)
    # Float32 sums per batch, kept on the device (no sync per batch) and added up in float64 on the host: MPS
    # has no float64, so nothing float64 may touch the device.
    batch_losses = []
    pixels = torch.zeros((), device=settings.device, dtype=torch.int64)  # on the device: no sync per batch
    with eval_mode(model):
        for batch in loader:
            images, target, _ = split_batch(batch)  # the validation loss is not weighted
            check_labels(target, num_classes, ignore_index)  # on the host, once
            images, target = settings.to_device(images), target.to(settings.device, non_blocking=True)
            with settings.autocast():
                logits = model(images)  # (B, K, H', W')
            target = match_target(logits, target)
            batch_losses.append(F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="sum"))
            pixels += (target != ignore_index).sum()
            matrix.update(logits, target, labels_checked=True)
    loss_sum = math.fsum(torch.stack(batch_losses).cpu().tolist()) if batch_losses else 0.0  # on the host
    if distributed.world_size() > 1:  # global metrics: sum the matrices, losses and pixel counts
        distributed.all_reduce_sum(matrix.matrix)
        distributed.all_reduce_sum(pixels)
        # NCCL (CUDA) and gloo (CPU) carry float64; a process group on MPS is not supported by either
        loss_sum = float(distributed.all_reduce_sum(torch.tensor(loss_sum, dtype=torch.float64,
                                                                 device=settings.device)))
    return {"loss": loss_sum / max(int(pixels), 1), **matrix.compute()}


@torch.no_grad()
def predict(model: nn.Module, images, *, device: str | torch.device = "auto", batch_size: int = 32,
            probabilities: bool = False) -> torch.Tensor:
    """Class labels ``(B, H, W)`` (or softmax probabilities ``(B, K, H, W)``) on the CPU for a batch
    ``(B, C, H, W)``, one image ``(C, H, W)``, or a data set of (image, mask) pairs."""
    device = pick_device(device)
    limit_threads()
    if isinstance(images, torch.Tensor):
        batch = images[None] if images.ndim == 3 else images
        chunks = batch.split(batch_size)
    else:
        loader = images if isinstance(images, DataLoader) else DataLoader(images, batch_size=batch_size)
        chunks = (b[0] if isinstance(b, (tuple, list)) else b for b in loader)
    model.to(device)
    outputs = []
    with eval_mode(model):
        for chunk in chunks:
            logits = model(chunk.to(device)).float()  # (B, K, H, W)
            outputs.append((logits.softmax(1) if probabilities else logits.argmax(1)).cpu())
    out = torch.cat(outputs)
    return out[0] if isinstance(images, torch.Tensor) and images.ndim == 3 else out
