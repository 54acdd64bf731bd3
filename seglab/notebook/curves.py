"""Training curves: loss and mIoU per epoch, drawn once (``History.plot``) or live while ``fit`` trains."""

from __future__ import annotations

__all__ = ["LivePlot", "plot_history"]


PANEL_TITLES = {
    "loss": "loss: both curves should fall",
    "miou": "mIoU: validation far below training = overfitting",
}


def plot_history(history, axes=None, title: str | None = None):
    """Loss and mIoU per epoch, training and validation; returns the figure.

    Each panel's title says what to look for; ``title`` (a run's name, say) goes above both.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    else:
        fig = axes[0].figure
    epochs = history["epoch"]
    for ax, metric in zip(axes, ("loss", "miou"), strict=True):
        ax.plot(epochs, history[f"train_{metric}"], "o-", label="train", markersize=3)
        if any(v is not None for v in history[f"val_{metric}"]):
            ax.plot(epochs, history[f"val_{metric}"], "o-", label="validation", markersize=3)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel({"loss": "cross-entropy loss", "miou": "mIoU"}[metric])
        ax.set_title(PANEL_TITLES[metric], fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


class LivePlot:
    """Training curves that redraw in place in a notebook after every epoch (a no-op elsewhere)."""

    def __init__(self):
        self.handle = None

    def update(self, history) -> None:
        import matplotlib.pyplot as plt

        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is None:
            return
        fig = plot_history(history)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)
