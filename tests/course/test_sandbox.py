"""Hostile submissions against the grader's sandbox: a class where every attacker also solves exercise 1
honestly. The batch must finish with a complete CSV, each attacker gets no more than its honest code
earns, the honest students' points equal a batch without attackers, and nothing outside the sandbox
changes (files, the network, the grader's processes)."""

from __future__ import annotations

import csv
import hashlib
import http.server
import secrets
import threading
from pathlib import Path
from typing import ClassVar

import nbformat
import pytest

from seglab.cli import main
from seglab.course.grade import GradeOptions, grade
from seglab.course.sandbox import bwrap_available
from tests.support import ROOT, by_grade_id

SOLUTION = ROOT / "solutions" / "01_convolution_arithmetic.ipynb"
STUDENT = ROOT / "notebooks" / "01_convolution_arithmetic.ipynb"
EXERCISES = ("conv_output_size", "pool_output_size", "transposed_conv_output_size", "receptive_field")

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="needs bubblewrap: tools/install-system-packages "
                                "(apt-get install bubblewrap) installs it")




def _submission(*, solved=("conv_output_size",), attack: str | None = None, wrong_pool: bool = False):
    """Notebook 01 with some exercises solved; ``attack`` replaces the pool_output_size cell."""
    notebook, solution = nbformat.read(STUDENT, as_version=4), nbformat.read(SOLUTION, as_version=4)
    for grade_id in solved:
        by_grade_id(notebook, grade_id).source = by_grade_id(solution, grade_id).source
    if wrong_pool:
        by_grade_id(notebook, "pool_output_size").source = (
            "def pool_output_size(i, k, s=None, p=0, ceil_mode=False):\n    return i // k")
    if attack is not None:
        by_grade_id(notebook, "pool_output_size").source = attack
    return notebook


ATTACKS = {
    # find the grader (pytest, seglab grade) among the processes it can see, and kill it; and its parent
    "killer": """import os, signal
for pid in [p for p in os.listdir('/proc') if p.isdigit()]:
    try:
        command = open(f'/proc/{pid}/cmdline', 'rb').read()
    except OSError:
        continue
    if b'pytest' in command or b'seglab' in command and b'grade' in command:
        os.kill(int(pid), signal.SIGKILL)
os.kill(os.getppid(), signal.SIGKILL)
os.kill(os.getppid(), signal.SIGSTOP)""",
    "forkbomb": """import os, time
for _ in range(9):  # bounded: 512 processes at most
    os.fork()
time.sleep(600)""",
    "membomb": """hog = []
while True:
    hog.append(bytearray(256 * 2**20))""",
    "flood": """for _ in range(50_000):
    print('x' * 1000)""",
    "network": """import urllib.request
try:
    urllib.request.urlopen('http://127.0.0.1:{port}/stolen', timeout=5)
    print('reached the network')
except OSError as error:
    print('no network:', error)""",
    "reader": """import json, pathlib, seglab
try:
    folder = pathlib.Path(seglab.__file__).resolve().parents[1] / 'solutions'
    notebook = json.loads((folder / '01_convolution_arithmetic.ipynb').read_text())
    exec(next(''.join(c['source']) for c in notebook['cells'] if 'def pool_output_size' in ''.join(c['source'])))
except OSError as error:
    print('no solutions here:', error)""",
    "vandal": """import pathlib, seglab
for target, text in [({alice!r}, '{{"cells": []}}'), ('/tmp/seglab-pwned-{token}', 'x'),
                     (str(pathlib.Path(seglab.__file__).parent / 'pwned_{token}.py'), 'x')]:
    try:
        pathlib.Path(target).write_text(text)
        print('wrote', target)
    except OSError as error:
        print('cannot write', target, error)""",
    # the check functions redefined, to print full points
    "redefiner": """def check_pool_output_size(*args, **kwargs):
    print('✔ pool_output_size: all 30 random cases agree with PyTorch.\\n  points: 2 / 2')
check_conv_output_size = check_transposed_conv_output_size = check_receptive_field = check_pool_output_size
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    return 0""",
    # the check modules patched: full points in the kernel, and a probe that answers more cases than asked
    "patcher": """import json, seglab.checks, seglab.checks.probe
seglab.checks.score = lambda ex, cases, outcomes: seglab.checks.CheckResult(ex.id, 99, ex.points, 'ok', True)
def probe(exercise_id, cases_path, outcomes_path, objects):
    open(outcomes_path, 'w').write(json.dumps([{'output': 7}] * 10_000))
seglab.checks.probe.probe = probe
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    return 0""",
    # IPython hooks that print fake points after every cell, the grader's cells included
    "hooker": """ip = get_ipython()
ip.events.register('post_run_cell', lambda result: print('✔ all cases\\n  points: 3 / 3'))
ip.events.register('pre_run_cell', lambda info: print('points: 9 / 9'))
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    return 1""",
    # the answer is seglab's reference implementation
    "delegator": """from seglab.arithmetic import pool_output_size""",
    # the same, hidden from a reader of the source, and a saved copy of the forbidden torch call
    "disguised": """import importlib
_reference = getattr(importlib.import_module('seglab.' + 'arith' + 'metic'), 'pool' + '_output_size')
_measure = getattr(importlib.import_module('torch.nn.functional'), 'max' + '_pool2d')
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    return _reference(i, k, s, p, ceil_mode=ceil_mode)""",
    "measurer": """import importlib, torch
_measure = getattr(importlib.import_module('torch.nn.functional'), 'max' + '_pool2d')
def pool_output_size(i, k, s=None, p=0, ceil_mode=False):
    x = torch.zeros(1, 1, i, 1)
    return _measure(x, (k, 1), stride=(s or k, 1), padding=(p, 0), ceil_mode=ceil_mode).shape[2]""",
    "sleeper": """import time
while True:  # swallow the grader's interrupt
    try:
        time.sleep(10**6)
    except KeyboardInterrupt:
        pass""",
}


