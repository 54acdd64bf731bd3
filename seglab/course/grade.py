"""Grade submitted notebooks: the orchestrator of the grading pipeline, which ``seglab grade`` calls.

Every submission goes through the stages in order, each a module of its own:

1. **collect** (:mod:`seglab.course.submissions`): read once, never through a link and never more than a
   size cap; a link, a special file, a second copy of one student's notebook or a name that collides with
   another student's gets rows with the reason;
2. **plan** (:mod:`seglab.course.plan`, :mod:`seglab.course.scan`, :mod:`seglab.course.probes`,
   :mod:`seglab.course.needed`): tell which course notebook it is and what each cell is by comparing its
   cells with the tutor's release (the tags and ``grade_id``\\ s a student can edit count for nothing); read,
   in this process, every cell of the student's own code (a cell that tampers with grading itself never
   runs: :mod:`seglab.checks.tamper`; everything else runs, under the run-time guards);
   choose fresh random cases for every exercise (as many as the official check cell asks for, hidden tests
   included) and put in place of each check cell a probe that carries them; keep only the cells the answers
   and checks depend on;
3. **run** (:mod:`seglab.course.run`): execute those cells in a fresh sandboxed kernel
   (:mod:`seglab.course.sandbox`), errors allowed, with time limits;
4. **read** (:mod:`seglab.course.results`): what each probe sent back, as data;
5. **judge** (:mod:`seglab.course.judge`): against the oracle, in this process; zero for an answer that uses
   what its exercise asks to write; when the slice met a ``NameError`` or earned less than full points,
   every cell runs again and the better result counts (slicing never costs points);
6. **write** (:mod:`seglab.course.rows`, :mod:`seglab.course.manual`, :mod:`seglab.course.feedback`): the
   rows of the grades CSV, the sheet of answers to grade by hand, the students' feedback pages.

Nothing the student's code prints, patches, hooks or redefines is read as a grade: the kernel only ever
returns the answers' outputs, and student code only ever runs in those kernels. Submissions are graded in
parallel worker processes, each with its own kernel; ``on_student`` receives each student's rows as soon as
they are graded, so an interrupted batch loses nothing (``seglab grade run --resume``). Whatever goes wrong with
one submission, in any step, becomes that submission's rows with the reason. One :class:`GradeOptions`
(:mod:`seglab.course.options`) holds every setting and goes to every stage as it is.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import secrets
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

from seglab.checks import exercises
from seglab.course.feedback import write_pages, write_record
from seglab.course.graded import Course, load_course
from seglab.course.judge import Attempt, Verdict, after_refusal, judge
from seglab.course.manual import (
    answer_text,
    collect_answers,
    merge_manual,
    read_entries,
    read_sheet,
    sheet_path,
    write_sheet,
)
from seglab.course.needed import needed_cells
from seglab.course.options import GradeOptions
from seglab.course.plan import Plan, identify
from seglab.course.probes import probe_notebook
from seglab.course.results import Run, read_run
from seglab.course.rows import NOT_GRADED, GradeRow, append_csv, failed_rows, merge_csvs, read_csv, write_csv
from seglab.course.run import run_sandboxed
from seglab.course.sandbox import SandboxUnavailable, bwrap_available
from seglab.course.scan import LIMITS, refused_cells, scan_plan
from seglab.course.submissions import UnreadableSubmission, collect, parse_submission, read_regular

__all__ = ["Batch", "GradeOptions", "grade", "grade_class", "grade_submission", "in_shard", "merge_hand_grading",
           "merge_shards"]

DEFAULTS = GradeOptions()  # the command line's settings


# --- one submission ---------------------------------------------------------------------------------------------


def grade_submission(student: str, file: str | Path, course: Course, options: GradeOptions = DEFAULTS, *,
                     data: bytes | None = None) -> list[GradeRow]:
    """Grade one submission (runs its code in a fresh, sandboxed kernel); never raises: whatever goes wrong
    with a submission becomes its rows, with the reason. ``options.seed`` and the student's name choose the
    cases. ``data``: the submission's bytes, when the caller read them already."""
    name = Path(file).name
    plan = None
    try:
        if data is None:
            try:
                data = read_regular(file, LIMITS.notebook_bytes)
            except OSError as error:  # UnsafeFile included: a link, not a regular file, too large
                raise UnreadableSubmission(f"not read: {error}") from None
        plan = identify(parse_submission(data), name, course)
        if plan is None:
            return _failed(student, name, course, "cannot tell which notebook this is", options)
        return _grade_plan(student, plan, course, options)
    except UnreadableSubmission as error:
        reason = str(error)
    except Exception as error:  # a step of the grader failed on this submission: its rows say so, the batch goes on
        reason = f"the grader could not grade this submission ({type(error).__name__}: {str(error)[:200]})"
    if plan is None:
        plan = identify(None, name, course)
    return _failed(student, name if plan is None else plan.release.name, course, reason, options)


