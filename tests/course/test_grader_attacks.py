"""Round two of hostile submissions (issue 24): the grader's own file handling, a result channel students
cannot forge, labels that count for nothing, and submissions that tried to stop or skew a class.

One class of notebook-01 submissions is graded once (two workers, feedback pages on). Every attacker
also solves exercise 1 honestly, so each must end with exactly the 2 points that answer earns, the batch
must finish with rows for everyone, and nothing of the tutor's files may reach the CSV, the hand-grading
sheet or a feedback page."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import nbformat
import pytest

from seglab.cli import main
from seglab.course.sandbox import bwrap_available
from tests.support import ROOT, by_grade_id, nbgrader

SOLUTION = ROOT / "solutions" / "01_convolution_arithmetic.ipynb"
STUDENT = ROOT / "notebooks" / "01_convolution_arithmetic.ipynb"
HONEST = "conv_output_size"

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="needs bubblewrap: tools/install-system-packages")




def _solution(grade_id: str) -> str:
    return by_grade_id(nbformat.read(SOLUTION, as_version=4), grade_id).source


def _notebook(*, before_checks: str | None = None, cell_metadata: dict | None = None, solved=(HONEST,)):
    """Notebook 01 with ``solved`` answered from the solution and ``before_checks`` as a new code cell
    right before exercise 2's check (after its answer cell: it runs before every later check)."""
    notebook = nbformat.read(STUDENT, as_version=4)
    for grade_id in solved:
        by_grade_id(notebook, grade_id).source = _solution(grade_id)
    if before_checks is not None:
        cell = nbformat.v4.new_code_cell(before_checks)
        cell.metadata.update(cell_metadata or {})
        notebook.cells.insert(notebook.cells.index(by_grade_id(notebook, "check_pool_output_size")), cell)
    return notebook


def _write_raw(notebook, path: Path) -> None:
    """Write with JSON escapes, so text that is not valid UTF-8 (a lone surrogate) survives as it would in
    a file a student's editor wrote."""
    path.write_text(json.dumps(nbformat.from_dict(notebook), ensure_ascii=True), encoding="ascii")


