"""Similar answers across a class: ``seglab similarity SUBMISSIONS``.

Only the students' own code counts: the code cells of each exercise's answer (nbgrader ``solution``
cells), without what the released stub already holds (signature, docstring, ``raise
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
answers below ``min_fingerprints`` do not count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from seglab.checks.fingerprint import fingerprints, normalise
from seglab.course.notebooks import course_notebooks, nbgrader
from seglab.course.plan import identify, released_as
from seglab.course.submissions import collect, parse_submission

__all__ = ["Pair", "report_html", "seglab_copies", "similar_pairs"]

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


def _answers(path: Path, notebooks_dir: Path) -> dict[str, dict[str, str]]:
    """``{student: {exercise: code}}`` of the answers, told by comparing each submission with the released
    notebooks in ``notebooks_dir`` (:mod:`seglab.course.plan`: the labels a student can edit count for
    nothing, so an answer moved to a relabelled cell is still the answer), read once and never through a link."""
    releases = {p.name: released_as(nbformat.read(p, as_version=4), p.name)
                for p in course_notebooks(notebooks_dir)}
    found: dict[str, dict[str, str]] = {}
    for submission in collect(path):
        if not submission.ok:
            continue
        try:
            plan = identify(parse_submission(submission.data), submission.name, releases)
        except Exception:  # not a notebook: nothing to compare
            continue
        if plan is None:
            continue
        for grade_id, index in plan.release.answers.items():
            if plan.release.cells[index].cell_type == "code" and plan.answers.get(grade_id):
                found.setdefault(submission.student, {})[grade_id] = plan.answer_source(grade_id)
    return found


def _stubs(notebooks_dir: Path) -> set[int]:
    """Fingerprints of the released notebooks' answer cells (the stub every student starts from)."""
    found: set[int] = set()
    for path in course_notebooks(notebooks_dir):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and nbgrader(cell).get("solution"):
                found |= fingerprints(normalise(cell.source))
    return found


def seglab_copies(answers: dict[str, dict[str, str]]) -> list[Pair]:
    """One pair (student, seglab's qualified name) for each student whose answers copy off-limits seglab code;
    its score is the highest share of the reference's fingerprints found in one of the answers."""
    from seglab.checks import exercises
    from seglab.checks.borrowed import reference_source, references_copied

    known = exercises()
    found: dict[tuple[str, str], Pair] = {}
    for student in sorted(answers):
        for grade_id, code in sorted(answers[student].items()):
            if grade_id not in known:
                continue
            for reference, _, share in references_copied(code, known[grade_id].off_limits):
                pair = found.setdefault((student, reference), Pair(student, reference, 0.0))
                pair.score = max(pair.score, share)
                pair.exercises.append((grade_id, share))
                pair.cells[grade_id] = (code, reference_source(reference))
    return list(found.values())


def similar_pairs(path: str | Path, *, notebooks_dir: str | Path = "notebooks", threshold: float = 0.8,
                  min_fingerprints: int = 12) -> list[Pair]:
    """Pairs of students whose answers share at least ``threshold`` of their fingerprints, and pairs of a
    student and the seglab function their answer copies, most similar first. ``notebooks_dir``: the released
    (student) notebooks, whose stubs never count."""
    answers = _answers(Path(path), Path(notebooks_dir))
    common = _stubs(Path(notebooks_dir)) | _seglab_fingerprints()
    prints = {student: {exercise: fingerprints(normalise(code)) - common for exercise, code in own.items()}
              for student, own in answers.items()}
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
    pairs += seglab_copies(answers)
    return sorted(pairs, key=lambda p: -p.score)


def report_html(pairs: list[Pair], threshold: float) -> str:
    """A self-contained page (``templates/similarity_report.html.j2``): each pair, its share per exercise, and
    the matching cells side by side."""
    from seglab.course.pages import render

    return render("similarity_report.html.j2", threshold=f"{threshold:.0%}", pairs=[
        {"a": pair.a, "b": pair.b, "score": f"{pair.score:.0%}",
         "exercises": [(exercise, f"{share:.0%}") for exercise, share in pair.exercises],
         "cells": [(exercise, code_a, code_b) for exercise, (code_a, code_b) in pair.cells.items()]}
        for pair in pairs])