def _grade_plan(student: str, plan: Plan, course: Course, options: GradeOptions) -> list[GradeRow]:
    name = plan.release.name
    graded = course.exercises[name]
    rows = {e.grade_id: GradeRow(student, name, e.grade_id, 0 if e.kind == "check" else "", e.points,
                                 "not run" if e.kind == "check" else "graded by hand") for e in graded}
    official = {e.grade_id: e for e in graded if e.kind == "check"}
    specs = {gid: exercises()[cell.exercise_id] for gid, cell in official.items()}
    rng = random.Random(f"{options.seed}:{student}:{name}")  # fresh cases for every student, repeatable for a batch
    chosen = {gid: specs[gid].make_cases(rng, cell.cases or specs[gid].cases) for gid, cell in official.items()}
    attempt = Attempt(plan, official, specs, chosen, plan.student_code())
    code = {p: plan.cells[p].source for p in attempt.student_code}
    if sum(len(source.encode("utf-8", "replace")) for source in code.values()) > LIMITS.code_bytes:
        raise UnreadableSubmission(f"not graded: more than {LIMITS.code_bytes // 1024} KiB of code in all (an "
                                   "answer needs a few KiB)")
    findings = scan_plan(plan)
    skipped = refused_cells(findings)
    refusals, notes = [f for f in findings if f.refused], [f for f in findings if not f.refused]

    verdicts: dict[str, Verdict] = {}
    if official:
        run = _run(attempt, skipped, options, only_needed=options.only_needed)
        verdicts = judge(attempt, run)
        if run.sliced and (run.missed_name or any(v.points < official[gid].points and not v.static
                                                  for gid, v in verdicts.items())):
            # the slice may have missed what an answer depends on (a change made through a call): every cell
            again = judge(attempt, _run(attempt, skipped, options, only_needed=False))
            # the better points count; on a tie the run that saw every cell says why
            verdicts = {gid: max(again[gid], verdicts[gid], key=lambda v: v.points) for gid in official}
    refused = " ".join(str(finding) for finding in refusals)
    for gid, verdict in verdicts.items():
        verdict = after_refusal(verdict) if refused else verdict
        rows[gid].points, rows[gid].message = verdict.points, verdict.message
        if plan.checks.get(gid) is None:
            rows[gid].message = "check cell was deleted; checked at the end. " + rows[gid].message
    review = " ".join(str(note) for note in notes)
    for row in rows.values():
        if refused:
            row.message = f"{refused} {row.message}".strip()
        row.review = review
    if options.feedback_dir is not None:
        texts = {e.grade_id: answer_text(plan.answer_source(e.grade_id)) or "(no answer)"
                 for e in graded if e.kind == "manual"}
        write_record(options.feedback_dir, student, name, [v.detail for v in verdicts.values() if v.detail],
                     texts, findings=[str(f) for f in refusals])
    return list(rows.values())


