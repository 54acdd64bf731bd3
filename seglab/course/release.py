"""Release student notebooks from the solution notebooks (the single source).

Conventions, compatible with nbgrader:

* the student's part of a code cell lies between ``### BEGIN SOLUTION`` and ``### END SOLUTION``;
  it becomes ``# YOUR CODE HERE`` + ``raise NotImplementedError()`` (in markdown: ``YOUR ANSWER HERE``);
  keep a function's signature and docstring outside the markers, so students see them;
* tests students must not see lie between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``
  and are removed;
* cells tagged ``tutor`` are removed;
* a setup cell (:func:`setup_cell`) is put right after the title: in a Python without seglab it stops
  Run All with one message that says how to install the course kit;
* outputs and execution counts are cleared; ``metadata.nbgrader`` (grade_id, points, solution,
  grade, locked, schema_version 3) is kept.
"""

from __future__ import annotations

import copy
import io
import json
import keyword
import re
import textwrap
import tokenize
from pathlib import Path

import nbformat

from seglab.course.notebooks import course_notebooks

__all__ = ["grade_ids", "hidden_regions", "release_all", "release_notebook", "setup_cell", "solution_regions",
           "solution_tokens", "student_source", "write_notebook"]

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
TUTOR_TAG = "tutor"
SETUP_TAG = "seglab-setup"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
ANSWER_STUB = ["YOUR ANSWER HERE"]


def _regions(source: str, begin: str, end: str) -> list[tuple[int, int, str]]:
    """``(first line, last line, indentation)`` of each marked region (marker lines included)."""
    lines, regions, start = source.split("\n"), [], None
    for n, line in enumerate(lines):
        if line.strip() == begin:
            if start is not None:
                raise ValueError(f"{begin!r} twice without {end!r} in:\n{source}")
            start = n
        elif line.strip() == end:
            if start is None:
                raise ValueError(f"{end!r} without {begin!r} in:\n{source}")
            regions.append((start, n, lines[start][: len(lines[start]) - len(lines[start].lstrip())]))
            start = None
    if start is not None:
        raise ValueError(f"{begin!r} without {end!r} in:\n{source}")
    return regions


def student_source(source: str, cell_type: str = "code") -> str:
    """The cell's source with solution regions replaced and hidden tests removed."""
    lines = source.split("\n")
    for first, last, _ in reversed(_regions(source, BEGIN_HIDDEN, END_HIDDEN)):
        del lines[first:last + 1]
    source = "\n".join(lines)
    lines = source.split("\n")
    stub = CODE_STUB if cell_type == "code" else ANSWER_STUB
    for first, last, indent in reversed(_regions(source, BEGIN_SOLUTION, END_SOLUTION)):
        lines[first:last + 1] = [indent + line for line in stub]
    return "\n".join(lines).rstrip("\n")


def solution_regions(source: str) -> list[str]:
    """The text inside each solution region of a cell."""
    lines = source.split("\n")
    return ["\n".join(lines[first + 1:last]) for first, last, _ in _regions(source, BEGIN_SOLUTION, END_SOLUTION)]


def hidden_regions(source: str) -> list[str]:
    """The text inside each hidden-test region of a cell."""
    lines = source.split("\n")
    return ["\n".join(lines[first + 1:last]) for first, last, _ in _regions(source, BEGIN_HIDDEN, END_HIDDEN)]


