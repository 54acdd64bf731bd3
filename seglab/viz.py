"""Figures: masks in the class palette, overlays, prediction galleries and training curves."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["LivePlot", "colorize", "draw_resolution_streams", "draw_unet", "overlay", "plot_feature_maps",
           "plot_history", "plot_receptive_field_growth", "show_predictions"]

IGNORE_COLOUR = (255, 255, 255)


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def colorize(mask, palette, ignore_index: int = 255) -> np.ndarray:
    """An RGB image ``(H, W, 3)`` uint8 of a label mask ``(H, W)``; ignored pixels are white."""
    mask = _numpy(mask).astype(np.int64)
    colours = np.zeros((256, 3), np.uint8)
    colours[: len(palette)] = np.asarray(palette, np.uint8)
    colours[ignore_index] = IGNORE_COLOUR
    if mask.min() < 0 or (mask.max() >= len(palette) and not np.all(mask[mask >= len(palette)] == ignore_index)):
        raise ValueError(f"mask values must be in [0, {len(palette)}) or {ignore_index}, "
                         f"got {mask.min()}..{mask.max()}")
    return colours[mask]


def _as_rgb(image) -> np.ndarray:
    """``(C, H, W)`` or ``(H, W)`` tensor/array -> ``(H, W, 3)`` float in [0, 1] (min-max scaled)."""
    image = _numpy(image).astype(np.float32)
    if image.ndim == 3:
        image = image.transpose(1, 2, 0)
        image = image[..., :3] if image.shape[-1] >= 3 else image[..., :1].repeat(3, -1)
    else:
        image = image[..., None].repeat(3, -1)
    low, high = image.min(), image.max()
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def overlay(image, mask, palette, alpha: float = 0.45, ignore_index: int = 255) -> np.ndarray:
    """The image with the mask's colours blended in (background, class 0, left unchanged)."""
    rgb = _as_rgb(image)
    colours = colorize(mask, palette, ignore_index).astype(np.float32) / 255
    blend = _numpy(mask) != 0
    rgb[blend] = (1 - alpha) * rgb[blend] + alpha * colours[blend]
    return rgb


def show_predictions(images, masks, predictions=None, *, palette, class_names=None, titles=None, max_images=6,
                     ignore_index: int = 255):
    """A gallery: one column per image; rows image, ground truth and (if given) each prediction.

    ``predictions`` is a label tensor ``(B, H, W)`` or a dict ``{name: labels}`` to compare models.
    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if predictions is not None and not isinstance(predictions, dict):
        predictions = {"prediction": predictions}
    predictions = predictions or {}
    count = min(len(images), max_images)
    rows = 2 + len(predictions)
    fig, axes = plt.subplots(rows, count, figsize=(1.9 * count, 1.9 * rows + 0.4), squeeze=False)
    for j in range(count):
        axes[0, j].imshow(_as_rgb(images[j]))
        axes[1, j].imshow(colorize(masks[j], palette, ignore_index))
        for i, labels in enumerate(predictions.values(), start=2):
            axes[i, j].imshow(colorize(labels[j], palette, ignore_index))
        if titles is not None:
            axes[0, j].set_title(titles[j], fontsize=8)
    for i, name in enumerate(["image", "ground truth", *predictions]):
        axes[i, 0].set_ylabel(name, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if class_names:
        handles = [Patch(color=np.asarray(c) / 255, label=n) for n, c in zip(class_names, palette, strict=False)]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 if class_names else 0, 1, 1))
    return fig


def plot_history(history, axes=None):
    """Loss and mIoU per epoch, training and validation; returns the figure."""
    import matplotlib.pyplot as plt

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
        ax.set_ylabel({"loss": "cross-entropy loss", "miou": "mIoU"}[metric])
        ax.grid(alpha=0.3)
        ax.legend()
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


def _layer_names(geometries) -> list[str]:
    """``conv1, conv2, pool1, …``: downsampling layers (stride > 1) counted apart, as VGG's pool1–pool5."""
    counts, names = {"conv": 0, "pool": 0}, []
    for geometry in geometries:
        kind = "pool" if geometry.stride > 1 else "conv"
        counts[kind] += 1
        names.append(f"{kind}{counts[kind]}")
    return names


