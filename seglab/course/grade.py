"""Grade submitted notebooks: execute each in a fresh kernel, re-run the official checks, write a CSV.

For every submission the grader

1. reads it (a file that is not notebook JSON gets zero, with the reason);
2. tells which course notebook it is from its cells' nbgrader ``grade_id``\\ s (not its file name);
3. chooses fresh random cases for every exercise, as many as the official check cell asks for with
   its hidden tests included, and replaces each check cell (edited, deleted or not) by a cell that
   only calls the student's answer on those cases and writes what it returns, as data, to a file
   (:mod:`seglab.checks.probe`);
4. executes, cell by cell in a fresh Jupyter kernel (nbclient) in a temporary folder, the cells the
   answers and checks depend on (:mod:`seglab.course.needed`; everything when that cannot be told or
   the slice meets a ``NameError``), errors allowed, with a time limit per cell (the kernel is
   interrupted) and one for the whole notebook; a kernel that dies ends the run, and what was checked
   before still counts;
5. judges the returned data against the oracle in its own process (:func:`seglab.checks.score`), gives
   zero to an answer that uses what its exercise asks to write (in its source, or at run time), and
   writes one row per student and exercise.

Nothing the student's code prints, patches, hooks or redefines is read as a grade: the kernel only
ever returns the answers' outputs. Student code only ever runs in those kernels, never in the
grader's process, and each kernel runs in a sandbox (:mod:`seglab.course.sandbox`: no network, no
view of the tutor's files, other submissions or the grader's processes, limits on memory, processes,
CPU time and output). Submissions are graded
in parallel worker processes, each with its own kernel; ``on_student`` receives each student's rows
as soon as they are graded, so an interrupted batch loses nothing (``seglab grade --resume``).
"""

from __future__ import annotations

import ast
import copy
import csv
import hashlib
import json
import multiprocessing
import os
import random
import secrets
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from seglab.checks import exercises as course_exercises
from seglab.checks import public, score
from seglab.checks.borrowed import names_used
from seglab.checks.probe import probe_source
from seglab.checks.wire import encode
from seglab.course.execute import execute_notebook
from seglab.course.needed import needed_cells
from seglab.course.release import grade_ids
from seglab.course.sandbox import Limits, SandboxedKernel, SandboxUnavailable, bwrap_available
from seglab.report import table

__all__ = ["Exercise", "GradeRow", "append_csv", "collect_submissions", "grade", "grade_submission", "in_shard",
           "load_exercises", "merge_csvs", "points_table", "read_csv", "write_csv"]

OUTCOMES_BYTES = 256 * 2**20  # the most a kernel's answers may take on disk
FIELDS = ("student", "notebook", "exercise", "points", "max", "message")


@dataclass(frozen=True)
class Exercise:
    notebook: str  # solution file name, e.g. "01_convolution_arithmetic.ipynb"
    grade_id: str
    points: float
    kind: str  # "check": graded automatically; "manual": an answer cell graded by hand
    source: str  # the official check cell (hidden tests included)
    objects: tuple[str, ...] = ()  # a check's arguments: the names of the student's answer
    cases: int | None = None  # the most cases the official check cell asks for


def check_call(source: str) -> tuple[str, tuple[str, ...], int | None]:
    """``(exercise id, names of the objects checked, most cases asked for)`` of an official check cell
    such as ``check_conv_output_size(conv_output_size)`` followed by hidden ``..., cases=300)``."""
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
            objects, cases = (), None
            if kind == "check":
                exercise_id, objects, cases = check_call(cell.source)
                if f"check_{exercise_id}" != meta["grade_id"]:
                    raise ValueError(f"{path.name}: the check cell {meta['grade_id']!r} calls check_{exercise_id}")
            exercises.append(Exercise(path.name, meta["grade_id"], float(meta.get("points", 0)), kind, cell.source,
                                      objects, cases))
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


def _cell_error(cell) -> str | None:
    """Why a probe cell wrote no answers: its time limit, or the error it raised."""
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if any(e.get("ename") in ("KeyboardInterrupt", "CellTimeout") for e in errors):
        return "interrupted: the check ran past the time limit (an endless loop?)"
    if errors:
        return f"the check could not run: {str(errors[-1].get('ename'))[:80]}: {str(errors[-1].get('evalue'))[:200]}"
    return None


def _read_outcomes(path: Path):
    if not path.is_file():
        return None
    if path.stat().st_size > OUTCOMES_BYTES:
        return "too large"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return "unreadable"


