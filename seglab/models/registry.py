"""The models by name: one registry that ``build_model``, checkpoints, the command line and recipes read.

A builder is a keyword-only function that returns a :class:`SegmentationModel`; ``@register_model`` adds it.

>>> model = build_model("fcn8s", num_classes=5)
>>> model.config["name"], type(build_model(**model.config)).__name__
('fcn8s', 'FCN')
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from seglab.models.base import SegmentationModel

__all__ = ["MODELS", "build_model", "register_model", "trainable_models"]

#: Builders by name, as ``config["name"]``, the command line's ``--model`` and the recipes name them.
MODELS: dict[str, Callable[..., SegmentationModel]] = {}


def register_model(name: str):
    """Decorator: register a keyword-only model builder under ``name``."""

    def register(builder: Callable[..., SegmentationModel]):
        if name in MODELS:
            raise ValueError(f"model name {name!r} is taken by {MODELS[name].__qualname__}: choose another name")
        MODELS[name] = builder
        return builder

    return register


def build_model(name: str, **kwargs) -> SegmentationModel:
    """Build a model by name (``MODELS``), or rebuild one from its ``config`` dict.

    ``build_model(**model.config)`` gives a fresh model of the same architecture.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {sorted(MODELS)}")
    return MODELS[name](**kwargs)


def trainable_models() -> list[str]:
    """The models that a data set alone can build (all they need is ``num_classes`` and ``in_channels``): the
    command line's choices. The multi-scale wrappers also need a base model."""
    return [name for name, builder in MODELS.items()
            if all(parameter.default is not inspect.Parameter.empty or parameter.name in ("num_classes", "in_channels")
                   for parameter in inspect.signature(builder).parameters.values())]
