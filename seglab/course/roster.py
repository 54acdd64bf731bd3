"""The class roster: a CSV with a ``student`` column (seglab's names, as the grades CSV has them) and,
optionally, ``moodle`` (the student's Moodle identifier: username, ID number or email). The paper entry test
seats students in its order (``seglab entry-test build --roster``); the Moodle export translates names with it
(``seglab export --roster``)."""

from __future__ import annotations

from pathlib import Path

from seglab.course.spreadsheet import read_rows

__all__ = ["RosterError", "read_roster"]


class RosterError(ValueError):
    """A roster that cannot be read; the message says what to fix."""


def read_roster(path: str | Path) -> list[tuple[str, str]]:
    """``[(student, moodle identifier)]`` in seat order; a student without a ``moodle`` cell is their own
    identifier."""
    header, *lines = read_rows(path) or [[]]
    if "student" not in header:
        raise RosterError(f"{path}: a roster needs a column student (and optionally moodle), found "
                          f"{', '.join(header) or 'nothing'}")
    rows = [dict(zip(header, line, strict=False)) for line in lines if any(cell.strip() for cell in line)]
    roster = [(row["student"].strip(), (row.get("moodle") or row["student"]).strip()) for row in rows]
    names = [student for student, _ in roster]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice or "" in names:
        raise RosterError(f"{path}: every row needs a student, each once (twice: {', '.join(twice)})")
    return roster
