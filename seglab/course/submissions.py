"""Collecting submissions: every notebook read once, safely, with the student it belongs to.

:func:`collect` takes what the tutor points the grader at:

* a single notebook (the student is its file name's stem);
* a folder of ``<student>.ipynb``, or of ``<student>/.../*.ipynb`` (Moodle's unpacked "Download all
  submissions": ``Full Name_12345_assignsubmission_file_/`` gives the student ``Full Name_12345``);
* nbgrader's ``submitted/<student>/<assignment>/*.ipynb`` layout;
* a ``.zip`` of any of these, read in memory, never unpacked to disk.

It returns one :class:`Submission` per notebook, with the file's bytes read once (``data``) or the reason
it was refused (``reason``): a symbolic link (``unzip`` restores links: a link to the tutor's solution
would be graded as the student's), a link to a folder, a FIFO, a device, a file over the size limit;
in a zip also absolute paths, ``..``, links, special files, encrypted members, and archives over the
caps on members and uncompressed size. Every file is opened with ``O_NOFOLLOW`` and checked with
``fstat`` on the opened descriptor, folders are walked by descriptor, so nothing is read twice or
after a check (no time-of-check to time-of-use gap).

Student names are shown as valid text (undecodable bytes of a file name as ``\\xff``; see
:func:`seglab.course.spreadsheet.clean_text`) and compared by :func:`student_key` (NFKC, casefold, runs
of anything but letters and digits as ``_``): two different names with the same key ("jane doe" and
"jane_doe", "Jane" and "jane") would share a feedback folder and a row in the hand-grading sheet, so
both are refused with a reason naming both (rename one folder and grade again).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from seglab.course.scan import LIMITS, ScanLimits
from seglab.course.spreadsheet import clean_text

__all__ = ["MAX_MEMBERS", "MAX_NOTEBOOK_BYTES", "MAX_TOTAL_BYTES", "Submission", "UnreadableSubmission",
           "UnsafeFile", "collect", "collect_submissions", "display_name", "parse_submission", "read_notebook",
           "read_regular", "student_key"]

MAX_NOTEBOOK_BYTES = 32 * 2**20  # one notebook (data and pictures included)
MAX_MEMBERS = 20_000  # entries of a zip
MAX_TOTAL_BYTES = 2 * 2**30  # notebooks read from one zip or folder, uncompressed
MAX_DEPTH = 12  # folders below the one given
KEY_LENGTH = 60  # characters of a student key (a folder name: at most 240 bytes of UTF-8)
MOODLE_SUFFIX = re.compile(r"_assignsubmission_[a-z]+_?$")
MOODLE_FLAT = re.compile(r"^(.+?_\d+)_assignsubmission_[a-z]+_.+$")
SKIPPED = (".ipynb_checkpoints", "__MACOSX")


class UnsafeFile(OSError):
    """A file the grader will not read: a link, not a regular file, or too large (the message says which)."""


@dataclass(frozen=True)
class Submission:
    """One submitted notebook: ``data`` its bytes (read once), or ``None`` and the ``reason`` it was refused.
    A submission refused for its student's name (it collides with another's) keeps its bytes beside the
    reason, so that the grader can tell which notebook it is; it is never graded (``ok`` is false).

    ``student``: the display name (valid text); ``name``: the notebook's file name (``my_work.ipynb``);
    ``path``: where it was found, relative to what was collected (``submitted/heidi/ps1/my_work.ipynb``,
    ``class.zip:alice.ipynb``), for messages; ``file``: the file on disk (``None`` in a zip), never to be read
    again (the bytes checked are ``data``)."""

    student: str
    name: str
    data: bytes | None = None
    reason: str | None = None
    path: str = ""
    file: Path | None = field(default=None, repr=False, compare=False)  # on disk (not in a zip): for messages


    @property
    def key(self) -> str:
        """The student's normalised name (:func:`student_key`): what feedback folders are named by."""
        return student_key(self.student)

    @property
    def ok(self) -> bool:
        return self.data is not None and self.reason is None


def display_name(name: str | bytes) -> str:
    """A file name as valid text: undecodable bytes as ``\\xNN``, control characters visible.

    >>> display_name(b"j\\xffne"), display_name("j\\udcffne")
    ('j\\\\xffne', 'j\\\\xffne')
    """
    if isinstance(name, str):
        try:
            name = name.encode("utf-8", "surrogateescape")  # os.fsencode on a UTF-8 system
        except UnicodeEncodeError:  # a lone surrogate that no file name decoded to
            return display_name(clean_text(name))
    text = clean_text(name.decode("utf-8", "backslashreplace"))
    return text.replace("\t", "\\x09").replace("\n", "\\x0a").replace("\r", "\\x0d")  # a name is one line


