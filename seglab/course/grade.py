"""Grade submitted notebooks: execute each in a fresh kernel, re-run the official checks, write a CSV.

For every submission the grader

1. reads it once, never through a link and never more than a size cap
   (:mod:`seglab.course.submissions`: a link, a special file, a second copy of one student's notebook
   or a name that collides with another student's gets rows with the reason);
2. tells which course notebook it is, and what each of its cells is, by comparing its cells with the
   tutor's release (:mod:`seglab.course.plan`: cell ids and released content; the tags and nbgrader
   ``grade_id``\\ s a student can edit count for nothing);
3. reads, in its own process, every cell of the student's own code (:mod:`seglab.course.scan`): a cell
   that hooks IPython, traces other code, starts threads or processes, hides code from a reader or
   reaches the grading machinery never runs, and the rows say which and why;
4. chooses fresh random cases for every exercise, as many as the official check cell asks for with
   its hidden tests included, and puts in place of each check cell (edited, deleted or not) a probe
   that carries its cases and a token of its own in its source, calls the student's answer on them
   and sends back what it returns, as data, as that cell's output (:mod:`seglab.checks.probe`): no
   case or result ever lies on a disk the kernel can reach;
5. executes, cell by cell in a fresh sandboxed Jupyter kernel, the release's setup cell and the cells
   the answers and checks depend on (:mod:`seglab.course.needed`), errors allowed, with a time limit
   per cell and one for the whole notebook; when that slice meets a ``NameError`` or earns less than
   full points on an exercise, every cell runs again and the better result counts (slicing never costs
   points); a kernel that dies ends the run, and what was checked before still counts;
6. judges the returned data against the oracle in its own process (:func:`seglab.checks.score`), gives
   zero to an answer that uses what its exercise asks to write (in its source, or at run time), and
   writes one row per student and exercise.

Nothing the student's code prints, patches, hooks or redefines is read as a grade: the kernel only
ever returns the answers' outputs. Student code only ever runs in those kernels, never in the
grader's process, and each kernel runs in a sandbox (:mod:`seglab.course.sandbox`). Submissions are
graded in parallel worker processes, each with its own kernel; ``on_student`` receives each student's
rows as soon as they are graded, so an interrupted batch loses nothing (``seglab grade --resume``).
Whatever goes wrong with one submission, in any step, becomes that submission's rows with the reason.
"""

from __future__ import annotations

import ast
import hashlib
import json
import multiprocessing
import os
import random
import secrets
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nbformat

from seglab.checks import exercises as course_exercises
from seglab.checks import public, score
from seglab.checks.borrowed import copied_reference, names_used
from seglab.checks.probe import outcomes_of, probe_source
from seglab.checks.wire import encode
from seglab.course.execute import execute_notebook
from seglab.course.needed import needed_cells
from seglab.course.plan import Plan, Release, load_release, plan_submission, which_release
from seglab.course.sandbox import Limits, SandboxedKernel, SandboxUnavailable, bwrap_available
from seglab.course.scan import LIMITS, ScanLimits, scan_cells
from seglab.course.submissions import collect, collect_submissions, read_regular
from seglab.notebook.tables import table

__all__ = ["Exercise", "GradeRow", "append_csv", "collect_submissions", "grade", "grade_submission", "in_shard",
           "load_exercises", "merge_csvs", "points_table", "read_csv", "write_csv"]

NOT_GRADED = "(not graded)"  # the notebook column of a submission refused before it could be told
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


@dataclass
class Course:
    """What the grader knows of the course, all from the tutor's solutions: the graded cells of every
    notebook, and each notebook's release (how a submission's cells are told apart, :mod:`seglab.course.plan`)."""

    exercises: dict[str, list[Exercise]]
    releases: dict[str, Release]


def load_course(solutions_dir: str | Path = "solutions") -> Course:
    """The graded cells and the release of every solution notebook, by notebook file name."""
    solutions_dir = Path(solutions_dir)
    found: dict[str, list[Exercise]] = {}
    releases: dict[str, Release] = {}
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
        releases[path.name] = load_release(notebook, path.name)
    if not found:
        raise FileNotFoundError(f"no solution notebooks in {solutions_dir.resolve()}: pass --solutions")
    return Course(found, releases)


def load_exercises(solutions_dir: str | Path = "solutions") -> dict[str, list[Exercise]]:
    """The graded cells of every solution notebook, by notebook file name."""
    return load_course(solutions_dir).exercises


