"""Convolution drawn as in Dumoulin and Visin's conv_arithmetic animations, for any parameters.

Blue: the input; white dashed: padding; dark: the cells the kernel reads for the highlighted output
cell (dilated kernels read every d-th cell); cyan: the output. A transposed convolution is drawn as
the direct convolution it equals: zeros inserted between the input pixels (s − 1 of them: the
"fractional stride"), padding d·(k − 1) − p on each side (plus output_padding at the end), stride 1.
"""

from __future__ import annotations

from seglab.arithmetic import conv_output_size, transposed_conv_output_size

__all__ = ["draw_convolution"]

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
