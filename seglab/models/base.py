"""The contract every seglab model keeps."""

from __future__ import annotations

import torch
from torch import nn


class SegmentationModel(nn.Module):
    """Maps images ``(B, in_channels, H, W)`` to per-pixel class logits ``(B, num_classes, H', W')``.

    ``H' = output_size(H)``: the input size for same-padding models, smaller for the valid-padding
    U-Net. ``config`` holds the constructor's arguments, so a checkpoint can rebuild the model.
    """

    in_channels: int
    num_classes: int
    config: dict

    def min_input_size(self) -> int:
        """The smallest height/width this model accepts."""
        return 1

    def output_size(self, input_size: int) -> int:
        """Height (or width) of the logits for an input of this height (or width)."""
        self._check_size(input_size)
        return input_size

    def deepest_path(self) -> nn.Sequential:
        """The layers from the input to the deepest feature, in order (for receptive fields)."""
        raise NotImplementedError

    def _check_size(self, size: int) -> None:
        minimum = self.min_input_size()
        if size < minimum:
            raise ValueError(f"{type(self).__name__} needs inputs of at least {minimum}x{minimum} pixels, got "
                             f"{size}: use larger images (or crops), or a model with fewer downsampling stages")

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ``ValueError`` that names the fix when ``x`` is not a batch this model can take."""
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{type(self).__name__} expects a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            hint = " (add a batch dimension: x.unsqueeze(0))" if x.ndim == 3 else ""
            raise ValueError(f"{type(self).__name__} expects a 4-D batch (B, C, H, W), got shape "
                             f"{tuple(x.shape)}{hint}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} was built for {self.in_channels} input channels, got "
                             f"{x.shape[1]} (shape {tuple(x.shape)}): convert the images or build the model "
                             f"with in_channels={x.shape[1]}")
        if not x.is_floating_point():
            raise ValueError(f"{type(self).__name__} expects floating-point images, got {x.dtype}: "
                             "convert with x.float() (and scale to [0, 1])")
        for size in x.shape[-2:]:
            self._check_size(int(size))