def _run(attempt: Attempt, skipped: set[int], options: GradeOptions, *, only_needed: bool) -> Run:
    """Plan, run and read the grading notebook once, with fresh tokens; only the cells the probes and answers
    need with ``only_needed``."""
    grading = probe_notebook(attempt.plan, attempt.official, attempt.chosen, skipped)
    sources = [cell.source for cell in grading.notebook.cells]
    needed = needed_cells(sources, grading.targets, trusted=grading.trusted) if only_needed else None
    stop_reason, completed = run_sandboxed(grading.notebook, needed, set(grading.probe_cells.values()), options)
    return read_run(grading, stop_reason, needed, completed)


def _failed(student: str, notebook: str, course: Course, reason: str, options: GradeOptions) -> list[GradeRow]:
    """The rows of a submission that was refused or could not be graded, each with the reason, and with
    ``options.feedback_dir`` the record of its page, which says why (a record that cannot be written costs the
    page, never the rows)."""
    rows = failed_rows(student, notebook, course, reason)
    if options.feedback_dir is not None:
        try:
            write_record(options.feedback_dir, student, notebook, [], {}, refused=reason)
        except (OSError, ValueError) as error:
            for row in rows:
                row.message += f" (its feedback page could not be written: {type(error).__name__})"
    return rows


# --- a batch ----------------------------------------------------------------------------------------------------


def in_shard(student: str, shard: tuple[int, int] | None) -> bool:
    """Whether ``student`` belongs to shard ``(i, n)`` (1-based): decided by a hash of the name alone, so
    every machine of a job array agrees, and all of one student's notebooks land on the same shard."""
    if shard is None:
        return True
    index, count = shard
    return int(hashlib.sha256(student.encode("utf-8")).hexdigest(), 16) % count == index - 1


@dataclass
class _Job:
    student: str
    file: str  # where it was found, for messages
    notebook: str  # the course notebook it is (or its file name when that cannot be told)
    data: bytes | None
    refused: str | None = None  # why it is not graded (its rows say so)


def _grade_job(job: tuple) -> list[GradeRow]:
    student, file, data, course, options = job
    return grade_submission(student, file, course, options, data=data)


def _plan_jobs(path, course: Course) -> list[_Job]:
    """Every submission read once (:func:`seglab.course.submissions.collect`), told which notebook it
    is; refused ones, and second copies of one student's notebook, carry the reason. Of several copies, one
    that can be graded is graded, and only one: a refused copy beside it (an empty file, a link) never adds
    a second set of rows."""
    jobs, keys = [], []
    for submission in collect(path):
        label = submission.path or submission.name
        try:
            if submission.data is None:  # refused unread: a link, a special file, too large
                raise UnreadableSubmission(submission.reason or "not read")
            plan = identify(parse_submission(submission.data), submission.name, course)
            job = _Job(submission.student, label, plan.release.name if plan else submission.name, submission.data)
            if not submission.ok:  # read, then refused (its name collides with another student's): its notebook's rows
                job.refused, job.data = f"{label}: {submission.reason}", None
        except UnreadableSubmission as error:
            plan = identify(None, submission.name, course)
            job = _Job(submission.student, label, plan.release.name if plan else NOT_GRADED, None,
                       f"{label}: {submission.reason or error}")
        except Exception as error:  # nothing one submission holds stops the batch
            job = _Job(submission.student, label, NOT_GRADED, None,
                       f"{label}: {submission.reason or f'not read ({type(error).__name__}: {str(error)[:200]})'}")
        jobs.append(job)
        keys.append((submission.student, job.notebook))  # two students never share one: their names collide
    graded: dict[tuple, str] = {}  # the copy of each student's notebook that counts: the first readable one,
    for job, key in zip(jobs, keys, strict=True):  # else the first refused one
        if job.refused is None and key not in graded:
            graded[key] = job.file
    for job, key in zip(jobs, keys, strict=True):
        graded.setdefault(key, job.file)
        if graded[key] != job.file:
            why = "" if job.refused is None else f" ({job.refused})"
            job.refused, job.data = (f"a second copy of {job.notebook} ({job.file}{why}); only {graded[key]} is "
                                     "graded: hand in one copy per notebook"), None
            job.notebook = f"{job.notebook} (second copy)"
    return jobs


