"""Feedback pages: points per exercise and part, the first wrong case with a picture and the hint, the
student's own answers with the tutor's points and comment after hand grading — and nothing from the
solutions (the release's leak check finds nothing in them)."""

from __future__ import annotations

import csv
from pathlib import Path

import nbformat
import pytest

from seglab.cli import main
from seglab.course.kit import SolutionSecrets, find_leaks
from seglab.course.sandbox import bwrap_available

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_upsampling.ipynb"
ANSWER = "Zeros between the samples, then a filter: my own words."


def _cells(notebook):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in notebook.cells if c.metadata.get("nbgrader")}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("feedback")
    folder = tmp / "class"
    folder.mkdir()
    solution = _cells(nbformat.read(ROOT / "solutions" / NOTEBOOK, as_version=4))
    notebook = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    cells = _cells(notebook)
    cells["bilinear_kernel"].source = solution["bilinear_kernel"].source
    # the kernel is not flipped: right shape, wrong values (1 of 3 points)
    cells["transposed_conv_by_zero_insertion"].source = solution["transposed_conv_by_zero_insertion"].source.replace(
        "weight.flip(-1, -2).transpose(0, 1)", "weight.transpose(0, 1)")
    cells["answer_signal_processing"].source = ANSWER
    nbformat.write(notebook, folder / "ada.ipynb")
    out, pages = tmp / "grades.csv", tmp / "pages"
    sandbox = "bwrap" if bwrap_available() else "none"
    assert main(["grade", str(folder), "--out", str(out), "--feedback", str(pages), "--seed", "3", "--sandbox",
                 sandbox, "--solutions", str(ROOT / "solutions"), "--no-progress", "--timeout", "60"]) == 0
    return tmp, out, pages


def test_a_page_per_student_and_notebook_with_points_parts_picture_and_hint(graded):
    _, out, pages = graded
    page = (pages / "ada" / "02_upsampling.html").read_text()
    with open(out, newline="") as file:
        rows = {r["exercise"]: r for r in csv.DictReader(file)}
    assert float(rows["check_bilinear_kernel"]["points"]) == 2
    assert float(rows["check_transposed_conv_by_zero_insertion"]["points"]) == 1  # the shape part held
    assert "output shape: 1 / 1" in page and "values: 0 / 2" in page
    assert "data:image/png;base64," in page and "Hint: flip the kernel" in page
    assert "not implemented yet" in page  # the exercises not tried
    assert ANSWER in page and "to be graded by hand" in page
    assert "(no answer)" in page and "YOUR ANSWER HERE" not in page  # the question left open


def test_hand_grading_reaches_the_page(graded):
    tmp, out, pages = graded
    sheet = tmp / "grades-manual.csv"
    with open(sheet, newline="") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        if row["question"] == "answer_signal_processing":
            row["points"], row["comment"] = "2", "Good: name the low-pass filter too."
    with open(sheet, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["grade", "--manual", str(sheet), "--out", str(out), "--feedback", str(pages), "--solutions",
                 str(ROOT / "solutions")]) == 0
    page = (pages / "ada" / "02_upsampling.html").read_text()
    assert "Good: name the low-pass filter too." in page and "2 / 3" in page


def test_pages_hold_nothing_from_the_solutions(graded):
    _, _, pages = graded
    assert find_leaks(pages, SolutionSecrets.read(ROOT / "solutions")) == []