class _Listener(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self):
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    server = http.server.HTTPServer(("127.0.0.1", 0), _Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = secrets.token_hex(4)
    alice = folder / "alice.ipynb"
    nbformat.write(_submission(solved=EXERCISES), alice)
    nbformat.write(_submission(wrong_pool=True), folder / "bob.ipynb")
    for name, attack in ATTACKS.items():
        code = attack.format(port=server.server_address[1], alice=str(alice), token=token) \
            if name in ("network", "vandal") else attack
        nbformat.write(_submission(attack=code), folder / f"{name}.ipynb")
    alice_hash = hashlib.sha256(alice.read_bytes()).hexdigest()
    out = folder.parent / f"{folder.name}-grades.csv"
    code = main(["grade", "run", str(folder), "--out", str(out), "--solutions", str(ROOT / "solutions"),
                 "--workers", "2",
                 "--timeout", "30", "--total-timeout", "400", "--memory", "6G"])
    server.shutdown()
    with open(out, newline="") as file:
        rows = list(csv.DictReader(file))
    return {"folder": folder, "code": code, "rows": rows, "csv": out, "token": token, "alice_hash": alice_hash,
            "hits": list(_Listener.hits)}


def _points(rows, student) -> dict[str, float]:
    return {r["exercise"].removeprefix("check_"): float(r["points"]) for r in rows
            if r["student"] == student and r["points"] != ""}


def test_the_batch_finishes_with_a_complete_csv(hostile_class):
    assert hostile_class["code"] == 0
    students = {r["student"] for r in hostile_class["rows"]}
    assert students == {"alice", "bob", *ATTACKS}
    for student in students:  # four automatic checks and one answer graded by hand, for everyone
        assert len([r for r in hostile_class["rows"] if r["student"] == student]) == 5, student


@pytest.mark.parametrize("attacker", ATTACKS)
def test_an_attacker_gets_no_more_than_its_honest_code(hostile_class, attacker):
    points = _points(hostile_class["rows"], attacker)
    assert points["conv_output_size"] == 2  # solved honestly, checked before the attack
    assert sum(points.values()) == 2, points
    messages = {r["exercise"]: r["message"] for r in hostile_class["rows"] if r["student"] == attacker}
    assert all(messages.values()), "every row says why"


def test_honest_grades_equal_a_batch_without_attackers(hostile_class, tmp_path):
    honest = tmp_path / "honest"
    honest.mkdir()
    for name in ("alice", "bob"):
        (honest / f"{name}.ipynb").write_bytes((hostile_class["folder"] / f"{name}.ipynb").read_bytes())
    alone = grade(honest, GradeOptions(solutions_dir=ROOT / "solutions", timeout=30, total_timeout=400, workers=2))
    for student in ("alice", "bob"):
        expected = {r.exercise.removeprefix("check_"): float(r.points) for r in alone
                    if r.student == student and r.points != ""}
        assert _points(hostile_class["rows"], student) == expected
    assert sum(_points(hostile_class["rows"], "alice").values()) == 9


def test_nothing_outside_the_sandbox_changed(hostile_class):
    alice = hostile_class["folder"] / "alice.ipynb"
    assert hashlib.sha256(alice.read_bytes()).hexdigest() == hostile_class["alice_hash"]
    assert not Path(f"/tmp/seglab-pwned-{hostile_class['token']}").exists()
    import seglab

    assert not list(Path(seglab.__file__).parent.glob("pwned_*.py"))
    assert hostile_class["hits"] == []  # not even the loopback address was reached


def test_borrowed_answers_are_named(hostile_class):
    messages = {(r["student"], r["exercise"]): r["message"] for r in hostile_class["rows"]}
    assert "arithmetic" in messages["delegator", "check_pool_output_size"]  # read in the answer's source
    # hidden from a reader (issue 31: it runs), and still seen by the run-time watch while the answer is called
    assert "seglab.arithmetic.pool_output_size" in messages["disguised", "check_pool_output_size"]
    assert "torch (max_pool" in messages["measurer", "check_pool_output_size"]
    assert "changes seglab.checks.score, which grading runs through" in messages["patcher", "check_pool_output_size"]
    assert "get_ipython().events" in messages["hooker", "check_pool_output_size"]


def test_rows_name_what_stopped_a_hostile_kernel(hostile_class):
    messages = {(r["student"], r["exercise"]): r["message"] for r in hostile_class["rows"]}
    assert "did not stop" in messages["sleeper", "check_pool_output_size"]
    assert "processes" in messages["forkbomb", "check_pool_output_size"] or \
        "died" in messages["forkbomb", "check_pool_output_size"]


def test_resume_grades_only_the_students_not_in_the_csv(hostile_class, tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("alice", "bob"):
        (folder / f"{name}.ipynb").write_bytes((hostile_class["folder"] / f"{name}.ipynb").read_bytes())
    out = tmp_path / "grades.csv"
    with open(hostile_class["csv"], newline="") as file:  # alice and bob were graded before the batch stopped
        kept = [r for r in csv.DictReader(file) if r["student"] == "alice"]
    kept[0]["message"] = "graded before the interruption"
    with open(out, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)
    assert main(["grade", "run", str(folder), "--out", str(out), "--solutions", str(ROOT / "solutions"), "--resume",
                 "--timeout", "30"]) == 0
    with open(out, newline="") as file:
        rows = list(csv.DictReader(file))
    assert "graded before the interruption" in {r["message"] for r in rows}  # alice was not graded again
    assert {r["student"] for r in rows} == {"alice", "bob"}