def _require_sandbox(options: GradeOptions) -> None:
    if options.sandbox == "bwrap" and not bwrap_available():
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: on Debian or Ubuntu run `sudo apt-get install "
                                 "bubblewrap`, or grade with --sandbox none (no isolation: a submission can then "
                                 "read your files and stop the grader)")


def grade(path: str | Path, options: GradeOptions = DEFAULTS, *, skip: set[tuple[str, str]] = frozenset(),
          on_student: Callable[[list[GradeRow]], None] | None = None) -> list[GradeRow]:
    """Grade a notebook or a folder of them, ``options.workers`` at a time; always finishes (a submission that
    breaks a step, or a worker, becomes its own rows with the reason).

    ``skip``: ``(student, notebook)`` pairs graded before (``--resume``). ``on_student(rows)`` is called in this
    process as each submission is graded, in the order they finish. Without ``options.seed`` a fresh one is
    drawn, so nobody can know the cases beforehand.
    """
    course = load_course(options.solutions_dir)
    _require_sandbox(options)
    planned = [job for job in _plan_jobs(path, course)
               if in_shard(job.student, options.shard) and (job.student, job.notebook) not in skip]
    options = replace(options, seed=secrets.randbits(64) if options.seed is None else options.seed,
                      feedback_dir=None if options.feedback_dir is None else str(Path(options.feedback_dir).resolve()))
    results: list[list[GradeRow]] = []

    from tqdm.auto import tqdm

    bar = tqdm(total=len(planned), desc="grading", unit="submission", disable=not options.progress,
               dynamic_ncols=True)

    def done(rows: list[GradeRow]) -> None:
        results.append(rows)
        bar.update(1)
        if on_student is not None:
            on_student(rows)

    jobs = []
    for job in planned:
        if job.refused is not None:
            done(_failed(job.student, job.notebook, course, job.refused, options))
        else:
            jobs.append(job)
    if options.workers <= 1:
        for job in jobs:
            try:
                done(_grade_job((job.student, job.file, job.data, course, options)))
            except Exception as error:  # grade_submission never raises; this is the last net
                done(_failed(job.student, job.notebook, course, f"the grader failed ({type(error).__name__})", options))
    else:
        _grade_in_pool(jobs, course, options, done)
    bar.close()
    return sorted((row for rows in results for row in rows), key=lambda r: (r.student, r.notebook))


def _grade_in_pool(jobs: list[_Job], course: Course, options: GradeOptions, done) -> None:
    """Grade ``jobs`` in worker processes; a worker that dies (the machine killed it) costs only the
    submission it was grading: the others are graded again in a fresh pool, and a submission that broke
    two pools gets rows that say so."""
    from concurrent.futures.process import BrokenProcessPool

    todo, broke = list(jobs), {}
    while todo:
        retry = []
        # spawn, not fork: a forked worker inherits this process's ZeroMQ state, which is not fork-safe
        with ProcessPoolExecutor(max_workers=options.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_grade_job, (job.student, job.file, job.data, course, options)): job
                       for job in todo}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    done(future.result())
                except BrokenProcessPool:
                    broke[id(job)] = broke.get(id(job), 0) + 1
                    if broke[id(job)] >= 2 or len(todo) == 1:
                        done(_failed(job.student, job.notebook, course,
                                     "the grading worker died while grading this submission", options))
                    else:
                        retry.append(job)
                except Exception as error:
                    done(_failed(job.student, job.notebook, course, f"the grader failed ({type(error).__name__})",
                                 options))
        todo = retry


# --- what `seglab grade` does with a batch: the CSV, the hand-grading sheet, the feedback pages -----------------


@dataclass
class Batch:
    """What a ``seglab grade`` call wrote."""

    rows: list[GradeRow]
    out: Path  # the grades CSV
    sheet: Path | None  # the answers to grade by hand (None: no sheet, as for shards that had none)
    resumed: int = 0  # submissions kept from an earlier run (--resume)
    merged: int = 0  # hand-graded answers merged from the sheet
    sheet_problem: str | None = None  # why the sheet could not be merged (the automatic grades stand)
    pages: int | None = None  # feedback pages written (None: none asked for)


