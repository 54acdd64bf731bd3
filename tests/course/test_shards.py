"""Grading a class in shards (a job array) and joining them: every student in exactly one shard."""

from __future__ import annotations

import csv

import pytest

from seglab.cli import main
from seglab.course.grade import in_shard
from seglab.course.rows import GradeRow, merge_csvs, read_csv, write_csv
from tests.support import ROOT


def test_every_student_is_in_exactly_one_shard():
    students = [f"student{n:03d}" for n in range(200)]
    for count in (1, 3, 8):
        shares = [[s for s in students if in_shard(s, (i, count))] for i in range(1, count + 1)]
        assert sorted(s for share in shares for s in share) == students
        assert all(len(share) > 200 / count / 2 for share in shares)  # roughly even


def test_shards_graded_apart_merge_into_the_whole_class(tmp_path, capsys):
    folder = tmp_path / "class"
    folder.mkdir()
    for n in range(9):  # files that are not notebooks: graded without starting a kernel
        (folder / f"s{n}.ipynb").write_text("{ not json")
    outs = []
    for index in (1, 2, 3):
        out = tmp_path / f"shard{index}.csv"
        assert main(["grade", "run", str(folder), "--shard", f"{index}/3", "--out", str(out), "--sandbox", "none",
                     "--solutions", str(ROOT / "solutions"), "--no-progress"]) == 0
        outs.append(out)
    merged = tmp_path / "grades.csv"
    assert main(["grade", "merge", *map(str, outs), "--out", str(merged)]) == 0
    assert sorted(r.student for r in read_csv(merged)) == [f"s{n}" for n in range(9)]
    assert (tmp_path / "grades-manual.csv").is_file()  # the shards' hand-grading sheets, joined
    assert main(["grade", "merge", str(outs[0]), str(outs[0]), "--out", str(merged)]) == 2
    assert "in both" in capsys.readouterr().err


def test_a_bad_shard_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        main(["grade", "run", "x", "--shard", "4/3"])
    assert "I must be between 1 and N" in capsys.readouterr().err


def test_merge_refuses_a_submission_in_two_shards(tmp_path):
    row = GradeRow("alice", "01_convolution_arithmetic.ipynb", "check_conv_output_size", 2, 2, "ok")
    write_csv([row], tmp_path / "a.csv")
    write_csv([row], tmp_path / "b.csv")
    with pytest.raises(ValueError, match="alice's 01_convolution_arithmetic.ipynb is in both"):
        merge_csvs([tmp_path / "a.csv", tmp_path / "b.csv"])
    with open(tmp_path / "a.csv", newline="") as file:
        assert len(list(csv.DictReader(file))) == 1