def student_key(student: str) -> str:
    """The normalised form of a student's name: NFKC, casefold, runs of non-alphanumerics as ``_``.

    >>> student_key("Jane  Doe"), student_key("jane_doe"), student_key("Ｊａｎｅ"), student_key("..")
    ('jane_doe', 'jane_doe', 'jane', '_')
    """
    text = unicodedata.normalize("NFKC", clean_text(student)).casefold()
    key = re.sub(r"[\W_]+", "_", text).strip("_")
    return key[:KEY_LENGTH].rstrip("_") or "_"


def _refuse_reason(error: OSError) -> str:
    return str(error) if isinstance(error, UnsafeFile) else f"could not be read ({error.strerror or error})"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular(path: str | os.PathLike | bytes, limit: int | None = None, *, dir_fd: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (relative to ``dir_fd`` if given), at most ``limit`` of them
    (default :data:`MAX_NOTEBOOK_BYTES`).

    Raises :class:`UnsafeFile` for a symbolic link (never followed), a FIFO, a device, a socket, a folder
    or a file over ``limit`` bytes, without reading from it; ``OSError`` if it cannot be opened."""
    limit = MAX_NOTEBOOK_BYTES if limit is None else limit
    options = {} if dir_fd is None else {"dir_fd": dir_fd}
    before = os.stat(path, follow_symlinks=False, **options)  # refuse before opening (a device may act on open)
    if not stat.S_ISREG(before.st_mode):
        link = " (links are never followed)" if stat.S_ISLNK(before.st_mode) else ""
        raise UnsafeFile(f"refused: {_kind(before.st_mode)}, not a regular file{link}")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        handle = os.open(path, flags, **options)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EMLINK):
            raise UnsafeFile("refused: a symbolic link, not a regular file (links are never followed)") from None
        raise
    try:
        found = os.fstat(handle)  # what was opened decides, not what was looked at
        if not stat.S_ISREG(found.st_mode):
            raise UnsafeFile(f"refused: {_kind(found.st_mode)}, not a regular file")
        if found.st_size > limit:
            raise UnsafeFile(f"refused: {found.st_size} bytes, more than the {limit} bytes a submission may have")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(handle, min(2**20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise UnsafeFile(f"refused: more than the {limit} bytes a submission may have (it grew while read)")
        return b"".join(chunks)
    finally:
        os.close(handle)


def read_notebook(submission: Submission):
    """``(notebook, None)`` from a submission's bytes, or ``(None, reason)``: refused, not UTF-8, not a notebook."""
    import nbformat

    if not submission.ok:
        return None, submission.reason or "no data"
    try:
        return nbformat.reads(submission.data.decode("utf-8"), as_version=4), None
    except Exception as error:  # not UTF-8, not JSON, not a notebook
        return None, f"not a valid notebook ({type(error).__name__}: {clean_text(str(error))[:200]})"


def _is_notebook(name: str) -> bool:
    return name.lower().endswith(".ipynb") and not name.startswith("._")  # ._x.ipynb: macOS resource forks


def _student(parts: tuple[str, ...]) -> str:
    if len(parts) == 1:
        stem = parts[0][: -len(".ipynb")] if parts[0].lower().endswith(".ipynb") else parts[0]
        flat = MOODLE_FLAT.match(stem)  # Moodle's download without folders: Full Name_12345_assignsubmission_file_x
        return flat.group(1) if flat else stem
    if parts[0] == "submitted" and len(parts) >= 2:  # submitted/<student>/<assignment>/*.ipynb
        return parts[1]
    return MOODLE_SUFFIX.sub("", parts[0]) or parts[0]


def _entry(parts: tuple[str, ...], data: bytes | None, reason: str | None, prefix: str = "",
           file: Path | None = None) -> Submission:
    return Submission(_student(parts), parts[-1], data, reason, prefix + "/".join(parts), file)


class _Budget:
    def __init__(self, total: int):
        self.left = total

    def take(self, size: int) -> str | None:
        if size > self.left:
            return f"refused: the submissions together are over {MAX_TOTAL_BYTES} bytes"
        self.left -= size
        return None


def _walk(handle: int, parts: tuple[str, ...], base: Path, budget: _Budget, depth: int) -> Iterator[Submission]:
    """Notebooks below the open folder ``handle`` (its names ``parts`` below the root), by descriptor."""
    with os.scandir(handle) as listing:
        entries = sorted(listing, key=lambda entry: os.fsencode(entry.name))
    for entry in entries:
        raw, name = entry.name, display_name(entry.name)
        here, file = (*parts, name), base / raw
        if raw in SKIPPED:
            continue
        try:
            link, folder = entry.is_symlink(), entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if link:
            if entry.is_dir():  # follows the link: only to say what it is
                yield _entry(here, None, "refused: a link to a folder (links are never followed)", file=file)
            elif _is_notebook(raw):
                yield _entry(here, None, "refused: a symbolic link, not a regular file (links are never followed)",
                             file=file)
            continue
        if folder:
            if depth >= MAX_DEPTH:
                yield _entry(here, None, f"refused: folders nested deeper than {MAX_DEPTH}", file=file)
                continue
            flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
            try:
                inner = os.open(raw, flags | getattr(os, "O_CLOEXEC", 0), dir_fd=handle)
            except OSError as error:
                yield _entry(here, None, f"refused: the folder could not be opened ({error.strerror})", file=file)
                continue
            try:
                yield from _walk(inner, here, file, budget, depth + 1)
            finally:
                os.close(inner)
            continue
        if not _is_notebook(raw):
            continue
        try:
            data = read_regular(raw, MAX_NOTEBOOK_BYTES, dir_fd=handle)
        except OSError as error:
            yield _entry(here, None, _refuse_reason(error), file=file)
            continue
        over = budget.take(len(data))
        yield _entry(here, None if over else data, over, file=file)


def _walk_paths(root: Path, budget: _Budget) -> Iterator[Submission]:
    """:func:`_walk` where folders cannot be opened by descriptor (Windows): by path, links never followed."""
    for path in sorted(root.rglob("*")):
        parts = tuple(display_name(p) for p in path.relative_to(root).parts)
        if any(p in SKIPPED for p in path.relative_to(root).parts):
            continue
        if path.is_symlink() and path.is_dir():
            yield _entry(parts, None, "refused: a link to a folder (links are never followed)")
        elif any(parent.is_symlink() for parent in path.relative_to(root).parents if str(parent) != "."):
            continue  # below a refused link
        elif _is_notebook(path.name):
            try:
                data = read_regular(path)
            except OSError as error:
                yield _entry(parts, None, _refuse_reason(error), file=path)
                continue
            over = budget.take(len(data))
            yield _entry(parts, None if over else data, over, file=path)


def _member_name(info: zipfile.ZipInfo) -> str:
    name = info.filename
    if not info.flag_bits & 0x800:  # no UTF-8 flag: zipfile read cp437; many tools wrote UTF-8 anyway
        try:
            name = info.orig_filename.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name.replace("\\", "/")


def _from_zip(handle: int, label: str) -> Iterator[Submission]:
    with os.fdopen(os.dup(handle), "rb") as file:
        try:
            archive = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise UnsafeFile(f"{label}: not a zip archive ({clean_text(str(error))[:200]})") from None
        with archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise UnsafeFile(f"{label}: {len(members)} entries, more than the {MAX_MEMBERS} a class zip may have")
            budget = _Budget(MAX_TOTAL_BYTES)
            prefix = f"{label}:"
            for info in members:
                name = _member_name(info)
                parts = tuple(display_name(p) for p in name.split("/") if p not in ("", "."))
                if not parts or any(p in SKIPPED for p in parts) or info.is_dir():
                    continue
                mode = info.external_attr >> 16 if info.create_system == 3 else 0
                problem = None
                if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
                    problem = "refused: an absolute path in the zip"
                elif ".." in parts:
                    problem = "refused: a path with .. in the zip"
                elif stat.S_ISLNK(mode):
                    problem = "refused: a symbolic link in the zip (links are never followed)"
                elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                    problem = f"refused: {_kind(mode)} in the zip, not a regular file"
                if not _is_notebook(parts[-1]):
                    if problem and stat.S_ISLNK(mode):
                        yield _entry(parts, None, problem, prefix)  # a link to a folder, say; worth knowing
                    continue
                if problem is None and info.flag_bits & 0x1:
                    problem = "refused: an encrypted member"
                if problem is None and info.file_size > MAX_NOTEBOOK_BYTES:
                    problem = (f"refused: {info.file_size} bytes, more than the {MAX_NOTEBOOK_BYTES} bytes a "
                               "submission may have")
                if problem is None:
                    problem, data = _read_member(archive, info, budget)
                yield _entry(parts, None if problem else data, problem, prefix)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> tuple[str | None, bytes]:
    """Decompress one member, never more than the caps whatever its header claims."""
    limit = min(MAX_NOTEBOOK_BYTES, budget.left)
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError, RuntimeError) as error:
        why = f"{type(error).__name__}: {clean_text(str(error))[:120]}"
        return f"refused: the zip member could not be read ({why})", b""
    if len(data) > limit:
        if limit < MAX_NOTEBOOK_BYTES:
            return f"refused: the submissions together are over {MAX_TOTAL_BYTES} bytes", b""
        return f"refused: more than the {MAX_NOTEBOOK_BYTES} bytes a submission may have", b""
    budget.take(len(data))
    return None, data


