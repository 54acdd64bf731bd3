"""`seglab grade` on the failure cases a class produces: every submission gets a grade and a reason."""

import csv
import json
import shutil

import nbformat
import pytest

from seglab.cli import main
from seglab.course.grade import GradeOptions, grade
from seglab.course.graded import load_course
from seglab.course.submissions import collect_submissions
from tests.support import ROOT, by_grade_id

SOLUTION = ROOT / "solutions" / "01_convolution_arithmetic.ipynb"
STUDENT = ROOT / "notebooks" / "01_convolution_arithmetic.ipynb"
CHECKS = ["check_conv_output_size", "check_pool_output_size", "check_transposed_conv_output_size",
          "check_receptive_field"]




def _solve(notebook, grade_id):
    """Put the solution's code for one exercise into a student notebook."""
    by_grade_id(notebook, grade_id).source = by_grade_id(nbformat.read(SOLUTION, as_version=4), grade_id).source


def _write(notebook, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    student = lambda: nbformat.read(STUDENT, as_version=4)  # noqa: E731

    solved = student()  # alice: everything solved (the tutor-only cell is not in a submission)
    for gid in ("conv_output_size", "pool_output_size", "transposed_conv_output_size", "receptive_field"):
        _solve(solved, gid)
    _write(solved, folder / "alice.ipynb")

    partial = student()  # bob: one exercise solved, one wrong
    _solve(partial, "conv_output_size")
    by_grade_id(partial, "pool_output_size").source = ("def pool_output_size(i, k, s=None, p=0, ceil_mode=False):\n"
                                                 "    return i // k")
    _write(partial, folder / "bob.ipynb")

    broken = student()  # carol: a syntax error
    by_grade_id(broken, "conv_output_size").source = "def conv_output_size(i, k, s=1, p=0, d=1)\n    return i"
    _solve(broken, "receptive_field")
    _write(broken, folder / "carol.ipynb")

    endless = student()  # dave: an endless loop, later exercises still graded
    by_grade_id(endless, "conv_output_size").source = ("def conv_output_size(i, k, s=1, p=0, d=1):\n"
                                                 "    while True:\n        pass")
    _solve(endless, "pool_output_size")
    _write(endless, folder / "dave.ipynb")

    crash = student()  # erin: kills her kernel after solving exercise 1
    _solve(crash, "conv_output_size")
    by_grade_id(crash, "pool_output_size").source = "import os\nos._exit(1)"
    _write(crash, folder / "erin.ipynb")

    (folder / "frank.ipynb").write_text("{ this is not json")  # frank: not a notebook

    cheat = student()  # grace: edits a check cell to fake points and deletes another
    by_grade_id(cheat, "check_conv_output_size").source = 'print("✔ conv_output_size\\n  points: 2 / 2")'
    cheat.cells.remove(by_grade_id(cheat, "check_receptive_field"))
    _write(cheat, folder / "grace.ipynb")

    renamed = student()  # heidi: nbgrader layout and another file name; told apart by grade_ids
    _solve(renamed, "transposed_conv_output_size")
    _write(renamed, folder / "submitted" / "heidi" / "ps1" / "my_work.ipynb")

    skipped = student()  # ivan: solved, and a cell no answer needs that would kill the kernel
    for gid in ("conv_output_size", "pool_output_size"):
        _solve(skipped, gid)
    skipped.cells.insert(3, nbformat.v4.new_code_cell("import os\nos._exit(1)  # a figure that crashes"))
    _write(skipped, folder / "ivan.ipynb")

    hidden = student()  # judy: her answer reads a table that a function call fills (the slice cannot see that)
    hidden.cells.insert(3, nbformat.v4.new_code_cell("HALVES = {}\n\n\ndef fill(table):\n    table[4] = 2"))
    hidden.cells.insert(4, nbformat.v4.new_code_cell("fill(HALVES)"))
    _solve(hidden, "pool_output_size")
    answer = by_grade_id(hidden, "pool_output_size")
    answer.source = answer.source.replace("    s = k if s is None else s\n",
                                          "    s = k if s is None else s\n    assert HALVES[4] == 2\n")
    assert "HALVES" in answer.source
    _write(hidden, folder / "judy.ipynb")

    method = student()  # mia: a method that sets a global, called in a cell of its own
    method.cells.insert(3, nbformat.v4.new_code_cell("class Settings:\n    def use(self, value):\n"
                                                      "        global HALF\n        HALF = value"))
    method.cells.insert(4, nbformat.v4.new_code_cell("Settings().use(2)"))
    appended = student()  # nia: a helper that appends to a list, called in a cell of its own
    appended.cells.insert(3, nbformat.v4.new_code_cell("PARTS = []\n\n\ndef remember(value):\n    PARTS.append(value)"))
    appended.cells.insert(4, nbformat.v4.new_code_cell("remember(2)"))
    for notebook, name, check in ((method, "mia", "HALF == 2"), (appended, "nia", "PARTS[0] == 2")):
        _solve(notebook, "pool_output_size")
        answer = by_grade_id(notebook, "pool_output_size")
        answer.source = answer.source.replace("    s = k if s is None else s\n",
                                              f"    s = k if s is None else s\n    assert {check}\n")
        _write(notebook, folder / f"{name}.ipynb")

    stripped = student()  # kim: saved by a tool that drops cell ids and nbgrader metadata (an old format)
    _solve(stripped, "pool_output_size")
    for cell in stripped.cells:
        cell.metadata = {}
        cell.pop("id", None)
    stripped.nbformat_minor = 4
    _write(stripped, folder / "kim.ipynb")

    relabelled = student()  # leo: his grade_ids and tags rewritten, answers moved around the labels
    _solve(relabelled, "receptive_field")
    for cell in relabelled.cells:
        if "nbgrader" in cell.metadata:
            cell.metadata["nbgrader"]["grade_id"] = "check_conv_output_size"
        cell.metadata["tags"] = ["seglab-setup"]
    _write(relabelled, folder / "leo.ipynb")

    rows = grade(folder, GradeOptions(solutions_dir=ROOT / "solutions", timeout=30, total_timeout=300, workers=2))
    table = {(r.student, r.exercise): r for r in rows}
    return folder, rows, table


def test_collects_every_layout(graded):
    folder, _, _ = graded
    students = [s for s, _ in collect_submissions(folder)]
    assert sorted(students) == ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
                               "kim", "leo", "mia", "nia"]


