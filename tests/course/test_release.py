"""Single source: notebooks/ is exactly what `seglab release` makes from solutions/, and leaks nothing."""

import re

import nbformat
import pytest

from seglab.checks import exercises
from seglab.course.kit import SolutionSecrets, find_leaks
from seglab.course.release import (
    SETUP_TAG,
    grade_ids,
    release_all,
    release_notebook,
    student_source,
)
from tests.support import ROOT, SOLUTIONS, course_notebooks, nbgrader

SOLUTIONS = course_notebooks(SOLUTIONS)
CHECK_POINTS = {exercise_id: exercise.points for exercise_id, exercise in exercises().items()}


def test_there_are_solution_notebooks():
    assert SOLUTIONS


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_student_notebook_is_the_release_of_the_solution(path, tmp_path):
    release_all(ROOT / "solutions", tmp_path)
    released = (tmp_path / path.name).read_text(encoding="utf-8")
    committed = (ROOT / "notebooks" / path.name).read_text(encoding="utf-8")
    assert committed == released, "notebooks/ is out of date: run `seglab release` in the repository root"


@pytest.fixture(scope="module")
def secrets():
    return SolutionSecrets.read(ROOT / "solutions")


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_nothing_of_the_solution_leaks_into_the_student_notebook(path, secrets):
    assert find_leaks(ROOT / "notebooks" / path.name, secrets) == []
    student_text = (ROOT / "notebooks" / path.name).read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in student_text and "HIDDEN TESTS" not in student_text


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_notebook_conventions(path):
    text = path.read_text(encoding="utf-8")
    notebook = nbformat.reads(text, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in notebook.cells if c.cell_type == "code"), "strip the outputs before committing"
    assert not re.search(r"(/work/|/home/|/root/|[A-Z]:\\\\)", text), "no absolute paths in notebooks"
    ids = grade_ids(notebook)
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    cells = notebook.cells
    for n, cell in enumerate(cells):
        meta = nbgrader(cell)
        if not meta:
            continue
        assert meta["schema_version"] == 3
        if meta["solution"] and not meta["grade"]:  # an exercise: its check follows right after it
            following = nbgrader(cells[n + 1])
            assert following.get("grade_id") == f"check_{meta['grade_id']}", f"no check after {meta['grade_id']}"
            assert "### BEGIN SOLUTION" in cell.source
            assert following["points"] == CHECK_POINTS[meta["grade_id"]], "points differ from the check's"
        if meta["grade"] and not meta["solution"]:
            assert f"check_{meta['grade_id'][len('check_'):]}(" in cell.source


def test_release_rules():
    source = '''def f(x):
    """Docstring stays."""
    ### BEGIN SOLUTION
    return x + 1
    ### END SOLUTION'''
    assert student_source(source) == '''def f(x):
    """Docstring stays."""
    # YOUR CODE HERE
    raise NotImplementedError()'''
    assert student_source("check(f)\n### BEGIN HIDDEN TESTS\ncheck(f, cases=500)\n### END HIDDEN TESTS") == "check(f)"
    assert student_source("Q?\n### BEGIN SOLUTION\nA.\n### END SOLUTION", "markdown") == "Q?\nYOUR ANSWER HERE"
    with pytest.raises(ValueError, match="without"):
        student_source("### BEGIN SOLUTION\nx = 1")


def test_release_drops_tutor_cells_and_outputs():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)"), nbformat.v4.new_code_cell("secret")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="1")]
    nb.cells[0].execution_count = 3
    nb.cells[1].metadata["tags"] = ["tutor"]
    student = release_notebook(nb)
    setup, kept = student.cells
    assert SETUP_TAG in setup.metadata["tags"]  # the release puts the setup cell first
    assert kept.source == "print(1)" and kept.outputs == [] and kept.execution_count is None
    assert len(nb.cells) == 2  # the solution is not changed


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_student_notebook_starts_with_the_setup_cell(path):
    cells = nbformat.read(ROOT / "notebooks" / path.name, as_version=4).cells
    first_code = next(c for c in cells if c.cell_type == "code")
    assert SETUP_TAG in first_code.metadata.get("tags", []) and cells.index(first_code) <= 1