def _open_regular(path: Path) -> int:
    """A descriptor on the regular file ``path`` (not a link), for a zip read once."""
    before = os.stat(path, follow_symlinks=False)
    if not stat.S_ISREG(before.st_mode):
        raise UnsafeFile(f"{path}: {_kind(before.st_mode)}, not a regular file (links are never followed)")
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        raise UnsafeFile(f"{path}: not a regular file")
    return handle


def _refuse_collisions(found: list[Submission]) -> list[Submission]:
    """Refuse every submission whose student's name normalises like another student's, naming the other(s);
    the bytes stay, so that the grader can tell which notebook it is and give it that notebook's rows."""
    names: dict[str, set[str]] = {}
    for submission in found:
        names.setdefault(submission.key, set()).add(submission.student)
    out = []
    for submission in found:
        others = sorted(names[submission.key] - {submission.student})
        if others:
            same = " and ".join(f"'{name}'" for name in others)
            besides = f" (besides: {submission.reason})" if submission.reason else ""
            submission = Submission(submission.student, submission.name, submission.data,
                                    f"refused: the name '{submission.student}' is the same as {same} once "
                                    f"normalised ({submission.key!r}), so the grader cannot tell the two students "
                                    "apart (their grades, hand-grading rows and feedback would be confused): rename "
                                    f"the folder or file of one of them and grade again{besides}", submission.path,
                                    submission.file)
        out.append(submission)
    return out


