"""Whatever a submission wrote, the grader writes it safely: valid UTF-8 everywhere (lone surrogates and
control characters escaped), CSV cells no spreadsheet runs as a formula, and reading back gives what
was written — so --resume, --manual and merging still match students.

Round trip, as documented in seglab.course.spreadsheet: reading gives back ``clean_text`` of what was
written, exactly; for text that is already clean (no lone surrogate, no control character but tab,
newline and carriage return) that is the very same string.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seglab.checks.wire import decode, encode
from seglab.cli import main
from seglab.course import feedback
from seglab.course.export import moodle_table, wide_table, write_table
from seglab.course.feedback import folder_name, render_page, write_pages, write_record
from seglab.course.manual import ManualEntry, read_entries, write_sheet
from seglab.course.rows import GradeRow, append_csv, points_table, read_csv, write_csv
from seglab.course.spreadsheet import FORMULA_TRIGGERS, clean_text, escape_cell, read_rows, unescape_cell
from tests.support import ROOT

NOTEBOOK = "01_convolution_arithmetic.ipynb"
QUESTION = "answer_output_resolution"
HOSTILE = ["=cmd|' /C calc'!A0", "+1+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
           "\t=1+1", "\r=1+1", "'=1+1", "''", "'", "\ud800", "a\udcffb", "\udfff\ud800", "nul\x00here",
           "esc\x1b[31mred", "bidi\u202eevil", "line\nbreak", "crlf\r\nx", "\ufeffbom", "=HYPERLINK(\"http://x\")",
           "", " =1", "-", "-1", "1e5", "José"]
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates (Cs) included
FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_utf8(path: Path) -> str:
    return path.read_bytes().decode("utf-8")  # raises if not


def _cells(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def _no_formula(cell: str) -> bool:
    """What a spreadsheet does not run: no trigger first, or a plain number / Moodle's "-"."""
    return not cell.startswith(FORMULA_TRIGGERS) or cell == "-" or _is_number(cell)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return not cell.strip().lower().lstrip("-+").startswith(("n", "i"))  # not nan / inf


# ------------------------------------------------------------------ clean_text and the cell escape

@given(ANY_TEXT)
@FUZZ
def test_clean_text_is_valid_idempotent_and_leaves_clean_text_alone(text):
    cleaned = clean_text(text)
    cleaned.encode("utf-8")
    assert clean_text(cleaned) == cleaned
    if all(not 0xD800 <= ord(c) <= 0xDFFF for c in text) and clean_text(text) == text:
        assert unescape_cell(escape_cell(text)) == text


@given(ANY_TEXT)
@FUZZ
def test_escaping_is_reversible_and_neutralises_every_trigger(text):
    cell = escape_cell(text)
    assert unescape_cell(cell) == clean_text(text)
    assert _no_formula(cell) or cell.startswith("'")
    cell.encode("utf-8")


@pytest.mark.parametrize("trigger", [*FORMULA_TRIGGERS, "'"])
def test_every_trigger_gets_a_quote(trigger):
    assert escape_cell(trigger + "cmd") == "'" + trigger + "cmd"
    assert unescape_cell(escape_cell(trigger + "cmd")) == trigger + "cmd"


def test_numbers_and_moodle_no_grade_stay_as_they_are():
    for value in ("2", "2.0", "-0.5", "1e-05", "-", "", "0"):
        assert escape_cell(value) == value
    assert escape_cell(-1.5) == "-1.5" and escape_cell("-1 for units") == "'-1 for units"
    assert clean_text("a\ud800b\x00c\td\ne") == "a\\ud800b\\x00c\td\ne"


# ------------------------------------------------------------------ grades CSV

POINTS = st.one_of(st.just(""), st.floats(allow_nan=False))
ROWS = st.lists(st.builds(GradeRow, ANY_TEXT, ANY_TEXT, ANY_TEXT, POINTS, st.floats(allow_nan=False), ANY_TEXT,
                          ANY_TEXT), max_size=4)  # the review column too