def plot_receptive_field_growth(layers, names=None, image_size: int = 224):
    """Two panels: receptive-field size and jump (total stride) after each layer of a stack, and the
    receptive field of the central output pixel after each pooling drawn on an ``image_size`` canvas."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from seglab.arithmetic import _as_geometries, receptive_fields

    geometries = _as_geometries(layers)
    fields = receptive_fields(geometries)
    names = names or _layer_names(geometries)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    x = range(1, len(fields) + 1)
    left.plot(x, [f.size for f in fields], "o-", label="receptive field (pixels)")
    left.plot(x, [f.jump for f in fields], "s--", label="jump = total stride (pixels)")
    left.set_xticks(list(x))
    left.set_xticklabels(names, rotation=90, fontsize=7)
    left.set_yscale("log", base=2)
    left.grid(alpha=0.3)
    left.legend()
    left.set_title("growth layer by layer")
    right.add_patch(Rectangle((0, 0), image_size, image_size, facecolor="#eeeeee", edgecolor="black"))
    centre = image_size / 2
    downsampling = [n for n, g in enumerate(geometries) if g.stride > 1] or [len(geometries) - 1]
    colours = plt.cm.viridis([i / max(len(downsampling) - 1, 1) for i in range(len(downsampling))])
    for colour, n in zip(colours, downsampling, strict=True):
        size = fields[n].size
        right.add_patch(Rectangle((centre - size / 2, centre - size / 2), size, size, fill=False, edgecolor=colour,
                                  linewidth=2, label=f"after {names[n]}: {size:g} px, stride {fields[n].jump:g}"))
    margin = max(fields[n].size for n in downsampling) / 2 - image_size / 2
    lim = (-max(margin, 0) - 5, image_size + max(margin, 0) + 5)
    right.set_xlim(*lim)
    right.set_ylim(*lim)
    right.set_aspect("equal")
    right.legend(fontsize=7, loc="lower left")
    right.set_title(f"receptive field of the central pixel on a {image_size}x{image_size} image")
    fig.tight_layout()
    return fig


def draw_unet(depth: int = 4, base_channels: int = 64, merge: str = "skip", ax=None):
    """A schematic U-Net: one box per level of the contracting (left) and expanding (right) path with
    its channels, and the merges between them (skip = concatenation, short-cut = summation)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 1.1 * depth + 2))
    label = {"skip": "skip-connection (concatenate)", "shortcut": "short-cut (sum)", "none": None}[merge]

    def left(level):
        return level * 0.9

    def right(level):
        return (2 * depth - level) * 0.9

    def width(level):
        return 0.35 + 0.12 * level

    def arrow(start, end, **kwargs):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="->", mutation_scale=10, **kwargs))

    for level in range(depth + 1):
        channels, y = base_channels * 2 ** level, depth - level
        ax.add_patch(Rectangle((left(level), y), width(level), 0.6, color="#5b8fd6"))
        ax.text(left(level) + width(level) / 2, y + 0.3, str(channels), ha="center", va="center", fontsize=8,
                color="white")
        if level == depth:
            break
        merged = 2 * channels if merge == "skip" else channels
        ax.add_patch(Rectangle((right(level), y), width(level), 0.6, color="#5fd3d3"))
        ax.text(right(level) + width(level) / 2, y + 0.3, f"{merged}→{channels}", ha="center", va="center",
                fontsize=7)
        if label:
            arrow((left(level) + width(level), y + 0.3), (right(level), y + 0.3), color="grey", linestyle="--")
            ax.text((left(level) + right(level)) / 2, y + 0.38, label, ha="center", fontsize=7, color="grey")
        arrow((left(level) + width(level) / 2, y), (left(level + 1) + width(level + 1) / 2, y - 0.4))
        below = left(depth) if level + 1 == depth else right(level + 1)  # the bottleneck feeds the lowest stage
        arrow((below + width(level + 1) / 2, y - 0.4), (right(level) + width(level) / 2, y), color="#137d7d")
    ax.set_title("U-Net: contracting path (3x3 convs, 2x2 max-pool) and expanding path (2x2 up-conv, merge, "
                 "3x3 convs)", fontsize=9)
    ax.set_xlim(-0.3, right(0) + 1.0)
    ax.set_ylim(-0.3, depth + 0.9)
    ax.axis("off")
    return ax


