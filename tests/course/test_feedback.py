"""Feedback pages: points per exercise and part, the first wrong case with a picture and the hint, the
student's own answers with the tutor's points and comment after hand grading — and nothing from the
solutions (the release's leak check finds nothing in them)."""

from __future__ import annotations

import csv
import html
import json
import os
import re
import subprocess
import sys

import nbformat
import pytest

from seglab.checks.wire import encode
from seglab.cli import main
from seglab.course import pages
from seglab.course.feedback import folder_name, render_page
from seglab.course.grade import GradeOptions, grade_class
from seglab.course.kit import SolutionSecrets, find_leaks
from seglab.course.rows import GradeRow
from seglab.course.sandbox import bwrap_available
from seglab.course.scan import LIMITS
from tests.support import ROOT, cells_by_grade_id

NOTEBOOK = "02_upsampling.ipynb"
ANSWER = "Zeros between the samples, then a filter: my own words."




@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("feedback")
    folder = tmp / "class"
    folder.mkdir()
    solution = cells_by_grade_id(nbformat.read(ROOT / "solutions" / NOTEBOOK, as_version=4))
    notebook = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    cells = cells_by_grade_id(notebook)
    cells["bilinear_kernel"].source = solution["bilinear_kernel"].source
    # the kernel is not flipped: right shape, wrong values (1 of 3 points)
    cells["transposed_conv_by_zero_insertion"].source = solution["transposed_conv_by_zero_insertion"].source.replace(
        "weight.flip(-1, -2).transpose(0, 1)", "weight.transpose(0, 1)")
    cells["answer_signal_processing"].source = ANSWER
    nbformat.write(notebook, folder / "ada.ipynb")
    out, pages = tmp / "grades.csv", tmp / "pages"
    sandbox = "bwrap" if bwrap_available() else "none"
    assert main(["grade", "run", str(folder), "--out", str(out), "--feedback", str(pages), "--seed", "3", "--sandbox",
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
    assert main(["grade", "manual", str(sheet), "--out", str(out), "--feedback", str(pages), "--solutions",
                 str(ROOT / "solutions")]) == 0
    page = (pages / "ada" / "02_upsampling.html").read_text()
    assert "Good: name the low-pass filter too." in page and "2 / 3" in page


def test_pages_hold_nothing_from_the_solutions(graded):
    _, _, pages = graded
    assert find_leaks(pages, SolutionSecrets.read(ROOT / "solutions")) == []


# ------------------------------------------------------------------ the page is a template, values are text

HOSTILE = "</script><script>alert(1)</script> {{ 7*7 }} {% if true %}{{ lipsum() }}{% endif %} {# x #} & 'q' \"dq\""
TEMPLATES = ROOT / "seglab" / "course" / "templates"


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;") \
        .replace('"', "&#34;")


def _hostile_page() -> str:
    failure = {"label": f"label {HOSTILE}", "inputs": {f"input {HOSTILE}": f"value {HOSTILE}"},
               "expected": 1.0, "received": f"received {HOSTILE}", "hint": f"hint {HOSTILE}"}
    record = {"student": f"student {HOSTILE}", "notebook": NOTEBOOK, "answers": {"q": f"answer {HOSTILE}"},
              "findings": [f"finding {HOSTILE}"],
              "exercises": encode([{"exercise": "check_a", "title": f"title {HOSTILE}",
                                    "parts": [[f"part {HOSTILE}", 0, 2]], "failure": failure}])}
    rows = [GradeRow("ada", NOTEBOOK, "check_a", 0, 2, f"message {HOSTILE}"), GradeRow("ada", NOTEBOOK, "q", "", 3, "")]
    return render_page(record, rows, {"q": ("1", f"comment {HOSTILE}")})


def test_hostile_text_is_shown_escaped_and_never_evaluated():
    page = _hostile_page()
    for field in ("student", "title", "part", "label", "input", "hint", "answer", "comment", "finding", "message"):
        assert _escaped(f"{field} {HOSTILE}") in page, field  # as written: {{ 7*7 }} stays, no 49
    assert page.count("{{ 7*7 }}") == 13  # those ten, the student in <title>, the input's and received value's repr
    assert "<script" not in page and "</script" not in page and "lipsum" in page and "49" not in page


def test_the_page_is_rendered_from_its_template(monkeypatch):
    import jinja2

    page = _hostile_page()
    template = (TEMPLATES / "feedback_page.html.j2").read_text(encoding="utf-8")
    style = re.search(r"<style>.*?</style>", template, re.S).group()
    assert style in page and page.startswith("<!doctype html>")
    loader = jinja2.DictLoader({"feedback_page.html.j2": "[{{ student }}|{{ sections|length }}]"})
    fake = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    monkeypatch.setattr(pages, "_environment", lambda: fake)
    assert _hostile_page() == f"[{_escaped(f'student {HOSTILE}')}|2]"


def test_html_templates_are_autoescaped_and_the_markdown_one_is_not():
    environment = pages._environment()
    assert environment.autoescape("feedback_page.html.j2") and environment.autoescape("similarity_report.html.j2")
    assert not environment.autoescape("kit_README.md.j2")
    assert environment.undefined.__name__ == "StrictUndefined"


def test_every_template_is_used_and_every_used_template_exists():
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "seglab").rglob("*.py"))
    used = set(re.findall(r"\brender\(\s*[\"']([^\"']+\.j2)[\"']", source))
    templates = {p.name for p in TEMPLATES.glob("*.j2")}
    assert templates == used
    assert {"feedback_page.html.j2", "similarity_report.html.j2", "kit_README.md.j2"} <= templates


