"""``seglab check``: a student's own run of a notebook before handing it in.

The notebook is re-run top to bottom in a fresh kernel (so a result cannot come from a cell that was
edited after it ran), and every graded cell is listed: the public check's points and ✔/✘, "not
implemented yet", or "answer graded by hand". Hidden checks — the same checks on many more random
cases — run only at grading. ``submission_zip`` packs the notebook, unchanged, with its SHA-256 in the
file name and in a manifest, so student and tutor can tell that they speak of the same file.

Nothing here needs the tutor's solutions: the exercises are read from the notebook's own nbgrader
metadata, the results from ``seglab.checks`` in the kernel that ran it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import textwrap
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from seglab.course.execute import execute_notebook
from seglab.course.notebooks import nbgrader
from seglab.course.release import ANSWER_STUB, CODE_STUB
from seglab.files import atomic_writer
from seglab.notebook.tables import table

__all__ = ["ExerciseStatus", "NotebookCheck", "check_notebook", "format_report", "printable", "submission_zip"]

RESULTS_MARKER = "SEGLAB-CHECK-RESULTS "
_READ_RESULTS = f'from seglab.checks import results_json\nprint("{RESULTS_MARKER}" + results_json())'
SYMBOLS = {"passed": "✔", "failed": "✘", "not implemented yet": "…", "graded by hand": "✎", "not answered yet": "✎",
           "not run": "✘"}
# where the terminal's encoding has no ✔ (Windows' cp1252 when redirected, PYTHONIOENCODING=ascii)
ASCII_SYMBOLS = {"passed": "+", "failed": "x", "not implemented yet": "...", "graded by hand": "~",
                 "not answered yet": "~", "not run": "x"}
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


def _graded_cells(notebook) -> list:
    return [cell for cell in notebook.cells if nbgrader(cell).get("grade")]


def _error_of(cell) -> str | None:
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    return f"{errors[-1].get('ename')}: {errors[-1].get('evalue')}" if errors else None


def _recorded_results(notebook) -> dict:
    for output in notebook.cells[-1].get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith(RESULTS_MARKER):
                return json.loads(line[len(RESULTS_MARKER):])
    return {}


def _status(cell, results: dict, stop_reason: str | None) -> ExerciseStatus:
    meta = cell.metadata["nbgrader"]
    grade_id, max_points = meta["grade_id"], float(meta.get("points", 0))
    if meta.get("solution"):  # an answer cell: a tutor reads it
        stub = "\n".join(ANSWER_STUB if cell.cell_type == "markdown" else CODE_STUB)
        unanswered = stub in cell.source or not cell.source.strip()
        return ExerciseStatus(grade_id, None, max_points, "not answered yet" if unanswered else "graded by hand")
    result = results.get(grade_id.removeprefix("check_"))
    if result is not None:
        if result["message"] == "not implemented yet":
            return ExerciseStatus(grade_id, 0.0, max_points, "not implemented yet")
        passed = float(result["points"]) >= max_points
        return ExerciseStatus(grade_id, float(result["points"]), max_points, "passed" if passed else "failed",
                              result["message"])
    reason = _error_of(cell) or stop_reason or "the check did not run"
    return ExerciseStatus(grade_id, 0.0, max_points, "not run", reason)


@dataclass
class NotebookCheck:
    """What ``seglab check`` found: one status per graded cell, and what went wrong on the way."""

    name: str
    exercises: list[ExerciseStatus]
    errors: list[str]  # "cell N: Error: message" for each code cell that raised
    stop_reason: str | None  # why the run ended early; None when every cell ran
    seconds: float
    quick: bool


def check_notebook(path: str | Path, *, quick: bool = True, timeout: float = 300, total_timeout: float = 3600,
                   progress: bool = True) -> NotebookCheck:
    """Re-run the notebook at ``path`` in a fresh kernel (in its own folder) and read its checks.

    ``quick`` shrinks the training runs (``SEGLAB_QUICK=1``, as the tests do); the checks do not depend
    on it. The file itself is not changed.
    """
    path = Path(path)
    try:
        notebook = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise FileNotFoundError(f"no notebook at {path}") from None
    except Exception as error:
        raise ValueError(f"{path} is not a readable notebook ({type(error).__name__}: {error})") from None
    notebook.cells.append(nbformat.v4.new_code_cell(_READ_RESULTS))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(c.cell_type == "code" for c in notebook.cells), desc=f"running {path.name}", unit="cell")
    start = time.monotonic()
    # The kernel's own console (Jupyter's start-up warnings) goes to a file, not between the student's
    # progress bar and table; its last lines are shown only when the kernel died.
    with tempfile.TemporaryFile("w+") as console, _environment(SEGLAB_QUICK="1" if quick else "0", MPLBACKEND="Agg"):
        stop_reason = execute_notebook(notebook, path.resolve().parent, timeout=timeout, total_timeout=total_timeout,
                                       on_cell=(lambda _: bar.update()) if bar is not None else None,
                                       kernel_log=console)
        if stop_reason:
            console.seek(0)
            last = [line for line in console.read().splitlines() if line.strip() and "WARNING" not in line][-8:]
            if last:
                stop_reason += "; the kernel's last output:\n    " + "\n    ".join(last)
    if bar is not None:
        bar.close()
    results = _recorded_results(notebook)
    errors = [f"cell {n + 1}: {_error_of(cell)}" for n, cell in enumerate(notebook.cells[:-1]) if _error_of(cell)]
    return NotebookCheck(path.name, [_status(cell, results, stop_reason) for cell in _graded_cells(notebook)],
                         errors, stop_reason, time.monotonic() - start, quick)


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
        lines.append("cells that raised an error (the cell number counts every cell, markdown too):")
        for error in check.errors:
            lines += wrap(error, "  ", "      ")
    if check.stop_reason:
        lines += wrap(f"the run stopped early: {check.stop_reason}", more="    ")
    if automatic:
        lines += wrap("These are the public checks. At grading, hidden checks test the same functions on many more "
                      "random cases, so an answer that passes here can still lose points there.")
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
