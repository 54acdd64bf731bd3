"""Segmentation metrics from a confusion matrix accumulated on the device.

``matrix[t, p]`` counts pixels of true class ``t`` predicted as ``p``. From it:

* pixel accuracy = correct pixels / counted pixels;
* IoU (Jaccard) of class c = TP / (TP + FP + FN); mIoU = mean over classes;
* Dice (F1) of class c = 2 TP / (2 TP + FP + FN).

Pixels whose target is ``ignore_index`` are not counted. A class that appears neither in the targets
nor in the predictions has no IoU or Dice (0/0): its per-class value is ``nan`` (torchmetrics reports
0 there) and it is left out of the means, exactly as torchmetrics' macro average leaves it out. A
class that is predicted but absent from the targets gets IoU 0 and counts.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["ConfusionMatrix", "check_labels"]


def check_labels(target: torch.Tensor, num_classes: int, ignore_index: int | None = 255) -> None:
    """Raise a clear ``ValueError`` if a label is outside ``[0, num_classes)`` and not ``ignore_index``.

    Run it before the loss: an out-of-range label otherwise ends in a device-side assert on CUDA.
    """
    counted = target if ignore_index is None else target.masked_fill(target == ignore_index, 0)
    if counted.numel() == 0 or (int(counted.amin()) >= 0 and int(counted.amax()) < num_classes):
        return  # the fast path: two reductions, no boolean indexing
    valid = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        valid |= target == ignore_index
    bad = torch.unique(target[~valid])[:10].tolist()
    raise ValueError(f"labels must be in [0, {num_classes}) or {ignore_index} (ignored), found {bad}: "
                     f"check the data set's num_classes ({num_classes}) and its label encoding")


class ConfusionMatrix:
    """Accumulates a ``(num_classes, num_classes)`` confusion matrix over batches.

    >>> cm = ConfusionMatrix(3)
    >>> cm.update(torch.tensor([[0, 1, 2, 2]]), torch.tensor([[0, 1, 1, 255]]))
    >>> round(cm.compute()["pixel_accuracy"], 4)  # 2 of 3 counted pixels right; 255 is ignored
    0.6667
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255, device: str | torch.device | None = None):
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def reset(self) -> None:
        self.matrix.zero_()

    @torch.no_grad()
    def update(self, preds: torch.Tensor, target: torch.Tensor, *, labels_checked: bool = False) -> None:
        """Add a batch: ``preds`` as labels ``(B, H, W)`` or logits ``(B, K, H, W)``; ``target`` ``(B, H, W)``.
        ``labels_checked=True``: the caller ran :func:`check_labels` on these targets already (saves a sync)."""
        if preds.is_floating_point():
            if preds.ndim != target.ndim + 1 or preds.shape[1] != self.num_classes:
                raise ValueError(f"logits must be (B, {self.num_classes}, H, W) for targets (B, H, W), got "
                                 f"{tuple(preds.shape)} and {tuple(target.shape)}")
            preds = preds.argmax(1)
        if preds.shape != target.shape:
            raise ValueError(f"predictions {tuple(preds.shape)} and targets {tuple(target.shape)} differ in shape: "
                             "crop or resize the targets to the model's output size")
        if not labels_checked:
            check_labels(target, self.num_classes, self.ignore_index)
        if self.matrix.device != target.device:
            self.matrix = self.matrix.to(target.device)
        k = self.num_classes
        index = target.long() * k + preds.long()  # (B, H, W): cell of the matrix for every pixel
        if self.ignore_index is not None:  # ignored pixels go to an extra bin that is dropped
            index = index.masked_fill(target == self.ignore_index, k * k)
        counts = torch.bincount(index.flatten(), minlength=k * k + 1)[: k * k]
        self.matrix += counts.reshape(k, k)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix's counts (e.g. from another process)."""
        self.matrix += other.matrix.to(self.matrix.device)

    def compute(self) -> dict:
        """``pixel_accuracy`` (float), ``iou`` and ``dice`` (lists per class, nan if absent), ``miou``,
        ``mean_dice`` (means over present classes) and ``matrix`` (a CPU tensor)."""
        # float64 on the host, in NumPy: MPS has no float64, and the matrix may live there
        m = self.matrix.cpu().numpy().astype(np.float64)
        tp = np.diag(m)
        fp = m.sum(0) - tp
        fn = m.sum(1) - tp
        total = m.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = tp / (tp + fp + fn)  # nan where the class is absent from targets and predictions
            dice = 2 * tp / (2 * tp + fp + fn)
        present = ~np.isnan(iou)
        return {
            "pixel_accuracy": float(tp.sum() / total) if total > 0 else float("nan"),
            "iou": iou.tolist(),
            "miou": float(iou[present].mean()) if present.any() else float("nan"),
            "dice": dice.tolist(),
            "mean_dice": float(dice[present].mean()) if present.any() else float("nan"),
            "matrix": self.matrix.cpu().clone(),
        }
