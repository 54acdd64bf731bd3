"""The grader's own parsing, planning, scanning and judging of a submission (issue 24), without kernels:
cells are told by the release and never by labels, the scan finds what must not run, and random notebook
JSON, cell sources, outputs and result data never raise out of a submission's grading (hypothesis)."""

from __future__ import annotations

import ast
import json
import random

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seglab.checks import exercise, public, score
from seglab.checks.borrowed import names_used
from seglab.checks.probe import MIME, outcomes_of, probe_source
from seglab.checks.wire import encode
from seglab.course import grade as grading
from seglab.course.grade import GradeOptions, grade_submission
from seglab.course.graded import load_course
from seglab.course.needed import needed_cells
from seglab.course.plan import identify, plan_submission
from seglab.course.probes import grading_notebook
from seglab.course.scan import LIMITS, scan_cells, scan_source
from seglab.course.submissions import UnreadableSubmission, parse_submission
from tests.support import ROOT, SOLUTIONS, course_notebooks

COURSE = load_course(ROOT / "solutions")
FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(st.characters(blacklist_categories=()), max_size=200)  # every code point, lone surrogates too


def _released(name: str) -> list:
    return parse_submission((ROOT / "notebooks" / name).read_bytes())


# --- the scan -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, found", [
    ("get_ipython().events.register('pre_run_cell', f)", "get_ipython().events"),
    ("ip = get_ipython()\nip.ast_transformers.append(t)", "shell's internals"),
    ("[get_ipython()][0].input_transformers_post.append(t)", "shell's internals"),  # a word only IPython uses
    ("import sys\nsys.setprofile(None)", "tracer, profiler"),
    ("x = sys._getframe(1).f_locals", "frame"),
    ("import inspect\nframe = inspect.currentframe()", "inspect.currentframe"),
    ("def f():\n    try:\n        1 / 0\n    except Exception as e:\n        return e.__traceback__.tb_frame", "frame"),
    ("import gc\nholders = gc.get_referrers(x)", "gc.get_referrers"),
    ("from seglab.checks.probe import probe", "part of the grader"),
    ("from seglab.checks import run_answer", "part of the grader"),
    ("import seglab.checks as c\nc.probe.probe = lambda *a: None", "changes seglab.checks.probe.probe"),
    ("from seglab import checks\nchecks.borrowed.watch = None", "changes seglab.checks.borrowed.watch"),
    ("import seglab.checks.arithmetic as a\na.EXERCISES = []", "changes seglab.checks.arithmetic.EXERCISES"),
    ("import seglab\ngetattr(seglab.checks, 'pro' + 'be')", "reaches seglab.checks.probe"),  # a name joined
    ("import seglab\ngetattr(seglab.checks, name)", "chosen at run time"),  # a computed name, a known object
    ("import sys\nvars(sys.modules['seglab.checks.probe'])['probe'] = f", "changes seglab.checks.probe.probe"),
    ("with torch._C._DisableTorchDispatch():\n    pass", "watch of PyTorch's operators"),
    ("from torch.utils._python_dispatch import TorchDispatchMode", "changes how PyTorch runs"),
    ("import torch\nlib = torch.library.Library('aten', 'IMPL')", "changes how PyTorch runs"),
    ("x = " + "+".join(["1"] * 150_000), "KiB of code"),
    # round three: patching what grading runs through (the probe's display, the checks through the package)
    ("import IPython.display as shown\nshown.display = print", "changes IPython.display.display"),
    ("import seglab as s\ns.checks.run_answer = None", "changes seglab.checks.run_answer"),
    ("from IPython import display\ndel display.display", "changes IPython.display.display"),
    ("import traceback\nline = traceback.extract_stack()[-2].line", "traceback.extract_stack"),  # the probe's line
    ("import sys\nsys.modules['seglab.checks.probe'] = fake", "import machinery"),
    ("import sys\nsys.meta_path.insert(0, finder)", "import machinery"),
    ("import builtins\nbuiltins.len = fake", "changes builtins.len"),
    ("setattr(__builtins__, 'len', fake)", "changes builtins.len"),
    ("import threading\nthreading._start_new_thread = fake", "changes threading._start_new_thread"),
    ("import ctypes", "raw memory"),
    ("memory = open('/proc/self/mem', 'rb')", "raw memory"),
    ("%%capture\nimport sys\nsys.settrace(tracer)", "tracer, profiler"),  # a cell magic's body is Python
])
def test_the_scan_refuses_what_tampers_with_grading(source, found):
    assert any(found in what for what in scan_source(source)), scan_source(source)