def _answer_source(notebook, exercise_id: str) -> str:
    return "\n".join(cell.source for cell in notebook.cells
                     if cell.metadata.get("nbgrader", {}).get("grade_id") == exercise_id and cell.cell_type == "code")


def grade_submission(student: str, file: str | Path, exercises: dict[str, list[Exercise]], *, timeout: float = 60,
                     total_timeout: float = 900, sandbox: str = "bwrap", limits: Limits | None = None,
                     environment: dict[str, str] | None = None, seed: int = 0,
                     feedback_dir: str | Path | None = None, only_needed: bool = True) -> list[GradeRow]:
    """Grade one submission (runs its code in a fresh, sandboxed kernel); never raises for a bad submission.
    ``seed`` and the student's name choose the cases; ``feedback_dir``: keep a record of the results there
    for the student's feedback page (:mod:`seglab.course.feedback`). ``only_needed``: run only the cells
    the answers and checks depend on (:mod:`seglab.course.needed`); the whole notebook runs again if
    that misses a name."""
    limits = limits or Limits()
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
    specs = course_exercises()
    answers = {gid: _answer_source(notebook, gid.removeprefix("check_")) for gid in official}
    rng = random.Random(f"{seed}:{student}:{name}")  # fresh cases for every student, repeatable for a batch
    chosen = {gid: specs[gid.removeprefix("check_")].make_cases(rng, e.cases or specs[gid.removeprefix("check_")].cases)
              for gid, e in official.items()}

    run_options = {"sandbox": sandbox, "limits": limits, "environment": environment, "timeout": timeout,
                   "total_timeout": total_timeout}
    if not official:  # only answers graded by hand: nothing to run
        outcomes, stop_reason, present = {}, None, set()
    else:
        submitted = copy.deepcopy(notebook)
        notebook, outcomes, stop_reason, present = _run_probes(notebook, official, chosen, only_needed, run_options)
        if only_needed and _missed_name(notebook, outcomes):  # the slice missed a dependency: run it all
            notebook, outcomes, stop_reason, present = _run_probes(submitted, official, chosen, False, run_options)

    cells = {cell.metadata.get("nbgrader", {}).get("grade_id"): cell for cell in notebook.cells}
    details = []
    for gid, exercise in official.items():
        spec, row = specs[gid.removeprefix("check_")], rows[gid]
        used = names_used(answers[gid], spec.off_limits.names)
        if used:
            row.points, row.message = 0, (f"your answer uses {', '.join(used)}, which this exercise asks you to write "
                                          f"yourself ({spec.off_limits.why})")
        elif isinstance(outcomes[gid], list):
            result = score(spec, chosen[gid], outcomes[gid])
            row.points, row.message = min(float(result.points), exercise.points), result.message
            details.append({"exercise": gid, "title": spec.title, "parts": result.parts, "failure": result.failure})
        elif outcomes[gid] is not None:
            row.message = f"the check's results could not be read ({outcomes[gid]})"
        elif _cell_error(cells[gid]):
            row.message = _cell_error(cells[gid])
        elif stop_reason:
            row.message = f"not checked: {stop_reason}"
        if gid not in present:
            row.message = "check cell was deleted; checked at the end. " + row.message
    if feedback_dir is not None:
        from seglab.course.feedback import write_record
        from seglab.course.manual import answer_text

        manual = [e.grade_id for e in graded if e.kind == "manual"]
        answers = {gid: answer_text(cells[gid].source if gid in cells else "") or "(no answer)" for gid in manual}
        write_record(feedback_dir, student, name, details, answers)
    return list(rows.values())


