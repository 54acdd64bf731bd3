"""Similar answers across a class: ``seglab similarity SUBMISSIONS``.

Only the students' own code counts: for each exercise, the code that defines the function(s) its check
calls (``check_conv_output_size(conv_output_size)``), wherever it stands among the student's code cells, with
the helpers it calls (the exercise's answer cell, nbgrader ``solution``, when no cell defines them), without
what the released stub already holds (signature, docstring, ``raise
NotImplementedError()``) and, between two students, without anything that also appears in seglab's own
source. An answer that is a pasted or renamed copy of the seglab code its exercise puts off-limits
(:func:`seglab.checks.borrowed.copied_reference`) is reported as a pair of the student and that seglab
function (``Pair.b`` is its qualified name, e.g. ``seglab.arithmetic.conv_output_size``). Each answer is
normalised first — comments, docstrings and formatting dropped, local names renamed in order of first
use, string contents ignored — so renaming variables or reformatting does not hide a copy. Answers
are compared as sets of k-token fingerprints (as MOSS does): the share of the smaller answer's
fingerprints found in the other. A pair is reported when its answers share at least ``threshold`` of
their fingerprints, over the exercises both answered with enough code to tell (``min_fingerprints``).

A report is a reason to look, not a verdict: short exercises have few ways to be written, which is why
answers below ``min_fingerprints`` do not count. Code nested too deeply for Python to read (a 200 000-term
sum) is left out of the comparison and listed for its student (:attr:`Comparison.unread`); it never stops one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from seglab.checks.fingerprint import TooDeep, fingerprints, normalise
from seglab.course.graded import check_call
from seglab.course.needed import defining_code, definitions
from seglab.course.notebooks import course_notebooks, nbgrader
from seglab.course.plan import Release, identify, released_as
from seglab.course.submissions import collect, parse_submission

__all__ = ["Comparison", "Pair", "compare", "report_html", "seglab_copies", "similar_pairs"]

def _seglab_fingerprints() -> set[int]:
    import seglab

    found: set[int] = set()
    for path in Path(seglab.__file__).parent.rglob("*.py"):
        found |= fingerprints(normalise(path.read_text(encoding="utf-8")))
    return found


@dataclass
class Pair:
    a: str
    b: str
    score: float  # shared share of fingerprints, over the exercises that count
    exercises: list[tuple[str, float]] = field(default_factory=list)  # (exercise, its share)
    cells: dict[str, tuple[str, str]] = field(default_factory=dict)  # exercise: (a's code, b's code)


def _checked(release: Release) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``{exercise: (its check's grade_id, the names it checks)}`` from the released check cells
    (``check_unet_sizes(unet_output_size, unet_input_size)``: the check calls both functions)."""
    found = {}
    for grade_id, index in release.checks.items():
        try:
            exercise, objects, _ = check_call(release.cells[index].source)
        except (SyntaxError, ValueError):  # not a check call the grader knows: the answer cell counts
            continue
        found[exercise] = (grade_id, objects)
    return found


def _answers(path: Path, notebooks_dir: Path) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """``{student: {exercise: code}}`` of the answers, and ``{student: [what of their code was not compared,
    and why]}``.

    Which cells are which is told by comparing each submission with the released notebooks in ``notebooks_dir``
    (:mod:`seglab.course.plan`: the labels a student can edit count for nothing, so an answer moved to a relabelled
    cell is still the answer); read once and never through a link. An exercise's code is what defines the
    function(s) its check calls, wherever the student wrote it (an answer cell left with its stub and the
    function in a new cell below it is still the answer), with the helpers it calls; the answer cell when no
    cell defines them. A cell nested too deeply to read is left out, and said so."""
    releases = {p.name: released_as(nbformat.read(p, as_version=4), p.name)
                for p in course_notebooks(notebooks_dir)}
    checked = {name: _checked(release) for name, release in releases.items()}
    found: dict[str, dict[str, str]] = {}
    unread: dict[str, list[str]] = {}
    for submission in collect(path):
        label = submission.path or submission.name
        if not submission.ok:
            unread.setdefault(submission.student, []).append(f"{label}: {submission.reason or 'not read'}")
            continue
        try:
            plan = identify(parse_submission(submission.data), submission.name, releases)
        except Exception as error:  # not a notebook: nothing to compare
            unread.setdefault(submission.student, []).append(f"{label}: {str(error)[:200]}")
            continue
        if plan is None:
            continue
        cells = {}
        for position in sorted(plan.student_code()):
            try:
                cells[position] = definitions(plan.cells[position].get("source", ""))
            except TooDeep as error:
                unread.setdefault(submission.student, []).append(
                    f"{label}, cell {position + 1}: {error}; left out of the comparison")
        for grade_id, index in plan.release.answers.items():
            if plan.release.cells[index].cell_type != "code":
                continue
            check, objects = checked[plan.release.name].get(grade_id, (None, ()))
            code = defining_code(plan, objects, plan.checks.get(check), cells) if objects else None
            if code is None and plan.answers.get(grade_id):
                code = plan.answer_source(grade_id)
            if code:
                found.setdefault(submission.student, {})[grade_id] = code
    return found, unread


