"""`seglab similarity`: a planted copy with renamed variables, new comments and other formatting is
found; independent correct answers to the same exercises are not; the stub never counts."""

from __future__ import annotations

import re

import nbformat
import pytest

from seglab.checks.fingerprint import TooDeep, normalise
from seglab.cli import main
from seglab.course.similarity import compare, similar_pairs
from tests.support import ROOT, cells_by_grade_id

NOTEBOOK = "02_upsampling.ipynb"
RENAMED = {"stretched": "upsampled", "border": "q", "triangle": "tent", "centre": "middle", "taps": "positions",
           "factor": "f", "matrix": "mat", "row": "r", "col": "c_", "batch": "nb", "height": "hh", "width": "ww"}

INDEPENDENT = {
    "bilinear_kernel": '''def bilinear_kernel(channels, kernel_size):
    """Weight (channels, channels, k, k) of a transposed convolution doing bilinear upsampling."""
    f = (kernel_size + 1) // 2
    c = f - 1 if kernel_size % 2 == 1 else f - 0.5
    w = torch.zeros(channels, channels, kernel_size, kernel_size)
    for i in range(kernel_size):
        for j in range(kernel_size):
            value = (1 - abs(i - c) / f) * (1 - abs(j - c) / f)
            for ch in range(channels):
                w[ch, ch, i, j] = value
    return w''',
    "transposed_conv_by_zero_insertion": '''def transposed_conv_by_zero_insertion(x, weight, stride, padding,
                                      output_padding):
    b, cin, h, w = x.shape
    k = weight.shape[2]
    up = torch.zeros(b, cin, stride * (h - 1) + 1, stride * (w - 1) + 1)
    for i in range(h):
        for j in range(w):
            up[:, :, i * stride, j * stride] = x[:, :, i, j]
    q = k - 1 - padding
    up = torch.nn.functional.pad(up, [q, q + output_padding, q, q + output_padding])
    kernel = torch.flip(weight, dims=[2, 3]).permute(1, 0, 2, 3)
    return torch.nn.functional.conv2d(up, kernel)''',
    "convolution_matrix": '''def convolution_matrix(kernel, n, stride):
    columns = []
    for index in range(n * n):
        impulse = torch.zeros(n * n)
        impulse[index] = 1
        response = F.conv2d(impulse.reshape(1, 1, n, n), kernel[None, None], stride=stride)
        columns.append(response.flatten())
    return torch.stack(columns, dim=1)''',
    "transposed_conv_by_autograd": '''def transposed_conv_by_autograd(y, weight, stride, padding, input_size):
    x = torch.zeros(1, weight.shape[1], input_size, input_size, requires_grad=True)
    out = torch.nn.functional.conv2d(x, weight, stride=stride, padding=padding)
    (grad,) = torch.autograd.grad((out * y).sum(), x)
    return grad''',
}




def _disguise(code: str) -> str:
    """Rename the local names, drop the docstrings' wording, add comments and blank lines."""
    for old, new in RENAMED.items():
        code = re.sub(rf"\b{old}\b", new, code)
    code = code.replace("### BEGIN SOLUTION", "# my own work").replace("### END SOLUTION", "")
    return "\n\n".join(line + ("  # step" if "=" in line else "") for line in code.splitlines())


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    solution = cells_by_grade_id(nbformat.read(ROOT / "solutions" / NOTEBOOK, as_version=4), kind="solution",
                                 code_only=True)
    for student in ("alice", "bob", "carol", "dave", "eve"):
        notebook = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
        for grade_id, cell in cells_by_grade_id(notebook, kind="solution", code_only=True).items():
            if student == "alice":
                cell.source = solution[grade_id].source
            elif student == "bob":  # alice's answers, disguised
                cell.source = _disguise(solution[grade_id].source)
            elif student == "eve":  # bob's, in cells whose labels she rewrote (they count for nothing)
                cell.source = _disguise(solution[grade_id].source)
                cell.metadata["nbgrader"]["grade_id"] = "scratch"
                cell.metadata["nbgrader"]["solution"] = False
            elif student == "carol":  # written independently
                cell.source = INDEPENDENT[grade_id]
            # dave hands in the stubs unchanged
        nbformat.write(notebook, folder / f"{student}.ipynb")
    return folder, similar_pairs(folder, notebooks_dir=ROOT / "notebooks")


def test_normalising_ignores_names_comments_and_formatting():
    assert normalise("def f(a, b):\n    '''Doc.'''\n    total = a + b  # sum\n    return total") == \
        normalise("def g(x,y):\n\n    s = x+y\n    return s")
    assert normalise("y = torch.zeros(3)") != normalise("y = torch.ones(3)")  # what is called still counts


def test_a_disguised_copy_is_found(pairs):
    _, found = pairs
    assert sorted((p.a, p.b) for p in found) == [("alice", "bob"), ("alice", "eve"), ("bob", "eve")]
    assert all(pair.score > 0.9 and pair.cells for pair in found)


