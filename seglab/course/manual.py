"""Hand grading: a sheet of every student's answers to the questions graded by hand, filled in by the
tutor and merged back into the grades.

``seglab grade run`` writes the sheet beside the grades CSV (``grades-manual.csv`` for ``grades.csv``): one
row per student and question with the answer's text, the maximum, and empty ``points`` and ``comment``
columns. A re-run keeps every filled cell (a changed answer is flagged, its points kept). ``seglab grade
manual SHEET`` checks the filled sheet (numbers between 0 and the maximum, known students and
questions) and merges it into the grades CSV; ``seglab grade run`` itself merges the sheet it finds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seglab.course.plan import identify
from seglab.course.spreadsheet import clean_text, read_rows, write_rows
from seglab.course.submissions import Submission, collect, parse_submission

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


ANSWER_CHARACTERS = 30_000  # of an answer in the sheet (a spreadsheet cell holds at most 32767)


def _answer_cell(text: str) -> str:
    text = clean_text(text)
    return text if len(text) <= ANSWER_CHARACTERS else text[:ANSWER_CHARACTERS] + " [... cut: see the notebook]"


def _sources(submission, course):
    """``(notebook, {grade_id: answer source})`` of one submission, or ``None`` (the grades say why): answers
    told by the tutor's release (:mod:`seglab.course.plan`), never by labels a student can edit."""
    plan = identify(parse_submission(submission.data), submission.name, course)
    if plan is None:
        return None
    return plan.release.name, {gid: plan.answer_source(gid) for gid in plan.release.answers}


def collect_answers(path, course) -> list[ManualEntry]:
    """The answers to hand-graded questions in the submissions at ``path`` (a folder, a notebook, a zip:
    :func:`seglab.course.submissions.collect`; refused submissions have no answer to grade).
    ``course``: the grader's :class:`seglab.course.graded.Course`."""
    found = course.exercises
    entries: dict[tuple[str, str, str], ManualEntry] = {}
    submissions = path if isinstance(path, list) else collect(path)
    for submission in submissions:
        if not isinstance(submission, Submission) or not submission.ok:
            continue
        try:
            sources = _sources(submission, course)
        except Exception:  # not a notebook, or one the grader refuses: the grades CSV says why
            continue
        if sources is None:
            continue
        name, answers = sources
        for exercise in found.get(name, []):
            if exercise.kind == "manual":
                answer = _answer_cell(answer_text(answers.get(exercise.grade_id, "") or ""))
                entry = ManualEntry(submission.student, name, exercise.grade_id, exercise.points, "", "",
                                    answer or "(no answer)")
                entries.setdefault(entry.key, entry)  # a second copy of a notebook: the first one counts
    return list(entries.values())


def _read(path: Path) -> list[dict]:
    header, *lines = read_rows(path) or [[]]
    if (header or lines) and not set(FIELDS) <= set(header):
        raise ManualSheetError(f"{path} is not a seglab hand-grading sheet: it needs the columns {', '.join(FIELDS)}")
    rows = []
    for line in lines:
        if not any(cell.strip() for cell in line):
            continue  # a blank line a spreadsheet left
        rows.append({name: line[index] if index < len(line) else "" for index, name in enumerate(header)})
    return rows


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ManualSheetError(f"{what}: the maximum {text!r} is not a number (the sheet was edited?)") from None


def write_sheet(entries: list[ManualEntry], path: str | Path) -> Path:
    """Write the sheet, keeping the points and comments already filled in at ``path`` (atomically). Text
    is cleaned and cells that a spreadsheet would run as a formula are escaped
    (:mod:`seglab.course.spreadsheet`); :func:`read_entries` gives back what was written."""
    path = Path(path)
    filled = {(r["student"], r["notebook"], r["question"]): r for r in _read(path)} if path.exists() else {}
    merged = {}
    for entry in entries:
        entry = ManualEntry(*(clean_text(v) for v in entry.key), entry.max, clean_text(entry.points),
                            clean_text(entry.comment), clean_text(entry.answer))
        old = filled.pop(entry.key, None)
        if old is not None and (old["points"].strip() or old["comment"].strip()):
            entry.points, entry.comment = old["points"], old["comment"]
            if old["answer"] != entry.answer and not entry.comment.startswith(CHANGED):
                entry.comment = CHANGED + entry.comment
        merged[entry.key] = entry
    for key, old in filled.items():  # graded before, not among these submissions: never dropped
        merged[key] = ManualEntry(old["student"], old["notebook"], old["question"],
                                  _number(old["max"], f"{path}: {old['student']}, {old['question']}"), old["points"],
                                  old["comment"], old["answer"])
    write_rows(path, [FIELDS, *([getattr(entry, field) for field in FIELDS]
                                for entry in sorted(merged.values(), key=lambda e: e.key))])
    return path


def read_entries(path: str | Path) -> list[ManualEntry]:
    """Every row of a sheet as it stands (filled or not), e.g. to join the sheets of shards."""
    return [ManualEntry(r["student"], r["notebook"], r["question"], _number(r["max"], f"{path}, line {line}"),
                        r["points"], r["comment"], r["answer"]) for line, r in enumerate(_read(Path(path)), start=2)]


def read_sheet(path: str | Path, rows, course) -> list[ManualEntry]:
    """The graded entries of a filled sheet, checked against the grades ``rows`` and the grader's ``course``
    (:class:`seglab.course.graded.Course`: which questions are graded by hand, and their maxima)."""
    path = Path(path)
    if not path.is_file():
        raise ManualSheetError(f"no hand-grading sheet at {path}: `seglab grade run` writes one beside the grades CSV")
    manual = {(name, e.grade_id): e.points for name, found in course.exercises.items() for e in found
              if e.kind == "manual"}
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
