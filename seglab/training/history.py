"""``History``: what ``fit`` records per epoch (losses, metrics, speed), with its training curves."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["History"]


@dataclass
class History:
    """One dict per finished epoch: ``epoch``, ``train_loss``, ``train_pixel_accuracy``,
    ``train_miou``, ``val_loss``, ``val_pixel_accuracy``, ``val_miou``, ``val_iou`` (per class),
    ``lr``, ``images_per_second``, ``seconds``, ``threads`` (CPU threads at the epoch's end).
    ``history["val_miou"]`` gives one column."""

    epochs: list[dict] = field(default_factory=list)
    class_names: tuple[str, ...] | None = None
    stop_reason: str | None = None  # "interrupted", "non-finite loss", or None when it ran to the end

    def __getitem__(self, key: str) -> list:
        return [epoch.get(key) for epoch in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def last(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "class_names": self.class_names, "stop_reason": self.stop_reason}

    @classmethod
    def from_dict(cls, state: dict) -> History:
        names = state.get("class_names")
        return cls(list(state.get("epochs", [])), tuple(names) if names else None, state.get("stop_reason"))

    def plot(self, axes=None, title: str | None = None):
        """Loss and mIoU per epoch (train and validation): returns the matplotlib figure."""
        from seglab.notebook.curves import plot_history

        return plot_history(self, axes=axes, title=title)
