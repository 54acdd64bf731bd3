"""``eval_mode``: a model in evaluation mode for the length of a ``with`` block, then as it was."""

from __future__ import annotations

import contextlib

from torch import nn

__all__ = ["eval_mode"]


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """``model.eval()`` inside the block (BatchNorm uses its running statistics, Dropout is off); afterwards
    the model is back in the mode it had, also when the block raises.

    >>> model = nn.Dropout().train()
    >>> with eval_mode(model):
    ...     model.training
    False
    >>> model.training
    True
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