def _cleaned(row: GradeRow) -> GradeRow:
    return GradeRow(clean_text(row.student), clean_text(row.notebook), clean_text(row.exercise), row.points,
                    row.max, clean_text(row.message), clean_text(row.review))


@given(ROWS, ROWS)
@FUZZ
def test_grades_csv_round_trips_whatever_the_text(first, more):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "grades.csv"
        write_csv(first, path)
        assert read_csv(path) == [_cleaned(r) for r in first]
        append_csv(more, path)
        back = read_csv(path)
        assert back == [_cleaned(r) for r in first + more]
        assert all(_no_formula(c) or c.startswith("'") for line in _cells(path) for c in line)
        write_csv(back, path)  # what --resume then writes: stable
        assert read_csv(path) == back
        points_table(back).encode("utf-8")


def test_hostile_rows_are_written_neutralised_and_read_back(tmp_path):
    rows = [GradeRow(name, NOTEBOOK, "check_x", 1.5, 2, f"the check could not run: ValueError: {name}",
                     f'cell 3 ("{name}"), line 1 runs code made at run time')  # a review note quotes a cell
            for name in HOSTILE]
    out = tmp_path / "grades.csv"
    append_csv(rows[:3], out)
    append_csv(rows[3:], out)
    text = _valid_utf8(out)
    assert "\ud800" not in text and "\\ud800" in text and "\x00" not in text and "\x1b" not in text
    cells = _cells(out)
    assert cells[0] == ["student", "notebook", "exercise", "points", "max", "message", "review"]
    assert all(_no_formula(c) or c.startswith("'") for line in cells for c in line)
    assert {line[0] for line in cells[1:]} >= {"'=cmd|' /C calc'!A0", "'\t=1+1", "'''", "-", "-1"}
    assert read_csv(out) == [_cleaned(r) for r in rows]
    assert [r.student for r in read_csv(out)][:3] == HOSTILE[:3]  # the names a resume matches against


def test_a_last_line_cut_by_a_crash_is_dropped(tmp_path):
    out = tmp_path / "grades.csv"
    write_csv([GradeRow("alice", NOTEBOOK, "x", 1, 2, "ok"), GradeRow("bob", NOTEBOOK, "x", 1, 2, "ok")], out)
    out.write_bytes(out.read_bytes() + b"carol,01_conv")
    assert [r.student for r in read_csv(out)] == ["alice", "bob"]


# ------------------------------------------------------------------ the hand-grading sheet

ENTRIES = st.lists(st.builds(ManualEntry, ANY_TEXT, ANY_TEXT, ANY_TEXT, st.floats(allow_nan=False), ANY_TEXT,
                             ANY_TEXT, ANY_TEXT), max_size=4)


@given(ENTRIES)
@FUZZ
def test_the_sheet_round_trips_whatever_the_text(entries):
    expected = {}
    for e in entries:  # the last of two entries with one key wins
        key = tuple(clean_text(v) for v in e.key)
        expected[key] = ManualEntry(*key, e.max, clean_text(e.points), clean_text(e.comment), clean_text(e.answer))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "grades-manual.csv"
        write_sheet(entries, path)
        back = read_entries(path)
        assert back == sorted(expected.values(), key=lambda e: e.key)
        assert all(_no_formula(c) or c.startswith("'") for line in _cells(path) for c in line)
        write_sheet(back, path)  # a re-run keeps every cell as it was
        assert read_entries(path) == back


