"""Schematic drawings: a convolution (as in Dumoulin and Visin's conv_arithmetic animations, for any
parameters), a U-Net, and resolution streams (an encoder-decoder beside HRNet).

In the convolution, blue is the input; white dashed: padding; dark: the cells the kernel reads for the
highlighted output cell (dilated kernels read every d-th cell); cyan: the output. A transposed convolution is drawn as
the direct convolution it equals: zeros inserted between the input pixels (s − 1 of them: the
"fractional stride"), padding d·(k − 1) − p on each side (plus output_padding at the end), stride 1.
"""

from __future__ import annotations

from seglab.arithmetic import conv_output_size, transposed_conv_output_size

__all__ = ["draw_convolution", "draw_resolution_streams", "draw_unet"]

INPUT, PADDING, INSERTED, READ, OUTPUT, CURRENT = "#5b8fd6", "#ffffff", "#e8eef8", "#1d3c6e", "#5fd3d3", "#137d7d"


def _cells(ax, origin_x, n, colour_of, edge_of=lambda r, c: "#333333", style_of=lambda r, c: "-"):
    from matplotlib.patches import Rectangle

    for r in range(n):
        for c in range(n):
            ax.add_patch(Rectangle((origin_x + c, n - 1 - r), 1, 1, facecolor=colour_of(r, c), edgecolor=edge_of(r, c),
                                   linestyle=style_of(r, c), linewidth=0.8))


def draw_convolution(i: int = 5, k: int = 3, s: int = 1, p: int = 0, d: int = 1, *, transposed: bool = False,
                     output_padding: int = 0, position: tuple[int, int] = (0, 0), ax=None):
    """Draw an ``i x i`` input, the kernel's footprint for output cell ``position`` and the output.

    Returns the matplotlib axes; the title gives the output size from :mod:`seglab.arithmetic`.
    """
    import matplotlib.pyplot as plt

    if transposed:
        o = transposed_conv_output_size(i, k, s, p, d, output_padding)
        inner = (i - 1) * s + 1  # input with s - 1 zeros between pixels
        before = d * (k - 1) - p  # the equivalent direct convolution's padding
        if before < 0:
            raise ValueError(f"padding p={p} is larger than d(k-1)={d * (k - 1)}: the drawing shows the equivalent "
                             "direct convolution, which needs p <= d(k-1)")
        n = inner + 2 * before + output_padding
        stride = 1

        def kind(r, c):
            rr, cc = r - before, c - before
            if 0 <= rr < inner and 0 <= cc < inner:
                return "input" if rr % s == 0 and cc % s == 0 else "inserted"
            return "padding"
    else:
        o = conv_output_size(i, k, s, p, d)
        n, stride = i + 2 * p, s

        def kind(r, c):
            return "input" if p <= r < p + i and p <= c < p + i else "padding"

    row, col = min(position[0], o - 1), min(position[1], o - 1)
    reads = {(row * stride + a * d, col * stride + b * d) for a in range(k) for b in range(k)}
    colours = {"input": INPUT, "padding": PADDING, "inserted": INSERTED}

    if ax is None:
        _, ax = plt.subplots(figsize=(0.32 * (n + o + 3) + 1, 0.32 * max(n, o) + 1))
    _cells(ax, 0, n, lambda r, c: READ if (r, c) in reads else colours[kind(r, c)],
           style_of=lambda r, c: "--" if kind(r, c) != "input" else "-")
    offset = n + 2
    _cells(ax, offset, o, lambda r, c: CURRENT if (r, c) == (row, col) else OUTPUT)
    ax.annotate("", xy=(offset - 0.3, n / 2), xytext=(n + 0.3, n / 2), arrowprops={"arrowstyle": "->"})
    ax.set_xlim(-0.5, offset + o + 0.5)
    ax.set_ylim(-0.5, max(n, o) + 0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    name = "transposed convolution" if transposed else "convolution"
    extra = f", output_padding={output_padding}" if transposed else ""
    ax.set_title(f"{name}, output {o}x{o}\ni={i}, k={k}, s={s}, p={p}, d={d}{extra}", fontsize=9)
    return ax


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

    def width(level):  # wide enough for the right boxes' "128→64"
        return 0.5 + 0.1 * level

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
            if level == 0:  # named once, where the gap is widest: the dashed arrows below are the same merge
                ax.text((left(level) + width(level) + right(level)) / 2, y + 0.38, label + " at every level",
                        ha="center", fontsize=7, color="grey")
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