def test_independent_answers_and_stubs_are_not_reported(pairs):
    folder, _ = pairs
    everything = {(p.a, p.b): p.score for p in similar_pairs(folder, notebooks_dir=ROOT / "notebooks", threshold=0)}
    assert everything.get(("alice", "carol"), 0) < 0.5 and everything.get(("bob", "carol"), 0) < 0.5
    assert not any("dave" in pair for pair in everything)  # the stub alone shares nothing


def test_cli_writes_a_side_by_side_report(pairs, tmp_path, capsys):
    folder, _ = pairs
    out = tmp_path / "similarity.html"
    assert main(["similarity", str(folder), "--notebooks", str(ROOT / "notebooks"), "--out", str(out)]) == 0
    assert "alice  bob" in capsys.readouterr().out
    page = out.read_text()
    assert "alice and bob" in page and "upsampled" in page and "carol" not in page and "alice and eve" in page


def test_a_pasted_copy_of_seglab_is_reported_by_name(tmp_path, capsys):
    """seglab's own code is left out between two students, so a copy of it must be reported on its own."""
    import inspect

    import seglab.arithmetic

    pasted = "\n\n".join(inspect.getsource(f) for f in (seglab.arithmetic._require, seglab.arithmetic._check_common,
                                                       seglab.arithmetic.conv_output_size))
    pasted = re.sub(r"\bconv_output_size\b", "conv_output_size_mine", pasted.replace("span", "width"))
    pasted = re.sub(r'"""[\s\S]*?"""', "", pasted)  # docstrings gone, comments added
    pasted = "\n".join(line + "  # mine" if line.strip() else line for line in pasted.splitlines())
    pasted += "\n\n\ndef conv_output_size(i, k, s=1, p=0, d=1):\n    return conv_output_size_mine(i, k, s, p, d)\n"
    notebook_name = "01_convolution_arithmetic.ipynb"
    solution = cells_by_grade_id(nbformat.read(ROOT / "solutions" / notebook_name, as_version=4), kind="solution",
                                 code_only=True)
    for student in ("erin", "frank"):
        notebook = nbformat.read(ROOT / "notebooks" / notebook_name, as_version=4)
        for grade_id, cell in cells_by_grade_id(notebook, kind="solution", code_only=True).items():
            cell.source = solution[grade_id].source  # the official solutions: never a copy
        if student == "erin":
            cells_by_grade_id(notebook, kind="solution", code_only=True)["conv_output_size"].source = pasted
        nbformat.write(notebook, tmp_path / f"{student}.ipynb")
    found = similar_pairs(tmp_path, notebooks_dir=ROOT / "notebooks")
    copies = [(p.a, p.b) for p in found if p.b.startswith("seglab.")]
    assert copies == [("erin", "seglab.arithmetic.conv_output_size")]
    copy = next(p for p in found if p.b.startswith("seglab."))
    assert copy.score >= 0.8 and copy.exercises[0][0] == "conv_output_size"
    assert "def conv_output_size" in copy.cells["conv_output_size"][1]  # the reference, side by side
    out = tmp_path / "report.html"
    assert main(["similarity", str(tmp_path), "--notebooks", str(ROOT / "notebooks"), "--out", str(out)]) == 0
    assert "erin  seglab.arithmetic.conv_output_size" in capsys.readouterr().out
    assert "seglab.arithmetic.conv_output_size" in out.read_text()


def _class_of(folder, answers: dict, *, extra: dict | None = None, moved: bool = False):
    """Notebook 02 for each student, answered with ``answers[student](grade_id)``: in the answer cells, or
    (``moved``) in a new code cell right after each answer cell, which keeps its stub. ``extra``: a code cell
    added to a student's notebook right after the setup cell (before every check)."""
    for student, answer in answers.items():
        notebook = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
        for grade_id, cell in cells_by_grade_id(notebook, kind="solution", code_only=True).items():
            if moved:
                notebook.cells.insert(notebook.cells.index(cell) + 1, nbformat.v4.new_code_cell(answer(grade_id)))
            else:
                cell.source = answer(grade_id)
        if extra and student in extra:
            notebook.cells.insert(1, nbformat.v4.new_code_cell(extra[student]))
        nbformat.write(notebook, folder / f"{student}.ipynb")
    return folder


def _solution_cells():
    return cells_by_grade_id(nbformat.read(ROOT / "solutions" / NOTEBOOK, as_version=4), kind="solution",
                             code_only=True)


def test_answers_moved_below_their_stubs_are_compared(tmp_path):
    """The answer cells keep the stub and the functions are defined in new cells below them (graded, since
    the check calls the last definition): the copy is still found, and independent answers still are not."""
    solution = _solution_cells()
    _class_of(tmp_path, {"frida": lambda gid: solution[gid].source,
                         "gus": lambda gid: _disguise(solution[gid].source),
                         "hana": lambda gid: INDEPENDENT[gid]}, moved=True)
    found = similar_pairs(tmp_path, notebooks_dir=ROOT / "notebooks")
    assert [(p.a, p.b) for p in found] == [("frida", "gus")]
    pair = found[0]
    assert pair.score > 0.9 and set(pair.cells) == set(INDEPENDENT)
    assert all("NotImplementedError" not in a + b for a, b in pair.cells.values())  # the moved code, not the stub
    assert any("upsampled" in b for _, b in pair.cells.values())
    everything = {(p.a, p.b): p.score for p in similar_pairs(tmp_path, notebooks_dir=ROOT / "notebooks",
                                                             threshold=0)}
    assert everything.get(("frida", "hana"), 0) < 0.5 and everything.get(("gus", "hana"), 0) < 0.5