@pytest.mark.parametrize("source", [
    "%matplotlib inline\n%timeit conv_output_size(5, 3)\n!pip install tqdm",
    "from IPython.display import display, Markdown\ndisplay(Markdown('**hi**'))",
    "import math, os.path\nsize = getattr(layer, 'stride', 1)\nprint(os.path.join('a', 'b'))",
    "import torch\nimport torch.nn.functional as F\ny = F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2))",
    # attributes of the student's own objects are theirs to set
    "from torch import nn\nlayer = nn.Conv2d(1, 1, 3)\nlayer.weight.data = layer.weight.data * 0\n"
    "class Up(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.scale = 2",
    # what the blocklist refused before issue 31: the run-time guards decide now
    "import threading\nthreading.Thread(target=f).start()",
    "from concurrent.futures import ThreadPoolExecutor",
    "import subprocess\nsubprocess.run(['python', '-c', 'print(1)'])",
    "import os\nos.system('ls')",
    "exec('x = 1')",
    "f = getattr(F, 'con' + 'v2d')",
    "print(In[-1], _i, Out)",
    "%run other.py",
    "!cat /etc/passwd",
    "%load_ext autoreload\n%autoreload 2",
    "import torch\nm = torch.nn.functional\nm.conv2d, x = None, 1",  # patching a library's function: the watch
    "import torch\nsetattr(torch, 'zeros', None)",                  # sees the operators whatever calls them
    "import wandb\nwandb.watch(model)",  # a `watch` that is not the grader's
    "class Logger:\n    def watch(self, model):\n        return model",
    "import sys\nif 'google.colab' in sys.modules:\n    print('colab')\nsys.path.append('..')",
    "from IPython.core.interactiveshell import InteractiveShell\nInteractiveShell.ast_node_interactivity = 'all'",
    "import inspect, pickle, gc, types, importlib\ninspect.signature(f)\ngc.collect()\nimportlib.reload(types)",
    "import traceback\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n    traceback.print_exc()",
    "import ipykernel\nprint(ipykernel.__version__)",
])
def test_the_scan_runs_everything_else(source):
    assert scan_source(source) == []


def test_code_made_at_run_time_is_a_note_not_a_refusal():
    findings = scan_cells({3: "source = open('helper.py').read()\nexec(source)"})
    assert [(f.cell, f.line, f.refused) for f in findings] == [(4, 2, False)]
    assert "note for the tutor" in str(findings[0])


def test_a_refusal_names_the_cell_its_line_and_the_fix():
    findings = scan_cells({8: "import IPython.display as shown\nshown.display = print"})
    assert str(findings[0]) == ('cell 9 ("import IPython.display as shown") was not run: line 2 changes '
                                "IPython.display.display, which grading runs through. Fix: delete this line: "
                                "IPython's hooks and internals are not part of an answer.")


def test_names_resolve_across_cells():
    cells = {1: "import IPython.display as shown", 2: "shown.display = print"}
    assert [(f.cell, f.line) for f in scan_cells(cells)] == [(3, 1)]


def test_no_code_cell_of_the_course_is_flagged():
    for path in course_notebooks(SOLUTIONS):
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code":
                assert scan_source(cell.source) == [], (path.name, index)


# --- cells told by the release ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(COURSE.releases))
def test_every_released_notebook_is_told_with_every_answer_and_check(name):
    plan = identify(_released(name), "renamed.ipynb", COURSE)
    assert plan is not None and plan.release.name == name
    assert all(plan.answers[gid] for gid in plan.release.answers), name
    assert all(position is not None for position in plan.checks.values()) and plan.setup is not None
    assert plan.student_code() == {p for gid in plan.release.answers for p in plan.answers[gid]
                                   if plan.cells[p].cell_type == "code"}  # nothing else is the student's


def test_without_ids_and_labels_answers_are_found_between_their_neighbours():
    name = "01_convolution_arithmetic.ipynb"
    cells = _released(name)
    for cell in cells:
        cell.pop("id", None)
    answer = next(c for c in cells if "def pool_output_size" in c.source)
    split = nbformat.v4.new_code_cell("import math")  # the student split the answer over two cells
    cells.insert(cells.index(answer), split)
    del split["id"]
    plan = identify(cells, name, COURSE)
    assert [cells[p].source for p in plan.answers["pool_output_size"]] == ["import math", answer.source]


