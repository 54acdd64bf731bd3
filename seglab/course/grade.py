"""Grade submitted notebooks: execute each in a fresh kernel, re-run the official checks, write a CSV.

For every submission the grader

1. reads it (a file that is not notebook JSON gets zero, with the reason);
2. tells which course notebook it is from its cells' nbgrader ``grade_id``\\ s (not its file name);
3. replaces every check cell by the official one from the solution notebook, hidden tests included
   (so edited or deleted check cells change nothing), and appends official check cells that the
   student deleted;
4. executes it cell by cell in a fresh Jupyter kernel (nbclient) in a temporary folder, errors
   allowed, with a time limit per cell (the kernel is interrupted) and one for the whole notebook;
   a kernel that dies ends the run, and what was checked before still counts;
5. reads each check's ``points: X / Y`` line and writes one row per student and exercise.

Student code only ever runs in those kernels, never in the grader's process. Submissions are graded
in parallel worker processes, each with its own kernel.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from seglab.course.execute import execute_notebook
from seglab.course.release import grade_ids

__all__ = ["Exercise", "GradeRow", "collect_submissions", "grade", "grade_submission", "load_exercises",
           "summary", "write_csv"]

POINTS_LINE = re.compile(r"points: ([0-9.]+) / ([0-9.]+)")
FIELDS = ("student", "notebook", "exercise", "points", "max", "message")


@dataclass(frozen=True)
class Exercise:
    notebook: str  # solution file name, e.g. "01_convolution_arithmetic.ipynb"
    grade_id: str
    points: float
    kind: str  # "check": graded automatically; "manual": an answer cell graded by hand
    source: str  # the official check cell (hidden tests included)


@dataclass
class GradeRow:
    student: str
    notebook: str
    exercise: str
    points: float | str
    max: float
    message: str


def load_exercises(solutions_dir: str | Path = "solutions") -> dict[str, list[Exercise]]:
    """The graded cells of every solution notebook, by notebook file name."""
    solutions_dir = Path(solutions_dir)
    found: dict[str, list[Exercise]] = {}
    for path in sorted(solutions_dir.glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        exercises = []
        for cell in notebook.cells:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("grade"):
                continue
            kind = "manual" if meta.get("solution") else "check"
            exercises.append(Exercise(path.name, meta["grade_id"], float(meta.get("points", 0)), kind, cell.source))
        found[path.name] = exercises
    if not found:
        raise FileNotFoundError(f"no solution notebooks in {solutions_dir.resolve()}: pass --solutions")
    return found


def collect_submissions(path: str | Path) -> list[tuple[str, Path]]:
    """``(student, notebook path)`` pairs: a single notebook, a folder of ``<student>.ipynb``, or
    nbgrader's ``submitted/<student>/<assignment>/*.ipynb`` layout."""
    path = Path(path)
    if path.is_file():
        return [(path.stem, path)]
    if not path.is_dir():
        raise FileNotFoundError(f"no submission or folder at {path}")
    pairs = []
    for file in sorted(path.rglob("*.ipynb")):
        parts = file.relative_to(path).parts
        if ".ipynb_checkpoints" in parts:
            continue
        if len(parts) == 1:
            student = file.stem
        elif parts[0] == "submitted" and len(parts) >= 3:
            student = parts[1]
        else:
            student = parts[0]
        pairs.append((student, file))
    return pairs


def _identify(notebook, file: Path, exercises: dict[str, list[Exercise]]) -> str | None:
    ids = set(grade_ids(notebook)) if notebook is not None else set()
    overlap = {name: len(ids & {e.grade_id for e in ex}) for name, ex in exercises.items()}
    best = max(overlap, key=overlap.get, default=None)
    if best is not None and overlap[best] > 0:
        return best
    prefix = file.name[:3]  # no metadata left: fall back to the "NN_" of the file name
    matches = [name for name in exercises if name.startswith(prefix)]
    return matches[0] if len(matches) == 1 else (next(iter(exercises)) if len(exercises) == 1 else None)


def _cell_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "".join(parts)


def _check_result(cell) -> tuple[float, str] | None:
    text = _cell_text(cell)
    matches = POINTS_LINE.findall(text)
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if not matches:
        if any(e.get("ename") in ("KeyboardInterrupt", "CellTimeout") for e in errors):
            return 0.0, "interrupted: the cell ran past the time limit (an endless loop?)"
        if errors:
            return 0.0, f"the check cell raised {errors[-1].get('ename')}: {errors[-1].get('evalue')}"
        return None
    report = [line.strip() for line in text.splitlines() if line.strip()[:1] in ("✔", "✘", "…")]
    hints = [line.strip() for line in text.splitlines() if line.strip().startswith("hint:")]
    return float(matches[-1][0]), " ".join(report[-1:] + hints[-1:])