class UnreadableSubmission(ValueError):
    """A submission the grader does not open or cannot parse; the message is the reason for its rows."""


def parse_submission(data: bytes, limits: ScanLimits = LIMITS):
    """The notebook in ``data``, with only what grading reads of each cell: its type, id and source."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise UnreadableSubmission("not a valid notebook: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise UnreadableSubmission(f"not a valid notebook (not JSON: {str(error)[:120]})") from None
    cells = raw.get("cells") if isinstance(raw, dict) else None
    if not isinstance(cells, list):
        raise UnreadableSubmission("not a valid notebook: it has no list of cells")
    if len(cells) > limits.cells:
        raise UnreadableSubmission(f"not graded: more than {limits.cells} cells")
    clean = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        if not isinstance(source, str):
            source = ""
        source = _valid_text(source)
        new = nbformat.from_dict({"cell_type": cell["cell_type"], "source": source, "metadata": {}})
        if isinstance(cell.get("id"), str):
            new["id"] = cell["id"][:64]
        if cell["cell_type"] == "code":
            new.outputs, new.execution_count = [], None
        clean.append(new)
    return clean


def _valid_text(text: str) -> str:
    """``text`` with every lone surrogate (a JSON escape no editor writes) as U+FFFD: code that can run."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def identify(cells: list | None, file_name: str, course: Course | dict[str, Release]) -> Plan | None:
    """The plan of a submission against the release its cells match; failing that, the release whose
    "NN_" the file name starts with (a notebook whose every cell changed). ``course``: a :class:`Course`,
    or the releases by notebook name."""
    releases = course.releases if isinstance(course, Course) else course
    plan = which_release(cells or [], releases)
    if plan is not None and plan.matched > 1:
        return plan
    matches = [name for name in releases if name.startswith(file_name[:3])]
    if len(matches) != 1 and len(releases) == 1:
        matches = list(releases)
    return plan_submission(cells or [], releases[matches[0]]) if len(matches) == 1 else plan


def _cell_error(cell) -> str | None:
    """Why a probe cell wrote no answers: its time limit, or the error it raised."""
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if any(e.get("ename") in ("KeyboardInterrupt", "CellTimeout") for e in errors):
        return "interrupted: the check ran past the time limit (an endless loop?)"
    if errors:
        return f"the check could not run: {str(errors[-1].get('ename'))[:80]}: {str(errors[-1].get('evalue'))[:200]}"
    return None


def grade_submission(student: str, file: str | Path, course: Course, *, timeout: float = 60,
                     total_timeout: float = 900, sandbox: str = "bwrap", limits: Limits | None = None,
                     environment: dict[str, str] | None = None, seed: int = 0,
                     feedback_dir: str | Path | None = None, only_needed: bool = True,
                     data: bytes | None = None) -> list[GradeRow]:
    """Grade one submission (runs its code in a fresh, sandboxed kernel); never raises: whatever goes wrong
    with a submission becomes its rows, with the reason. ``seed`` and the student's name choose the cases;
    ``feedback_dir``: keep a record of the results there for the student's feedback page
    (:mod:`seglab.course.feedback`). ``only_needed``: run only the cells the answers and checks depend on
    (:mod:`seglab.course.needed`); every cell runs again when that misses a name or earns less than full
    points. ``data``: the submission's bytes, when the caller read them already."""
    name = Path(file).name
    plan = None
    try:
        if data is None:
            try:
                data = read_regular(file, LIMITS.notebook_bytes)
            except OSError as error:  # UnsafeFile included: a link, not a regular file, too large
                raise UnreadableSubmission(f"not read: {error}") from None
        cells = parse_submission(data)
        plan = identify(cells, name, course)
        if plan is None:
            return [GradeRow(student, name, "*", 0, 0, "cannot tell which notebook this is")]
        return _grade_plan(student, plan, course, timeout=timeout, total_timeout=total_timeout, sandbox=sandbox,
                           limits=limits or Limits(), environment=environment, seed=seed, feedback_dir=feedback_dir,
                           only_needed=only_needed)
    except UnreadableSubmission as error:
        reason = str(error)
    except Exception as error:  # a step of the grader failed on this submission: its rows say so, the batch goes on
        reason = f"the grader could not grade this submission ({type(error).__name__}: {str(error)[:200]})"
    if plan is None:
        plan = identify(None, name, course)
    if plan is None:
        return [GradeRow(student, name, "*", 0, 0, reason)]
    return [GradeRow(student, plan.release.name, e.grade_id, 0 if e.kind == "check" else "", e.points, reason)
            for e in course.exercises[plan.release.name]]


