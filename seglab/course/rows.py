"""Stage 6 of grading, the rows: one :class:`GradeRow` per student and exercise, the grades CSV (written
atomically, appended per student so that an interrupted batch loses nothing, read back for ``--resume`` and
for joining shards) and the console table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seglab.course.graded import Course
from seglab.course.spreadsheet import append_rows, clean_text, read_rows, write_rows
from seglab.notebook.tables import table

__all__ = ["FIELDS", "NOT_GRADED", "GradeRow", "append_csv", "failed_rows", "merge_csvs", "points_table",
           "read_csv", "write_csv"]

NOT_GRADED = "(not graded)"  # the notebook column of a submission refused before it could be told
FIELDS = ("student", "notebook", "exercise", "points", "max", "message", "review")
OLD_FIELDS = FIELDS[:-1]  # grades CSVs written before the review column (read for --resume and merges)


@dataclass
class GradeRow:
    student: str
    notebook: str
    exercise: str
    points: float | str  # "" for an answer graded by hand, until it is
    max: float
    message: str
    review: str = ""  # what the scan noticed in code that ran: for the tutor to look at, never points


def failed_rows(student: str, notebook: str, course: Course, reason: str) -> list[GradeRow]:
    """The rows of a submission that could not be graded: every exercise of its notebook, with the reason."""
    graded = course.exercises.get(notebook)
    if not graded:
        return [GradeRow(student, notebook, "*", 0, 0, reason)]
    return [GradeRow(student, notebook, e.grade_id, 0 if e.kind == "check" else "", e.points, reason) for e in graded]


def write_csv(rows: list[GradeRow], path: str | Path) -> None:
    """Write all rows, atomically (a crash leaves the old file or the new one, never half of one); text is
    cleaned and formulas neutralised (:mod:`seglab.course.spreadsheet`; :func:`read_csv` undoes it)."""
    write_rows(path, [FIELDS, *([getattr(row, field) for field in FIELDS] for row in rows)])


def append_csv(rows: list[GradeRow], path: str | Path) -> None:
    """Add one student's rows to the CSV as soon as they are graded, on disk (one fsynced write) before the
    next student."""
    append_rows(path, [[getattr(row, field) for field in FIELDS] for row in rows], header=FIELDS)


def read_csv(path: str | Path) -> list[GradeRow]:
    """The rows of a grades CSV (``--resume`` reads what an interrupted batch wrote)."""
    header, *lines = read_rows(path) or [[]]
    if (header or lines) and set(header) not in (set(FIELDS), set(OLD_FIELDS)):
        raise ValueError(f"{path} is not a seglab grades CSV (columns {clean_text(', '.join(header))}): choose "
                         "another --out")
    column = {field: header.index(field) for field in FIELDS if field in header} if header else {}
    rows = []
    for number, line in enumerate(lines, start=2):
        if not line:
            continue
        if len(line) != len(header):
            if number == len(lines) + 1:  # a last line cut short by a crash while appending: graded again
                break
            raise ValueError(f"{path}, line {number}: {len(line)} cells, not {len(header)}")
        r = {field: line[index] for field, index in column.items()}
        try:
            rows.append(GradeRow(r["student"], r["notebook"], r["exercise"],
                                 "" if r["points"] == "" else float(r["points"]), float(r["max"]), r["message"],
                                 r.get("review", "")))
        except ValueError:
            raise ValueError(f"{path}, line {number}: points {r['points']!r} or max {r['max']!r} is not a number") \
                from None
    return rows


def merge_csvs(paths: list[str | Path]) -> list[GradeRow]:
    """The rows of several shards' CSVs together; a submission graded in two of them is an error."""
    rows, owner = [], {}
    for path in paths:
        own = read_csv(path)
        for student, notebook in sorted({(row.student, row.notebook) for row in own}):
            if (student, notebook) in owner:
                raise ValueError(f"{student}'s {notebook} is in both {owner[student, notebook]} and {path}: were the "
                                 "shards graded with different --shard counts, or one given twice?")
            owner[student, notebook] = str(path)
        rows += own
    return sorted(rows, key=lambda r: (r.student, r.notebook))


def points_table(rows: list[GradeRow]) -> str:
    """One line per student and notebook: automatic points / their maximum, and manual exercises."""
    totals: dict[tuple[str, str], list] = {}
    for row in rows:
        entry = totals.setdefault((row.student, row.notebook), [0.0, 0.0, 0])
        if row.points == "":
            entry[2] += 1
        else:
            entry[0] += float(row.points)
            entry[1] += float(row.max)
    # printed: a name may hold anything a file name can
    lines = [[clean_text(student), clean_text(notebook), f"{points:.1f} / {maximum:.1f}", manual]
             for (student, notebook), (points, maximum, manual) in sorted(totals.items())]
    return table(["student", "notebook", "points", "to grade by hand"], lines, markdown=False, align="<<>>")
