"""Figures of what a network sees and predicts: masks in the class palette, overlays, prediction galleries,
feature maps and the growth of the receptive field."""

from __future__ import annotations

import numpy as np
import torch

from seglab.training.modes import eval_mode

__all__ = ["colorize", "overlay", "plot_feature_maps", "plot_receptive_field_growth", "show_predictions"]

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
                     ignore_index: int = 255, title: str | None = None):
    """A gallery: one column per image; rows image, ground truth and (if given) each prediction.

    ``predictions`` is a label tensor ``(B, H, W)`` or a dict ``{name: labels}`` to compare models.
    ``titles`` label the columns; ``title`` is the figure's own, a line on what to look at.
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
    top = 1.0
    if title:  # wrapped to the figure's width, with room of its own above the first row
        import textwrap

        width, height = fig.get_size_inches()
        lines = textwrap.wrap(title, width=max(20, int(width * 12)))  # about 12 characters per inch at 10 pt
        fig.suptitle("\n".join(lines), fontsize=10, y=1 - 0.05 / height)
        top = 1 - (0.1 + 0.2 * len(lines)) / height
    fig.tight_layout(rect=(0, 0.06 if class_names else 0, 1, top))
    return fig


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

    from seglab.arithmetic import as_geometries, receptive_fields

    geometries = as_geometries(layers)
    fields = receptive_fields(geometries)
    names = names or _layer_names(geometries)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.2, 1]})
    x = range(1, len(fields) + 1)
    left.plot(x, [f.size for f in fields], "o-", label="receptive field (pixels)")
    left.plot(x, [f.jump for f in fields], "s--", label="jump = total stride (pixels)")
    left.set_xticks(list(x))
    left.set_xticklabels(names, rotation=90, fontsize=8)
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
    right.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)  # beside the image
    right.set_title(f"receptive field of the central pixel\non a {image_size}x{image_size} image")
    fig.tight_layout()
    return fig


def plot_feature_maps(model, image, *, channels: int = 6):
    """Feature maps of a U-Net's encoder levels for one image ``(C, H, W)``: shallow levels at the top
    (edges, exact positions), deep levels at the bottom (coarse, semantic). Shows the ``channels``
    maps of each level with the largest variance. Returns the figure."""
    import matplotlib.pyplot as plt

    features: list[torch.Tensor] = []
    hooks = [stage.register_forward_hook(lambda _m, _i, out: features.append(out.detach()))
             for stage in model.encoder]
    try:
        with eval_mode(model), torch.no_grad():
            model(image[None].to(next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
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
