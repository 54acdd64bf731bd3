"""Plan a submission's grading run from the tutor's release, never from what a student can edit.

A student can change any byte of a notebook: its cells' tags, nbgrader ``grade_id``\\ s, ids and
sources. So the grader knows a submission's cells only by comparing them with the notebook the tutor
released (:func:`seglab.course.release.release_notebook` of the solution, rebuilt in memory):

1. a submission cell **is** a released cell when it has that cell's id and type (JupyterLab and
   Jupyter Notebook keep ids), or, failing that, the same type and source (a notebook saved by a tool
   that drops ids), matched in order;
2. an **answer** is the cell with the released answer cell's id or, when no cell has it, the cells of
   its type between the two released neighbours the answer sat between;
3. the **setup** cell and every **check** cell are the release's own: the setup cell runs as released
   (put first when it was deleted), a check cell becomes the grader's probe where it stood (at the end
   when it was deleted);
4. every other code cell is the student's: a released cell still holding its released source is the
   tutor's code, anything else (a new cell, an edited one) is scanned (:mod:`seglab.course.scan`).

Which course notebook a submission is, is decided the same way: the release that most of its cells
match. Tags and ``grade_id``\\ s are never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seglab.course.notebooks import nbgrader

__all__ = ["Plan", "Release", "identify", "load_release", "plan_submission", "released_as", "which_release"]


@dataclass
class Release:
    """A released notebook as the grader knows it."""

    name: str  # the solution's file name, e.g. "01_convolution_arithmetic.ipynb"
    cells: list  # the released notebook's cells
    answers: dict[str, int]  # grade_id of a solution cell (code or markdown): its index in ``cells``
    checks: dict[str, int]  # grade_id of a check cell: its index
    setup: int | None  # index of the setup cell

    @property
    def ids(self) -> dict[str, int]:
        return {cell.get("id"): index for index, cell in enumerate(self.cells) if cell.get("id")}


def load_release(solution, name: str) -> Release:
    """The release of ``solution`` (a solution notebook), with its graded cells by grade_id."""
    from seglab.course.release import release_notebook

    return released_as(release_notebook(solution), name)


def released_as(released, name: str) -> Release:
    """A notebook as released (a student notebook of the kit), with its graded cells by grade_id."""
    from seglab.course.release import SETUP_TAG

    answers, checks, setup = {}, {}, None
    for index, cell in enumerate(released.cells):
        meta = nbgrader(cell)
        if cell.get("id") == SETUP_TAG:
            setup = index
        elif meta.get("solution"):
            answers[meta["grade_id"]] = index
        elif meta.get("grade") and cell.cell_type == "code":
            checks[meta["grade_id"]] = index
    return Release(name, released.cells, answers, checks, setup)


def _key(cell) -> tuple[str, str]:
    source = cell.get("source", "")
    return str(cell.get("cell_type", "")), source if isinstance(source, str) else ""


def _match(cells: list, release: Release) -> dict[int, int]:
    """``{release index: submission index}`` of the cells that are released cells (by id, then by content)."""
    matched: dict[int, int] = {}
    used: set[int] = set()
    ids = release.ids
    for position, cell in enumerate(cells):
        index = ids.get(cell.get("id")) if isinstance(cell.get("id"), str) else None
        if index is not None and index not in matched and _key(cell)[0] == release.cells[index].cell_type:
            matched[index] = position
            used.add(position)
    answers = set(release.answers.values())
    by_content: dict[tuple[str, str], list[int]] = {}
    for position, cell in enumerate(cells):
        if position not in used:
            by_content.setdefault(_key(cell), []).append(position)
    for index, cell in enumerate(release.cells):  # in order: the first free copy after the last match
        if index in matched or index in answers:
            continue
        before = max((p for i, p in matched.items() if i < index), default=-1)
        free = [p for p in by_content.get(_key(cell), []) if p > before and p not in used]
        if free:
            matched[index] = free[0]
            used.add(free[0])
    return matched


@dataclass
class Plan:
    """What each cell of a submission is, by position in ``cells``."""

    release: Release
    cells: list  # the submission's cells
    answers: dict[str, list[int]]  # grade_id: the positions of its answer (empty: not found)
    checks: dict[str, int | None]  # grade_id of a check: its position (None: deleted)
    setup: int | None  # position of the setup cell (None: deleted)
    released: set[int] = field(default_factory=set)  # positions of released cells holding their released source
    matched: int = 0  # how many cells are released cells (how sure the notebook is this one)

    def answer_source(self, grade_id: str) -> str:
        return "\n".join(self.cells[p].get("source", "") for p in self.answers.get(grade_id, []))

    def student_code(self) -> set[int]:
        """Positions of the code cells that are the student's: answers, new cells and edited cells."""
        trusted = self.released | {p for p in self.checks.values() if p is not None} | \
            ({self.setup} if self.setup is not None else set())
        return {p for p, cell in enumerate(self.cells) if cell.get("cell_type") == "code" and p not in trusted}


def plan_submission(cells: list, release: Release) -> Plan:
    """Match a submission's ``cells`` (nbformat cells) with ``release`` (see the module's docstring)."""
    matched = _match(cells, release)
    answers: dict[str, list[int]] = {}
    claimed = set(matched.values())
    for grade_id, index in release.answers.items():
        if index in matched:
            answers[grade_id] = [matched[index]]
            continue
        before = max((p for i, p in matched.items() if i < index), default=-1)
        after = min((p for i, p in matched.items() if i > index), default=len(cells))
        kind = release.cells[index].cell_type
        between = [p for p in range(before + 1, after) if p not in claimed and _key(cells[p])[0] == kind]
        answers[grade_id] = between
        claimed |= set(between)
    released = {position for index, position in matched.items()
                if index not in release.answers.values() and _key(cells[position]) == _key(release.cells[index])}
    return Plan(release, cells, answers, {gid: matched.get(index) for gid, index in release.checks.items()},
                matched.get(release.setup) if release.setup is not None else None, released,
                matched=sum(1 for index, position in matched.items() if index not in release.answers.values()))


def which_release(cells: list, releases: dict[str, Release]) -> Plan | None:
    """The plan against the release that most of ``cells`` match (``None``: none matches any)."""
    plans = [plan_submission(cells, release) for release in releases.values()]
    best = max(plans, key=lambda plan: plan.matched, default=None)
    return best if best is not None and best.matched > 0 else None


def identify(cells: list | None, file_name: str, course) -> Plan | None:
    """The plan of a submission against the release its cells match; failing that, the release whose
    "NN_" the file name starts with (a notebook whose every cell changed). ``course``: the grader's course
    (:class:`seglab.course.graded.Course`), or the releases by notebook name."""
    releases = getattr(course, "releases", course)
    plan = which_release(cells or [], releases)
    if plan is not None and plan.matched > 1:
        return plan
    matches = [name for name in releases if name.startswith(file_name[:3])]
    if len(matches) != 1 and len(releases) == 1:
        matches = list(releases)
    return plan_submission(cells or [], releases[matches[0]]) if len(matches) == 1 else plan
