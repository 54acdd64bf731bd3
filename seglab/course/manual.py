"""Hand grading: a sheet of every student's answers to the questions graded by hand, filled in by the
tutor and merged back into the grades.

``seglab grade`` writes the sheet beside the grades CSV (``grades-manual.csv`` for ``grades.csv``): one
row per student and question with the answer's text, the maximum, and empty ``points`` and ``comment``
columns. A re-run keeps every filled cell (a changed answer is flagged, its points kept). ``seglab grade
--manual SHEET`` checks the filled sheet (numbers between 0 and the maximum, known students and
questions) and merges it into the grades CSV; ``seglab grade`` itself merges the sheet it finds.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

__all__ = ["ManualEntry", "ManualSheetError", "answer_text", "collect_answers", "merge_manual", "read_entries",
           "read_sheet", "sheet_path", "write_sheet"]

FIELDS = ("student", "notebook", "question", "max", "points", "comment", "answer")
CHANGED = "[answer changed since it was graded] "


class ManualSheetError(ValueError):
    """A filled sheet that cannot be merged; the message lists every problem with its line."""


@dataclass
class ManualEntry:
    student: str
    notebook: str
    question: str
    max: float
    points: str  # "" until graded
    comment: str
    answer: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.student, self.notebook, self.question


def sheet_path(grades_csv: str | Path) -> Path:
    """Where the sheet for ``grades.csv`` lives: ``grades-manual.csv`` beside it."""
    grades_csv = Path(grades_csv)
    return grades_csv.with_name(f"{grades_csv.stem}-manual.csv")


def answer_text(source: str) -> str:
    """A hand-graded answer without the release's placeholder (empty: not answered)."""
    lines = [line for line in source.splitlines() if line.strip() not in ("YOUR ANSWER HERE",)]
    return "\n".join(lines).strip()


def collect_answers(path: str | Path, exercises) -> list[ManualEntry]:
    """The answers to hand-graded questions in the submissions at ``path`` (see ``grade.collect_submissions``)."""
    from seglab.course.grade import _identify, collect_submissions

    entries = []
    for student, file in collect_submissions(path):
        try:
            notebook = nbformat.read(file, as_version=4)
        except Exception:  # the grades CSV says why; there is no answer to grade
            continue
        name = _identify(notebook, file, exercises)
        if name is None:
            continue
        sources = {cell.metadata.get("nbgrader", {}).get("grade_id"): cell.source for cell in notebook.cells}
        for exercise in exercises[name]:
            if exercise.kind == "manual":
                answer = answer_text(sources.get(exercise.grade_id, ""))
                entries.append(ManualEntry(student, name, exercise.grade_id, exercise.points, "", "",
                                           answer or "(no answer)"))
    return entries


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    if rows and not set(FIELDS) <= set(rows[0]):
        raise ManualSheetError(f"{path} is not a seglab hand-grading sheet: it needs the columns {', '.join(FIELDS)}")
    return rows


def write_sheet(entries: list[ManualEntry], path: str | Path) -> Path:
    """Write the sheet, keeping the points and comments already filled in at ``path`` (atomically)."""
    path = Path(path)
    filled = {(r["student"], r["notebook"], r["question"]): r for r in _read(path)} if path.exists() else {}
    merged = {}
    for entry in entries:
        old = filled.pop(entry.key, None)
        if old is not None and (old["points"].strip() or old["comment"].strip()):
            entry.points, entry.comment = old["points"], old["comment"]
            if old["answer"] != entry.answer and not entry.comment.startswith(CHANGED):
                entry.comment = CHANGED + entry.comment
        merged[entry.key] = entry
    for key, old in filled.items():  # graded before, not among these submissions: never dropped
        merged[key] = ManualEntry(old["student"], old["notebook"], old["question"], float(old["max"]), old["points"],
                                  old["comment"], old["answer"])
    with tempfile.NamedTemporaryFile("w", newline="", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(asdict(entry) for entry in sorted(merged.values(), key=lambda e: e.key))
    os.replace(file.name, path)
    return path


def read_entries(path: str | Path) -> list[ManualEntry]:
    """Every row of a sheet as it stands (filled or not), e.g. to join the sheets of shards."""
    return [ManualEntry(r["student"], r["notebook"], r["question"], float(r["max"]), r["points"], r["comment"],
                        r["answer"]) for r in _read(Path(path))]


def read_sheet(path: str | Path, rows, exercises) -> list[ManualEntry]:
    """The graded entries of a filled sheet, checked against the grades ``rows`` and the course's
    ``exercises`` (``grade.load_exercises``: which questions are graded by hand, and their maxima)."""
    path = Path(path)
    if not path.is_file():
        raise ManualSheetError(f"no hand-grading sheet at {path}: `seglab grade` writes one beside the grades CSV")
    manual = {(name, e.grade_id): e.points for name, found in exercises.items() for e in found if e.kind == "manual"}
    known = {(r.student, r.notebook, r.exercise) for r in rows if (r.notebook, r.exercise) in manual}
    students = {r.student for r in rows}
    problems, entries = [], []
    for line, raw in enumerate(_read(path), start=2):
        key = (raw["student"], raw["notebook"], raw["question"])
        if raw["student"] not in students:
            problems.append(f"line {line}: unknown student {raw['student']!r} (not in the grades)")
            continue
        if key not in known:
            problems.append(f"line {line}: {raw['student']} has no hand-graded question {raw['question']!r} in "
                            f"{raw['notebook']}")
            continue
        text = raw["points"].strip()
        if not text:
            continue  # not graded yet
        maximum = manual[raw["notebook"], raw["question"]]
        try:
            points = float(text.replace(",", "."))
        except ValueError:
            problems.append(f"line {line}: points {text!r} for {raw['student']}, {raw['question']} is not a number")
            continue
        if not 0 <= points <= maximum:
            problems.append(f"line {line}: points {text} for {raw['student']}, {raw['question']} are outside 0 to "
                            f"{maximum:g}")
            continue
        entries.append(ManualEntry(*key, maximum, f"{points:g}", raw["comment"], raw["answer"]))
    if problems:
        raise ManualSheetError(f"{path}: nothing merged; fix these lines and run again:\n  " + "\n  ".join(problems))
    return entries


def merge_manual(rows, entries: list[ManualEntry]):
    """The grades ``rows`` with the hand-graded points and comments of ``entries`` filled in."""
    graded = {entry.key: entry for entry in entries}
    for row in rows:
        entry = graded.get((row.student, row.notebook, row.exercise))
        if entry is not None:
            row.points = float(entry.points)
            row.message = f"graded by hand: {entry.comment}" if entry.comment else "graded by hand"
    return rows