def test_correct_submission_gets_full_points(graded):
    _, _, table = graded
    for gid in CHECKS:
        row = table["alice", gid]
        assert row.points == row.max > 0, row.message
    assert table["alice", "answer_output_resolution"].points == ""  # graded by hand
    assert table["alice", "check_conv_output_size"].notebook == SOLUTION.name


def test_partial_and_unsolved(graded):
    _, _, table = graded
    assert table["bob", "check_conv_output_size"].points == 2
    assert table["bob", "check_pool_output_size"].points == 0
    assert "wrong" in table["bob", "check_pool_output_size"].message
    assert "not implemented yet" in table["bob", "check_receptive_field"].message


def test_syntax_error_counts_only_that_exercise(graded):
    _, _, table = graded
    assert table["carol", "check_conv_output_size"].points == 0
    assert table["carol", "check_receptive_field"].points == 3


def test_endless_loop_is_interrupted(graded):
    _, _, table = graded
    assert table["dave", "check_conv_output_size"].points == 0
    assert "time limit" in table["dave", "check_conv_output_size"].message
    assert table["dave", "check_pool_output_size"].points == 2


def test_dead_kernel_keeps_earlier_points(graded):
    _, _, table = graded
    assert table["erin", "check_conv_output_size"].points == 2
    assert "kernel died" in table["erin", "check_pool_output_size"].message
    assert table["erin", "check_pool_output_size"].points == 0


def test_cells_no_answer_needs_are_not_run(graded):
    _, _, table = graded
    assert table["ivan", "check_conv_output_size"].points == 2, table["ivan", "check_conv_output_size"].message
    assert table["ivan", "check_pool_output_size"].points == 2


def test_a_dependency_the_source_hides_reruns_the_whole_notebook(graded):
    _, _, table = graded  # the slice does not see that fill(HALVES) changes HALVES: every cell runs again
    for student in ("judy", "mia", "nia"):  # a table filled by a call, a method that sets a global, a list appended to
        assert table[student, "check_pool_output_size"].points == 2, table[student, "check_pool_output_size"].message


def test_invalid_json_gets_zero_with_reason(graded):
    _, rows, _ = graded
    frank = [r for r in rows if r.student == "frank"]
    assert frank and all(r.points in (0, "") for r in frank)
    assert all("not a valid notebook" in r.message for r in frank)


def test_edited_and_deleted_check_cells_use_the_official_checks(graded):
    _, _, table = graded
    assert table["grace", "check_conv_output_size"].points == 0  # the fake print was replaced
    assert table["grace", "check_receptive_field"].points == 0
    assert "deleted" in table["grace", "check_receptive_field"].message or \
        "not implemented" in table["grace", "check_receptive_field"].message