def _run_probes(notebook, official: dict[str, Exercise], chosen: dict[str, list], only_needed: bool,
                run_options: dict) -> tuple:
    """Put a probe in place of each check cell and run the notebook (only the cells the probes and answers
    need, with ``only_needed``) in a fresh folder: ``(notebook, outcomes, stop reason, check cells present)``."""
    with tempfile.TemporaryDirectory(prefix="seglab-grade-") as workdir:
        work = Path(workdir).resolve()
        probes = {}
        for gid, exercise in official.items():
            cases_path, outcomes_path = work / f".seglab-cases-{gid}.json", work / f".seglab-outcomes-{gid}.json"
            cases_path.write_text(json.dumps([encode(public(case)) for case in chosen[gid]]))
            probes[gid] = (probe_source(gid.removeprefix("check_"), list(exercise.objects), str(cases_path),
                                        str(outcomes_path)), outcomes_path)
        present = set()
        for cell in notebook.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in official:
                cell.source, cell.cell_type = probes[gid][0], "code"
                present.add(gid)
                cell.outputs, cell.execution_count = [], None
        for gid in official:
            if gid not in present:  # a deleted check cell: check at the end
                cell = nbformat.v4.new_code_cell(probes[gid][0])
                cell.metadata["nbgrader"] = {"grade_id": gid}
                notebook.cells.append(cell)
        cells = _cells_to_run(notebook, set(official)) if only_needed else None
        stop_reason = _execute(notebook, workdir, cells, **run_options)
        outcomes = {gid: _read_outcomes(path) for gid, (_, path) in probes.items()}
    return notebook, outcomes, stop_reason, present


def _execute(notebook, workdir: str, cells: set[int] | None, *, sandbox: str, limits: Limits,
             environment: dict[str, str] | None, timeout: float, total_timeout: float) -> str | None:
    """Run ``cells`` of ``notebook`` (all when ``None``) in a fresh sandboxed kernel; why it stopped early."""
    kernel = SandboxedKernel(workdir, sandbox=sandbox, limits=limits, environment=environment)
    try:
        kernel.start_watchdog()
        with open(kernel.control / "kernel.log", "w") as log:
            stop_reason = execute_notebook(notebook, workdir, timeout=timeout, total_timeout=total_timeout,
                                           kernel_manager=kernel.manager, cell_output_bytes=limits.output_bytes,
                                           kernel_log=log, cells=cells)
        if stop_reason and stop_reason.startswith("could not run"):
            stop_reason += " — kernel log: " + (kernel.control / "kernel.log").read_text()[-500:]
    finally:
        kernel.cleanup()
    if kernel.killed_reason:
        stop_reason = f"the sandbox was stopped: {kernel.killed_reason}"
    return stop_reason