def collect(path: str | os.PathLike) -> list[Submission]:
    """Every notebook at ``path`` (a notebook, a folder, nbgrader's ``submitted/``, a ``.zip``) as a
    :class:`Submission`, sorted by student and path; refused ones carry their reason. Raises
    ``FileNotFoundError`` if there is nothing at ``path`` and :class:`UnsafeFile` for a zip that is not one
    or is over the caps."""
    path = Path(path)
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"no submission or folder at {path}") from None
    if stat.S_ISLNK(info.st_mode) and path.is_dir():
        info = os.stat(path)  # the folder the tutor named may be a link; links inside it are not followed
    if stat.S_ISDIR(info.st_mode):
        budget = _Budget(MAX_TOTAL_BYTES)
        if os.open in os.supports_dir_fd and os.scandir in os.supports_fd:
            handle = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
            try:
                found = list(_walk(handle, (), path, budget, 0))
            finally:
                os.close(handle)
        else:
            found = list(_walk_paths(path, budget))
    elif path.suffix.lower() == ".zip":
        handle = _open_regular(path)
        try:
            found = list(_from_zip(handle, display_name(path.name)))
        finally:
            os.close(handle)
    else:
        parts = (display_name(path.name),)
        try:
            found = [_entry(parts, read_regular(path), None, file=path)]
        except OSError as error:
            found = [_entry(parts, None, _refuse_reason(error), file=path)]
    found = _refuse_collisions(found)
    return sorted(found, key=lambda s: (s.student, s.path))


def collect_submissions(path: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(student, notebook path)`` of the accepted notebooks in a folder or a notebook (the older API:
    prefer :func:`collect`, which hands over the bytes it checked; a zip has no paths and raises)."""
    path = Path(path)
    if path.suffix.lower() == ".zip" and path.is_file():
        raise ValueError(f"{path}: a zip has no notebook paths; use seglab.course.submissions.collect")
    return [(s.student, s.file) for s in collect(path) if s.ok and s.file is not None]


class UnreadableSubmission(ValueError):
    """A submission the grader does not open or cannot parse; the message is the reason for its rows."""


def parse_submission(data: bytes, limits: ScanLimits = LIMITS):
    """The notebook in ``data``, with only what grading reads of each cell: its type, id and source."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise UnreadableSubmission("not a valid notebook: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise UnreadableSubmission(f"not a valid notebook (not JSON: {str(error)[:120]})") from None
    cells = raw.get("cells") if isinstance(raw, dict) else None
    if not isinstance(cells, list):
        raise UnreadableSubmission("not a valid notebook: it has no list of cells")
    if len(cells) > limits.cells:
        raise UnreadableSubmission(f"not graded: more than {limits.cells} cells")
    clean = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            source = "".join(source)
        if not isinstance(source, str):
            source = ""
        source = _valid_text(source)
        new = nbformat.from_dict({"cell_type": cell["cell_type"], "source": source, "metadata": {}})
        if isinstance(cell.get("id"), str):
            new["id"] = cell["id"][:64]
        if cell["cell_type"] == "code":
            new.outputs, new.execution_count = [], None
        clean.append(new)
    return clean


def _valid_text(text: str) -> str:
    """``text`` with every lone surrogate (a JSON escape no editor writes) as U+FFFD: code that can run."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