def test_no_markup_is_built_in_python():
    tags = re.compile(r"<(p|table|tr|td|th|ul|li|h[1-6]|img|pre|section|span|style|html|code|br)\b")
    for module in ("feedback.py", "similarity.py"):
        assert not tags.search((ROOT / "seglab" / "course" / module).read_text(encoding="utf-8")), module


def test_students_and_imports_need_no_jinja2():
    """jinja2 is in the tutor extra: `seglab check` never imports it, the page modules only when rendering."""
    code = ("import sys, seglab.course.selfcheck, seglab.course.feedback, seglab.course.similarity, seglab.course.kit; "
            "assert 'jinja2' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("argv", [["similarity", "{folder}"],
                                  ["grade", "run", "{folder}", "--feedback", "{folder}/pages"],
                                  ["grade", "manual", "{folder}/s.csv", "--feedback", "{folder}/pages"]])
def test_page_commands_name_the_tutor_extra_without_jinja2(argv, tmp_path, capsys, monkeypatch):
    """The pages are jinja2 templates, and jinja2 comes with the tutor extra: without it, a command that writes a
    page says which extra to install before it does anything, instead of a traceback after grading."""
    import importlib.util

    from seglab.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jinja2" else real(name, *a))
    assert main([part.format(folder=tmp_path) for part in argv]) == 2
    err = capsys.readouterr().err
    assert 'pip install "seglab[tutor]"' in err and "jinja2" in err and "Traceback" not in err
    assert not (tmp_path / "pages").exists()


def test_every_submission_not_graded_gets_a_page_that_says_why(tmp_path):
    """Refused when collected (names that collide, a link), not a notebook, a second copy, more code than the
    grader reads: each gets its rows and a page that says why it was not graded (no kernel runs)."""
    folder, pages = tmp_path / "class", tmp_path / "pages"
    folder.mkdir()
    released = ROOT / "notebooks" / "01_convolution_arithmetic.ipynb"
    (folder / "jane doe.ipynb").write_bytes(released.read_bytes())
    (folder / "jane_doe.ipynb").write_bytes(released.read_bytes())
    (folder / "ivan.ipynb").write_text("not json")
    (folder / "zoe").mkdir()
    (folder / "zoe" / "01_a.ipynb").write_text("")  # neither copy can be read: the first counts
    (folder / "zoe" / "01_b.ipynb").write_text("{")
    bulky = nbformat.read(released, as_version=4)
    bulk = "\n".join(f"def g{n}(a, b):\n    return a * {n} + b" for n in range(4000))  # about 150 KiB a cell
    bulky.cells += [nbformat.v4.new_code_cell(bulk) for _ in range(4)]
    nbformat.write(bulky, folder / "bulky.ipynb")
    reasons = {"jane doe": "is the same as 'jane_doe'", "jane_doe": "is the same as 'jane doe'",
               "ivan": "not a valid notebook", "bulky": f"more than {LIMITS.code_bytes // 1024} KiB of code",
               "zoe": "second copy"}
    if os.name == "posix":
        os.symlink(ROOT / "solutions" / "01_convolution_arithmetic.ipynb", folder / "mallory.ipynb")
        reasons["mallory"] = "symbolic link"
    batch = grade_class(folder, GradeOptions(solutions_dir=ROOT / "solutions", sandbox="none", progress=False,
                                             feedback_dir=str(pages)), out=tmp_path / "grades.csv")
    assert {row.student for row in batch.rows} == set(reasons)
    for student, reason in reasons.items():
        shown = [html.unescape(page.read_text(encoding="utf-8"))
                 for page in sorted((pages / folder_name(student)).glob("*.html"))]
        said = [text for text in shown if "This notebook was not graded" in text]
        assert said and all(reason in text or student == "zoe" for text in said), (student, shown)
        assert any(reason in row.message for row in batch.rows if row.student == student), student
    zoe = sorted((pages / folder_name("zoe")).glob("*.json"))
    assert len(zoe) == 2, zoe  # the second copy's page is not the counted copy's
    assert {json.loads(p.read_text())["notebook"] for p in zoe} == {"01_convolution_arithmetic.ipynb",
                                                                     "01_convolution_arithmetic.ipynb (second copy)"}
    assert any("second copy" in html.unescape(p.with_suffix(".html").read_text()) for p in zoe)