def test_hostile_answers_and_comments_in_the_sheet(tmp_path):
    sheet = tmp_path / "grades-manual.csv"
    entries = [ManualEntry(name, NOTEBOOK, QUESTION, 3.0, "", "", f"{name} is my answer") for name in HOSTILE[:12]]
    write_sheet(entries, sheet)
    cells = _cells(sheet)
    assert all(_no_formula(c) or c.startswith("'") for line in cells for c in line)
    _valid_utf8(sheet)
    back = read_entries(sheet)
    assert {e.student for e in back} == {clean_text(n) for n in HOSTILE[:12]}
    for entry in back:  # the tutor grades with a comment that starts with "=" and holds a surrogate
        entry.points, entry.comment = "2", "=good \ud800"
    write_sheet(back, sheet)
    assert {e.comment for e in read_entries(sheet)} == {"=good \\ud800"}
    write_sheet(entries, sheet)  # a re-run with the same answers: grading kept, nothing flagged as changed
    assert {(e.points, e.comment) for e in read_entries(sheet)} == {("2", "=good \\ud800")}


# ------------------------------------------------------------------ exports

def test_moodle_and_wide_exports_neutralise_names(tmp_path):
    rows = [GradeRow(name, NOTEBOOK, "check_a", 1, 2, "x") for name in HOSTILE if name]
    rows += [GradeRow(name, NOTEBOOK, QUESTION, "", 3, "graded by hand") for name in HOSTILE if name]
    for table, out in ((moodle_table(rows), tmp_path / "m.csv"), (wide_table(rows), tmp_path / "w.csv")):
        write_table(table, out)
        _valid_utf8(out)
        cells = _cells(out)
        assert all(_no_formula(c) or c.startswith("'") for line in cells for c in line)
        assert read_rows(out) == [[clean_text(c) for c in line] for line in table]
    moodle = {line[0]: line for line in _cells(tmp_path / "m.csv")[1:]}
    assert moodle["'=cmd|' /C calc'!A0"][1:] == ["1", "1 of 5 points; not yet graded by hand: " + QUESTION, "1"]
    assert moodle["-"][1] == "1" and moodle["-1"][1] == "1"  # a name that is a number is not a formula


def test_export_command_with_hostile_names(tmp_path, capsys):
    rows = [GradeRow(name, NOTEBOOK, "check_a", 2, 2, "ok") for name in HOSTILE if name]
    write_csv(rows, tmp_path / "grades.csv")
    assert main(["export", str(tmp_path / "grades.csv"), "--format", "moodle"]) == 0
    assert main(["export", str(tmp_path / "grades.csv"), "--format", "wide"]) == 0
    for name in ("grades-moodle.csv", "grades-wide.csv"):
        cells = _cells(tmp_path / name)
        assert all(_no_formula(c) or c.startswith("'") for line in cells for c in line)


@given(st.lists(st.tuples(ANY_TEXT, POINTS), min_size=1, max_size=5))
@FUZZ
def test_moodle_export_fuzz(students):
    rows = [GradeRow(name, NOTEBOOK, "check_a", points, 2, "x") for name, points in students]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "m.csv"
        for table in (moodle_table(rows), wide_table(rows)):
            write_table(table, out)
            assert read_rows(out) == [[clean_text(c) for c in line] for line in table]
            assert all(_no_formula(c) or c.startswith("'") for line in _cells(out) for c in line)


# ------------------------------------------------------------------ feedback records and pages

VALUES = st.one_of(
    ANY_TEXT, st.floats(), st.integers(), st.none(), st.booleans(),
    st.sampled_from([torch.zeros(0), torch.zeros(0, 3), torch.zeros(2, 0, 4), torch.zeros(3, 0), torch.tensor(1.5),
                     torch.tensor(float("nan")), torch.full((3, 3), float("nan")), torch.arange(20.).reshape(4, 5),
                     torch.ones(2, 2, dtype=torch.bool), torch.tensor([float("inf"), -1.0])]),
    st.lists(ANY_TEXT, max_size=3))
FAILURES = st.fixed_dictionaries({"label": ANY_TEXT, "inputs": st.dictionaries(ANY_TEXT, VALUES, max_size=3),
                                  "expected": VALUES, "received": VALUES, "hint": ANY_TEXT})
