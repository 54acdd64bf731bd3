"""``seglab check``: a student's own run of a notebook before handing it in, the grader's twin.

It does what grading will do, on the student's machine: the notebook is told apart from the release that the
kit's wheel carries (:mod:`seglab.course.plan`: which cell is an answer, a check, the student's own), every cell
of the student's code is read with the grader's scan (:mod:`seglab.course.scan`: a cell grading would refuse is
a ✘ row with its line, the reason and the fix), and the grader's notebook runs in a fresh kernel: its guard
first, the student's cells but those refused, and in place of each check cell a probe on fresh random cases
(the public check's number of them), judged with the grader's own judge (:mod:`seglab.course.judge`). Every
graded cell of the release is listed, present or not: the public check's points and ✔/✘, "not implemented
yet", "answer graded by hand", or missing with how to restore it. Hidden checks (the same checks on many more
random cases) run only at grading. ``submission_zip`` packs the notebook, unchanged, with its SHA-256 in the
file name and in a manifest, so student and tutor can tell that they speak of the same file.

Nothing here needs the tutor's solutions: the release is the kit's.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import textwrap
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from seglab.checks import exercise
from seglab.course.execute import execute_notebook
from seglab.course.graded import released_course
from seglab.course.judge import Attempt, after_refusal, judge
from seglab.course.plan import identify
from seglab.course.probes import probe_notebook
from seglab.course.release import ANSWER_STUB, CODE_STUB
from seglab.course.results import read_run
from seglab.course.scan import first_line, refused_cells, scan_plan
from seglab.files import atomic_writer
from seglab.notebook.tables import table

__all__ = ["ExerciseStatus", "NotebookCheck", "check_notebook", "format_report", "printable", "submission_zip"]

SYMBOLS = {"passed": "✔", "failed": "✘", "not implemented yet": "…", "graded by hand": "✎", "not answered yet": "✎",
           "not run": "✘", "refused": "✘", "missing": "✘"}
# where the terminal's encoding has no ✔ (Windows' cp1252 when redirected, PYTHONIOENCODING=ascii)
ASCII_SYMBOLS = {"passed": "+", "failed": "x", "not implemented yet": "...", "graded by hand": "~",
                 "not answered yet": "~", "not run": "x", "refused": "x", "missing": "x"}
# typographic signs of the checks' hints, for an encoding without them
_ASCII = str.maketrans({"−": "-", "–": "-", "—": "-", "·": "*", "×": "x", "…": "...", "‘": "'", "’": "'",
                        "“": '"', "”": '"', "≥": ">=", "≤": "<=", "→": "->", "✔": "+", "✘": "x", "✎": "~"})
WIDTH = 100  # the longest line of the report, but for the table (whose rows are short)


@dataclass(frozen=True)
class ExerciseStatus:
    exercise: str  # the graded cell's grade_id, e.g. "check_conv_output_size"
    points: float | None  # None: an answer graded by hand
    max_points: float
    status: str  # a key of SYMBOLS
    message: str = ""


@contextmanager
def _environment(**variables: str):
    """Set environment variables for the kernel about to start; restore them afterwards."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _error_of(cell) -> str | None:
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    return f"{errors[-1].get('ename')}: {errors[-1].get('evalue')}" if errors else None


def _answer_status(grade_id: str, points: float, cells: list | None) -> ExerciseStatus:
    if not cells:
        return ExerciseStatus(grade_id, None, points, "missing", "this answer cell is missing: copy it back from "
                              "the kit's notebook (same place, same heading) and write your answer in it")
    source = "\n".join(cell.source for cell in cells)
    stub = "\n".join(ANSWER_STUB if cells[0].cell_type == "markdown" else CODE_STUB)
    unanswered = stub in source or not source.strip()
    return ExerciseStatus(grade_id, None, points, "not answered yet" if unanswered else "graded by hand")


def _check_status(grade_id: str, points: float, verdict, deleted: bool, answer_missing: bool) -> ExerciseStatus:
    message = verdict.message
    if answer_missing:
        message = ("the answer cell is missing: copy it back from the kit's notebook and write your answer in it. "
                   + message)
    if deleted:
        message = "the check cell is missing (grading checks at the end of the notebook): copy it back from the " \
                  "kit's notebook. " + message
    if verdict.points >= points:
        return ExerciseStatus(grade_id, float(verdict.points), points, "passed", message)
    if message == "not implemented yet":
        return ExerciseStatus(grade_id, 0.0, points, "not implemented yet")
    if verdict.detail is None and not message.startswith("your answer"):
        return ExerciseStatus(grade_id, float(verdict.points), points, "not run", message)
    return ExerciseStatus(grade_id, float(verdict.points), points, "failed", message)


