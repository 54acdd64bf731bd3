"""What ``seglab check`` prints: any stdout encoding, short lines, and a notebook without automatic checks."""

import io
import os
import subprocess
import sys

import nbformat

from seglab.course.selfcheck import WIDTH, ExerciseStatus, NotebookCheck, format_report, printable
from tests.support import NOTEBOOKS, by_grade_id, nbgrader

LONG = ("3 of 30 cases wrong, e.g. i=5, k=2, s=4, p=1, ceil_mode=True: you said 3, PyTorch gives 2. Hint: with "
        "ceil_mode=True the last window must start inside the input or the left padding: one that would start in the "
        "right padding (at i + p or later) is dropped; the size is floor((i + 2p − k) / s) + 1 (ceil with ceil_mode). "
        "file:///a/very/long/path/without/any/spaces/in/it/at/all/that/goes/on/and/on/and/on/and/on/and/on/x.py")


def _check(exercises, errors=(), stop_reason=None):
    return NotebookCheck("07_x.ipynb", list(exercises), list(errors), stop_reason, 3.2, True)


MIXED = _check([ExerciseStatus("check_conv_output_size", 2.0, 2.0, "passed", "all 30 cases passed"),
                ExerciseStatus("check_pool_output_size", 0.0, 2.0, "failed", LONG),
                ExerciseStatus("check_receptive_field", 0.0, 3.0, "not implemented yet"),
                ExerciseStatus("check_unet_sizes", 0.0, 2.0, "not run", "ZeroDivisionError: x\n    the kernel said"),
                ExerciseStatus("answer_why", None, 3.0, "graded by hand")],
               errors=["cell 9: ZeroDivisionError: " + "division by zero " * 12], stop_reason="a cell ran too long")


def test_every_line_is_short_and_a_failure_keeps_its_whole_message():
    report = format_report(MIXED)
    lines = report.splitlines()
    assert max(len(line) for line in lines) <= WIDTH, max(lines, key=len)
    row = next(line for line in lines if line.startswith("| pool_output_size"))
    assert "✘ failed" in row and "Hint" not in row  # the message is below the table, on lines of its own
    below = lines[lines.index("what the checks found:") + 1:]
    start = next(n for n, line in enumerate(below) if line.startswith("  pool_output_size: "))
    block = [below[start]]
    while below[start + len(block)].startswith("      "):
        block.append(below[start + len(block)])
    assert "".join(" ".join(block).removeprefix("  pool_output_size: ").split()) == "".join(LONG.split())
    assert "✔ passed  " in report and report.count("✔ passed") == 1
    assert "… not implemented yet" in report and "✎ graded by hand" in report
    assert "automatic checks: 2 / 9 points; 3 more points for answers graded by hand" in report
    assert "hidden checks" in report


def test_any_encoding_gets_a_report_it_can_write():
    for encoding in ("cp1252", "ascii", "latin-1", "no-such-codec", None):
        report = format_report(MIXED, encoding=encoding)
        report.encode("ascii" if encoding in ("ascii", "no-such-codec") else encoding or "utf-8")
        assert "+ passed" in report or encoding is None, report
        assert "x failed" in report or encoding is None
        assert max(len(line) for line in report.splitlines()) <= WIDTH
    ascii_report = format_report(MIXED, encoding="ascii")
    assert "... not implemented yet" in ascii_report and "~ graded by hand" in ascii_report
    assert "(i + 2p - k) / s" in ascii_report  # a typographic minus becomes "-", not "?"
    assert printable("caf\u00e9 \u2714 \ud800", "cp1252") == "caf\u00e9 + ?"
    assert printable("\u2714 passed", "utf-8") == "\u2714 passed"


