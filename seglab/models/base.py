"""The contract every seglab model keeps, and the one ``forward`` they share."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import ClassVar

import torch
from torch import nn


class SegmentationModel(nn.Module):
    """Maps images ``(B, in_channels, H, W)`` to per-pixel class logits ``(B, num_classes, H', W')``.

    ``H' = output_size(H)``: the input size for same-padding models, smaller for the valid-padding
    U-Net. A model implements :meth:`logits`; ``forward`` checks the input, calls it and crops the result to
    ``output_size``. The base class records the constructor's arguments, so ``config`` (the registry name
    and those arguments) rebuilds the model: ``build_model(**model.config)``, also from a checkpoint.
    """

    in_channels: int
    num_classes: int
    #: the registered builder (``seglab.models.MODELS``) that rebuilds this model from its ``config``
    model_name: ClassVar[str]
    #: constructor arguments that ``model_name`` already says (FCN's variant: ``"fcn8s"``)
    named_by: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_arguments(cls.__init__)

    @property
    def config(self) -> dict:
        """``{"name": model_name, **constructor arguments}`` in plain Python values (a model among the
        arguments, as in the multi-scale wrappers, is given by its own config)."""
        arguments = {key: _plain(value) for key, value in self.constructor_arguments.items()
                     if key not in self.named_by}
        return {"name": self.model_name, **arguments}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's own computation on a checked batch; may be larger than ``output_size`` (cropped)."""
        raise NotImplementedError(f"{type(self).__name__} must implement logits(x)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)  # (B, C, H, W)
        height, width = self.output_size(x.shape[-2]), self.output_size(x.shape[-1])
        return self.logits(x)[..., :height, :width]  # (B, K, H', W'): cells keep the top-left corner

    def min_input_size(self) -> int:
        """The smallest height/width this model accepts."""
        return 1

    def output_size(self, input_size: int) -> int:
        """Height (or width) of the logits for an input of this height (or width)."""
        self._check_size(input_size)
        return input_size

    def deepest_path(self) -> nn.Sequential:
        """The layers from the input to the deepest feature, in order (for receptive fields)."""
        raise ValueError(f"{type(self).__name__} has no single chain of layers from the input to its deepest "
                         "feature, so its receptive field cannot be read from the layers: measure it with "
                         "seglab.arithmetic.measured_receptive_field(model)")

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


def _recording_arguments(init):
    """Wrap a model's ``__init__`` so that the outermost constructor's arguments (defaults included) are kept in
    ``constructor_arguments``: the arguments of the class the caller built, not of its base classes."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def recording_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if type(self).__init__ is recording_init:  # the outermost constructor (a subclass may inherit it)
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop(next(iter(signature.parameters)))  # self
            self.constructor_arguments = arguments

    return recording_init


def _plain(value):
    """A constructor argument as plain values: a model by its config, a dataclass as a dict."""
    if isinstance(value, SegmentationModel):
        return value.config
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value