@dataclass
class NotebookCheck:
    """What ``seglab check`` found: one status per graded cell, and what went wrong on the way."""

    name: str
    exercises: list[ExerciseStatus]
    errors: list[str]  # 'cell N ("first line"): Error: message' for each code cell that raised
    stop_reason: str | None  # why the run ended early; None when every cell ran
    seconds: float
    quick: bool
    refused: list[str] = field(default_factory=list)  # the cells grading will not run: line, reason, fix


def check_notebook(path: str | Path, *, quick: bool = True, timeout: float = 300, total_timeout: float = 3600,
                   progress: bool = True, releases: str | Path | None = None) -> NotebookCheck:
    """Grade the notebook at ``path`` as the grader will (see the module's docstring), in a fresh kernel in the
    notebook's own folder, with the public checks' number of cases.

    ``quick`` shrinks the training runs (``SEGLAB_QUICK=1``, as grading does); the checks do not depend on it.
    ``releases``: the folder of the released notebooks (default: the ones the package carries). The file
    itself is not changed.
    """
    path = Path(path)
    try:
        notebook = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise FileNotFoundError(f"no notebook at {path}") from None
    except Exception as error:
        raise ValueError(f"{path} is not a readable notebook ({type(error).__name__}: {error})") from None
    course = released_course(releases)
    plan = identify(notebook.cells, path.name, course)
    if plan is None:
        raise ValueError(f"{path.name} is not one of the course's notebooks ({', '.join(sorted(course.releases))}): "
                         "check a notebook of the kit")
    graded = course.exercises[plan.release.name]
    official = {e.grade_id: e for e in graded if e.kind == "check"}
    specs = {gid: exercise(cell.exercise_id) for gid, cell in official.items()}
    rng = random.Random()  # fresh cases each time, as the checks in the notebook draw them
    chosen = {gid: specs[gid].make_cases(rng, cell.cases or specs[gid].cases) for gid, cell in official.items()}
    student = plan.student_code()
    findings = scan_plan(plan)  # what grading refuses: the same function
    grading = probe_notebook(plan, official, chosen, refused_cells(findings))
    if not official:  # answers graded by hand only: nothing to run (nor does grading run it)
        grading = grading._replace(notebook=nbformat.v4.new_notebook(), origin={})
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(grading.notebook.cells), desc=f"running {path.name}", unit="cell")
    start, completed = time.monotonic(), set()

    def ran(index: int) -> None:
        completed.add(index)
        if bar is not None:
            bar.update()

    # The kernel's own console (Jupyter's start-up warnings) goes to a file, not between the student's
    # progress bar and table; its last lines are shown only when the kernel died.
    with tempfile.TemporaryFile("w+") as console, _environment(SEGLAB_QUICK="1" if quick else "0", MPLBACKEND="Agg"):
        stop_reason = execute_notebook(grading.notebook, path.resolve().parent, timeout=timeout,
                                       total_timeout=total_timeout, on_cell=ran, kernel_log=console,
                                       large_output_cells=set(grading.probe_cells.values())) \
            if grading.notebook.cells else None
        if stop_reason:
            console.seek(0)
            last = [line for line in console.read().splitlines() if line.strip() and "WARNING" not in line][-8:]
            if last:
                stop_reason += "; the kernel's last output:\n    " + "\n    ".join(last)
    if bar is not None:
        bar.close()
    verdicts = judge(Attempt(plan, official, specs, chosen, student), read_run(grading, stop_reason, None, completed))
    if any(f.refused for f in findings):
        verdicts = {gid: after_refusal(verdict) for gid, verdict in verdicts.items()}
    statuses = []
    for cell in graded:
        if cell.kind == "manual":
            statuses.append(_answer_status(cell.grade_id, cell.points,
                                           [plan.cells[p] for p in plan.answers.get(cell.grade_id) or []]))
        else:
            statuses.append(_check_status(cell.grade_id, cell.points, verdicts[cell.grade_id],
                                          plan.checks.get(cell.grade_id) is None,
                                          not plan.answers.get(cell.exercise_id, [None])))
    errors = []
    for index, position in sorted(grading.origin.items()):
        error = _error_of(grading.notebook.cells[index])
        if error:
            errors.append(f'cell {position + 1} ("{first_line(plan.cells[position].source)}"): {error}')
    refused = [str(f) for f in findings if f.refused]
    return NotebookCheck(path.name, statuses, errors, stop_reason, time.monotonic() - start, quick, refused)