def test_a_notebook_without_automatic_checks_says_so():
    """Notebook 05 has answers graded by hand only: no "0 / 0" total and no text about hidden checks."""
    report = format_report(_check([ExerciseStatus("answer_a", None, 3.0, "graded by hand"),
                                   ExerciseStatus("answer_b", None, 2.0, "not answered yet")]))
    assert "no automatic checks" in report and "5 points are for answers that a tutor grades by hand" in report
    assert "0 / 0" not in report and "hidden checks" not in report and "automatic checks: 0" not in report
    assert "✎ not answered yet" in report
    assert "no graded exercises" in format_report(_check([]))


def _course_notebook(path, name: str, answers: dict[str, str]):
    """The kit's notebook ``name`` with ``answers`` ({grade_id: source}) written into its answer cells."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    for grade_id, source in answers.items():
        by_grade_id(notebook, grade_id).source = source
    nbformat.write(notebook, path)
    return path


def test_seglab_check_writes_to_a_cp1252_stdout(tmp_path):
    """Windows, redirected: stdout is cp1252, which has no ✔. The report arrives, in ASCII signs."""
    path = _course_notebook(tmp_path / "01_convolution_arithmetic.ipynb", "01_convolution_arithmetic.ipynb", {
        "conv_output_size": "def conv_output_size(i, k, s=1, p=0, d=1):\n"
                            "    return (i + 2 * p - d * (k - 1) - 1) // s + 1",
        "pool_output_size": "def pool_output_size(i, k, s=None, p=0, ceil_mode=False):\n"
                            "    return (i + 2 * p - k) // (s or k) + 1",  # ceil_mode forgotten
        "answer_output_resolution": "The stride sets the resolution \u2014 of course."})
    env = dict(os.environ, PYTHONIOENCODING="cp1252")
    result = subprocess.run([sys.executable, "-m", "seglab", "check", str(path), "--no-progress"], capture_output=True,
                            env=env, cwd=tmp_path, timeout=240)
    out, err = result.stdout.decode("cp1252"), result.stderr.decode("cp1252", errors="replace")
    assert result.returncode == 0 and "Traceback" not in err, err
    assert "+ passed" in out and "x failed (see below)" in out and "~ graded by hand" in out, out
    assert "automatic checks: 2 / 9 points; 3 more points for answers graded by hand" in out, out
    assert "pool_output_size: " in out and "Hint:" in out, out
    assert max(len(line) for line in out.splitlines()) <= WIDTH, out


def test_seglab_check_of_a_notebook_with_hand_graded_answers_only(tmp_path, capsys):
    """Notebook 05 has no automatic check: nothing needs to run, every answer is listed."""
    from seglab.cli import main

    name = "05_experiments.ipynb"
    answer = next(c for c in nbformat.read(NOTEBOOKS / name, as_version=4).cells if nbgrader(c).get("solution"))
    path = _course_notebook(tmp_path / name, name, {nbgrader(answer)["grade_id"]: "My answer."})
    assert main(["check", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "no automatic checks: all its" in out and "points are for answers that a tutor grades by hand" in out, out
    assert "0 / 0" not in out and "hidden checks" not in out
    assert "graded by hand" in out and "not answered yet" in out, out


def test_the_report_goes_to_a_strict_stream_of_any_encoding(tmp_path, monkeypatch):
    """``_check`` itself, on a stdout that raises on what it cannot encode (the kernel replaced by a result)."""
    import seglab.course.selfcheck
    from seglab.cli import main

    monkeypatch.setattr(seglab.course.selfcheck, "check_notebook", lambda *args, **kwargs: MIXED)
    for encoding in ("cp1252", "ascii", "utf-8"):
        raw = io.BytesIO()
        stream = io.TextIOWrapper(raw, encoding=encoding, errors="strict")
        monkeypatch.setattr(sys, "stdout", stream)
        assert main(["check", str(tmp_path / "any.ipynb"), "--no-progress"]) == 0
        stream.flush()
        assert ("✔ passed" if encoding == "utf-8" else "+ passed") in raw.getvalue().decode(encoding)