def _grade_plan(student: str, plan: Plan, course: Course, *, seed: int, feedback_dir, only_needed: bool,
                **run_options) -> list[GradeRow]:
    name = plan.release.name
    graded = course.exercises[name]
    rows = {e.grade_id: GradeRow(student, name, e.grade_id, 0 if e.kind == "check" else "", e.points,
                                 "not run" if e.kind == "check" else "graded by hand") for e in graded}
    official = {e.grade_id: e for e in graded if e.kind == "check"}
    specs = course_exercises()
    answers = {gid: plan.answer_source(gid.removeprefix("check_")) for gid in official}
    rng = random.Random(f"{seed}:{student}:{name}")  # fresh cases for every student, repeatable for a batch
    chosen = {gid: specs[gid.removeprefix("check_")].make_cases(rng, e.cases or specs[gid.removeprefix("check_")].cases)
              for gid, e in official.items()}
    student_code = plan.student_code()
    findings = scan_cells({p: plan.cells[p].source for p in student_code})
    skipped = {f.cell - 1 for f in findings}
    answer_cells = {q for positions in plan.answers.values() for q in positions}
    static: set[str] = set()  # exercises decided by their source alone: running again changes nothing

    def judge(run: Run) -> dict[str, tuple[float, str, dict | None]]:
        found = {}
        # the student's other cells that ran: a helper their answer calls is part of their answer
        own = [plan.cells[p].source for p in sorted((run.ran & student_code) - answer_cells)]
        for gid, exercise in official.items():
            spec = specs[gid.removeprefix("check_")]
            code = "\n".join([answers[gid], *own])
            used, copied = names_used(code, spec.off_limits.names), copied_reference(code, spec.off_limits)
            outcome = run.outcomes[gid]
            if copied or used:
                static.add(gid)
            if copied:
                found[gid] = (0, f"your answer is a copy of {copied}, seglab's own code, which this exercise asks "
                                 f"you to write yourself ({spec.off_limits.why})", None)
            elif used:
                found[gid] = (0, f"your answer uses {', '.join(used)}, which this exercise asks you to write "
                                 f"yourself ({spec.off_limits.why})", None)
            elif isinstance(outcome, list):
                result = score(spec, chosen[gid], outcome)
                found[gid] = (min(float(result.points), exercise.points), result.message,
                              {"exercise": gid, "title": spec.title, "parts": result.parts, "failure": result.failure})
            elif outcome is not None:
                found[gid] = (0, f"the check's results could not be read ({outcome})", None)
            elif run.errors.get(gid):
                found[gid] = (0, run.errors[gid], None)
            elif run.stop_reason:
                found[gid] = (0, f"not checked: {run.stop_reason}", None)
            else:
                found[gid] = (0, "not run", None)
        return found

    results: dict[str, tuple[float, str, dict | None]] = {}
    if official:
        run = _run_probes(plan, official, chosen, only_needed, skipped, run_options)
        results = judge(run)
        if only_needed and run.sliced and (run.missed_name or any(
                results[gid][0] < e.points and gid not in static for gid, e in official.items())):
            # the slice may have missed what an answer depends on (a change made through a call): every cell
            again = judge(_run_probes(plan, official, chosen, False, skipped, run_options))
            results = {gid: max(results[gid], again[gid], key=lambda r: r[0]) for gid in official}
    details = []
    note = " ".join(f"Not run: {finding}." for finding in findings)
    for gid, (points, message, detail) in results.items():
        rows[gid].points, rows[gid].message = points, message
        if plan.checks.get(gid) is None:
            rows[gid].message = "check cell was deleted; checked at the end. " + rows[gid].message
        if detail is not None:
            details.append(detail)
    if note:
        for row in rows.values():
            row.message = f"{note} {row.message}".strip()
    if feedback_dir is not None:
        from seglab.course.feedback import write_record
        from seglab.course.manual import answer_text

        manual = [e.grade_id for e in graded if e.kind == "manual"]
        texts = {gid: answer_text(plan.answer_source(gid)) or "(no answer)" for gid in manual}
        write_record(feedback_dir, student, name, details, texts, findings=[str(f) for f in findings])
    return list(rows.values())


@dataclass
class Run:
    """What one run of a submission's probes returned."""

    outcomes: dict[str, object]  # grade_id: outcomes (a list), None (none sent) or why they cannot be read
    errors: dict[str, str | None]  # grade_id: why its probe cell sent nothing (an error, the time limit)
    stop_reason: str | None  # why the run ended early
    sliced: bool  # only the cells the answers need ran
    missed_name: bool  # a cell or an answer met a NameError (the slice missed a dependency)
    ran: set[int]  # positions in the submission of the student's cells that ran


