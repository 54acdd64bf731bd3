"""Checkpoints: written atomically (a crash never leaves a half-written file), read with clear errors, and
the model rebuilt from the config it holds (``seglab.models.build_model``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from seglab.files import atomic_writer
from seglab.training.history import History

__all__ = ["atomic_write", "load_checkpoint", "load_model", "save_checkpoint"]


def save_checkpoint(path: str | Path, *, model: nn.Module, optimizer=None, scaler=None, epoch: int = 0,
                    history: History | None = None) -> Path:
    """Write a checkpoint atomically: to a temporary file in the same folder, then renamed over
    ``path``, so an interrupted save never leaves a broken checkpoint behind. (No scheduler state: resuming
    replays the schedule, which may be planned for more epochs than the first run.)"""
    import seglab

    state = {
        "seglab_version": seglab.__version__,
        "model": model.state_dict(),
        "config": getattr(model, "config", None),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "epoch": epoch,
        "history": (history or History()).to_dict(),
    }
    return atomic_write(state, path)


def atomic_write(obj, path: str | Path) -> Path:
    """``torch.save(obj, path)`` through a temporary file in the same folder and an atomic rename."""
    with atomic_writer(path) as file:
        torch.save(obj, file)
    return Path(path)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, with a clear error when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train first (seglab train ... --checkpoint {path})")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:
        raise ValueError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error}); it may be "
                         "truncated or from another program: train again or use an earlier checkpoint") from error
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise ValueError(f"{path} is a PyTorch file but not a seglab checkpoint (no 'model' and 'epoch' entries)")
    return state


def load_model(path: str | Path, map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model saved in a checkpoint from its config and load its weights."""
    from seglab.models import build_model

    state = load_checkpoint(path, map_location)
    if not state.get("config"):
        raise ValueError(f"{path} has no model config, so the model cannot be rebuilt: build it yourself and "
                         "load state['model']")
    model = build_model(**state["config"])
    model.load_state_dict(state["model"])
    return model, state