def _wrap(text: str, indent: str = "", more: str = "    ", width: int = WIDTH) -> list[str]:
    """``text`` in lines of at most ``width`` characters: the first after ``indent``, the rest after ``more``;
    a line break in ``text`` starts a new line (after ``more``)."""
    lines = []
    for n, paragraph in enumerate(text.split("\n")):
        first = indent if n == 0 else more
        lines += textwrap.wrap(paragraph.strip(), width, initial_indent=first, subsequent_indent=more,
                               break_on_hyphens=False) or [first.rstrip()]
    return lines


def _encodable(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except (UnicodeError, LookupError):
        return False
    return True


def printable(text: str, encoding: str | None) -> str:
    """``text`` as a stream of ``encoding`` can write it: typographic signs as ASCII where the encoding lacks
    them, and any other character it cannot encode as ``?`` (a student's message may hold anything)."""
    encoding = encoding or "utf-8"
    if _encodable(text, encoding):
        return text
    if not _encodable("", encoding):  # an unknown codec
        encoding = "ascii"
    text = text.translate(_ASCII)
    return text.encode(encoding, errors="replace").decode(encoding)


def format_report(check: NotebookCheck, *, encoding: str | None = "utf-8", width: int = WIDTH) -> str:
    """The table a student reads: one row per graded cell, the automatic total, and what went wrong, with
    every line at most ``width`` characters (the table's rows are short), as text that ``encoding`` can write
    (✔/✘ where it can, else ASCII signs)."""
    plain = not _encodable("".join(SYMBOLS.values()) + "–", encoding or "utf-8")
    symbols = ASCII_SYMBOLS if plain else SYMBOLS

    def wrap(text: str, indent: str = "", more: str = "") -> list[str]:
        return _wrap(text.translate(_ASCII) if plain else text, indent, more, width)

    rows, details = [], []
    for refusal in check.refused:  # a cell grading will not run: first, it explains the rows below it
        cell = refusal.split(" was not run")[0]
        rows.append([cell if len(cell) <= 40 else cell[:39] + "…", "", f"{symbols['refused']} refused (see below)"])
        details += wrap(refusal, "  ", "      ")
    for s in check.exercises:
        name = s.exercise.removeprefix("check_")
        points = f"– / {s.max_points:g}" if s.points is None else f"{s.points:g} / {s.max_points:g}"
        shown = s.message if s.status != "passed" else ""  # "all 30 cases passed" says nothing more
        rows.append([name, points, f"{symbols[s.status]} {s.status}" + (" (see below)" if shown else "")])
        if shown:  # on lines of its own below the table: a failed check's message is long
            details += wrap(f"{name}: {shown}", "  ", "      ")
    automatic = [s for s in check.exercises if s.points is not None]
    got, most = sum(s.points for s in automatic), sum(s.max_points for s in automatic)
    manual = sum(s.max_points for s in check.exercises if s.points is None)
    mode = "training cells shortened" if check.quick else "full size"
    lines = [*wrap(f"{check.name}: re-run in a fresh kernel in {check.seconds:.0f} s ({mode})"), ""]
    if rows:
        lines += [table(["exercise", "points", "result"], rows), ""]
        if details:
            lines += ["what the checks found:", *details, ""]
        if automatic:
            lines += wrap(f"automatic checks: {got:g} / {most:g} points"
                          + (f"; {manual:g} more points for answers graded by hand" if manual else ""))
        else:
            lines += wrap(f"this notebook has no automatic checks: all its {manual:g} points are for answers that "
                          "a tutor grades by hand")
    else:
        lines.append("this notebook has no graded exercises")
    if check.errors:
        lines.append("cells that raised an error (numbered from the top, markdown cells too; the first line says "
                     "which):")
        for error in check.errors:
            lines += wrap(error, "  ", "      ")
    if check.stop_reason:
        lines += wrap(f"the run stopped early: {check.stop_reason}", more="    ")
    if automatic:
        lines += wrap("These are the public checks, run as grading runs them, on cases drawn anew each run. At "
                      "grading, hidden checks test the same functions on many more random cases, so an answer that "
                      "passes here can still lose points there.")
    return printable("\n".join(lines), encoding)


def submission_zip(path: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``<name>-<sha256 prefix>.zip`` holding the notebook, byte for byte, and ``MANIFEST.json``.

    The zip goes to ``out_dir`` (default: beside the notebook) and is written atomically.
    """
    from seglab import __version__

    path = Path(path)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    out_dir = Path(out_dir) if out_dir is not None else path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{path.stem}-{digest[:12]}.zip"
    manifest = {"notebook": path.name, "sha256": digest, "bytes": len(data), "seglab": __version__,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with atomic_writer(target, mode=0o644) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(path.name, data)
        archive.writestr("MANIFEST.json", json.dumps(manifest, indent=2) + "\n")
    return target