ATTACKS = {
    # the results channel of round one: links where results and the kernel log used to be, to the tutor's
    # solution, to /proc/self/mem and to a FIFO; the grader must not read any of them
    "linker": f"""import os, pathlib
targets = {{'.seglab-outcomes-check_pool_output_size.json': {str(SOLUTION)!r},
           '.seglab-outcomes-check_receptive_field.json': '/proc/self/mem', 'kernel.log': {str(SOLUTION)!r}}}
for folder in {{os.getcwd(), '/tmp', os.environ.get('HOME', '.')}}:
    for name, target in targets.items():
        try:
            os.symlink(target, os.path.join(folder, name))
        except OSError:
            pass
    try:
        os.mkfifo(os.path.join(folder, '.seglab-outcomes-check_transposed_conv_output_size.json'))
    except OSError:
        pass""",
    # forged answers on the new channel: its MIME type, a guessed token, printed before and by the answer
    "forger": """from IPython.display import display
MIME = 'application/vnd.seglab.outcomes+json'
fake = {'token': '0' * 32, 'outcomes': [{'output': 1}] * 300}
display({MIME: fake}, raw=True)
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    display({MIME: fake}, raw=True)
    nested = []
    for _ in range(900):
        nested = [nested]
    display({MIME: {'token': 'x', 'outcomes': nested}}, raw=True)
    return 0""",
    # round one's "points for nothing": a cell that claims the trusted setup tag and grade_ids, reads the
    # case files of the old channel and answers them with seglab's reference
    "setup_tag": """import glob, json
from seglab import arithmetic as reference
for path in glob.glob('.seglab-cases-*.json') + glob.glob('/tmp/**/.seglab-cases-*.json', recursive=True):
    print('found', path)
pool_output_size = reference.pool_output_size
receptive_field = reference.receptive_field""",
    # an answer computed in a thread the run-time watch would not see
    "threader": """import threading
from seglab import arithmetic as _a
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    box = []
    worker = threading.Thread(target=lambda: box.append(_a.pool_output_size(i, k, s, p, ceil_mode=ceil_mode)))
    worker.start(); worker.join()
    return box[0]""",
    # IPython hooks and tracers that would see the probe's cases, and reading the cell history
    "hooker": """ip = get_ipython()
ip.events.register('pre_run_cell', lambda info: print(info.raw_cell[:200]))
import sys
sys.settrace(lambda *a: None)
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    return len(In[-1])""",
    # code hidden from a reader: exec of a string that imports the reference
    "hider": """exec('from seglab.arith' + 'metic import pool_output_size')""",
    # text that is not valid UTF-8: lone surrogates in a comment, an error message and a hand-graded answer
    "surrogates": """# a comment with a lone surrogate: \ud800
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    raise ValueError('bad \udcff value \ud800')""",
    # seglab's reference pasted under another name, renamed and reformatted
    "paster": "PASTED",
    # a 120,000-term expression (too deep to parse), in a cell an answer needs
    "expression": "LIMIT = " + "+".join(["1"] * 120_000),
    # round three (a helper's attack on the reorganised grader): display patched to swap the outcomes the
    # probe shows for answers computed after the run-time watch ended
    "shower": """import IPython.display as shown
import torch
real_show, calls = shown.display, []
def show(*objects, **options):
    for value in (v for obj in objects if isinstance(obj, dict) for v in obj.values()):
        if isinstance(value, dict) and "outcomes" in value and calls:
            value["outcomes"] = [{"output": torch.nn.MaxPool1d(k, s, p, ceil_mode=c)(torch.zeros(1, 1, i)).shape[-1]}
                                 for i, k, s, p, c in calls]
            calls.clear()
    return real_show(*objects, **options)
shown.display = show
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    calls.append((i, k, s or k, p, ceil_mode))
    return 0""",
    # the package object: seglab.checks.run_answer replaced by one that answers with PyTorch
    "runner": """import seglab as course_package
import torch
def fake_run(ex, objects, cases):
    return [{"output": torch.nn.MaxPool1d(c["k"], c["s"] or c["k"], c["p"], ceil_mode=c["ceil_mode"])(
        torch.zeros(1, 1, c["i"])).shape[-1]} for c in cases]
course_package.checks.run_answer = fake_run""",
    # both replacements again, through a list the scan does not follow: the probe finds them itself
    "lister": """import IPython.display as shown
import seglab as course_package
[shown][0].display = lambda *objects, **options: None
[course_package][0].checks.run_answer = lambda ex, objects, cases: [{"output": 1}] * len(cases)
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    return 0""",
    # the probe's token and cases read from the stack, answers shown with the token, then the kernel ended
    # before the probe could show its own
    "stacker": """import ast, os, traceback
import torch
from IPython.display import display
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    for frame in traceback.extract_stack():
        if frame.line and frame.line.startswith("_seglab_probe('pool_output_size'"):
            call = ast.parse(frame.line).body[0].value
            cases, token = (ast.literal_eval(a) for a in call.args[1:3])
            import json
            outcomes = [{"output": torch.nn.MaxPool1d(c["k"], c["s"] or c["k"], c["p"], ceil_mode=c["ceil_mode"])(
                torch.zeros(1, 1, c["i"])).shape[-1]} for c in json.loads(cases)]
            display({"application/vnd.seglab.outcomes+json": {"token": token, "outcomes": outcomes}}, raw=True)
            os._exit(0)
    return 0""",
    # issue 31: what the scan lets run now, held by the run-time guards. An answer computed by a shell command
    # while it is checked (no process may start during the call)
    "shell": """import subprocess
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    layer = f"torch.nn.MaxPool1d({k}, {s or k}, {p}, ceil_mode={ceil_mode})"
    code = f"import torch; print({layer}(torch.zeros(1, 1, {i})).shape[-1])"
    return int(subprocess.run(["python3", "-c", code], capture_output=True, text=True).stdout)""",
    # ... by a server process an earlier cell started (paused while the answer is called)
    "server": """import multiprocessing as mp
def _serve(connection):
    import torch
    while True:
        i, k, s, p, c = connection.recv()
        connection.send(torch.nn.MaxPool1d(k, s or k, p, ceil_mode=c)(torch.zeros(1, 1, i)).shape[-1])
_mine, _theirs = mp.Pipe()
_server = mp.get_context("fork").Process(target=_serve, args=(_theirs,), daemon=True)
_server.start()
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    _mine.send((i, k, s, p, ceil_mode))
    if not _mine.poll(5):
        raise TimeoutError("no answer from the server")
    return _mine.recv()""",
    # ... by seglab's reference in a thread handed the work through a queue (a pool started in an earlier cell)
    "pooler": """from concurrent.futures import ThreadPoolExecutor
from seglab import arithmetic as _a
_pool = ThreadPoolExecutor(1)
_pool.submit(lambda: None).result()
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    return _pool.submit(_a.pool_output_size, i, k, s, p, ceil_mode=ceil_mode).result()""",
    # the probe reached through a computed getattr, and through vars() by a route the scan cannot follow
    "getattrer": """import seglab
getattr(seglab.checks, "pro" + "be").run_answer = lambda ex, objects, cases: [{"output": 1}] * len(cases)
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    return 0""",
    "varser": """import sys
import torch
_module = [sys.modules][0]["seglab.checks." + "probe"]
def _fake(ex, objects, cases):
    return [{"output": torch.nn.MaxPool1d(c["k"], c["s"] or c["k"], c["p"], ceil_mode=c["ceil_mode"])(
        torch.zeros(1, 1, c["i"])).shape[-1]} for c in cases]
[vars][0](_module)["run_answer"] = _fake
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    return 0""",
    # round four (a helper's attack on the new design): a table of every case the old check drew, computed with
    # the forbidden operator in an earlier cell (the cases now come from a space far too large to tabulate)
    "table": """import torch.nn.functional as F
_T = {}
for _i in range(1, 45):
    for _k in range(1, 7):
        for _s in [None, 1, 2, 3, 4]:
            for _p in range(0, _k // 2 + 1):
                for _c in (False, True):
                    try:
                        _T[_i, _k, _s, _p, _c] = F.max_pool2d(torch.zeros(1, 1, _i, 1), (_k, 1), stride=(_s or _k, 1),
                                                             padding=(_p, 0), ceil_mode=_c).shape[-2]
                    except RuntimeError:
                        pass
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    return _T[i, k, s, p, bool(ceil_mode)]""",
    # the watch of operators switched off by names joined from strings
    "dispatchoff": """import importlib
import torch.nn.functional as F
_pd = importlib.import_module("torch.utils." + "_python" + "_dispatch")
_off = getattr(_pd, "_disable" + "_current_modes")
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    with _off():
        return int(F.max_pool2d(torch.zeros(1, 1, i, 1), (k, 1), stride=(s or k, 1), padding=(p, 0),
                                ceil_mode=ceil_mode).shape[-2])""",
    # the watch's findings cleared through the frames of a traceback, reached by joined names
    "framer": """import torch.nn.functional as F
def _frames():
    try:
        raise KeyError
    except KeyError as e:
        frame = getattr(e.__traceback__, "tb_" + "frame")
    while frame is not None:
        yield frame
        frame = getattr(frame, "f_" + "back")
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    out = F.max_pool2d(torch.zeros(1, 1, i, 1), (k, 1), stride=(s or k, 1), padding=(p, 0), ceil_mode=ceil_mode)
    for frame in _frames():
        for name in ("borrowed", "found"):
            if isinstance(getattr(frame, "f_" + "locals").get(name), list):
                getattr(frame, "f_" + "locals")[name].clear()
    return int(out.shape[-2])""",
    # seglab's reference under another file name and qualified name (its code is the same)
    "renamer": """import types, importlib
_A = importlib.import_module("seglab." + "arith" + "metic")
_f = _A.pool_output_size
_ref = types.FunctionType(_f.__code__.replace(co_filename="/tmp/mine.py", co_qualname="mine"), vars(_A), "mine",
                          _f.__defaults__)
_ref.__kwdefaults__ = _f.__kwdefaults__
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    return _ref(i, k, s, p, ceil_mode=ceil_mode)""",
    # the work handed to a loop of PyTorch's own (DataLoader's pin-memory thread) that calls what it is given
    "pinner": """import threading, queue
import torch.nn.functional as F
from torch.utils.data._utils.pin_memory import _pin_memory_loop
_inq, _outq, _done = queue.Queue(), queue.Queue(), threading.Event()
threading.Thread(target=_pin_memory_loop, args=(_inq, _outq, -1, _done, "cpu"), daemon=True).start()
class _Job:
    def __init__(self, args):
        self.args = args
    def pin_memory(self):
        i, k, s, p, c = self.args
        return F.max_pool2d(torch.zeros(1, 1, i, 1), (k, 1), stride=(s or k, 1), padding=(p, 0), ceil_mode=c).shape[-2]
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    _inq.put((0, _Job((i, k, s, p, ceil_mode))))
    return int(_outq.get(timeout=10)[1])""",
    # tampering made at run time: exec of a string the scan cannot read (scanned when it is compiled)
    "execer": """exec("import IPython.display as d\\nd.display = lambda *a, **k: None")
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    return 0""",
}


