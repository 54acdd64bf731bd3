"""The grading stages one at a time, on what a hostile student's attacks on the reorganised grader found
(round three): outcomes shown by the student's code instead of the probe, a pasted copy hidden in another
exercise's answer cell, a refused second copy that doubled a student's rows, a notebook too large to read
in time, and shards whose hand-grading sheets lost what the tutor had filled in."""

from __future__ import annotations

import inspect
import json
import re

import nbformat

import seglab.layers
from seglab.checks import exercises
from seglab.checks.probe import MIME
from seglab.course.grade import GradeOptions, _plan_jobs, grade_class, grade_submission, merge_shards
from seglab.course.judge import Attempt, judge
from seglab.course.manual import read_entries, sheet_path, write_sheet
from seglab.course.plan import identify
from seglab.course.probes import grading_notebook
from seglab.course.results import Run, read_run
from seglab.course.scan import LIMITS
from seglab.course.submissions import parse_submission
from tests.support import NOTEBOOKS, SOLUTIONS, by_grade_id, nbgrader


def _plan(course, notebook):
    name = notebook.metadata.get("name", "")
    return identify(parse_submission(json.dumps(nbformat.from_dict(notebook)).encode()), name, course)


# --- read: only the probe's own outcomes count ------------------------------------------------------------------


def test_outcomes_beside_an_error_or_in_a_cell_that_never_ended_are_not_read(course):
    plan = identify(parse_submission((NOTEBOOKS / "01_convolution_arithmetic.ipynb").read_bytes()), "01.ipynb",
                    course)
    grading = grading_notebook(plan, {"check_conv_output_size": "probe()"})._replace(
        tokens={"check_conv_output_size": "t" * 32})
    index = grading.probe_cells["check_conv_output_size"]
    shown = {"output_type": "display_data", "metadata": {},
             "data": {MIME: {"token": "t" * 32, "outcomes": [{"output": 1}]}}}
    error = {"output_type": "error", "ename": "SystemExit", "evalue": "", "traceback": []}
    cell = grading.notebook.cells[index]

    cell.outputs = [shown]
    assert read_run(grading, None, None, {index}).outcomes["check_conv_output_size"] == [{"output": 1}]
    # the kernel died (or was stopped) inside the probe's cell: what it showed is anybody's
    assert read_run(grading, "the kernel died", None, set()).outcomes["check_conv_output_size"] is None
    cell.outputs = [shown, error]  # the answer showed them, then ended the probe before it could
    run = read_run(grading, None, None, {index})
    assert run.outcomes["check_conv_output_size"] is None and "SystemExit" in run.errors["check_conv_output_size"]


# --- judge: a copy counts wherever it stands ---------------------------------------------------------------------


def test_a_copy_pasted_into_another_exercises_answer_cell_is_found(course):
    notebook = nbformat.read(NOTEBOOKS / "02_upsampling.ipynb", as_version=4)
    solution = nbformat.read(SOLUTIONS / "02_upsampling.ipynb", as_version=4)
    by_grade_id(notebook, "convolution_matrix").source = by_grade_id(solution, "convolution_matrix").source
    pasted = re.sub(r'"""[\s\S]*?"""', "", inspect.getsource(seglab.layers.bilinear_kernel))
    by_grade_id(notebook, "convolution_matrix").source += "\n\n" + pasted.replace("bilinear_kernel", "helper_weights")
    by_grade_id(notebook, "bilinear_kernel").source = ("def bilinear_kernel(channels, kernel_size):\n"
                                                       "    return helper_weights(channels, kernel_size)\n")
    notebook.cells.append(nbformat.v4.new_code_cell("def broken(:  # fails when it runs; hides nothing"))
    plan = identify(parse_submission(json.dumps(nbformat.from_dict(notebook)).encode()), "02.ipynb", course)
    official = {e.grade_id: e for e in course.exercises["02_upsampling.ipynb"] if e.kind == "check"}
    specs = {gid: exercises()[cell.exercise_id] for gid, cell in official.items()}
    attempt = Attempt(plan, official, specs, {gid: [] for gid in official}, plan.student_code())
    run = Run({gid: [] for gid in official}, {}, None, False, False, set(plan.student_code()))
    verdicts = judge(attempt, run)
    assert verdicts["check_bilinear_kernel"].points == 0
    assert "copy of seglab.layers.bilinear_kernel" in verdicts["check_bilinear_kernel"].message
    # the honest answer next to it is not touched: off-limits names of one exercise are not another's
    assert "copy" not in verdicts["check_convolution_matrix"].message


def test_the_official_solutions_hold_no_copy_in_any_cell(course):
    """Counting copies across cells never costs an honest notebook: no solution's answers, all together, are
    a copy of what any of its exercises puts off-limits."""
    from seglab.checks.borrowed import copied_reference

    for name, graded in course.exercises.items():
        notebook = nbformat.read(SOLUTIONS / name, as_version=4)
        code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code" and nbgrader(c).get("solution"))
        for cell in (e for e in graded if e.kind == "check"):
            assert not copied_reference(code, exercises()[cell.exercise_id].off_limits), (name, cell.grade_id)