def grading_notebook(plan: Plan, probes: dict[str, str], skipped: set[int] = frozenset()) -> tuple:
    """The notebook grading runs: the release's setup cell, the student's code cells (but ``skipped``), and
    the probe ``probes[grade_id]`` in place of each check cell (at the end for a deleted one).
    ``(notebook, targets, trusted, probe cells, origin)``: indices of the cells that must run (answers and
    probes), of the trusted setup cell, of each probe by grade_id, and ``{index: position}`` of the
    student's cells in the submission."""
    setup = plan.release.cells[plan.release.setup].source if plan.release.setup is not None else ""
    at = {position: gid for gid, position in plan.checks.items() if position is not None and gid in probes}
    cells, targets, trusted, probe_cells, origin = [], set(), set(), {}, {}
    if plan.setup is None and setup:
        trusted.add(len(cells))
        cells.append(nbformat.v4.new_code_cell(setup))
    answer_positions = {p for positions in plan.answers.values() for p in positions}
    for position, cell in enumerate(plan.cells):
        if cell.cell_type != "code":
            continue
        if position == plan.setup:
            trusted.add(len(cells))
            cells.append(nbformat.v4.new_code_cell(setup))
        elif position in at:
            targets.add(len(cells))
            probe_cells[at[position]] = len(cells)
            cells.append(nbformat.v4.new_code_cell(probes[at[position]]))
        elif position not in skipped:
            if position in answer_positions:
                targets.add(len(cells))
            origin[len(cells)] = position
            cells.append(nbformat.v4.new_code_cell(cell.source))
    for gid in probes:
        if gid not in probe_cells:  # a deleted check cell: check at the end
            targets.add(len(cells))
            probe_cells[gid] = len(cells)
            cells.append(nbformat.v4.new_code_cell(probes[gid]))
    return nbformat.v4.new_notebook(cells=cells), targets, trusted, probe_cells, origin


def _run_probes(plan: Plan, official: dict[str, Exercise], chosen: dict[str, list], only_needed: bool,
                skipped: set[int], run_options: dict) -> Run:
    """Run the grading notebook (:func:`grading_notebook`) with fresh tokens, only the cells the probes
    and answers need with ``only_needed``."""
    tokens = {gid: secrets.token_hex(16) for gid in official}
    probes = {gid: probe_source(gid.removeprefix("check_"), list(e.objects),
                                json.dumps([encode(public(case)) for case in chosen[gid]]), tokens[gid])
              for gid, e in official.items()}
    notebook, targets, trusted, probe_cells, origin = grading_notebook(plan, probes, skipped)
    cells = notebook.cells
    needed = needed_cells([cell.source for cell in cells], targets, trusted=trusted) if only_needed else None
    ran = {position for index, position in origin.items() if needed is None or index in needed}
    stop_reason = _execute(notebook, needed, set(probe_cells.values()), **run_options)
    outcomes = {gid: outcomes_of(cells[index], tokens[gid]) for gid, index in probe_cells.items()}
    errors = {gid: _cell_error(cells[index]) for gid, index in probe_cells.items()}
    missed = any(o.get("output_type") == "error" and o.get("ename") == "NameError"
                 for cell in cells for o in cell.get("outputs", [])) or any(
        isinstance(outcome, dict) and (
            (isinstance(outcome.get("error"), dict) and outcome["error"].get("type") == "NameError")
            or "run the cell that defines your answer" in str(outcome.get("stop", "")))
        for found in outcomes.values() if isinstance(found, list) for outcome in found)
    return Run(outcomes, errors, stop_reason, needed is not None, missed, ran)


