"""Honest code keeps its points (issue 31). The everyday lines of public course notebooks
(:mod:`tests.course.honest_idioms`: magics, ``!`` commands, introspection, configuration, threads, helpers ...)
are never refused or noted by the scan, and each one, written in an answer cell and in a helper cell the answer
uses, keeps the answer's full points at grading (in the sandbox) and in ``seglab check``, which says the same."""

from __future__ import annotations

import csv

import nbformat
import pytest

from seglab.cli import main
from seglab.course.sandbox import bwrap_available
from seglab.course.scan import scan_cells
from seglab.course.selfcheck import check_notebook
from tests.course.honest_idioms import IDIOMS
from tests.support import NOTEBOOKS, SOLUTIONS, by_grade_id

NAME = "01_convolution_arithmetic.ipynb"
ANSWERS = ("conv_output_size", "pool_output_size", "transposed_conv_output_size", "receptive_field")
BATCHES = 8  # submissions; each idiom appears in one's answer cell and in another's helper cell
USES_HELPER = ("\n_answer = conv_output_size\n\n\ndef conv_output_size(i, k, s=1, p=0, d=1):\n"
               "    return _answer(i, k, s, p, d) + _offset()\n")


def _batch(number: int) -> list:
    return IDIOMS[number::BATCHES]


@pytest.mark.parametrize("idiom", IDIOMS, ids=[idiom.name for idiom in IDIOMS])
def test_the_scan_lets_every_idiom_run_without_a_note(idiom):
    answer = by_grade_id(nbformat.read(SOLUTIONS / NAME, as_version=4), "conv_output_size").source
    for cells in ({0: idiom.source}, {0: idiom.source + "\n\n" + answer}, {0: idiom.source, 1: answer}):
        if idiom.cell_magic and len(cells) == 1 and "\n\n" in cells[0]:
            continue  # a cell magic takes its whole cell (below: in a cell of its own)
        assert scan_cells(cells) == [], (idiom.name, [str(f) for f in scan_cells(cells)])


def _submission(number: int) -> nbformat.NotebookNode:
    """Notebook 01 solved, with batch ``number`` at the top of exercise 1's answer cell and batch ``number + 1``
    in a helper cell before it that the answer calls; cell magics each in a cell of their own."""
    solution = nbformat.read(SOLUTIONS / NAME, as_version=4)
    notebook = nbformat.read(NOTEBOOKS / NAME, as_version=4)
    for grade_id in ANSWERS:
        by_grade_id(notebook, grade_id).source = by_grade_id(solution, grade_id).source
    answer = by_grade_id(notebook, "conv_output_size")
    in_answer, in_helper = _batch(number), _batch((number + 1) % BATCHES)
    lines = [i.source for i in in_answer if not i.cell_magic]
    answer.source = "\n".join(lines) + "\n\n" + answer.source + USES_HELPER
    helper = "\n".join(i.source for i in in_helper if not i.cell_magic) + "\n\n\ndef _offset():\n    return 0\n"
    magics = [i.source for i in in_answer + in_helper if i.cell_magic]
    position = notebook.cells.index(answer)
    for source in [*magics, helper][::-1]:
        notebook.cells.insert(position, nbformat.v4.new_code_cell(source))
    return notebook


@pytest.fixture(scope="module")
def honest_class(tmp_path_factory):
    folder = tmp_path_factory.mktemp("honest")
    for number in range(BATCHES):
        nbformat.write(_submission(number), folder / f"student{number}.ipynb")
    comparer = _submission(0)  # the notebook's own habit (its cell after exercise 1), inside the answer cell
    answer = by_grade_id(comparer, "pool_output_size")
    answer.source += ("\n\nfrom seglab.arithmetic import pool_output_size as reference_pool_output_size\n"
                      "print(pool_output_size(5, 2), reference_pool_output_size(5, 2))\n")
    nbformat.write(comparer, folder / "comparer.ipynb")
    out = folder.parent / "honest.csv"
    code = main(["grade", "run", str(folder), "--out", str(out), "--solutions", str(SOLUTIONS), "--workers", "2",
                 "--seed", "31", "--timeout", "60", "--total-timeout", "600", "--no-progress"])
    with open(out, newline="", encoding="utf-8") as file:
        return {"code": code, "rows": list(csv.DictReader(file)), "folder": folder}


@pytest.mark.skipif(not bwrap_available(), reason="needs bubblewrap: tools/install-system-packages")
@pytest.mark.parametrize("number", range(BATCHES))
def test_every_idiom_keeps_full_points_at_grading_and_in_seglab_check(honest_class, number):
    idioms = [i.name for i in _batch(number) + _batch((number + 1) % BATCHES)]
    rows = [r for r in honest_class["rows"] if r["student"] == f"student{number}" and r["points"] != ""]
    assert honest_class["code"] == 0 and rows
    lost = {r["exercise"]: r["message"] for r in rows if float(r["points"]) < float(r["max"])}
    assert lost == {}, (idioms, lost)
    assert all(r["review"] == "" for r in rows), (idioms, [r["review"] for r in rows])
    check = check_notebook(honest_class["folder"] / f"student{number}.ipynb", progress=False, timeout=120)
    assert check.refused == [] and check.errors == [], (idioms, check.refused, check.errors)
    assert {s.exercise: s.status for s in check.exercises if s.points is not None} == {
        f"check_{name}": "passed" for name in ANSWERS}, (idioms, check.exercises)


@pytest.mark.skipif(not bwrap_available(), reason="needs bubblewrap: tools/install-system-packages")
def test_comparing_with_seglabs_reference_beside_the_answer_keeps_its_points(honest_class):
    """The off-limits names are read in the code the checked function is made of, not in the lines beside it."""
    rows = [r for r in honest_class["rows"] if r["student"] == "comparer" and r["points"] != ""]
    assert rows and all(float(r["points"]) == float(r["max"]) for r in rows), [r["message"] for r in rows]
