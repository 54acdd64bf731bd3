"""What the grader knows of the course, all read from the tutor's solutions: the graded cells of every notebook
(:class:`GradedCell`: an automatic check or an answer graded by hand) and each notebook's release (how a
submission's cells are told apart, :mod:`seglab.course.plan`)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import nbformat

from seglab.course.notebooks import course_notebooks, nbgrader
from seglab.course.plan import Release, load_release, released_as

__all__ = ["Course", "GradedCell", "check_call", "load_course", "released_course", "released_notebooks"]


@dataclass(frozen=True)
class GradedCell:
    """A cell of a solution notebook that earns points (the exercise itself is a
    :class:`seglab.checks.Exercise`)."""

    notebook: str  # solution file name, e.g. "01_convolution_arithmetic.ipynb"
    grade_id: str
    points: float
    kind: str  # "check": graded automatically; "manual": an answer cell graded by hand
    source: str  # the official check cell (hidden tests included)
    objects: tuple[str, ...] = ()  # a check's arguments: the names of the student's answer
    cases: int | None = None  # the most cases the official check cell asks for

    @property
    def exercise_id(self) -> str:
        """The exercise a check cell checks (``check_conv_output_size`` checks ``conv_output_size``)."""
        return self.grade_id.removeprefix("check_")


def check_call(source: str) -> tuple[str, tuple[str, ...], int | None]:
    """``(exercise id, names of the objects checked, most cases asked for)`` of an official check cell
    such as ``check_conv_output_size(conv_output_size)`` followed by hidden ``..., cases=300)``.

    >>> check_call("check_conv_output_size(conv_output_size)\\ncheck_conv_output_size(conv_output_size, cases=300)")
    ('conv_output_size', ('conv_output_size',), 300)
    """
    calls = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name) and node.func.id.startswith("check_")]
    if not calls:
        raise ValueError(f"a check cell must call a check_<exercise>(...) function: {source[:80]!r}")
    first = min(calls, key=lambda node: (node.lineno, node.col_offset))
    names = tuple(arg.id for arg in first.args if isinstance(arg, ast.Name))
    if len(names) != len(first.args):
        raise ValueError(f"a check's arguments must be names of the student's objects: {source[:80]!r}")
    cases = [kw.value.value for node in calls for kw in node.keywords
             if kw.arg == "cases" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, int)]
    return first.func.id.removeprefix("check_"), names, max(cases, default=None)


@dataclass
class Course:
    """The graded cells and the release of every solution notebook, by notebook file name."""

    exercises: dict[str, list[GradedCell]]
    releases: dict[str, Release]


def load_course(solutions_dir: str | Path = "solutions") -> Course:
    """The graded cells and the release of every solution notebook in ``solutions_dir``."""
    return _course(Path(solutions_dir), released=False)


def released_notebooks() -> Path:
    """Where the released notebooks are for ``seglab check``: inside the installed package (the kit's wheel
    carries them), else the ``notebooks/`` of the repository an editable install points at."""
    import seglab

    package = Path(seglab.__file__).resolve().parent
    inside = package / "course" / "released"
    return inside if course_notebooks(inside) else package.parent / "notebooks"


def released_course(notebooks_dir: str | Path | None = None) -> Course:
    """The course as the student's kit has it: the released notebooks, their public checks (no hidden tests:
    a check's cases are the exercise's public count). What ``seglab check`` plans and grades with."""
    return _course(Path(notebooks_dir) if notebooks_dir is not None else released_notebooks(), released=True)


def _course(folder: Path, *, released: bool) -> Course:
    found: dict[str, list[GradedCell]] = {}
    releases: dict[str, Release] = {}
    for path in course_notebooks(folder):
        notebook = nbformat.read(path, as_version=4)
        graded = []
        for cell in notebook.cells:
            meta = nbgrader(cell)
            if not meta.get("grade"):
                continue
            kind = "manual" if meta.get("solution") else "check"
            objects, cases = (), None
            if kind == "check":
                exercise_id, objects, cases = check_call(cell.source)
                if f"check_{exercise_id}" != meta["grade_id"]:
                    raise ValueError(f"{path.name}: the check cell {meta['grade_id']!r} calls check_{exercise_id}")
            graded.append(GradedCell(path.name, meta["grade_id"], float(meta.get("points", 0)), kind, cell.source,
                                     objects, cases))
        found[path.name] = graded
        releases[path.name] = released_as(notebook, path.name) if released else load_release(notebook, path.name)
    if not found:
        if released:
            raise FileNotFoundError(f"no released notebooks in {folder}: reinstall seglab from the course's wheel")
        raise FileNotFoundError(f"no solution notebooks in {folder.resolve()}: pass --solutions")
    return Course(found, releases)