def _pasted_reference() -> str:
    import inspect
    import re

    import seglab.arithmetic

    source = inspect.getsource(seglab.arithmetic.pool_output_size)
    source = re.sub(r'"""[\s\S]*?"""', "", source).replace("pool_output_size", "my_pool_size")
    for old, new in (("ceil_mode", "round_up"), ("out", "result")):
        source = re.sub(rf"\b{old}\b", new, source)
    helpers = "\n\n".join(inspect.getsource(f) for f in (seglab.arithmetic._require, seglab.arithmetic._check_common))
    return (f"import math\n\n\n{helpers}\n\n{source}\n\n\ndef pool_output_size(i, k, s=None, p=0, ceil_mode=False):\n"
            "    return my_pool_size(i, k, s, p, 1, ceil_mode)\n")


CELL_METADATA = {"setup_tag": {"tags": ["seglab-setup"], "nbgrader": {"grade_id": "pool_output_size", "solution": True,
                                                                       "grade": False, "locked": True}}}


def _attacker(name: str):
    notebook = _notebook(before_checks=ATTACKS[name], cell_metadata=CELL_METADATA.get(name))
    if name == "surrogates":
        answer = next(c for c in notebook.cells if c.cell_type == "markdown" and nbgrader(c).get("solution"))
        answer.source = "=HYPERLINK(\"http://x\") resolution \ud800 is set by the total stride"
    if name == "paster":
        notebook = _notebook(before_checks=_pasted_reference())
    if name == "expression":
        by_grade_id(notebook, "pool_output_size").source = (
            "def pool_output_size(i, k, s=None, p=0, ceil_mode=False):\n    return LIMIT")
    return notebook


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_seglab_check_refuses_what_grading_refuses(name):
    """The student's check plans with the kit's release and the grader with the tutor's solutions: the same
    cells are the student's, and the same lines are refused, with the same words."""
    from seglab.course.graded import load_course, released_course
    from seglab.course.plan import identify
    from seglab.course.scan import scan_plan
    from seglab.course.submissions import parse_submission

    cells = parse_submission(json.dumps(nbformat.from_dict(_attacker(name))).encode())
    grader = identify(cells, f"{name}.ipynb", load_course(ROOT / "solutions"))
    twin = identify(cells, f"{name}.ipynb", released_course(ROOT / "notebooks"))
    assert grader.student_code() == twin.student_code()
    assert [str(f) for f in scan_plan(twin)] == [str(f) for f in scan_plan(grader)]


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class2")
    nbformat.write(_notebook(solved=(HONEST, "pool_output_size", "transposed_conv_output_size", "receptive_field")),
                   folder / "alice.ipynb")
    for name in ATTACKS:
        _write_raw(_attacker(name), folder / f"{name}.ipynb")
    twice = folder / "zoe"  # two copies of one notebook: graded once, never summed
    twice.mkdir()
    nbformat.write(_notebook(), twice / "first.ipynb")
    nbformat.write(_notebook(), twice / "second.ipynb")
    odd = os.fsencode(str(folder)) + b"/caf\xff.ipynb"  # an innocent byte that is not UTF-8 in a file name
    with open(odd, "w") as file:
        nbformat.write(_notebook(), file)
    os.symlink(SOLUTION, folder / "mallory.ipynb")  # a submission that is a link to the tutor's solution
    out, feedback = folder.parent / f"{folder.name}.csv", folder.parent / f"{folder.name}-feedback"
    code = main(["grade", "run", str(folder), "--out", str(out), "--solutions", str(ROOT / "solutions"),
                 "--workers", "2",
                 "--timeout", "30", "--total-timeout", "300", "--feedback", str(feedback), "--no-progress"])
    with open(out, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    texts = [out.read_text(encoding="utf-8")] + [p.read_text(encoding="utf-8") for p in folder.parent.glob(
        f"{folder.name}-manual.csv")] + [p.read_text(encoding="utf-8") for p in feedback.rglob("*") if p.is_file()]
    return {"code": code, "rows": rows, "texts": texts, "feedback": feedback}


def _points(rows, student: str) -> dict[str, float]:
    return {r["exercise"].removeprefix("check_"): float(r["points"]) for r in rows
            if r["student"] == student and r["points"] not in ("", None)}


def _messages(rows, student: str) -> str:
    return " | ".join(r["message"] for r in rows if r["student"] == student)


def test_the_batch_finishes_with_rows_for_everyone(attacked):
    assert attacked["code"] == 0
    students = {r["student"] for r in attacked["rows"]}
    assert {"alice", "zoe", "mallory", *ATTACKS} <= students, students
    assert any(s.startswith("caf") and s != "caf" for s in students), students  # the odd name, shown escaped
    assert sum(_points(attacked["rows"], "alice").values()) == 9


@pytest.mark.parametrize("attacker", ATTACKS)
def test_an_attacker_earns_only_its_honest_answer(attacked, attacker):
    points = _points(attacked["rows"], attacker)
    assert all(got == 0 for exercise, got in points.items() if exercise != HONEST), \
        (points, _messages(attacked["rows"], attacker))
    if attacker not in ("setup_tag", "threader", "paster"):  # seglab's reference: off-limits in every answer
        assert points.get(HONEST) == 2, _messages(attacked["rows"], attacker)


def test_nothing_of_the_tutors_files_reaches_any_output(attacked):
    solution = nbformat.read(SOLUTION, as_version=4)
    secrets = [line.strip() for cell in solution.cells for line in cell.source.splitlines()
               if "HIDDEN TESTS" in line or "BEGIN SOLUTION" in line] + ["math.ceil((i + 2 * p - k) / s)"]
    for text in attacked["texts"]:
        for secret in secrets:
            assert secret not in text


def test_a_linked_submission_is_refused_with_a_reason(attacked):
    assert _points(attacked["rows"], "mallory") == {} or sum(_points(attacked["rows"], "mallory").values()) == 0
    assert "link" in _messages(attacked["rows"], "mallory")


def test_what_the_scan_found_is_in_the_message(attacked):
    rows = attacked["rows"]
    assert "get_ipython().events" in _messages(rows, "hooker") and "tracer" in _messages(rows, "hooker")
    assert "deeply" in _messages(rows, "expression") or "syntax nodes" in _messages(rows, "expression")
    assert "changes IPython.display.display" in _messages(rows, "shower")
    assert "changes seglab.checks.probe.run_answer" in _messages(rows, "getattrer")  # getattr(..., 'pro' + 'be')


def test_the_run_time_guards_name_what_an_answer_used(attacked):
    """What the scan lets run (issue 31): threads, processes, code made at run time. The guards in the kernel
    decide, and the rows say what they saw."""
    rows = attacked["rows"]
    pool = {student: next(r["message"] for r in rows if r["student"] == student
                          and r["exercise"] == "check_pool_output_size") for student in ATTACKS}
    assert "arithmetic" in pool["threader"] and "arithmetic" in pool["pooler"]  # seglab's reference, read or run
    assert "may not start processes" in pool["shell"]  # a shell command while the answer is checked
    assert "no answer from the server" in pool["server"] or "time limit" in pool["server"]  # paused meanwhile
    assert "the notebook changed seglab.checks.probe.run_answer" in pool["varser"]  # the probe's own check
    assert pool["execer"] == "not implemented yet"  # exec'd tampering refused when compiled: the cell stopped there
    assert "seglab.arithmetic.pool_output_size" in pool["hider"]  # exec'd import of the reference: watched


def test_a_pasted_reference_is_named(attacked):
    messages = {r["exercise"]: r["message"] for r in attacked["rows"] if r["student"] == "paster"}
    assert "copy of seglab.arithmetic.pool_output_size" in messages["check_pool_output_size"], messages


def test_forged_answers_are_not_read(attacked):
    messages = {r["exercise"]: r["message"] for r in attacked["rows"] if r["student"] == "forger"}
    assert "could not be read" in messages["check_pool_output_size"], messages


def test_a_second_copy_is_refused_not_summed(attacked):
    zoe = [r for r in attacked["rows"] if r["student"] == "zoe"]
    assert sum(float(r["max"]) for r in zoe if r["points"] != "") == 9  # one notebook's maximum, not two
    assert any("second copy" in r["message"] for r in zoe)


def test_surrogates_are_written_safely(attacked):
    assert "raised ValueError: bad" in _messages(attacked["rows"], "surrogates")  # graded, the text made valid
    pages = [p for p in attacked["feedback"].rglob("*.html") if "surrogates" in str(p)]
    assert pages, "a feedback page for the student with lone surrogates"