def test_a_helper_in_another_cell_is_part_of_the_answer(tmp_path):
    """What the check's function calls is compared with it: a copy split into a helper elsewhere is found."""
    solution = _solution_cells()
    body = re.sub(r"\bdef bilinear_kernel\b", "def _weights", solution["bilinear_kernel"].source)
    split = {"bilinear_kernel": "def bilinear_kernel(channels, kernel_size):\n"
                                "    return _weights(channels, kernel_size)"}
    _class_of(tmp_path, {"ines": lambda gid: solution[gid].source,
                         "jon": lambda gid: split.get(gid, INDEPENDENT[gid])},
              extra={"jon": _disguise(body)})
    pair = next(p for p in similar_pairs(tmp_path, notebooks_dir=ROOT / "notebooks", threshold=0)
                if (p.a, p.b) == ("ines", "jon"))
    assert dict(pair.exercises)["bilinear_kernel"] > 0.9, pair.exercises
    assert dict(pair.exercises)["convolution_matrix"] < 0.5


DEEP = "LIMIT = " + "+".join(["1"] * 200_000)


def test_code_nested_too_deeply_to_read_is_left_out_and_said(tmp_path, capsys):
    """A 200 000-term sum breaks Python's parser (RecursionError): its cell is left out, its student is told
    so in the report, and every other pair is still reported."""
    with pytest.raises(TooDeep):
        normalise(DEEP)
    with pytest.raises(TooDeep):  # parses, but the renamer and unparser recurse once per term
        normalise("LIMIT = " + "+".join(["1"] * 1_500))
    solution = _solution_cells()
    _class_of(tmp_path, {"kim": lambda gid: solution[gid].source,
                         "lou": lambda gid: _disguise(solution[gid].source),
                         "max": lambda gid: _disguise(solution[gid].source) + ("\n" + DEEP if gid == "bilinear_kernel"
                                                                              else "")},
              extra={"lou": DEEP})
    found = compare(tmp_path, notebooks_dir=ROOT / "notebooks")
    assert sorted((p.a, p.b) for p in found.pairs) == [("kim", "lou"), ("kim", "max"), ("lou", "max")]
    assert set(found.unread) == {"lou", "max"}
    assert all("too deeply" in note for notes in found.unread.values() for note in notes)
    assert any("bilinear_kernel" in note for note in found.unread["max"])  # its answer cell: not compared
    kim_max = next(p for p in found.pairs if (p.a, p.b) == ("kim", "max"))
    assert "bilinear_kernel" not in dict(kim_max.exercises) and len(kim_max.exercises) == 3
    out = tmp_path / "report.html"
    assert main(["similarity", str(tmp_path), "--notebooks", str(ROOT / "notebooks"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "kim  lou" in printed and "not compared: lou: lou.ipynb, cell" in printed
    page = out.read_text()
    assert "Not compared" in page and "lou: lou.ipynb, cell" in page and "LIMIT" not in page


# ------------------------------------------------------------------ the report is a template, values are text

HOSTILE = "</script><script>alert(1)</script> {{ 7*7 }} {% if true %}{{ lipsum() }}{% endif %} {# x #} & 'q' \"dq\""


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;") \
        .replace('"', "&#34;")


def _hostile_report() -> str:
    from seglab.course.similarity import Pair, report_html

    pair = Pair(f"a {HOSTILE}", f"b {HOSTILE}", 0.9, [(f"exercise {HOSTILE}", 0.9)],
                {f"cell {HOSTILE}": (f"code_a {HOSTILE}", f"code_b {HOSTILE}")})
    return report_html([pair], 0.8)


def test_report_shows_hostile_text_escaped_and_never_evaluated():
    page = _hostile_report()
    for field in ("a", "b", "exercise", "cell", "code_a", "code_b"):
        assert _escaped(f"{field} {HOSTILE}") in page, field
    assert page.count("{{ 7*7 }}") == 8  # a and b twice (heading and table), the others once
    assert "<script" not in page and "</script" not in page and "49" not in page
    assert "1 pairs share at least 80% of their code" in page and ": 90%</h2>" in page


def test_report_is_rendered_from_its_template(monkeypatch):
    import jinja2

    from seglab.course import pages

    template = (ROOT / "seglab" / "course" / "templates" / "similarity_report.html.j2").read_text(encoding="utf-8")
    assert re.search(r"<style>.*?</style>", template, re.S).group() in _hostile_report()
    fake_template = "{% for p in pairs %}[{{ p.a }}|{{ p.score }}]{% endfor %}"
    loader = jinja2.DictLoader({"similarity_report.html.j2": fake_template})
    fake = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    monkeypatch.setattr(pages, "_environment", lambda: fake)
    assert _hostile_report() == f"[{_escaped(f'a {HOSTILE}')}|90%]"