def _execute(notebook, cells: set[int] | None, probe_cells: set[int], *, sandbox: str, limits: Limits,
             environment: dict[str, str] | None, timeout: float, total_timeout: float) -> str | None:
    """Run ``cells`` of ``notebook`` (all when ``None``) in a fresh sandboxed kernel; why it stopped early."""
    # the kernel's console goes to a file of the grader's own, in a folder the sandbox does not see
    with tempfile.TemporaryDirectory(prefix="seglab-grade-") as workdir, \
            tempfile.TemporaryDirectory(prefix="seglab-log-") as private:
        kernel = SandboxedKernel(workdir, sandbox=sandbox, limits=limits, environment=environment)
        log_path = Path(private) / "kernel.log"
        try:
            kernel.start_watchdog()
            with open(log_path, "w", encoding="utf-8", errors="replace") as log:
                stop_reason = execute_notebook(notebook, workdir, timeout=timeout, total_timeout=total_timeout,
                                               kernel_manager=kernel.manager, cell_output_bytes=limits.output_bytes,
                                               kernel_log=log, cells=cells, large_output_cells=probe_cells)
            if stop_reason and stop_reason.startswith("could not run"):
                with open(log_path, "rb") as log:
                    log.seek(max(0, os.fstat(log.fileno()).st_size - 500))
                    stop_reason += " — kernel log: " + log.read().decode("utf-8", "replace")
        finally:
            kernel.cleanup()
    if kernel.killed_reason:
        stop_reason = f"the sandbox was stopped: {kernel.killed_reason}"
    return stop_reason


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
    student, file, data, course, options = job
    return grade_submission(student, file, course, data=data, **options)


def _failed_rows(student: str, notebook: str, course: Course, reason: str) -> list[GradeRow]:
    """The rows of a submission that could not be graded: every exercise of its notebook, with the reason."""
    graded = course.exercises.get(notebook)
    if not graded:
        return [GradeRow(student, notebook, "*", 0, 0, reason)]
    return [GradeRow(student, notebook, e.grade_id, 0 if e.kind == "check" else "", e.points, reason) for e in graded]


@dataclass
class _Job:
    student: str
    file: str  # where it was found, for messages
    notebook: str  # the course notebook it is (or its file name when that cannot be told)
    data: bytes | None
    refused: str | None = None  # why it is not graded (its rows say so)


def _plan_jobs(path, course: Course) -> list[_Job]:
    """Every submission read once (:func:`seglab.course.submissions.collect`), told which notebook it
    is; refused ones, and second copies of one student's notebook, carry the reason."""
    jobs, first = [], {}
    for submission in collect(path):
        label = submission.path or submission.name
        try:
            if not submission.ok:
                raise UnreadableSubmission(submission.reason or "not read")
            plan = identify(parse_submission(submission.data), submission.name, course)
            job = _Job(submission.student, label, plan.release.name if plan else submission.name, submission.data)
        except UnreadableSubmission as error:
            plan = identify(None, submission.name, course)
            job = _Job(submission.student, label, plan.release.name if plan else NOT_GRADED, None, f"{label}: {error}")
        except Exception as error:  # nothing one submission holds stops the batch
            job = _Job(submission.student, label, NOT_GRADED, None,
                       f"{label}: not read ({type(error).__name__}: {str(error)[:200]})")
        key = (submission.key, job.notebook)
        if key in first and job.refused is None:
            job.refused, job.data = (f"a second copy of {job.notebook} ({label}); only {first[key]} is graded: "
                                     "hand in one copy per notebook"), None
            job.notebook = f"{job.notebook} (second copy)"
        elif job.refused is None:
            first[key] = label
        jobs.append(job)
    return jobs