def setup_cell(wheel_url: str = "") -> nbformat.NotebookNode:
    """The first code cell of every student notebook: import seglab, or stop Run All with one message.

    Nothing is downloaded unless the student asks: on Google Colab they set ``INSTALL_SEGLAB = True``
    and run the cell again, which installs the wheel at ``wheel_url`` (``seglab release --wheel-url``).
    """
    from seglab import __version__

    wheel = f"seglab-{__version__}-py3-none-any.whl"
    on_colab = ("set INSTALL_SEGLAB = True above and run this cell again" if wheel_url else
                f"upload {wheel} (Files panel), run  %pip install {wheel}  in a new cell")
    source = f'''# Setup: run this cell first. It imports the course package seglab or, where seglab is missing, stops
# with instructions. It downloads nothing unless you set INSTALL_SEGLAB = True (for Google Colab).
SEGLAB_WHEEL_URL = {json.dumps(wheel_url)}  # the course's wheel, set by your tutor
INSTALL_SEGLAB = False  # Google Colab: set to True and run this cell again to install seglab from SEGLAB_WHEEL_URL
import sys

try:
    import seglab
except ModuleNotFoundError:
    if not (INSTALL_SEGLAB and SEGLAB_WHEEL_URL):
        class SeglabNotInstalled(Exception):
            def _render_traceback_(self):  # Jupyter shows the message alone, without a traceback
                return [str(self)]

        def stop_while_missing(lines):  # later cells stop too (but %pip and this cell) until seglab is installed
            import importlib.util
            code = "".join(lines)
            if importlib.util.find_spec("seglab") or code.lstrip().startswith(("%pip", "!pip")) \
                    or "SEGLAB_WHEEL_URL" in code:
                return lines
            return ["raise SeglabNotInstalled('seglab is not installed: see the first code cell')"]

        if "get_ipython" in globals():
            get_ipython().input_transformers_cleanup.append(stop_while_missing)
        raise SeglabNotInstalled(
            f"seglab, the course package, is not installed in this notebook's Python ({{sys.executable}}).\\n"
            "Install the course kit's wheel into it: in a new cell, run\\n"
            "    %pip install ../{wheel}\\n"
            "(the path from the kit's notebooks/ folder), then restart the kernel and run the notebook again.\\n"
            "No PyTorch yet and no NVIDIA GPU? First run  %pip install torch torchvision --index-url "
            "https://download.pytorch.org/whl/cpu  (the CPU-only build: pip would otherwise bring several GB of "
            "CUDA libraries). The kit's README.md has the steps for each platform.\\n"
            "On Google Colab: {on_colab}.") from None
    get_ipython().run_line_magic("pip", "install " + SEGLAB_WHEEL_URL)
    import seglab
if seglab.__version__ != "{__version__}":
    print(f"note: this notebook is for seglab {__version__}; seglab {{seglab.__version__}} is installed")'''
    cell = nbformat.v4.new_code_cell(source)
    cell.id = SETUP_TAG  # a fixed id: releasing an unchanged source changes no byte
    cell.metadata["tags"] = [SETUP_TAG]
    return cell


def grade_ids(notebook) -> list[str]:
    return [cell.metadata["nbgrader"]["grade_id"] for cell in notebook.cells
            if "nbgrader" in cell.metadata and "grade_id" in cell.metadata["nbgrader"]]


def release_notebook(solution, wheel_url: str = "") -> nbformat.NotebookNode:
    """The student version of a solution notebook (a new notebook; the input is not changed)."""
    student = copy.deepcopy(solution)
    student.cells = [cell for cell in student.cells if TUTOR_TAG not in cell.metadata.get("tags", [])]
    title_first = bool(student.cells) and student.cells[0].cell_type == "markdown"
    student.cells.insert(1 if title_first else 0, setup_cell(wheel_url))
    for cell in student.cells:
        cell.source = student_source(cell.source, cell.cell_type)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        for key in ("execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    student.metadata.pop("widgets", None)
    return student


def write_notebook(notebook, path: str | Path) -> None:
    """Write with stable formatting (so a re-release of an unchanged source changes no byte)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(nbformat.writes(notebook) + "\n", encoding="utf-8")


def release_all(source_dir: str | Path = "solutions", target_dir: str | Path = "notebooks",
                wheel_url: str = "") -> list[Path]:
    """Release every ``source_dir/NN_*.ipynb`` into ``target_dir``; returns the files written."""
    source_dir, target_dir = Path(source_dir), Path(target_dir)
    sources = course_notebooks(source_dir)
    if not sources:
        raise FileNotFoundError(f"no solution notebooks (NN_name.ipynb) in {source_dir.resolve()}: run "
                                "`seglab release` in the repository root, or pass --source")
    written = []
    for path in sources:
        student = release_notebook(nbformat.read(path, as_version=4), wheel_url)
        write_notebook(student, target_dir / path.name)
        written.append(target_dir / path.name)
    return written


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}|\d+\.\d+|\d{2,}")


def solution_tokens(solution) -> set[str]:
    """Tokens (names, numbers, strings) that occur in solution regions and nowhere else in the
    notebook: if one of them shows up in the student version, the solution leaked."""
    inside, outside = set(), set()
    for cell in solution.cells:
        regions = solution_regions(cell.source)
        for region in regions:
            inside |= _tokens(region, cell.cell_type)
        outside |= _tokens(student_source(cell.source, cell.cell_type), cell.cell_type)
    return {token for token in inside - outside if not keyword.iskeyword(token)}


def _tokens(text: str, cell_type: str) -> set[str]:
    if cell_type != "code":
        return set(_WORD.findall(text))
    try:
        found = set()
        for token in tokenize.generate_tokens(io.StringIO(textwrap.dedent(text) + "\n").readline):
            if token.type in (tokenize.NAME, tokenize.NUMBER, tokenize.STRING) and _WORD.fullmatch(token.string) \
                    and not keyword.iskeyword(token.string):
                found.add(token.string)
            elif token.type in (tokenize.STRING, tokenize.COMMENT) or token.type == getattr(
                    tokenize, "FSTRING_MIDDLE", -1):
                found |= set(_WORD.findall(token.string))  # the words of strings and comments
        return found
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return set(_WORD.findall(text))