# --- collect: one set of rows per student and notebook ------------------------------------------------------------


def test_a_refused_copy_beside_a_readable_one_is_a_second_copy(course, tmp_path):
    folder = tmp_path / "class" / "mallory"
    folder.mkdir(parents=True)
    (folder / "01_a.ipynb").write_text("not json")  # sorted first
    (folder / "01_b.ipynb").write_bytes((NOTEBOOKS / "01_convolution_arithmetic.ipynb").read_bytes())
    (folder / "01_c.ipynb").write_text("")
    jobs = _plan_jobs(tmp_path / "class", course)
    counted = [job for job in jobs if job.notebook == "01_convolution_arithmetic.ipynb"]
    assert [job.file.endswith("01_b.ipynb") and job.refused is None for job in counted] == [True]
    seconds = [job for job in jobs if job.notebook.endswith("(second copy)")]
    assert len(seconds) == 2 and all("only" in job.refused and "01_b.ipynb" in job.refused for job in seconds)
    assert "not a valid notebook" in next(job.refused for job in seconds if job.file.endswith("01_a.ipynb"))


# --- plan: a notebook too large to read in time -------------------------------------------------------------------


def test_more_code_than_the_grader_reads_is_refused_before_anything_runs(course, tmp_path):
    notebook = nbformat.read(NOTEBOOKS / "01_convolution_arithmetic.ipynb", as_version=4)
    bulk = "\n".join(f"def g{n}(a, b):\n    return a * {n} + b" for n in range(4000))  # about 150 KiB a cell
    notebook.cells += [nbformat.v4.new_code_cell(bulk) for _ in range(4)]
    data = json.dumps(nbformat.from_dict(notebook)).encode()
    rows = grade_submission("bulky", "01.ipynb", course, GradeOptions(sandbox="none"), data=data)
    assert rows and all(f"more than {LIMITS.code_bytes // 1024} KiB of code" in row.message for row in rows)
    assert all(row.points in (0, "") for row in rows)


# --- write: shards and their hand-grading sheets -----------------------------------------------------------------


def test_each_shard_sheets_its_own_students_and_merging_keeps_what_was_filled(tmp_path):
    """Notebook 05 has only questions graded by hand: no kernel runs."""
    folder = tmp_path / "class"
    folder.mkdir()
    students = ["amy", "bob", "cy", "dee", "eve", "fay"]
    for student in students:
        (folder / f"{student}.ipynb").write_bytes((NOTEBOOKS / "05_experiments.ipynb").read_bytes())
    outs = []
    for index in (1, 2):
        out = tmp_path / f"g{index}.csv"
        batch = grade_class(folder, GradeOptions(solutions_dir=SOLUTIONS, sandbox="none", shard=(index, 2)), out=out)
        graded = {row.student for row in batch.rows}
        sheet = read_entries(sheet_path(out))
        assert {entry.student for entry in sheet} == graded and graded  # its own students, no other shard's
        filled = sheet[0]
        filled.points, filled.comment = "1", f"read by tutor {index}"
        write_sheet(sheet, sheet_path(out))
        outs.append((out, filled.key))
    merged = merge_shards([out for out, _ in outs], tmp_path / "all.csv")
    entries = {entry.key: entry for entry in read_entries(merged.sheet)}
    assert {entries[key].comment for _, key in outs} == {"read by tutor 1", "read by tutor 2"}
    assert {row.student for row in merged.rows} == set(students)


# --- the probe: the second layer under the scan ------------------------------------------------------------------


def test_the_probe_finds_grading_code_the_notebook_replaced(monkeypatch):
    """However a cell reached it (the scan refuses the plain ways), a function of the probe's modules that is
    the notebook's own code stops the probe before it shows anything."""
    import functools

    import IPython.display

    import seglab.checks
    from seglab.checks import probe

    assert probe.replaced() == []
    namespace: dict = {}
    exec(compile("def show(*a, **k):\n    return None", "/tmp/ipykernel_1/123.py", "exec"), namespace)  # a cell
    for module, name, value in ((IPython.display, "display", namespace["show"]),
                                (seglab.checks, "run_answer", functools.partial(namespace["show"]))):
        with monkeypatch.context() as patch:
            patch.setattr(module, name, value)
            assert probe.replaced() == [f"{module.__name__}.{name}"]
            try:
                probe.probe("conv_output_size", "[]", "t", lambda: (lambda *a: 0,))
            except RuntimeError as error:
                assert "which grading runs through: this check cannot run" in str(error)
            else:
                raise AssertionError("the probe ran through the notebook's code")