def draw_resolution_streams(branches: int = 3, axes=None):
    """Two schematics side by side: an encoder–decoder, which gives up resolution and recovers it
    (merges at each level), and HRNet, which keeps a full-resolution stream from start to end and adds
    one lower-resolution stream per stage, with exchange units between all streams after every stage.
    Rows are resolutions (1, 1/2, 1/4, …), left to right is depth."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Rectangle

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(13, 0.9 * branches + 2.4), gridspec_kw={"width_ratios": [1, 1.35]})
    left, right = axes
    colours = plt.cm.Blues([0.85 - 0.5 * b / max(branches - 1, 1) for b in range(branches)])

    def block(ax, x, row, length, colour):
        ax.add_patch(Rectangle((x, -row - 0.25), length, 0.5, facecolor=colour, edgecolor="black", linewidth=0.6))

    def arrow(ax, start, end, **kwargs):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="->", mutation_scale=9, shrinkA=1, shrinkB=1, **kwargs))

    for row in range(branches):  # encoder-decoder: down to the lowest resolution, then back up
        left.text(-0.15, -row, f"1/{2 ** row}" if row else "1", ha="right", va="center", fontsize=8)
        block(left, row, row, 0.6, colours[row])
        block(left, 2 * (branches - 1) - row + 0.8, row, 0.6, colours[row])
        if row + 1 < branches:
            arrow(left, (row + 0.6, -row), (row + 1, -row - 1), color="black")
            arrow(left, (2 * (branches - 1) - row - 0.2 + 0.6, -row - 1), (2 * (branches - 1) - row + 0.8, -row),
                  color="black")
            arrow(left, (row + 0.6, -row + 0.1), (2 * (branches - 1) - row + 0.8, -row + 0.1), color="grey",
                  linestyle="--")
    left.set_title(f"encoder–decoder (U-Net): down to 1/{2 ** (branches - 1)}, then back up;\nmerges (dashed) "
                   "bring the detail back", fontsize=9)

    stage, length = 2.0, 1.3  # each stage: a block per stream, then a gap with the exchange unit
    for index in range(branches):
        for row in range(index + 1):
            block(right, index * stage, row, length, colours[row])
        x0, x1 = index * stage + length, (index + 1) * stage
        if index + 1 < branches:  # exchange: every stream to every stream of the next stage (and the new one)
            for a in range(index + 1):
                for b in range(index + 2):
                    arrow(right, (x0, -a), (x1, -b), color="black" if a == b else "#b8860b",
                          linewidth=1.0 if a == b else 0.7)
        else:  # the head: every stream upsampled to full resolution and concatenated
            block(right, x1, 0, 0.5, "#5fd3d3")
            for a in range(index + 1):
                arrow(right, (x0, -a), (x1, 0), color="#137d7d", linewidth=0.8)
            right.text(x1 + 0.6, 0, "head: all streams\nupsampled, concatenated", va="center", fontsize=8)
    for row in range(branches):
        right.text(-0.15, -row, f"1/{2 ** row}" if row else "1", ha="right", va="center", fontsize=8)
    right.set_title("HRNet: the full-resolution stream is kept throughout; lower streams are added,\n"
                    "and exchange units (gold) mix all streams after every stage", fontsize=9)
    for ax in axes:
        ax.set_ylim(-branches + 0.4, 0.7)
        ax.axis("off")
    left.set_xlim(-0.8, 2 * branches)
    right.set_xlim(-0.8, branches * stage + 2.6)
    return axes


def plot_feature_maps(model, image, *, channels: int = 6):
    """Feature maps of a U-Net's encoder levels for one image ``(C, H, W)``: shallow levels at the top
    (edges, exact positions), deep levels at the bottom (coarse, semantic). Shows the ``channels``
    maps of each level with the largest variance. Returns the figure."""
    import matplotlib.pyplot as plt

    features: list[torch.Tensor] = []
    hooks = [stage.register_forward_hook(lambda _m, _i, out: features.append(out.detach()))
             for stage in model.encoder]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(image[None].to(next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    fig, axes = plt.subplots(len(features), channels + 1, figsize=(1.6 * (channels + 1), 1.6 * len(features)),
                             squeeze=False)
    for row, feature in enumerate(features):
        maps = feature[0].cpu()
        order = maps.flatten(1).var(1).argsort(descending=True)[:channels]
        axes[row, 0].imshow(_as_rgb(image))
        axes[row, 0].set_ylabel(f"level {row}\n{maps.shape[-2]}x{maps.shape[-1]}", fontsize=8)
        for col, index in enumerate(order, start=1):
            axes[row, col].imshow(maps[index], cmap="viridis")
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("encoder feature maps, shallow (top) to deep (bottom)", fontsize=10)
    fig.tight_layout()
    return fig