def test_notebook_and_cells_are_told_by_the_release_not_by_labels(graded):
    _, _, table = graded
    assert table["heidi", "check_transposed_conv_output_size"].points == 2  # another file name
    assert table["heidi", "check_transposed_conv_output_size"].notebook == SOLUTION.name
    assert table["kim", "check_pool_output_size"].points == 2, table["kim", "check_pool_output_size"].message
    assert table["kim", "check_conv_output_size"].points == 0  # no ids, no metadata: told by the released cells
    leo = {gid: table["leo", gid].points for gid in CHECKS}  # labels rewritten: they count for nothing
    assert leo == {"check_conv_output_size": 0, "check_pool_output_size": 0, "check_transposed_conv_output_size": 0,
                   "check_receptive_field": 3}, leo


def test_names_that_collide_get_their_notebooks_rows_with_the_reason(tmp_path):
    """"jane doe" and "jane_doe" are both refused (no kernel runs), each with notebook 01's own rows: its
    exercises and maxima (the tutor's totals keep both students), naming the other and what to do."""
    _write(nbformat.read(STUDENT, as_version=4), tmp_path / "jane doe.ipynb")  # the file name tells no notebook
    _write(nbformat.read(STUDENT, as_version=4), tmp_path / "jane_doe.ipynb")
    rows = grade(tmp_path, GradeOptions(solutions_dir=ROOT / "solutions", sandbox="none", progress=False))
    official = load_course(ROOT / "solutions").exercises[STUDENT.name]
    for student, other in (("jane doe", "jane_doe"), ("jane_doe", "jane doe")):
        own = [row for row in rows if row.student == student]
        assert [(r.notebook, r.exercise, r.max) for r in own] == [(STUDENT.name, e.grade_id, e.points)
                                                                  for e in official]
        assert all(r.points in (0, "") for r in own) and sum(r.max for r in own) > 0
        assert all(f"'{student}' is the same as '{other}'" in r.message and "rename" in r.message for r in own)
    assert not any("second copy" in row.message or "second copy" in row.notebook for row in rows)


def test_exercises_come_from_the_solutions():
    exercises = load_course(ROOT / "solutions").exercises[SOLUTION.name]
    checks = [e for e in exercises if e.kind == "check"]
    assert [e.grade_id for e in checks] == CHECKS
    assert all("HIDDEN TESTS" in e.source for e in checks)  # graded with more cases than students see


def test_cli_grade_writes_csv(tmp_path, capsys):
    shutil.copy(STUDENT, tmp_path / "zoe.ipynb")
    out = tmp_path / "grades.csv"
    assert main(["grade", "run", str(tmp_path / "zoe.ipynb"), "--out", str(out), "--solutions", str(ROOT / "solutions"),
                 "--timeout", "30"]) == 0
    with open(out, newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["student", "notebook", "exercise", "points", "max", "message", "review"]
    assert {r["student"] for r in rows} == {"zoe"} and all(r["points"] in ("0", "0.0", "") for r in rows)
    assert "zoe" in capsys.readouterr().out
    json.dumps(rows)
    with open(tmp_path / "grades-manual.csv", newline="") as file:  # the answers to grade by hand
        sheet = list(csv.DictReader(file))
    assert [(r["student"], r["question"], r["points"]) for r in sheet] == [("zoe", "answer_output_resolution", "")]


def test_missing_bubblewrap_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import seglab.course.grade as grade_module

    monkeypatch.setattr(grade_module, "bwrap_available", lambda: False)
    shutil.copy(STUDENT, tmp_path / "zoe.ipynb")
    assert main(["grade", "run", str(tmp_path / "zoe.ipynb"), "--out", str(tmp_path / "g.csv"), "--solutions",
                 str(ROOT / "solutions"), "--sandbox", "bwrap"]) == 2
    err = capsys.readouterr().err
    assert "apt-get install bubblewrap" in err and "--sandbox none" in err and "Traceback" not in err


def test_grading_without_the_sandbox_warns_loudly(tmp_path, capsys):
    (tmp_path / "frank.ipynb").write_text("not a notebook")  # nothing to run: the warning is what matters
    assert main(["grade", "run", str(tmp_path), "--out", str(tmp_path / "g.csv"), "--solutions",
                 str(ROOT / "solutions"),
                 "--sandbox", "none"]) == 0
    assert "WITHOUT isolation" in capsys.readouterr().err


def test_limits_launcher_sets_the_limits_and_runs_the_command():
    import subprocess
    import sys

    probe = "import resource as r; print(r.getrlimit(r.RLIMIT_AS)[0], r.getrlimit(r.RLIMIT_FSIZE)[0])"
    result = subprocess.run([sys.executable, "-m", "seglab.course.limits", "--memory", str(3 << 30), "--cpu", "60",
                             "--file-size", "4096", "--", sys.executable, "-c", probe],
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == [str(3 << 30), "4096"]