def grade_class(submissions: str | Path, options: GradeOptions, *, out: str | Path = "grades.csv",
                sheet: str | Path | None = None, resume: bool = False,
                on_resume: Callable[[int], None] | None = None) -> Batch:
    """Grade every submission at ``submissions`` into ``out`` (appended per student), write the sheet of answers
    to grade by hand (keeping what the tutor filled in), merge its filled points, and write the feedback pages
    when ``options.feedback_dir`` is set. ``resume``: keep the students already in ``out``; ``on_resume(n)`` is
    told how many before grading starts."""
    out = Path(out)
    sheet = Path(sheet) if sheet else sheet_path(out)
    _require_sandbox(options)  # before anything is written: an earlier batch's grades stay until this one runs
    previous = read_csv(out) if resume and out.exists() else []
    if not previous:
        out.unlink(missing_ok=True)  # a fresh batch
    resumed = len({(r.student, r.notebook) for r in previous})
    if on_resume is not None:
        on_resume(resumed)
    rows = grade(submissions, options, skip={(r.student, r.notebook) for r in previous},
                 on_student=lambda student_rows: append_csv(student_rows, out))
    rows = sorted(previous + rows, key=lambda r: (r.student, r.notebook))
    course = load_course(options.solutions_dir)
    batch = Batch(rows, out, sheet, resumed)
    try:  # a sheet the tutor broke (a maximum edited to text ...) is left as it is: the automatic grades stand
        answers = [e for e in collect_answers(submissions, course) if in_shard(e.student, options.shard)]
        write_sheet(answers, sheet)  # a shard's sheet holds its own students, as its grades do
        entries = read_sheet(sheet, rows, course)
        batch.rows, batch.merged = merge_manual(rows, entries), len(entries)
    except ValueError as error:  # ManualSheetError: what to fix, line by line
        batch.sheet_problem = str(error)
    write_csv(batch.rows, out)
    if options.feedback_dir is not None:  # the pages show hand-graded points only once they are merged
        batch.pages = len(write_pages(options.feedback_dir, batch.rows, [] if batch.sheet_problem else entries))
    return batch


def merge_hand_grading(out: str | Path, sheet: str | Path, *, solutions_dir: str | Path = "solutions",
                       feedback_dir: str | Path | None = None) -> Batch:
    """Merge a filled hand-grading ``sheet`` into the grades at ``out`` (grading nothing) and rewrite the
    feedback pages with the tutor's points and comments; a sheet with mistakes raises
    :class:`seglab.course.manual.ManualSheetError` and changes nothing."""
    out, sheet = Path(out), Path(sheet)
    if not out.is_file():
        raise FileNotFoundError(f"no grades at {out} to merge {sheet} into: pass --out")
    rows = read_csv(out)
    entries = read_sheet(sheet, rows, load_course(solutions_dir))
    batch = Batch(merge_manual(rows, entries), out, sheet, merged=len(entries))
    write_csv(batch.rows, out)
    if feedback_dir is not None:
        batch.pages = len(write_pages(feedback_dir, batch.rows, read_entries(sheet) if sheet.is_file() else []))
    return batch


def merge_shards(csvs: list[str | Path], out: str | Path) -> Batch:
    """Join the grades CSVs of shards (``--shard I/N``) into ``out``, and their hand-grading sheets into one
    beside it."""
    out = Path(out)
    batch = Batch(merge_csvs(csvs), out, sheet_path(out))
    write_csv(batch.rows, out)
    sheets = [sheet_path(path) for path in csvs if sheet_path(path).is_file()]
    if sheets:  # the shards' answers to grade by hand, in one sheet beside the joined grades
        entries: dict[tuple, object] = {}
        for entry in (entry for sheet in sheets for entry in read_entries(sheet)):
            kept = entries.get(entry.key)
            if kept is None or not (kept.points.strip() or kept.comment.strip()):  # what a tutor filled in wins
                entries[entry.key] = entry
        write_sheet(list(entries.values()), batch.sheet)
    else:
        batch.sheet = None
    return batch