def grade(path: str | Path, *, solutions_dir: str | Path = "solutions", timeout: float = 60,
          total_timeout: float = 900, workers: int = 1, sandbox: str = "bwrap", limits: Limits | None = None,
          skip: set[tuple[str, str]] = frozenset(), seed: int | None = None, quick: bool = True,
          shard: tuple[int, int] | None = None, progress: bool = False, feedback_dir: str | Path | None = None,
          only_needed: bool = True, on_student: Callable[[list[GradeRow]], None] | None = None) -> list[GradeRow]:
    """Grade a notebook or a folder of them, ``workers`` at a time; always finishes (a submission that
    breaks a step, or a worker, becomes its own rows with the reason).

    ``skip``: ``(student, notebook)`` pairs graded before (``--resume``). ``seed``: with the student's
    name, chooses each student's cases (default: a fresh one, so nobody can know the cases beforehand).
    ``on_student(rows)`` is called in this process as each submission is graded, in the order they finish.
    ``quick``: training cells run with the tests' small budget (``SEGLAB_QUICK=1``). ``shard=(i, n)``:
    grade only the students of share ``i`` of ``n`` (:func:`in_shard`). ``progress``: a progress bar with
    the time left, on standard error. ``feedback_dir``: records for the students' feedback pages.
    ``only_needed``: run only the cells that the answers and checks depend on (``False``: every cell).
    """
    course = load_course(solutions_dir)
    if sandbox == "bwrap" and not bwrap_available():
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: on Debian or Ubuntu run `sudo apt-get install "
                                 "bubblewrap`, or grade with --sandbox none (no isolation: a submission can then "
                                 "read your files and stop the grader)")
    planned = [job for job in _plan_jobs(path, course)
               if in_shard(job.student, shard) and (job.student, job.notebook) not in skip]
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    options = {"timeout": timeout, "total_timeout": total_timeout, "sandbox": sandbox, "limits": limits,
               "environment": kernel_environment(threads, quick=quick),
               "feedback_dir": None if feedback_dir is None else str(Path(feedback_dir).resolve()),
               "seed": secrets.randbits(64) if seed is None else seed, "only_needed": only_needed}
    results: list[list[GradeRow]] = []

    from tqdm.auto import tqdm

    bar = tqdm(total=len(planned), desc="grading", unit="submission", disable=not progress, dynamic_ncols=True)

    def done(rows: list[GradeRow]) -> None:
        results.append(rows)
        bar.update(1)
        if on_student is not None:
            on_student(rows)

    jobs = []
    for job in planned:
        if job.refused is not None:
            done(_failed_rows(job.student, job.notebook, course, job.refused))
        else:
            jobs.append(job)
    if workers <= 1:
        for job in jobs:
            try:
                done(_grade_job((job.student, job.file, job.data, course, options)))
            except Exception as error:  # grade_submission never raises; this is the last net
                done(_failed_rows(job.student, job.notebook, course, f"the grader failed ({type(error).__name__})"))
    else:
        _grade_in_pool(jobs, course, options, workers, done)
    bar.close()
    return sorted((row for rows in results for row in rows), key=lambda r: (r.student, r.notebook))


def _grade_in_pool(jobs: list[_Job], course: Course, options: dict, workers: int, done) -> None:
    """Grade ``jobs`` in worker processes; a worker that dies (the machine killed it) costs only the
    submission it was grading: the others are graded again in a fresh pool, and a submission that broke
    two pools gets rows that say so."""
    from concurrent.futures.process import BrokenProcessPool

    todo, broke = list(jobs), {}
    while todo:
        retry = []
        # spawn, not fork: a forked worker inherits this process's ZeroMQ state, which is not fork-safe
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_grade_job, (job.student, job.file, job.data, course, options)): job
                       for job in todo}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    done(future.result())
                except BrokenProcessPool:
                    broke[id(job)] = broke.get(id(job), 0) + 1
                    if broke[id(job)] >= 2 or len(todo) == 1:
                        done(_failed_rows(job.student, job.notebook, course,
                                          "the grading worker died while grading this submission"))
                    else:
                        retry.append(job)
                except Exception as error:
                    done(_failed_rows(job.student, job.notebook, course, f"the grader failed ({type(error).__name__})"))
        todo = retry


def write_csv(rows: list[GradeRow], path: str | Path) -> None:
    """Write all rows, atomically (a crash leaves the old file or the new one, never half of one)."""
    from seglab.course.spreadsheet import write_rows  # text cleaned, formulas neutralised (read_csv undoes it)

    write_rows(path, [FIELDS, *([getattr(row, field) for field in FIELDS] for row in rows)])


def append_csv(rows: list[GradeRow], path: str | Path) -> None:
    """Add one student's rows to the CSV as soon as they are graded, on disk before the next student."""
    from seglab.course.spreadsheet import append_rows  # one write of all the rows, fsynced

    append_rows(path, [[getattr(row, field) for field in FIELDS] for row in rows], header=FIELDS)


def read_csv(path: str | Path) -> list[GradeRow]:
    """The rows of a grades CSV (``--resume`` reads what an interrupted batch wrote)."""
    from seglab.course.spreadsheet import clean_text, read_rows

    header, *lines = read_rows(path) or [[]]
    if (header or lines) and set(header) != set(FIELDS):
        raise ValueError(f"{path} is not a seglab grades CSV (columns {clean_text(', '.join(header))}): choose "
                         "another --out")
    column = {field: header.index(field) for field in FIELDS} if header else {}
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
                                 "" if r["points"] == "" else float(r["points"]), float(r["max"]), r["message"]))
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
    from seglab.course.spreadsheet import clean_text  # printed: a name may hold anything a file name can

    lines = [[clean_text(student), clean_text(notebook), f"{points:.1f} / {maximum:.1f}", manual]
             for (student, notebook), (points, maximum, manual) in sorted(totals.items())]
    return table(["student", "notebook", "points", "to grade by hand"], lines, markdown=False, align="<<>>")
