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
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from seglab.course.execute import execute_notebook
from seglab.course.release import ANSWER_STUB, CODE_STUB
from seglab.files import atomic_writer
from seglab.report import table

__all__ = ["ExerciseStatus", "NotebookCheck", "check_notebook", "format_report", "submission_zip"]

RESULTS_MARKER = "SEGLAB-CHECK-RESULTS "
_READ_RESULTS = f'from seglab.checks import results_json\nprint("{RESULTS_MARKER}" + results_json())'
SYMBOLS = {"passed": "✔", "failed": "✘", "not implemented yet": "…", "graded by hand": "✎", "not answered yet": "✎",
           "not run": "✘"}


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
    return [cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade")]


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


def format_report(check: NotebookCheck) -> str:
    """The table a student reads: one row per graded cell, the automatic total, and what went wrong."""
    rows = []
    for s in check.exercises:
        points = f"– / {s.max_points:g}" if s.points is None else f"{s.points:g} / {s.max_points:g}"
        result = f"{SYMBOLS[s.status]} {s.status}" + (f": {s.message}" if s.message else "")
        rows.append([s.exercise.removeprefix("check_"), points, result])
    automatic = [s for s in check.exercises if s.points is not None]
    got, most = sum(s.points for s in automatic), sum(s.max_points for s in automatic)
    manual = sum(s.max_points for s in check.exercises if s.points is None)
    mode = "training cells shortened" if check.quick else "full size"
    lines = [f"{check.name}: re-run in a fresh kernel in {check.seconds:.0f} s ({mode})", ""]
    if rows:
        lines += [table(["exercise", "points", "result"], rows), "",
                  f"automatic checks: {got:g} / {most:g} points"
                  + (f"; {manual:g} more points for answers graded by hand" if manual else "")]
    else:
        lines.append("this notebook has no graded exercises")
    if check.errors:
        lines.append("cells that raised an error (the cell number counts every cell, markdown too):")
        lines += [f"  {error}" for error in check.errors]
    if check.stop_reason:
        lines.append(f"the run stopped early: {check.stop_reason}")
    if rows:
        lines.append("These are the public checks. At grading, hidden checks test the same functions on many more "
                     "random cases, so an answer that passes here can still lose points there.")
    return "\n".join(lines)


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