def grade_submission(student: str, file: str | Path, exercises: dict[str, list[Exercise]], *, timeout: float = 60,
                     total_timeout: float = 900, kernel_name: str = "python3") -> list[GradeRow]:
    """Grade one submission (runs its code in a fresh kernel); never raises for a bad submission."""
    file = Path(file)
    try:
        notebook = nbformat.read(file, as_version=4)
        reason = None
    except Exception as error:  # not JSON, not a notebook
        notebook, reason = None, f"not a valid notebook ({type(error).__name__}: {str(error)[:200]})"
    name = _identify(notebook, file, exercises)
    if name is None:
        return [GradeRow(student, file.name, "*", 0, 0, reason or "cannot tell which notebook this is")]
    graded = exercises[name]
    rows = {e.grade_id: GradeRow(student, name, e.grade_id, 0 if e.kind == "check" else "", e.points,
                                 "not run" if e.kind == "check" else "graded by hand") for e in graded}
    if notebook is None:
        for row in rows.values():
            row.points, row.message = (0, reason) if row.points != "" else ("", reason)
        return list(rows.values())

    official = {e.grade_id: e for e in graded if e.kind == "check"}
    present = set()
    for cell in notebook.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in official:
            cell.source, cell.cell_type = official[gid].source, "code"
            present.add(gid)
            cell.outputs, cell.execution_count = [], None
    for gid, exercise in official.items():
        if gid not in present:  # a deleted check cell: run the official one at the end
            cell = nbformat.v4.new_code_cell(exercise.source)
            cell.metadata["nbgrader"] = {"grade_id": gid}
            notebook.cells.append(cell)
            rows[gid].message = "check cell was deleted; the official check ran at the end"

    with tempfile.TemporaryDirectory(prefix="seglab-grade-") as workdir:
        stop_reason = execute_notebook(notebook, workdir, timeout=timeout, total_timeout=total_timeout,
                                       kernel_name=kernel_name)

    for cell in notebook.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in official:
            result = _check_result(cell)
            if result is not None:
                rows[gid].points, rows[gid].message = result[0], result[1]
            elif stop_reason:
                rows[gid].message = f"not checked: {stop_reason}"
            elif any(o.get("ename") == "CellTimeout" for o in cell.get("outputs", [])):
                rows[gid].message = "the check timed out"
    return list(rows.values())


def _grade_job(job: tuple) -> list[GradeRow]:
    student, file, exercises, timeout, total_timeout, threads = job
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # the kernels inherit this: no oversubscription
        os.environ[variable] = str(threads)
    return grade_submission(student, file, exercises, timeout=timeout, total_timeout=total_timeout)


def grade(path: str | Path, *, solutions_dir: str | Path = "solutions", timeout: float = 60,
          total_timeout: float = 900, workers: int = 1) -> list[GradeRow]:
    """Grade a notebook or a folder of them, ``workers`` at a time; rows sorted by student."""
    exercises = load_exercises(solutions_dir)
    submissions = collect_submissions(path)
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    jobs = [(student, file, exercises, timeout, total_timeout, threads) for student, file in submissions]
    if workers <= 1:
        results = [_grade_job(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_grade_job, jobs))
    return [row for rows in results for row in rows]


def write_csv(rows: list[GradeRow], path: str | Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))


def summary(rows: list[GradeRow]) -> str:
    """One line per student and notebook: automatic points / their maximum, and manual exercises."""
    totals: dict[tuple[str, str], list] = {}
    for row in rows:
        entry = totals.setdefault((row.student, row.notebook), [0.0, 0.0, 0])
        if row.points == "":
            entry[2] += 1
        else:
            entry[0] += float(row.points)
            entry[1] += float(row.max)
    width = max([len(s) for s, _ in totals] + [7])
    lines = [f"{'student'.ljust(width)}  notebook                              points   to grade by hand"]
    for (student, notebook), (points, maximum, manual) in sorted(totals.items()):
        lines.append(f"{student.ljust(width)}  {notebook[:36].ljust(36)}  {points:5.1f} / {maximum:<5.1f} {manual}")
    return "\n".join(lines)
