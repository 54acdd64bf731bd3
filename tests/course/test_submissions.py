"""Collecting submissions (seglab.course.submissions): every layout, and every file a class can hand in
that must not be read: links, FIFOs, devices, huge files, hostile zips, names that collide."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from seglab.course import submissions
from seglab.course.submissions import (
    Submission,
    UnsafeFile,
    collect,
    collect_submissions,
    display_name,
    read_notebook,
    read_regular,
    student_key,
)

NOTEBOOK = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
posix = pytest.mark.skipif(os.name != "posix", reason="links, FIFOs and byte file names are POSIX")


def _write(path: Path, data: bytes = NOTEBOOK) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _by_path(found: list[Submission]) -> dict[str, Submission]:
    return {s.path: s for s in found}


def test_every_layout(tmp_path):
    _write(tmp_path / "alice.ipynb")
    _write(tmp_path / "submitted" / "heidi" / "ps1" / "my_work.ipynb")
    _write(tmp_path / "bob" / "01_conv.ipynb")
    _write(tmp_path / "Jane Doe_12345_assignsubmission_file_" / "01_conv.ipynb")  # Moodle's folders
    _write(tmp_path / "Li Wei_777_assignsubmission_file_01_conv.ipynb")  # Moodle without folders
    _write(tmp_path / "carol" / ".ipynb_checkpoints" / "01_conv-checkpoint.ipynb")  # skipped
    _write(tmp_path / "__MACOSX" / "._alice.ipynb")  # skipped
    _write(tmp_path / "notes.txt", b"not a notebook")  # skipped
    found = collect(tmp_path)
    assert all(s.ok for s in found)
    assert sorted((s.student, s.name) for s in found) == [
        ("Jane Doe_12345", "01_conv.ipynb"), ("Li Wei_777", "Li Wei_777_assignsubmission_file_01_conv.ipynb"),
        ("alice", "alice.ipynb"), ("bob", "01_conv.ipynb"), ("heidi", "my_work.ipynb")]
    assert _by_path(found)["submitted/heidi/ps1/my_work.ipynb"].data == NOTEBOOK
    assert read_notebook(found[0])[0].nbformat == 4
    # the older API still gives (student, path) pairs
    assert sorted(s for s, _ in collect_submissions(tmp_path)) == sorted(s.student for s in found)
    assert collect(tmp_path / "alice.ipynb") == [Submission("alice", "alice.ipynb", NOTEBOOK, None, "alice.ipynb")]
    with pytest.raises(FileNotFoundError):
        collect(tmp_path / "nobody")


def test_student_keys_and_display_names():
    assert student_key("Jane  Doe") == student_key("jane_doe") == student_key("JANE-DOE") == "jane_doe"
    assert student_key("Ｊａｎｅ") == "jane" and student_key("José") == "josé" and student_key("") == "_"
    assert student_key("\ud800x") == "ud800x" and len(student_key("é" * 500)) <= submissions.KEY_LENGTH
    assert display_name(b"j\xffne") == display_name(os.fsdecode(b"j\xffne")) == "j\\xffne"
    assert display_name("a\nb\x00") == "a\\x0ab\\x00"  # a newline in a file name is shown, not kept


@posix
def test_links_fifos_and_devices_are_refused_not_read(tmp_path):
    secret = _write(tmp_path / "tutor" / "solution.ipynb", b'{"the": "solution"}')
    folder = tmp_path / "class"
    _write(folder / "alice.ipynb")
    (folder / "mallory.ipynb").symlink_to(secret)  # unzip restores links: a link to the solution
    (folder / "dangling.ipynb").symlink_to(tmp_path / "nothing")
    (folder / "eve").symlink_to(secret.parent, target_is_directory=True)  # a link to a folder
    (folder / "submitted" / "oscar").parent.mkdir(parents=True)
    (folder / "submitted" / "oscar").symlink_to(secret.parent, target_is_directory=True)
    os.mkfifo(folder / "fifo.ipynb")  # reading it would block the grader forever
    found = {s.student: s for s in collect(folder)}
    assert found["alice"].ok
    for student, words in (("mallory", "symbolic link"), ("dangling", "symbolic link"), ("eve", "link to a folder"),
                           ("oscar", "link to a folder"), ("fifo", "FIFO")):
        assert found[student].data is None and words in found[student].reason, (student, found[student])
    assert all(b"solution" not in (s.data or b"") for s in found.values())
    with pytest.raises(UnsafeFile, match="symbolic link"):
        read_regular(folder / "mallory.ipynb")
    with pytest.raises(UnsafeFile, match="FIFO"):
        read_regular(folder / "fifo.ipynb")
    with pytest.raises(UnsafeFile, match="device"):
        read_regular("/dev/null")
    with pytest.raises(UnsafeFile, match="folder"):
        read_regular(folder)
    assert collect(folder / "mallory.ipynb")[0].reason.startswith("refused: a symbolic link")


@posix
def test_a_symlink_dir_given_by_the_tutor_is_followed_once(tmp_path):
    _write(tmp_path / "real" / "alice.ipynb")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert [s.student for s in collect(tmp_path / "link")] == ["alice"]


def test_size_caps(tmp_path, monkeypatch):
    monkeypatch.setattr(submissions, "MAX_NOTEBOOK_BYTES", 100)
    _write(tmp_path / "big.ipynb", b"x" * 101)
    _write(tmp_path / "small.ipynb", b"x" * 100)
    found = {s.student: s for s in collect(tmp_path)}
    assert found["small"].ok and "more than the 100 bytes" in found["big"].reason
    with pytest.raises(UnsafeFile, match="more than the 10 bytes"):
        read_regular(tmp_path / "small.ipynb", 10)
    assert read_regular(tmp_path / "small.ipynb", 100) == b"x" * 100


@posix
def test_undecodable_file_names(tmp_path):
    root = os.fsencode(tmp_path)
    with open(os.path.join(root, b"j\xffne.ipynb"), "wb") as file:
        file.write(NOTEBOOK)
    os.makedirs(os.path.join(root, b"submitted", b"\xfe\xfeo", b"ps1"))
    with open(os.path.join(root, b"submitted", b"\xfe\xfeo", b"ps1", b"a.ipynb"), "wb") as file:
        file.write(NOTEBOOK)
    found = collect(tmp_path)
    assert sorted(s.student for s in found) == ["\\xfe\\xfeo", "j\\xffne"]
    assert all(s.ok for s in found)
    for s in found:
        s.student.encode("utf-8")  # valid text everywhere it goes
        assert s.file.is_file()  # the real file, for messages and the older API
    assert sorted(file.read_bytes() for _, file in collect_submissions(tmp_path)) == [NOTEBOOK, NOTEBOOK]


def test_names_that_collide_are_both_refused(tmp_path):
    _write(tmp_path / "jane doe.ipynb")
    _write(tmp_path / "jane_doe.ipynb")
    _write(tmp_path / "Bob" / "a.ipynb")
    _write(tmp_path / "bob" / "b.ipynb")
    _write(tmp_path / "carol" / "a.ipynb")
    _write(tmp_path / "carol" / "b.ipynb")  # one student, two notebooks: no collision
    found = collect(tmp_path)
    refused = {s.student: s.reason for s in found if not s.ok}
    assert set(refused) == {"jane doe", "jane_doe", "Bob", "bob"}
    # each names the other it collides with, and what to do
    assert "'jane_doe' is the same as 'jane doe'" in refused["jane_doe"] and "'Bob'" in refused["bob"]
    assert "'jane doe' is the same as 'jane_doe'" in refused["jane doe"] and "'bob'" in refused["Bob"]
    assert all("rename the folder or file of one of them" in reason for reason in refused.values())
    assert [s.student for s in found if s.ok] == ["carol", "carol"]
    assert all(s.data == NOTEBOOK for s in found)  # kept: the grader tells which notebook it is from its cells


def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in members:
            archive.writestr(info, data)
    return path


def test_a_moodle_zip_is_read_in_memory(tmp_path):
    archive = _zip(tmp_path / "class.zip", [
        ("Jane Doe_12345_assignsubmission_file_/01_conv.ipynb", NOTEBOOK),
        ("Li Wei_99_assignsubmission_file_/01_conv.ipynb", NOTEBOOK),
        ("Li Wei_99_assignsubmission_file_/readme.txt", b"hello"),
        ("__MACOSX/Li Wei_99_assignsubmission_file_/._01_conv.ipynb", b"junk")])
    found = collect(archive)
    assert [(s.student, s.ok, s.path) for s in found] == [
        ("Jane Doe_12345", True, "class.zip:Jane Doe_12345_assignsubmission_file_/01_conv.ipynb"),
        ("Li Wei_99", True, "class.zip:Li Wei_99_assignsubmission_file_/01_conv.ipynb")]
    assert found[0].data == NOTEBOOK
    assert not any(p.name != "class.zip" for p in tmp_path.iterdir())  # nothing unpacked
    with pytest.raises(ValueError, match="zip"):
        collect_submissions(archive)


def test_hostile_zip_members_are_refused(tmp_path):
    link = zipfile.ZipInfo("mallory.ipynb")
    link.create_system, link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
    folder_link = zipfile.ZipInfo("eve")
    folder_link.create_system, folder_link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
    fifo = zipfile.ZipInfo("fifo.ipynb")
    fifo.create_system, fifo.external_attr = 3, (stat.S_IFIFO | 0o644) << 16
    archive = _zip(tmp_path / "class.zip", [
        ("alice.ipynb", NOTEBOOK),
        (link, b"../../tutor/solutions/01_conv.ipynb"),
        (folder_link, b"/home/tutor/solutions"),
        (fifo, b""),
        ("../escape/bob.ipynb", NOTEBOOK),
        ("/etc/carol.ipynb", NOTEBOOK),
        ("dave/../../x.ipynb", NOTEBOOK),
        ("C:/Users/erin.ipynb", NOTEBOOK)])
    found = collect(archive)
    reasons = {s.path.removeprefix("class.zip:"): s.reason for s in found}
    assert reasons.pop("alice.ipynb") is None
    assert "symbolic link" in reasons.pop("mallory.ipynb") and "symbolic link" in reasons.pop("eve")
    assert "FIFO" in reasons.pop("fifo.ipynb")
    assert all(("absolute" in why or ".." in why) for why in reasons.values()) and len(reasons) == 4, reasons
    assert not (tmp_path / "escape").exists()


def test_zip_bombs_stop_at_the_caps(tmp_path, monkeypatch):
    monkeypatch.setattr(submissions, "MAX_NOTEBOOK_BYTES", 1000)
    monkeypatch.setattr(submissions, "MAX_TOTAL_BYTES", 2500)
    bomb = b"0" * 50_000_000  # compresses to ~50 kB
    archive = _zip(tmp_path / "bomb.zip", [("a.ipynb", bomb)] + [(f"s{n}.ipynb", b"1" * 900) for n in range(4)])
    found = {s.student: s for s in collect(archive)}
    assert "more than the 1000 bytes" in found["a"].reason
    assert [found[f"s{n}"].ok for n in range(4)] == [True, True, False, False]  # 2 x 900 fit in 2500, not 3
    assert "together are over" in found["s2"].reason

    lying = io.BytesIO()  # a header that claims a small size: the decompressed bytes are still capped
    with zipfile.ZipFile(lying, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("liar.ipynb", b"2" * 5000)
    raw = bytearray(lying.getvalue())
    start = raw.rfind(b"PK\x01\x02")
    raw[start + 24:start + 28] = (10).to_bytes(4, "little")  # the central directory's uncompressed size
    (tmp_path / "liar.zip").write_bytes(bytes(raw))
    (liar,) = collect(tmp_path / "liar.zip")
    assert liar.data is None and liar.reason.startswith("refused")

    monkeypatch.setattr(submissions, "MAX_MEMBERS", 3)
    many = _zip(tmp_path / "many.zip", [(f"s{n}.ipynb", b"{}") for n in range(4)])
    with pytest.raises(UnsafeFile, match="more than the 3"):
        collect(many)
    (tmp_path / "fake.zip").write_bytes(b"not a zip")
    with pytest.raises(UnsafeFile, match="not a zip"):
        collect(tmp_path / "fake.zip")


@posix
def test_a_zip_that_is_a_link_is_refused(tmp_path):
    archive = _zip(tmp_path / "real.zip", [("alice.ipynb", NOTEBOOK)])
    (tmp_path / "class.zip").symlink_to(archive)
    with pytest.raises(UnsafeFile, match="symbolic link"):
        collect(tmp_path / "class.zip")
