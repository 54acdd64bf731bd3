"""What the tests share beside their fixtures (tests/conftest.py): where the repository's folders are, and the
cells of a course notebook by their nbgrader ``grade_id``. Imported as ``tests.support`` (pyproject puts the
repository root on the tests' path)."""

from __future__ import annotations

from pathlib import Path

from seglab.course.notebooks import course_notebooks, nbgrader

__all__ = ["NOTEBOOKS", "ROOT", "SOLUTIONS", "all_by_grade_id", "by_grade_id", "cells_by_grade_id", "course_notebooks",
           "nbgrader"]

ROOT = Path(__file__).resolve().parents[1]  # the repository
SOLUTIONS = ROOT / "solutions"  # the tutor's notebooks
NOTEBOOKS = ROOT / "notebooks"  # the released student notebooks


def all_by_grade_id(notebook, grade_id: str) -> list:
    """Every cell of ``notebook`` whose nbgrader ``grade_id`` is ``grade_id`` (a student may have copied one)."""
    return [c for c in notebook.cells if nbgrader(c).get("grade_id") == grade_id]


def by_grade_id(notebook, grade_id: str):
    """The first cell of ``notebook`` with nbgrader ``grade_id`` (``StopIteration`` when there is none)."""
    return next(c for c in notebook.cells if nbgrader(c).get("grade_id") == grade_id)


def cells_by_grade_id(notebook, *, kind: str | None = None, code_only: bool = False) -> dict:
    """``{grade_id: cell}`` of the cells with nbgrader metadata; ``kind="solution"``: answer cells only,
    ``kind="grade"``: graded cells only."""
    return {nbgrader(c)["grade_id"]: c for c in notebook.cells
            if nbgrader(c).get("grade_id") and (kind is None or nbgrader(c).get(kind))
            and (not code_only or c.cell_type == "code")}