def test_a_moved_answer_and_edited_labels_count_for_nothing():
    name = "01_convolution_arithmetic.ipynb"
    cells = _released(name)
    extra = nbformat.v4.new_code_cell("from seglab.arithmetic import conv_output_size")
    extra.metadata = {"tags": ["seglab-setup"], "nbgrader": {"grade_id": "check_conv_output_size", "locked": True}}
    cells.insert(5, extra)
    plan = plan_submission(cells, COURSE.releases[name])
    assert 5 in plan.student_code() and plan.setup != 5  # the tag does not make it the setup cell
    assert scan_cells({5: extra.source}) == []  # not flagged by the scan, but read for off-limits names:
    assert "arithmetic" in names_used(extra.source, exercise("conv_output_size").off_limits.names)


def test_an_edited_released_cell_is_the_students():
    name = "02_upsampling.ipynb"
    cells = _released(name)
    figure = next(i for i, c in enumerate(cells) if c.cell_type == "code" and "plt." in c.source)
    cells[figure].source += "\nimport threading"
    plan = plan_submission(cells, COURSE.releases[name])
    assert figure in plan.student_code()


# --- reading a submission: limits become reasons ------------------------------------------------------------

@pytest.mark.parametrize("data, reason", [
    (b"{ not json", "not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (json.dumps({"cells": "no"}).encode(), "no list of cells"),
    (json.dumps({"cells": [{"cell_type": "code", "source": ""}] * (LIMITS.cells + 1)}).encode(), "cells"),
    (b"\xff\xfe", "not JSON"),
])
def test_unreadable_submissions_get_a_reason(data, reason):
    with pytest.raises(UnreadableSubmission, match=reason):
        parse_submission(data)


def test_odd_cells_are_read_as_what_grading_needs():
    cells = parse_submission(json.dumps({"cells": [
        {"cell_type": "code", "source": ["a = 1\n", "b = 2"], "id": 5},
        {"cell_type": "code", "source": {"evil": 1}},
        {"cell_type": "markdown", "source": "lone \ud800 surrogate"},
        {"cell_type": "widget", "source": "x"}, 7, None]}).encode())
    assert [c.cell_type for c in cells] == ["code", "code", "markdown"]
    assert cells[0].source == "a = 1\nb = 2" and "id" not in cells[0] and cells[1].source == ""
    assert cells[2].source == "lone \ufffd surrogate"  # text that can run and be written


# --- fuzz: nothing a submission holds raises out of its grading ---------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=30)
CELL = st.fixed_dictionaries({"cell_type": st.sampled_from(["code", "markdown", "raw", "other"]),
                              "source": TEXT | st.lists(TEXT, max_size=3) | JSON},
                             optional={"id": TEXT | JSON, "metadata": JSON})


@FUZZ
@given(st.one_of(JSON, st.fixed_dictionaries({"cells": st.lists(CELL | JSON, max_size=8)}, optional={
    "metadata": JSON, "nbformat": JSON})))
def test_fuzz_any_json_is_a_notebook_or_a_reason(raw):
    data = json.dumps(raw).encode("utf-8", "surrogatepass")
    try:
        cells = parse_submission(data)
    except UnreadableSubmission:
        return
    plan = identify(cells, "01_x.ipynb", COURSE)
    assert plan is not None  # the file name tells it when no cell does
    findings = scan_cells({p: plan.cells[p].source for p in plan.student_code()})
    notebook, targets, trusted, *_ = grading_notebook(plan, {gid: "pass" for gid in plan.release.checks},
                                                     {f.cell - 1 for f in findings})
    needed_cells([cell.source for cell in notebook.cells], targets, trusted=trusted)


@FUZZ
@given(st.lists(st.sampled_from(range(40)), max_size=12), st.lists(TEXT, min_size=12, max_size=12))
def test_fuzz_released_cells_edited_moved_and_deleted(order, sources):
    cells = _released("04_unet.ipynb")
    picked = [nbformat.from_dict(dict(cells[i % len(cells)])) for i in order]
    for cell, source in zip(picked, sources, strict=False):
        if len(source) % 3 == 0:
            cell.source = source
    plan = identify(picked, "04_unet.ipynb", COURSE)
    grading_notebook(plan, {gid: "pass" for gid in plan.release.checks})
    scan_cells({p: plan.cells[p].source for p in plan.student_code()})


OUTPUT = st.fixed_dictionaries({"output_type": st.sampled_from(["display_data", "stream", "error", "other"]),
                                "data": st.dictionaries(st.sampled_from([MIME, "text/plain"]), JSON, max_size=2)})


@FUZZ
@given(st.lists(OUTPUT | JSON, max_size=4), st.booleans())
def test_fuzz_probe_outputs_are_outcomes_or_a_reason(outputs, own):
    token = "t" * 32
    if own:
        outputs = [*outputs, {"output_type": "display_data", "data": {MIME: {"token": token, "outcomes": []}}}]
    found = outcomes_of({"outputs": outputs}, token)
    assert found is None or isinstance(found, (list, str))


EXERCISES = ["conv_output_size", "receptive_field", "bilinear_kernel", "skip_merge", "weight_map", "total_stride"]


@FUZZ
@given(st.sampled_from(EXERCISES), st.lists(JSON, max_size=5) | JSON)
def test_fuzz_any_result_data_is_judged_without_raising(exercise_id, outcomes):
    spec = exercise(exercise_id)
    cases = spec.make_cases(random.Random(0), 3)
    result = score(spec, cases, outcomes)
    assert 0 <= result.points <= spec.points and isinstance(result.message, str)


@FUZZ
@given(st.lists(st.fixed_dictionaries({"output_type": st.just("display_data"),
                                       "data": st.fixed_dictionaries({MIME: st.fixed_dictionaries({
                                           "token": st.just("?"), "outcomes": st.lists(JSON, max_size=3)})})}),
                max_size=3), TEXT)
def test_fuzz_a_submission_with_any_outputs_gets_its_rows(tmp_path_factory, outputs, comment):
    """The whole of grade_submission, the kernel replaced by one that answers anything: rows, never a raise."""
    name = "01_convolution_arithmetic.ipynb"
    cells = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    cells.cells[8].source += f"\n# {comment}"
    data = json.dumps(cells, ensure_ascii=True).encode()

    def fake_run(notebook, needed, probe_cells, options):
        for index in probe_cells:
            notebook.cells[index].outputs = [dict(output, data={MIME: dict(output["data"][MIME], token=token)})
                                             for output in outputs for token in [_token(notebook.cells[index])]]
        return None, set(probe_cells)

    original = grading.run_sandboxed
    grading.run_sandboxed = fake_run
    try:
        rows = grade_submission("fuzz", name, COURSE, GradeOptions(sandbox="none",
                                feedback_dir=tmp_path_factory.mktemp("pages")), data=data)
    finally:
        grading.run_sandboxed = original
    assert {row.exercise for row in rows} == {e.grade_id for e in COURSE.exercises[name]}
    assert all(isinstance(row.message, str) for row in rows)


def _token(cell) -> str:
    """The token the grader put in a probe cell's source (the fake kernel answers with it)."""
    calls = [node for node in ast.walk(ast.parse(cell.source)) if isinstance(node, ast.Call)
             and getattr(node.func, "id", "") == "_seglab_probe"]
    return calls[0].args[2].value if calls else ""


def test_cases_travel_in_the_probe_and_nowhere_else():
    spec = exercise("pool_output_size")
    cases = spec.make_cases(random.Random(1), 5)
    plan = identify(_released("01_convolution_arithmetic.ipynb"), "01.ipynb", COURSE)
    probes = {gid: probe_source(gid.removeprefix("check_"), ["pool_output_size"],
                                        json.dumps([encode(public(c)) for c in cases]), "tok")
              for gid in plan.release.checks}
    notebook, *_ = grading_notebook(plan, probes)
    carried = [c.source for c in notebook.cells if "_seglab_probe" in c.source]
    assert len(carried) == len(plan.release.checks) and all("tok" in source for source in carried)


def test_a_huge_answer_cell_costs_the_grader_little():
    """Round one: a 15 MB answer cell made the grader use 4.1 GB. Now it is refused by size, unparsed."""
    import tracemalloc

    name = "01_convolution_arithmetic.ipynb"
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    answer = next(c for c in notebook.cells if "def pool_output_size" in c.source)
    answer.source += "\nTABLE = [" + "1, " * 5_000_000 + "]"
    data = nbformat.writes(notebook).encode()
    assert len(data) > 15_000_000
    tracemalloc.start()
    plan = identify(parse_submission(data), name, COURSE)
    findings = scan_cells({p: plan.cells[p].source for p in plan.student_code()})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert any("KiB of code" in f.what for f in findings)
    assert peak < 200 * 2**20, f"{peak / 2**20:.0f} MiB"
