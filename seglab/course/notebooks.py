"""The course's notebooks on disk (``NN_name.ipynb``) and the nbgrader metadata of their cells.

>>> import nbformat
>>> cell = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade": True, "grade_id": "x"}})
>>> nbgrader(cell)["grade_id"], nbgrader(nbformat.v4.new_code_cell("y = 2"))
('x', {})
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["NOTEBOOK_PATTERN", "course_notebooks", "nbgrader"]

NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"  # 00_am_i_prepared.ipynb ... : the course's notebooks, in order


def course_notebooks(folder: str | Path) -> list[Path]:
    """The course's notebooks in ``folder`` (solutions/ or notebooks/), in the order they are taught."""
    return sorted(Path(folder).glob(NOTEBOOK_PATTERN))


def nbgrader(cell) -> dict:
    """A cell's nbgrader metadata (``grade``, ``solution``, ``grade_id``, ``points`` ...), ``{}`` when it has
    none or when what it has is not a mapping (a hand-edited notebook)."""
    meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell.get("metadata"), dict) else {}
    return meta if isinstance(meta, dict) else {}
