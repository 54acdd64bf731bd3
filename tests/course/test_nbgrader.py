"""Real nbgrader takes seglab's notebooks: ``generate_assignment`` from a solution notebook, ``autograde``
of three submissions. A solved notebook gets every automatic point, an unsolved one none, a partly solved
one what ``seglab grade`` gives it; the tutor-only cell is removed by the documented configuration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook  # seglab[dev] installs nbgrader

from seglab.course.grade import GradeOptions, grade
from tests.support import ROOT, all_by_grade_id

NOTEBOOK = "01_convolution_arithmetic"
SOLVED = {"alice": ("conv_output_size", "pool_output_size", "transposed_conv_output_size", "receptive_field"),
          "bob": ("conv_output_size", "receptive_field"), "carol": ()}

# The configuration the README documents: nbgrader's own steps, with the tutor-only cells removed first.
CONFIG = """c = get_config()
c.CourseDirectory.course_id = "seglab"
from nbconvert.preprocessors import TagRemovePreprocessor
from nbgrader.converters import GenerateAssignment
c.GenerateAssignment.preprocessors = [TagRemovePreprocessor,
                                      *GenerateAssignment.class_traits()["preprocessors"].default()]
c.TagRemovePreprocessor.enabled = True
c.TagRemovePreprocessor.remove_cell_tags = {"tutor"}
"""


def _nbgrader(course: Path, *args: str, env: dict | None = None) -> None:
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True,
                            timeout=900, env=None if env is None else {**os.environ, **env})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]




@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(CONFIG)
    source = course / "source" / "ps1"
    source.mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / f"{NOTEBOOK}.ipynb", source)
    _nbgrader(course, "generate_assignment", "ps1", "--force")
    released = nbformat.read(course / "release" / "ps1" / f"{NOTEBOOK}.ipynb", as_version=4)
    solution = nbformat.read(ROOT / "solutions" / f"{NOTEBOOK}.ipynb", as_version=4)
    ours = course / "ours"
    ours.mkdir()
    for student, solved in SOLVED.items():
        notebook = nbformat.read(course / "release" / "ps1" / f"{NOTEBOOK}.ipynb", as_version=4)
        for grade_id in solved:
            all_by_grade_id(notebook, grade_id)[0].source = all_by_grade_id(solution, grade_id)[0].source
        folder = course / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / f"{NOTEBOOK}.ipynb")
        nbformat.write(notebook, ours / f"{student}.ipynb")
    # as the README says: training shortened, and a cell time limit that leaves room (nbgrader's is 30 s)
    _nbgrader(course, "autograde", "ps1", "--create", "--force", "--Execute.timeout=600", env={"SEGLAB_QUICK": "1"})
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        automatic = {}
        for student in SOLVED:
            submission = gradebook.find_submission_notebook(NOTEBOOK, "ps1", student)
            automatic[student] = {g.name: g.auto_score for g in submission.grades if g.cell.cell_type == "code"}
    seglab_rows = grade(ours, GradeOptions(solutions_dir=ROOT / "solutions", timeout=60, total_timeout=600, seed=7))
    return {"released": released, "automatic": automatic, "seglab": seglab_rows}


def test_the_release_has_no_tutor_cell_and_no_hidden_test(course):
    text = json.dumps(course["released"])
    assert "Tutor check" not in text and "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text
    assert not any("tutor" in c.metadata.get("tags", []) for c in course["released"].cells)


def test_a_solved_notebook_gets_every_automatic_point(course):
    assert course["automatic"]["alice"] == {"check_conv_output_size": 2, "check_pool_output_size": 2,
                                            "check_transposed_conv_output_size": 2, "check_receptive_field": 3}


def test_an_unsolved_notebook_gets_none(course):
    assert set(course["automatic"]["carol"].values()) == {0}


def test_a_partly_solved_notebook_gets_what_seglab_grade_gives(course):
    assert course["automatic"]["bob"]["check_conv_output_size"] == 2
    assert course["automatic"]["bob"]["check_pool_output_size"] == 0
    for student in SOLVED:
        ours = {r.exercise: float(r.points) for r in course["seglab"] if r.student == student and r.points != ""}
        assert ours == {name: float(points) for name, points in course["automatic"][student].items()}, student
