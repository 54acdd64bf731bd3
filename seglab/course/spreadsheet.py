"""Writing what the grader writes, safely: valid UTF-8 text, atomic files, CSV cells no spreadsheet runs.

Everything a submission wrote is hostile input, and some of it reaches the grader's files: names (from
file names), answers, exception messages, comments. This module is the one place that makes it safe:

* :func:`clean_text` turns any ``str`` into text that encodes as UTF-8: a lone surrogate (from a
  notebook's JSON, or ``os.fsdecode`` of an undecodable byte in a file name) becomes its ``\\udXXX``
  escape, and control characters other than tab, newline and carriage return (NUL, escape, bidi
  overrides, ...) become visible ``\\xNN`` / ``\\uXXXX`` escapes. Text that is already clean is
  returned unchanged, and ``clean_text(clean_text(s)) == clean_text(s)``.
* :func:`escape_cell` / :func:`unescape_cell`: a CSV cell that starts with ``=``, ``+``, ``-``, ``@``, a
  tab or a carriage return gets a leading ``'`` (OWASP's advice against formula injection); so that
  reading gives back the original, a cell that starts with ``'`` gets one too, and reading strips one
  leading ``'``. Plain numbers (``2``, ``-0.5``, ``1e-05``), ``-`` (Moodle's "no grade") and the empty
  cell are never formulas and are written as they are.
* :func:`write_bytes` / :func:`write_text`: atomic writes (a temporary file in the same folder, fsync,
  ``os.replace``): a crash leaves the old file or the new one, never half of one.
* :func:`write_rows`, :func:`append_rows`, :func:`read_rows`: CSV files with those rules applied to every
  cell, so ``read_rows(write_rows(rows))`` gives back ``clean_text`` of every cell, exactly.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from seglab.files import atomic_writer

__all__ = ["FORMULA_TRIGGERS", "append_rows", "clean_text", "escape_cell", "read_rows", "say", "unescape_cell",
           "write_bytes", "write_rows", "write_text"]

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# C0 and C1 controls but tab, newline and carriage return; DEL; the bidi embeddings, overrides and isolates
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
FIELD_LIMIT = 64 * 2**20  # the longest cell read back (csv's default is 128 KiB)


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean_text(value: object) -> str:
    """``value`` as text that is valid UTF-8 and shows every control character.

    >>> clean_text("caf\\xe9 \\ud800 a\\x00b\\tc")
    'café \\\\ud800 a\\\\x00b\\tc'
    """
    text = value if type(value) is str else str(value)
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates -> \udXXX
    return _INVISIBLE.sub(_visible, text)


def escape_cell(value: object) -> str:
    """One CSV cell: :func:`clean_text`, and a leading ``'`` before a formula trigger or a ``'``.

    >>> [escape_cell(v) for v in ("=1+1", "'quoted", "-", "-0.5", "-1 for units", "alice")]
    ["'=1+1", "''quoted", '-', '-0.5', "'-1 for units", 'alice']
    """
    text = clean_text(value)
    if text == "-" or _NUMBER.fullmatch(text):
        return text
    return "'" + text if text.startswith((*FORMULA_TRIGGERS, "'")) else text


def unescape_cell(text: str) -> str:
    """What :func:`escape_cell` was given (cleaned): one leading ``'`` removed."""
    return text[1:] if text.startswith("'") else text


def _mode(path: Path) -> int:
    with contextlib.suppress(OSError):
        return stat.S_IMODE(os.stat(path).st_mode)  # a rewritten file keeps its permissions
    return 0o600  # a new one is the tutor's alone: grades and answers are personal data


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`seglab.files.atomic_writer`), keeping a rewritten file's
    permissions and making a new one the tutor's alone."""
    path = Path(path)
    with atomic_writer(path, mode=_mode(path)) as file:
        file.write(data)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """:func:`clean_text` of ``text``, written as UTF-8 to ``path`` atomically."""
    return write_bytes(path, clean_text(text).encode("utf-8"))


def _csv_text(rows: Iterable[Sequence]) -> str:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows([escape_cell("" if cell is None else cell) for cell in row] for row in rows)
    return buffer.getvalue()


def write_rows(path: str | Path, rows: Iterable[Sequence]) -> Path:
    """Write a CSV (header included in ``rows``), every cell escaped (:func:`escape_cell`), atomically."""
    return write_bytes(path, _csv_text(rows).encode("utf-8"))


def append_rows(path: str | Path, rows: Iterable[Sequence], header: Sequence[str] | None = None) -> Path:
    """Append rows to a CSV (``header`` first if it is new or empty) in one write, on disk when it returns."""
    path = Path(path)
    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        new = os.fstat(handle).st_size == 0
        data = _csv_text(([header] if new and header is not None else []) + rows).encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(handle, view):]
        os.fsync(handle)
    finally:
        os.close(handle)
    return path


def read_rows(path: str | Path) -> list[list[str]]:
    """The cells of a CSV that :func:`write_rows` wrote (or a spreadsheet saved as CSV UTF-8, byte order
    mark allowed), unescaped: :func:`clean_text` of what was written."""
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            return [[unescape_cell(cell) for cell in row] for row in csv.reader(file)]
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}): save it as "
                         "\"CSV UTF-8\"") from None


def say(*parts: object, **options) -> None:
    """``print`` for text that may hold anything a submission wrote (surrogates, control characters)."""
    print(*(clean_text(part) for part in parts), **options)
