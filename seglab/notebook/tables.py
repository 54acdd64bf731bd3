"""Plain-text tables: results in notebooks and benchmarks (Markdown), and the command line's listings.

Every table seglab prints goes through :func:`table`.
"""

from __future__ import annotations

__all__ = ["table"]


def table(header: list[str] | None, rows: list[list], digits: int = 3, *, markdown: bool = True,
          align: str | None = None) -> str:
    """A table of ``rows`` under ``header``; floats are printed with ``digits`` decimals.

    ``markdown=True``: a Markdown table (notebooks, benchmarks/README.md). ``markdown=False``: columns two
    spaces apart and a rule under the header (the command line); ``header=None`` leaves both out.
    ``align``: one ``<`` (left) or ``>`` (right) per column; by default numbers are right-aligned.

    >>> print(table(["model", "mIoU"], [["unet", 0.9451]]))
    | model | mIoU  |
    |-------|-------|
    | unet  | 0.945 |
    >>> print(table(["class", "IoU"], [["background", 0.98], ["disc", 0.9]], markdown=False))
    class         IoU
    -----------------
    background  0.980
    disc        0.900
    """
    body = [[f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    columns = len(header) if header is not None else max((len(row) for row in rows), default=0)
    if align is None:
        numeric = [bool(rows) and all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows)
                   for i in range(columns)]
        align = "".join(">" if number else "<" for number in numeric)
    if len(align) != columns or set(align) - {"<", ">"}:
        raise ValueError(f"align must be one '<' or '>' per column ({columns}), got {align!r}")
    cells = ([list(header)] if header is not None else []) + body
    widths = [max(len(r[i]) for r in cells) for i in range(columns)]

    def line(row: list[str], separator: str) -> str:
        return separator.join(c.rjust(w) if a == ">" else c.ljust(w) for c, w, a in zip(row, widths, align,
                                                                                       strict=True))

    if markdown:
        lines = ["| " + line(row, " | ") + " |" for row in cells]
        if header is not None:
            lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)
    lines = [line(row, "  ").rstrip() for row in cells]
    if header is not None:
        lines.insert(1, "-" * (sum(widths) + 2 * (columns - 1)))
    return "\n".join(lines)