DETAILS = st.lists(st.fixed_dictionaries({
    "exercise": st.sampled_from(["check_a", "check_b"]), "title": ANY_TEXT,
    "parts": st.lists(st.tuples(ANY_TEXT, st.floats(), st.floats()), max_size=2),
    "failure": st.one_of(st.none(), FAILURES)}), max_size=2)


@given(ANY_TEXT, DETAILS, st.dictionaries(st.just(QUESTION), ANY_TEXT), ANY_TEXT, ANY_TEXT)
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_feedback_records_and_pages_never_fail(student, details, answers, message, comment):
    rows = [GradeRow(clean_text(student), NOTEBOOK, "check_a", 1, 2, message),
            GradeRow(clean_text(student), NOTEBOOK, QUESTION, "", 3, message)]
    manual = [ManualEntry(student, NOTEBOOK, QUESTION, 3, "2", comment, "x")]
    with tempfile.TemporaryDirectory() as folder:
        record = write_record(folder, student, NOTEBOOK, details, answers, findings=[message])
        json.loads(_valid_utf8(record))
        (page,) = write_pages(folder, rows, manual)
        assert page.parent == record.parent and page.parent.name == folder_name(clean_text(student))
        text = _valid_utf8(page)
        assert "\x00" not in text and "\x1b" not in text


def test_empty_and_odd_tensors_render(tmp_path):
    values = [torch.zeros(0), torch.zeros(0, 4), torch.zeros(3, 0, 0), torch.tensor(2.0), torch.tensor(float("nan")),
              torch.full((2, 3, 3), float("nan")), torch.randn(1, 1, 2000, 3000), torch.zeros(1, 1, 1, 1, 1, 1, 1, 1)]
    for expected in values:
        for received in values:
            failure = {"label": "case", "inputs": {"x": received}, "expected": expected, "received": received,
                       "hint": "look"}
            record = {"student": "ada", "notebook": NOTEBOOK, "answers": {},
                      "exercises": encode([{"exercise": "check_a", "title": "A", "parts": [["values", 0, 2]],
                                            "failure": failure}])}
            page = render_page(record, [GradeRow("ada", NOTEBOOK, "check_a", 0, 2, "wrong")])
            page.encode("utf-8")
    assert "an empty tensor of shape (0,)" in feedback._value(torch.zeros(0))
    assert "tensor (one number): 2" in feedback._value(torch.tensor(2.0))
    assert "nan" in feedback._value(torch.tensor(float("nan")))
    assert len(feedback._value(list(range(100_000)))) < 3 * feedback.MAX_TEXT
    picture = feedback._picture(torch.randn(1, 1, 2000, 3000), torch.zeros(0, 4))
    assert picture and "<" not in picture and base64.b64decode(picture).startswith(b"\x89PNG")  # markup: the template


def test_an_empty_tensor_answer_through_grade_manual_feedback(tmp_path, capsys):
    """The observed failure: an empty tensor answer broke `seglab grade manual SHEET --feedback DIR`."""
    pages, out = tmp_path / "pages", tmp_path / "grades.csv"
    student = "j\\xffne \ud800"
    details = [{"exercise": "check_conv_output_size", "title": "Output size", "parts": [["values", 0, 2]],
                "failure": {"label": "i=0", "inputs": {"i": torch.zeros(0, 0)}, "expected": torch.ones(3, 3),
                            "received": torch.zeros(0, 0), "hint": "=check \ud800"}}]
    write_record(pages, student, NOTEBOOK, details, {QUESTION: "=answer \ud800"})
    write_csv([GradeRow(clean_text(student), NOTEBOOK, "check_conv_output_size", 0, 2, "wrong: \ud800"),
               GradeRow(clean_text(student), NOTEBOOK, QUESTION, "", 3, "graded by hand")], out)
    sheet = tmp_path / "grades-manual.csv"
    write_sheet([ManualEntry(student, NOTEBOOK, QUESTION, 3.0, "2", "=well done \ud800\x00", "=answer")], sheet)
    assert main(["grade", "manual", str(sheet), "--out", str(out), "--feedback", str(pages), "--solutions",
                 str(ROOT / "solutions")]) == 0
    page = _valid_utf8(next(pages.glob("*/*.html")))
    assert "an empty tensor of shape (0, 0)" in page and "=well done \\ud800\\x00" in page and "2 / 3" in page
    assert read_csv(out)[1].message == "graded by hand: =well done \\ud800\\x00"
    assert "'graded by hand" not in _valid_utf8(out)


