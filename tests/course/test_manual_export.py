"""Hand grading round trip (sheet out, filled sheet back in) and the exports for a learning platform."""

from __future__ import annotations

import csv

import nbformat
import pytest

from seglab.cli import main
from seglab.course.export import ExportError, moodle_table, wide_table, write_table
from seglab.course.manual import ManualSheetError, collect_answers, read_sheet, sheet_path, write_sheet
from seglab.course.rows import GradeRow, read_csv, write_csv
from tests.support import ROOT, by_grade_id

STUDENT = ROOT / "notebooks" / "01_convolution_arithmetic.ipynb"
NOTEBOOK = "01_convolution_arithmetic.ipynb"
QUESTION = "answer_output_resolution"


def _rows(student: str, conv: float, manual="") -> list[GradeRow]:
    return [GradeRow(student, NOTEBOOK, "check_conv_output_size", conv, 2, "x"),
            GradeRow(student, NOTEBOOK, "check_pool_output_size", 0, 2, "not implemented yet"),
            GradeRow(student, NOTEBOOK, "check_transposed_conv_output_size", 0, 2, "not implemented yet"),
            GradeRow(student, NOTEBOOK, "check_receptive_field", 0, 3, "not implemented yet"),
            GradeRow(student, NOTEBOOK, QUESTION, manual, 3, "graded by hand")]


@pytest.fixture
def graded(tmp_path, course):
    """Two submissions with written answers, their grades CSV and the sheet `seglab grade` writes."""
    folder = tmp_path / "class"
    folder.mkdir()
    for student, answer in (("alice", "The total stride sets it."), ("bob", "Pooling, I think.")):
        nbformat.write(nbformat.read(STUDENT, as_version=4), folder / f"{student}.ipynb")
        _answer(folder / f"{student}.ipynb", answer)
    out = tmp_path / "grades.csv"
    write_csv(_rows("alice", 2) + _rows("bob", 0), out)
    sheet = write_sheet(collect_answers(folder, course), sheet_path(out))
    return folder, out, sheet


def _sheet(path):
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _fill(path, **points):
    rows = _sheet(path)
    for row in rows:
        if row["student"] in points:
            row["points"], row["comment"] = points[row["student"]]
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_the_sheet_lists_every_answer_with_empty_points(graded):
    _, _, sheet = graded
    rows = _sheet(sheet)
    assert [(r["student"], r["question"], r["max"], r["points"]) for r in rows] == [
        ("alice", QUESTION, "3.0", ""), ("bob", QUESTION, "3.0", "")]
    assert rows[0]["answer"] == "The total stride sets it."


def test_a_filled_sheet_merges_into_the_grades(graded, capsys):
    _, out, sheet = graded
    _fill(sheet, alice=("3", "exactly"), bob=("1,5", ""))
    assert main(["grade", "manual", str(sheet), "--out", str(out), "--solutions", str(ROOT / "solutions")]) == 0
    table = {(r.student, r.exercise): r for r in read_csv(out)}
    assert table["alice", QUESTION].points == 3 and table["alice", QUESTION].message == "graded by hand: exactly"
    assert table["bob", QUESTION].points == 1.5
    assert table["alice", "check_conv_output_size"].points == 2  # automatic points untouched


@pytest.mark.parametrize("student, points, problem", [
    ("alice", "4", "outside 0 to 3"), ("alice", "-1", "outside 0 to 3"), ("alice", "good", "not a number")])
def test_bad_points_are_rejected_with_the_line(graded, course, student, points, problem):
    _, out, sheet = graded
    _fill(sheet, **{student: (points, "")})
    with pytest.raises(ManualSheetError, match=f"line 2: .*{problem}"):
        read_sheet(sheet, read_csv(out), course)
    before = out.read_bytes()
    assert main(["grade", "manual", str(sheet), "--out", str(out), "--solutions", str(ROOT / "solutions")]) == 2
    assert out.read_bytes() == before  # nothing merged


def test_unknown_students_and_questions_are_rejected(graded, course):
    _, out, sheet = graded
    rows = [*_sheet(sheet),
            {"student": "mallory", "notebook": NOTEBOOK, "question": QUESTION, "max": "3", "points": "3",
             "comment": "", "answer": ""},
            {"student": "bob", "notebook": NOTEBOOK, "question": "check_conv_output_size", "max": "2", "points": "2",
             "comment": "", "answer": ""}]
    with open(sheet, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ManualSheetError) as error:
        read_sheet(sheet, read_csv(out), course)
    assert "unknown student 'mallory'" in str(error.value)
    assert "no hand-graded question 'check_conv_output_size'" in str(error.value)  # automatic points stay automatic


def _answer(path, text):
    """Write ``text`` as the submission's answer to the hand-graded question."""
    notebook = nbformat.read(path, as_version=4)
    by_grade_id(notebook, QUESTION).source = text
    nbformat.write(notebook, path)


