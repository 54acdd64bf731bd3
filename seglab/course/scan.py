"""Stage 2 of grading, the scan: read the code a submission will run, in the grader's process, before anything runs.

Every code cell of a submission that grading runs and that is not the tutor's own released cell, unchanged, is
read with the rules of :mod:`seglab.checks.tamper` (IPython's magics turned into the Python they stand for, the
names resolved across all the notebook's cells). A cell with a line that tampers with grading — reaches its
machinery, IPython's display or the shell's internals, installs a tracer or an import hook, inspects frames,
switches off the watch of PyTorch's operators, touches raw memory — is **refused**: it does not run, and every
row of the notebook, its feedback page and ``seglab check`` name the cell, the line, why and what to do. Every
other line runs as written (magics, ``!`` commands, threads, processes, introspection, configuration): the
run-time guards in the kernel (:mod:`seglab.checks.guard`, :mod:`seglab.checks.borrowed`) decide what an answer
used while it was called. What the rules notice but let run (code made at run time for ``exec``) is a **note**
for the tutor's review, in its own column of the grades CSV, and never costs a point.

Cells too large or too deeply nested to read are refused too (a reason, not a crash).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from seglab.checks.tamper import Names, cell_python, tampering

__all__ = ["LIMITS", "Finding", "ScanLimits", "first_line", "names_of", "refused_cells", "scan_cells", "scan_plan",
           "scan_source"]


@dataclass(frozen=True)
class ScanLimits:
    """What the grader reads of one submission before it calls it unreadable (a reason, not a crash)."""

    cells: int = 2000
    cell_bytes: int = 256 * 2**10  # of one cell's source
    notebook_bytes: int = 32 * 2**20  # of the notebook file
    nodes: int = 200_000  # AST nodes of one cell
    code_bytes: int = 512 * 2**10  # of all the student's code together (an honest notebook holds tens of KiB)


LIMITS = ScanLimits()


def first_line(source: str, width: int = 50) -> str:
    """How a student finds a cell: its first line that is not blank, shortened."""
    line = next((text.strip() for text in source.splitlines() if text.strip()), "(empty)")
    return line if len(line) <= width else line[:width - 1] + "…"


@dataclass(frozen=True)
class Finding:
    """A line of a cell that grading refuses (the cell does not run) or notes for the tutor's review."""

    cell: int  # 1-based position in the notebook, every cell counted (markdown too)
    what: str  # "replaces IPython.display.display, which grading uses"
    line: int = 0  # 1-based line in the cell (0: the cell as a whole)
    fix: str = ""
    refused: bool = True
    first: str = ""  # the cell's first line, as the student finds it

    @property
    def where(self) -> str:
        return f'cell {self.cell} ("{self.first}")' if self.first else f"cell {self.cell}"

    def __str__(self) -> str:
        line = f"line {self.line} " if self.line else ""
        if self.refused:
            fix = f" Fix: {self.fix}." if self.fix else ""
            return f"{self.where} was not run: {line}{self.what}.{fix}"
        return f"{self.where}, {line}{self.what} (a note for the tutor, no points lost)"


def _parsed(source: str, limits: ScanLimits) -> tuple[list[tuple[ast.AST, int]], str | None]:
    """The cell's syntax trees (with their line offsets), or why it cannot be read. A cell that is not Python
    parses to nothing: it fails when it runs too, and hides nothing."""
    if len(source.encode("utf-8", "surrogatepass")) > limits.cell_bytes:
        return [], f"has more than {limits.cell_bytes // 1024} KiB of code"
    trees = []
    try:
        for python, offset in cell_python(source):
            try:
                tree = ast.parse(python)
            except (SyntaxError, ValueError):
                continue
            if sum(1 for _ in ast.walk(tree)) > limits.nodes:
                return [], f"has more than {limits.nodes} syntax nodes"
            trees.append((tree, offset))
    except (RecursionError, MemoryError):
        return [], "is nested too deeply to read"
    except Exception as error:  # IPython's transformer on odd input
        return [], f"cannot be read ({type(error).__name__})"
    return trees, None


def names_of(sources, *, limits: ScanLimits = LIMITS) -> Names:
    """What the names imported and aliased in ``sources`` stand for (every cell that runs counts)."""
    return Names(tree for source in sources for tree, _ in _parsed(source, limits)[0])


def scan_source(source: str, *, limits: ScanLimits = LIMITS, names: Names | None = None) -> list[str]:
    """What one cell does that grading refuses, as text (empty: it runs). ``names``: what the notebook's other
    cells bound (this cell's own imports count in any case)."""
    return [f"line {f.line}: {f.what}" if f.line else f.what
            for f in scan_cells({0: source}, limits=limits, names=names) if f.refused]


def scan_cells(sources: dict[int, str], *, limits: ScanLimits = LIMITS, trusted: tuple[str, ...] = (),
               names: Names | None = None) -> list[Finding]:
    """Findings, refused lines and notes, for the cells ``{index in the notebook: source}`` (0-based; findings
    number them from 1). ``trusted``: the release's own cells that run too (their imports bind names as well)."""
    parsed = {index: _parsed(source, limits) for index, source in sources.items()}
    if names is None:
        names = Names([tree for source in trusted for tree, _ in _parsed(source, limits)[0]]
                      + [tree for trees, _ in parsed.values() for tree, _ in trees])
    found = []
    for index, source in sorted(sources.items()):
        trees, unreadable = parsed[index]
        first = first_line(source)
        if unreadable:
            found.append(Finding(index + 1, unreadable, 0, "split it into smaller cells", True, first))
            continue
        for tree, offset in trees:
            for hit in tampering(tree, names):
                found.append(Finding(index + 1, hit.what, hit.line + offset, hit.fix, hit.refused, first))
    return found


def refused_cells(findings: list[Finding]) -> set[int]:
    """The 0-based indices of the cells that do not run."""
    return {f.cell - 1 for f in findings if f.refused}


def scan_plan(plan) -> list[Finding]:
    """The findings for a planned submission (:class:`seglab.course.plan.Plan`): its student's cells read with the
    names that every code cell it runs binds (the release's setup cell as released). What grading and
    ``seglab check`` both refuse: one function, so they agree."""
    release = plan.release
    setup = release.cells[release.setup].source if release.setup is not None else ""
    code = [cell.get("source", "") for cell in plan.cells
            if cell.get("cell_type") == "code" and isinstance(cell.get("source"), str)]
    return scan_cells({p: plan.cells[p].source for p in plan.student_code()}, names=names_of([setup, *code]))