def test_names_that_normalise_alike_get_their_own_folders(tmp_path):
    names = ["jane doe", "jane_doe", "Jane", "jane", "ada", "02_upsampling", "\ud800", "\\ud800", "..", "a/b", ""]
    folders = {name: folder_name(name) for name in names}
    # injective on the names as written (clean_text): "\ud800" and a lone surrogate are the same name there
    assert len(set(folders.values())) == len({clean_text(n) for n in names}) == len(names) - 1
    assert folders["jane_doe"] == "jane_doe" and folders["ada"] == "ada" and folders["jane doe"].startswith("jane_doe-")
    assert all("/" not in f and f not in (".", "..") for f in folders.values())
    for name in names:
        write_record(tmp_path, name, NOTEBOOK, [], {})
    assert len(list(tmp_path.glob("*/*.json"))) == len({clean_text(n) for n in names})
    rows = [GradeRow(clean_text(n), NOTEBOOK, "check_a", 1, 2, "x") for n in names]
    assert len(write_pages(tmp_path, rows)) == len({clean_text(n) for n in names})


def test_a_broken_record_does_not_stop_the_other_pages(tmp_path):
    write_record(tmp_path, "ada", NOTEBOOK, [], {})
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "x.json").write_bytes(b"\xff not json")
    (tmp_path / "carol").mkdir()
    (tmp_path / "carol" / "x.json").write_text(json.dumps({"student": "carol", "notebook": NOTEBOOK,
                                                           "exercises": {"__tensor__": "bad"}}))
    rows = [GradeRow(n, NOTEBOOK, "check_a", 1, 2, "x") for n in ("ada", "bob", "carol")]
    written = write_pages(tmp_path, rows)
    assert sorted(p.parent.name for p in written) == ["ada", "carol"]
    assert "could not be shown" in (tmp_path / "carol" / "x.html").read_text()


def test_wire_values_survive_the_record(tmp_path):
    value = [torch.zeros(0, 2), float("nan"), "\ud800"]
    path = write_record(tmp_path, "ada", NOTEBOOK, [{"exercise": "a", "failure": {"received": value}}], {})
    back = decode(json.loads(path.read_text())["exercises"])[0]["failure"]["received"]
    assert back[0].shape == (0, 2) and math.isnan(back[1]) and back[2] == "\ud800"


# ------------------------------------------------------------------ similarity report and console

def test_similarity_report_with_hostile_names(tmp_path, monkeypatch, capsys):
    from seglab.course import similarity

    pair = similarity.Pair("=a\ud800", "b\x1b", 0.9, [("ex", 0.9)], {"ex": ("x = '\udcff'", "<script>")})
    unread = {"c\ud800": ["cell 3: <b>\x1b"]}  # what could not be compared, with its student's name
    monkeypatch.setattr(similarity, "compare", lambda *a, **k: similarity.Comparison([pair], unread))
    out = tmp_path / "s.html"
    assert main(["similarity", str(tmp_path), "--out", str(out)]) == 0
    text = _valid_utf8(out)
    assert "\\ud800" in text and "&lt;script&gt;" in text and "\x1b" not in text
    assert "c\\ud800: cell 3: &lt;b&gt;" in text
    printed = capsys.readouterr().out
    printed.encode("utf-8")
    assert "=a\\ud800" in printed