def test_a_re_run_keeps_every_edit(graded, course):
    folder, _, sheet = graded
    _fill(sheet, alice=("2", "good"))
    _answer(folder / "bob.ipynb", "New text.")
    (folder / "alice.ipynb").unlink()  # alice's submission is gone from this batch: her grading stays
    write_sheet(collect_answers(folder, course), sheet)
    rows = {r["student"]: r for r in _sheet(sheet)}
    assert (rows["alice"]["points"], rows["alice"]["comment"]) == ("2", "good")
    assert rows["bob"]["answer"] == "New text."


def test_a_changed_answer_keeps_its_points_and_is_flagged(graded, course):
    folder, _, sheet = graded
    _fill(sheet, bob=("1", "vague"))
    _answer(folder / "bob.ipynb", "Changed.")
    write_sheet(collect_answers(folder, course), sheet)
    bob = next(r for r in _sheet(sheet) if r["student"] == "bob")
    assert bob["points"] == "1" and bob["comment"].startswith("[answer changed") and bob["answer"] == "Changed."


# ------------------------------------------------------------------ exports

def _read_moodle(path, id_column="Username"):
    """Read a file the way Moodle's CSV grade import does: trimmed cells, '' or '-' is no grade."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    grades = {}
    for row in rows:
        values = {key: value.strip() for key, value in row.items()}
        user = values.pop(id_column)
        grades[user] = {key: None if value in ("", "-") else float(value)
                                         for key, value in values.items() if not key.endswith("feedback")}
    return grades


def test_moodle_export_round_trips(tmp_path, capsys):
    rows = _rows("alice", 2, manual=3) + _rows("bob", 0)
    write_csv(rows, tmp_path / "grades.csv")
    assert main(["export", str(tmp_path / "grades.csv"), "--format", "moodle"]) == 0
    back = _read_moodle(tmp_path / "grades-moodle.csv")
    assert back == {"alice": {"01_convolution_arithmetic": 5.0, "Total": 5.0},
                    "bob": {"01_convolution_arithmetic": 0.0, "Total": 0.0}}
    with open(tmp_path / "grades-moodle.csv", newline="", encoding="utf-8") as file:
        feedback = {r["Username"]: r["01_convolution_arithmetic feedback"] for r in csv.DictReader(file)}
    assert feedback["alice"] == "5 of 12 points"
    assert "not yet graded by hand: answer_output_resolution" in feedback["bob"]


def test_moodle_export_with_a_roster(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("student,moodle\nalice,alice@uni.example\n", encoding="utf-8")
    rows = _rows("alice", 2) + _rows("bob", 0)
    write_csv(rows, tmp_path / "grades.csv")
    assert main(["export", str(tmp_path / "grades.csv"), "--roster", str(roster), "--id-column", "Email address",
                 "--out", str(tmp_path / "m.csv")]) == 2  # bob is missing from the roster
    with pytest.raises(ExportError, match="not in the roster: bob"):
        moodle_table(rows, roster={"alice": "a"})
    table = moodle_table(rows[:5], id_column="Email address", roster={"alice": "alice@uni.example"})
    write_table(table, tmp_path / "m.csv")
    assert _read_moodle(tmp_path / "m.csv", "Email address") == {
        "alice@uni.example": {"01_convolution_arithmetic": 2.0, "Total": 2.0}}


def test_wide_export_has_one_row_per_student(tmp_path):
    rows = _rows("alice", 2, manual=3) + _rows("bob", 0)
    rows.append(GradeRow("bob", "02_upsampling.ipynb", "check_bilinear_kernel", 2, 2, "all 60 cases passed"))
    header, *lines = wide_table(rows)
    assert header[0] == "student" and header[-1] == "total" and "01:check_conv_output_size" in header
    table = {line[0]: dict(zip(header, line, strict=True)) for line in lines}
    assert table["alice"]["01:answer_output_resolution"] == "3" and table["alice"]["total"] == "5"
    assert table["bob"]["01:answer_output_resolution"] == "" and table["bob"]["02:check_bilinear_kernel"] == "2"
    assert table["alice"]["02:check_bilinear_kernel"] == "" and table["bob"]["total"] == "2"


def test_a_broken_sheet_leaves_the_batch_and_the_sheet_as_they_are(tmp_path, capsys):
    """A tutor's edit that breaks the sheet (a maximum typed over) is said, with the line's student and
    question; the batch still writes its grades, and the sheet is not rewritten (nothing the tutor typed is
    lost)."""
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "zoe.ipynb").write_text("not a notebook")  # graded at once, no kernel
    sheet = tmp_path / "g-manual.csv"
    text = "student,notebook,question,max,points,comment,answer\nzoe,01_x.ipynb,answer_q,lots,3,good,x\n"
    sheet.write_text(text)
    assert main(["grade", "run", str(folder), "--out", str(tmp_path / "g.csv"), "--solutions", str(ROOT / "solutions"),
                 "--sandbox", "none", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "zoe, answer_q" in err and "'lots' is not a number" in err and "Traceback" not in err
    assert sheet.read_text() == text and [r.student for r in read_csv(tmp_path / "g.csv")] == ["zoe"]