def _stubs(notebooks_dir: Path) -> set[int]:
    """Fingerprints of the released notebooks' answer cells (the stub every student starts from)."""
    found: set[int] = set()
    for path in course_notebooks(notebooks_dir):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and nbgrader(cell).get("solution"):
                found |= fingerprints(normalise(cell.source))
    return found


def seglab_copies(answers: dict[str, dict[str, str]], unread: dict[str, list[str]] | None = None) -> list[Pair]:
    """One pair (student, seglab's qualified name) for each student whose answers copy off-limits seglab code;
    its score is the highest share of the reference's fingerprints found in one of the answers. An answer too
    deeply nested to read is skipped, and said so in ``unread`` (``{student: [...]}``) when given."""
    from seglab.checks import exercises
    from seglab.checks.borrowed import reference_source, references_copied

    known = exercises()
    found: dict[tuple[str, str], Pair] = {}
    for student in sorted(answers):
        for grade_id, code in sorted(answers[student].items()):
            if grade_id not in known:
                continue
            try:
                copied = references_copied(code, known[grade_id].off_limits)
            except (TooDeep, RecursionError):
                if unread is not None:
                    unread.setdefault(student, []).append(f"{grade_id}: nested too deeply for Python to read; not "
                                                          "compared with seglab's code")
                continue
            for reference, _, share in copied:
                pair = found.setdefault((student, reference), Pair(student, reference, 0.0))
                pair.score = max(pair.score, share)
                pair.exercises.append((grade_id, share))
                pair.cells[grade_id] = (code, reference_source(reference))
    return list(found.values())


@dataclass
class Comparison:
    """What :func:`compare` found: the pairs, most similar first, and what of each student's code could not be
    compared (``{student: [where, and why]}``: a cell nested too deeply to read, a file that is not a notebook)."""

    pairs: list[Pair]
    unread: dict[str, list[str]] = field(default_factory=dict)


def compare(path: str | Path, *, notebooks_dir: str | Path = "notebooks", threshold: float = 0.8,
            min_fingerprints: int = 12) -> Comparison:
    """Pairs of students whose answers share at least ``threshold`` of their fingerprints, and pairs of a
    student and the seglab function their answer copies, most similar first; and what could not be compared.
    ``notebooks_dir``: the released (student) notebooks, whose stubs never count. Code that cannot be read is
    left out, never a reason to stop: every other pair is still reported."""
    answers, unread = _answers(Path(path), Path(notebooks_dir))
    common = _stubs(Path(notebooks_dir)) | _seglab_fingerprints()
    prints: dict[str, dict[str, set[int]]] = {}
    for student, own in answers.items():
        for exercise, code in own.items():
            try:
                prints.setdefault(student, {})[exercise] = fingerprints(normalise(code)) - common
            except TooDeep as error:
                unread.setdefault(student, []).append(f"{exercise}: {error}; not compared")
    students = sorted(prints)
    pairs = []
    for i, a in enumerate(students):
        for b in students[i + 1:]:
            shared = total = 0
            per_exercise = []
            for exercise in sorted(set(prints[a]) & set(prints[b])):
                x, y = prints[a][exercise], prints[b][exercise]
                smaller = min(len(x), len(y))
                if smaller < min_fingerprints:
                    continue
                overlap = len(x & y)
                shared, total = shared + overlap, total + smaller
                per_exercise.append((exercise, overlap / smaller))
            if total and shared / total >= threshold:
                cells = {e: (answers[a][e], answers[b][e]) for e, share in per_exercise if share >= threshold}
                pairs.append(Pair(a, b, shared / total, per_exercise, cells))
    pairs += seglab_copies(answers, unread)
    return Comparison(sorted(pairs, key=lambda p: -p.score), unread)


def similar_pairs(path: str | Path, *, notebooks_dir: str | Path = "notebooks", threshold: float = 0.8,
                  min_fingerprints: int = 12) -> list[Pair]:
    """The pairs of :func:`compare`, most similar first."""
    return compare(path, notebooks_dir=notebooks_dir, threshold=threshold, min_fingerprints=min_fingerprints).pairs


def report_html(pairs: list[Pair], threshold: float, unread: dict[str, list[str]] | None = None) -> str:
    """A self-contained page (``templates/similarity_report.html.j2``): each pair, its share per exercise, and
    the matching cells side by side; and what of each student's code could not be compared (``unread``)."""
    from seglab.course.pages import render

    return render("similarity_report.html.j2", threshold=f"{threshold:.0%}", pairs=[
        {"a": pair.a, "b": pair.b, "score": f"{pair.score:.0%}",
         "exercises": [(exercise, f"{share:.0%}") for exercise, share in pair.exercises],
         "cells": [(exercise, code_a, code_b) for exercise, (code_a, code_b) in pair.cells.items()]}
        for pair in pairs], unread=sorted((unread or {}).items()))
