"""Grades for a learning platform: ``seglab export GRADES.csv --format moodle|wide``.

* ``wide``: one row per student, one column per exercise (``NN:grade_id``), one total per notebook and a
  ``total``; a question not yet graded by hand is empty.
* ``moodle``: what Moodle's *Import grades → CSV file* reads: a user column (mapped to Moodle's
  *username*, *ID number* or *email address* at import; ``--id-column`` names it), one grade column per
  notebook and its feedback column, and a total. Moodle reads an empty cell or ``-`` as "no grade" and
  a number with a ``.`` as the grade. seglab knows students by their submission's name (the file
  ``alice.ipynb`` or the folder ``submitted/alice/``); collect submissions under the Moodle username, or
  pass ``--roster`` (a CSV with columns ``student`` and ``moodle``) to translate.

Every text cell is cleaned and a cell a spreadsheet would run as a formula (it starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return) gets a leading ``'`` (:mod:`seglab.course.spreadsheet`);
numbers and Moodle's ``-`` are written as they are.
"""

from __future__ import annotations

from pathlib import Path

from seglab.course.spreadsheet import write_rows

__all__ = ["FORMATS", "ExportError", "moodle_table", "wide_table", "write_table"]

FORMATS = ("moodle", "wide")


class ExportError(ValueError):
    """Grades that cannot be exported as asked (a student missing from the roster, ...)."""


def _number(value: float) -> str:
    return f"{value:g}"


def _short(notebook: str) -> str:
    return notebook.removesuffix(".ipynb")


def _by_student(rows):
    students: dict[str, list] = {}
    for row in rows:
        students.setdefault(row.student, []).append(row)
    return dict(sorted(students.items()))


def wide_table(rows) -> list[list[str]]:
    """Header and one row per student; exercises in the order they come in the notebooks."""
    exercises = list(dict.fromkeys((row.notebook, row.exercise) for row in sorted(rows, key=lambda r: r.notebook)))
    notebooks = list(dict.fromkeys(notebook for notebook, _ in exercises))
    header = ["student"] + [f"{notebook[:2]}:{exercise}" for notebook, exercise in exercises]
    header += [f"{_short(notebook)} total" for notebook in notebooks] + ["total"]
    table = [header]
    for student, own in _by_student(rows).items():
        points = {(r.notebook, r.exercise): r.points for r in own}
        line = [student] + ["" if points.get(key, "") == "" else _number(float(points[key])) for key in exercises]
        totals = [sum(float(r.points) for r in own if r.notebook == notebook and r.points != "") for notebook in
                  notebooks]
        table.append(line + [_number(total) for total in totals] + [_number(sum(totals))])
    return table


def moodle_table(rows, *, id_column: str = "Username", roster: dict[str, str] | None = None) -> list[list[str]]:
    """Header and one row per student for Moodle's CSV grade import (see the module's docstring)."""
    notebooks = sorted({row.notebook for row in rows})
    header = [id_column]
    for notebook in notebooks:
        header += [_short(notebook), f"{_short(notebook)} feedback"]
    table = [[*header, "Total"]]
    missing = []
    for student, own in _by_student(rows).items():
        if roster is not None and student not in roster:
            missing.append(student)
            continue
        line, total = [roster[student] if roster is not None else student], 0.0
        for notebook in notebooks:
            mine = [r for r in own if r.notebook == notebook]
            if not mine:
                line += ["-", "no submission"]
                continue
            points = sum(float(r.points) for r in mine if r.points != "")
            ungraded = [r.exercise for r in mine if r.points == ""]
            maximum = sum(float(r.max) for r in mine)
            feedback = f"{_number(points)} of {_number(maximum)} points"
            if ungraded:
                feedback += f"; not yet graded by hand: {', '.join(ungraded)}"
            line += [_number(points), feedback]
            total += points
        table.append([*line, _number(total)])
    if missing:
        raise ExportError(f"not in the roster: {', '.join(missing)}; add them (columns student, moodle) and export "
                          "again")
    return table


def write_table(table: list[list[str]], path: str | Path) -> Path:
    """Write a table as UTF-8 CSV with a comma separator (what Moodle's import expects by default),
    atomically, text cleaned and formulas neutralised (:func:`seglab.course.spreadsheet.escape_cell`)."""
    return write_rows(path, table)
