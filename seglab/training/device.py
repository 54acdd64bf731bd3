"""Which device to compute on (``"auto"`` picks CUDA, then Apple's MPS, then the CPU) and how: mixed
precision on CUDA (bf16 where supported, else fp16 with a gradient scaler), channels_last memory layout on
CUDA and the CPU."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

__all__ = ["DeviceSettings", "pick_device"]


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> the best available device; anything else is checked and returned as a device.

    >>> pick_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps'") from error
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but PyTorch sees no CUDA GPU here: use 'auto' or 'cpu'")
    if chosen.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} was asked for but MPS is not available here: use 'auto' or 'cpu'")
    return chosen


@dataclass(frozen=True)
class DeviceSettings:
    """How to compute on a device: precision (autocast dtype, gradient scaler) and memory format. ``fit`` and
    ``evaluate`` choose them with :meth:`choose` (``fit(..., verbose=True)`` prints them)."""

    device: torch.device
    amp_dtype: torch.dtype | None  # None: full precision
    grad_scaler: bool
    channels_last: bool

    @classmethod
    def choose(cls, device, amp="auto", channels_last="auto") -> DeviceSettings:
        device = pick_device(device)
        if amp == "auto":
            amp = device.type == "cuda"
        if amp is False or amp is None:
            dtype = None
        elif amp in ("bf16", "fp16"):
            dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        elif amp is True:
            cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
            dtype = torch.bfloat16 if device.type != "cuda" or cuda_bf16 else torch.float16
        else:
            raise ValueError(f'amp must be "auto", True, False, "bf16" or "fp16", got {amp!r}')
        if channels_last == "auto":
            channels_last = device.type in ("cuda", "cpu")
        return cls(device, dtype, dtype == torch.float16 and device.type == "cuda", bool(channels_last))

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
