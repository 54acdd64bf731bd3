"""Plain-text tables for results (notebooks, benchmarks, the command line)."""

from __future__ import annotations

__all__ = ["table"]


def table(header: list[str], rows: list[list], digits: int = 3) -> str:
    """A Markdown table; floats are printed with ``digits`` decimals.

    >>> print(table(["model", "mIoU"], [["unet", 0.9451]]))
    | model | mIoU  |
    |-------|-------|
    | unet  | 0.945 |
    """
    cells = [list(header)] + [[f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