def _cells_to_run(notebook, check_ids: set[str]) -> set[int] | None:
    """Indices of the cells grading runs: the setup cell, answers, checks, and what they depend on."""
    code = [(index, cell) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    targets = {position for position, (_, cell) in enumerate(code)
               if cell.metadata.get("nbgrader", {}).get("solution") or
               cell.metadata.get("nbgrader", {}).get("grade_id") in check_ids}
    trusted = {position for position, (_, cell) in enumerate(code) if "seglab-setup" in cell.metadata.get("tags", [])}
    needed = needed_cells([cell.source for _, cell in code], targets, trusted=trusted)
    return None if needed is None else {code[position][0] for position in needed}


def _missed_name(notebook, outcomes: dict) -> bool:
    """Whether a run cell or an answer stopped on a ``NameError`` (a dependency the slice did not see)."""
    for cell in notebook.cells:
        if any(o.get("output_type") == "error" and o.get("ename") == "NameError" for o in cell.get("outputs", [])):
            return True
    for found in outcomes.values():
        for outcome in found if isinstance(found, list) else []:
            if not isinstance(outcome, dict):
                continue
            error = outcome.get("error")
            if (isinstance(error, dict) and error.get("type") == "NameError") or \
                    "run the cell that defines your answer" in str(outcome.get("stop", "")):
                return True
    return False


def kernel_environment(threads: int, *, quick: bool = True) -> dict[str, str]:
    """What a submission's kernel gets: thread counts, and ``SEGLAB_QUICK=1`` (training cells run with a
    small budget, as in the tests; no check depends on a training result) unless ``quick`` is False."""
    environment = {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}  # no oversubscription
    environment["SEGLAB_QUICK"] = "1" if quick else "0"
    return environment


def in_shard(student: str, shard: tuple[int, int] | None) -> bool:
    """Whether ``student`` belongs to shard ``(i, n)`` (1-based): decided by a hash of the name alone, so
    every machine of a job array agrees, and all of one student's notebooks land on the same shard."""
    if shard is None:
        return True
    index, count = shard
    return int(hashlib.sha256(student.encode("utf-8")).hexdigest(), 16) % count == index - 1


def _grade_job(job: tuple) -> list[GradeRow]:
    student, file, exercises, options = job
    return grade_submission(student, file, exercises, **options)


def submission_key(student: str, file: Path, exercises: dict[str, list[Exercise]]) -> tuple[str, str]:
    """``(student, notebook)`` as the CSV names it: what ``--resume`` skips."""
    try:
        notebook = nbformat.read(file, as_version=4)
    except Exception:
        notebook = None
    return student, _identify(notebook, file, exercises) or file.name


def grade(path: str | Path, *, solutions_dir: str | Path = "solutions", timeout: float = 60,
          total_timeout: float = 900, workers: int = 1, sandbox: str = "bwrap", limits: Limits | None = None,
          skip: set[tuple[str, str]] = frozenset(), seed: int | None = None, quick: bool = True,
          shard: tuple[int, int] | None = None, progress: bool = False, feedback_dir: str | Path | None = None,
          only_needed: bool = True, on_student: Callable[[list[GradeRow]], None] | None = None) -> list[GradeRow]:
    """Grade a notebook or a folder of them, ``workers`` at a time.

    ``skip``: ``(student, notebook)`` pairs graded before (``--resume``). ``seed``: with the student's
    name, chooses each student's cases (default: a fresh one, so nobody can know the cases beforehand).
    ``on_student(rows)`` is called in this process as each submission is graded, in the order they finish.
    ``quick``: training cells run with the tests' small budget (``SEGLAB_QUICK=1``). ``shard=(i, n)``:
    grade only the students of share ``i`` of ``n`` (:func:`in_shard`). ``progress``: a progress bar with
    the time left, on standard error. ``feedback_dir``: records for the students' feedback pages.
    ``only_needed``: run only the cells that the answers and checks depend on (``False``: every cell).
    """
    exercises = load_exercises(solutions_dir)
    if sandbox == "bwrap" and not bwrap_available():
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: on Debian or Ubuntu run `sudo apt-get install "
                                 "bubblewrap`, or grade with --sandbox none (no isolation: a submission can then "
                                 "read your files and stop the grader)")
    submissions = [(s, f) for s, f in collect_submissions(path)
                   if in_shard(s, shard) and submission_key(s, f, exercises) not in skip]
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    options = {"timeout": timeout, "total_timeout": total_timeout, "sandbox": sandbox, "limits": limits,
               "environment": kernel_environment(threads, quick=quick),
               "feedback_dir": None if feedback_dir is None else str(Path(feedback_dir).resolve()),
               "seed": secrets.randbits(64) if seed is None else seed, "only_needed": only_needed}
    jobs = [(student, file, exercises, options) for student, file in submissions]
    results: list[list[GradeRow]] = []

    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="grading", unit="submission", disable=not progress, dynamic_ncols=True)

    def done(rows: list[GradeRow]) -> None:
        results.append(rows)
        bar.update(1)
        if on_student is not None:
            on_student(rows)

    if workers <= 1:
        for job in jobs:
            done(_grade_job(job))
    else:
        # spawn, not fork: a forked worker inherits this process's ZeroMQ state, which is not fork-safe
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for future in as_completed([pool.submit(_grade_job, job) for job in jobs]):
                done(future.result())
    bar.close()
    return sorted((row for rows in results for row in rows), key=lambda r: (r.student, r.notebook))


def write_csv(rows: list[GradeRow], path: str | Path) -> None:
    """Write all rows, atomically (a crash leaves the old file or the new one, never half of one)."""
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", newline="", encoding="utf-8", dir=path.parent or ".",
                                     prefix=f".{path.name}.", delete=False) as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    os.replace(file.name, path)


def append_csv(rows: list[GradeRow], path: str | Path) -> None:
    """Add one student's rows to the CSV as soon as they are graded, on disk before the next student."""
    path = Path(path)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
        file.flush()
        os.fsync(file.fileno())


def read_csv(path: str | Path) -> list[GradeRow]:
    """The rows of a grades CSV (``--resume`` reads what an interrupted batch wrote)."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    if rows and set(rows[0]) != set(FIELDS):
        raise ValueError(f"{path} is not a seglab grades CSV (columns {', '.join(rows[0])}): choose another --out")
    return [GradeRow(r["student"], r["notebook"], r["exercise"], "" if r["points"] == "" else float(r["points"]),
                     float(r["max"]), r["message"]) for r in rows]


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
    lines = [[student, notebook, f"{points:.1f} / {maximum:.1f}", manual]
             for (student, notebook), (points, maximum, manual) in sorted(totals.items())]
    return table(["student", "notebook", "points", "to grade by hand"], lines, markdown=False, align="<<>>")
