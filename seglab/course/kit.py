"""The student kit: what a class gets, built from the tutor's repository, holding no solution.

``build_kit(OUT)`` (``seglab release --kit OUT`` in the repository root) writes

    OUT/README.md                        the student's guide: install, open, check, hand in
    OUT/seglab-<version>-py3-none-any.whl  the package, the nuclei sample inside it
    OUT/notebooks/NN_name.ipynb          the released student notebooks
    OUT.zip                              all of the above, in one folder OUT/

and then scans every text file of the folder and the zip, and every file inside the wheel, for
anything from ``solutions/`` (:func:`find_leaks`): a file under a ``solutions`` folder, a solution or
hidden-test marker, the text of any solution region, hidden-test region or tutor-only cell, in
notebooks a token that only the solution uses, and any item of the entry test's bank
(``solutions/entry_test``: a stem or right answer, a numeric stem with any numbers). A kit with a leak is
an error, not a warning.

The wheel is built from a copy of ``pyproject.toml`` and ``seglab/`` (nothing else of the
repository, nothing untracked beside them), with the student README as its description.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import nbformat

from seglab.course.notebooks import course_notebooks
from seglab.course.release import (
    SETUP_TAG,
    TUTOR_TAG,
    hidden_regions,
    release_all,
    solution_regions,
    solution_tokens,
)
from seglab.files import atomic_writer

__all__ = ["KitError", "KitLeakError", "SolutionSecrets", "build_kit", "build_wheel", "find_leaks", "kit_readme"]

MARKER_LINE = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$", re.MULTILINE)
KIT_MARKER = ".seglab-kit"  # a folder with this file is a kit that a later build may replace


class KitError(Exception):
    """The kit could not be built (the wheel failed to build, or the kit would leak solutions)."""


class KitLeakError(KitError):
    """The built kit contains something from the solutions."""


@dataclass
class SolutionSecrets:
    """What must never reach a student, read from the solution notebooks."""

    regions: list[list[str]] = field(default_factory=list)  # normalised lines of each region / tutor cell
    tokens: dict[str, set[str]] = field(default_factory=dict)  # notebook name -> tokens only its solutions use
    patterns: list[str] = field(default_factory=list)  # the entry test's items, over normalised text

    @classmethod
    def read(cls, solutions_dir: str | Path) -> SolutionSecrets:
        secrets = cls()
        for path in course_notebooks(solutions_dir):
            notebook = nbformat.read(path, as_version=4)
            secrets.tokens[path.name] = solution_tokens(notebook)
            for cell in notebook.cells:
                texts = solution_regions(cell.source) + hidden_regions(cell.source)
                if TUTOR_TAG in cell.metadata.get("tags", []):
                    texts.append(cell.source)
                secrets.regions += [lines for lines in map(_normalised, texts) if lines]
        if not secrets.tokens:
            raise FileNotFoundError(f"no solution notebooks (NN_name.ipynb) in {Path(solutions_dir).resolve()}")
        bank = Path(solutions_dir) / "entry_test"
        if (bank / "bank.py").is_file():  # the tutor's entry-test bank: no item may reach a student
            from seglab.course.entry_test import bank_patterns, load_bank

            secrets.patterns = bank_patterns(load_bank(bank))
        return secrets

    def items_in(self, text: str) -> list[str]:
        """The entry-test items found in ``text`` (compared lower case, whitespace and markup ignored)."""
        from seglab.course.entry_test import plain_phrase

        if not self.patterns:
            return []
        flat = plain_phrase(text)
        return [match.group() for match in (re.search(p, flat) for p in self.patterns) if match]


def _normalised(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _contains(lines: list[str], region: list[str]) -> bool:
    first, n = region[0], len(region)
    return any(lines[i:i + n] == region for i, line in enumerate(lines) if line == first)


def _texts(path: Path) -> Iterator[tuple[str, str]]:
    """``(name, text)`` of every text file in a folder, zip or wheel, nested archives opened too."""
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            name = file.relative_to(path.parent).as_posix()
            yield from _file_texts(name, file.read_bytes())
    else:
        yield from _file_texts(path.name, path.read_bytes())


def _file_texts(name: str, data: bytes) -> Iterator[tuple[str, str]]:
    yield name, ""  # every name is checked, text or not
    if name.endswith((".zip", ".whl")):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                if not member.endswith("/"):
                    yield from _file_texts(f"{name}!{member}", archive.read(member))
        return
    try:
        yield name, data.decode("utf-8")
    except UnicodeDecodeError:
        return  # a picture or other binary file: its name was checked


def _output_texts(notebook) -> list[str]:
    """The text of every output (a released notebook has none, but a kit must not rely on that)."""
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts += [str(value) for value in output.get("data", {}).values()]
            texts += output.get("traceback", [])
    return texts


def find_leaks(path: str | Path, secrets: SolutionSecrets) -> list[str]:
    """Everything in the folder, zip or wheel at ``path`` that comes from the solutions (empty: clean)."""
    leaks = []
    for name, text in _texts(Path(path)):
        parts = [part for member in name.split("!") for part in PurePosixPath(member).parts]
        if "solutions" in parts:
            leaks.append(f"{name}: a file from solutions/")
        if not text:
            continue
        tokens, own_text = set(), text
        if name.endswith(".ipynb"):
            try:
                notebook = nbformat.reads(text, as_version=4)
            except Exception:
                leaks.append(f"{name}: not a readable notebook, cannot be checked")
                continue
            text = "\n".join([cell.source for cell in notebook.cells] + _output_texts(notebook))
            own_text = "\n".join(cell.source for cell in notebook.cells  # the generated setup cell is not theirs
                                 if SETUP_TAG not in cell.metadata.get("tags", []))
            tokens = secrets.tokens.get(PurePosixPath(name.split("!")[-1]).name, set())
        if MARKER_LINE.search(text):
            leaks.append(f"{name}: a solution or hidden-test marker line")
        lines = _normalised(text)
        leaks += [f"{name}: the text of a solution, hidden-test or tutor cell ({region[0][:60]!r} ...)"
                  for region in secrets.regions if _contains(lines, region)]
        leaks += [f"{name}: an entry-test item ({item[:60]!r} ...)" for item in secrets.items_in(text)]
        found = sorted(t for t in tokens if re.search(rf"(?<!\w){re.escape(t)}(?!\w)", own_text))
        if found:
            leaks.append(f"{name}: tokens that only the solution uses: {', '.join(found[:10])}")
    return leaks


def build_wheel(project_dir: str | Path, out_dir: str | Path, readme: str, released: list[Path] = ()) -> Path:
    """Build seglab's wheel from a copy of ``pyproject.toml`` and ``seglab/`` with ``readme`` as its README and the
    ``released`` notebooks in ``seglab/course/released/`` (what ``seglab check`` plans with, as the grader does)."""
    project_dir, out_dir = Path(project_dir), Path(out_dir)
    missing = [name for name in ("pyproject.toml", "seglab") if not (project_dir / name).exists()]
    if missing:
        raise FileNotFoundError(f"{project_dir.resolve()} is not the seglab repository (missing "
                                f"{', '.join(missing)}): run `seglab release --kit` in the repository root")
    with tempfile.TemporaryDirectory(prefix="seglab-wheel-") as tmp:
        source = Path(tmp) / "seglab-source"
        shutil.copytree(project_dir / "seglab", source / "seglab",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".ipynb_checkpoints"))
        shutil.copy(project_dir / "pyproject.toml", source / "pyproject.toml")
        if released:
            (source / "seglab" / "course" / "released").mkdir(exist_ok=True)
            for notebook in released:
                shutil.copy(notebook, source / "seglab" / "course" / "released" / Path(notebook).name)
        (source / "README.md").write_text(readme, encoding="utf-8")
        built = Path(tmp) / "wheel"
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                                 "-w", str(built), str(source)], capture_output=True, text=True)
        wheels = sorted(built.glob("seglab-*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            raise KitError(f"building the wheel failed:\n{result.stdout}{result.stderr}")
        out_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(wheels[0], out_dir / wheels[0].name))


def kit_readme(wheel_name: str, notebooks: list[Path], wheel_url: str = "") -> str:
    """The student's README (``templates/kit_README.md.j2``): install on each platform, the notebooks with
    their measured times, how to check and hand in a notebook."""
    from seglab.course.pages import render

    rows, rates = [], set()
    for path in notebooks:
        opening = nbformat.read(path, as_version=4).cells[0].source
        title = next((line.lstrip("# ").strip() for line in opening.splitlines() if line.startswith("# ")), path.stem)
        run_all = re.search(r"Run All takes about ([^ ]+ [a-z]+)", opening)  # the opening cell's "**Time.**" line
        rate = re.search(r"Run All takes about [^.]*? at (\d+) images/s", opening)
        exercises = re.search(r"take a prepared student (.+?) \(our estimate\)", opening, flags=re.S)
        if rate:  # notebooks that train state the rate their time was measured at
            rates.add(rate.group(1))
        rows.append({"name": path.name, "title": title, "run_all": run_all.group(1) if run_all else "?",
                     "exercises": " ".join(exercises.group(1).split()) if exercises else "?"})
    colab = (f"set `INSTALL_SEGLAB = True` in its first cell and run that cell: it installs seglab from "
             f"`{wheel_url}`." if wheel_url else
             f"upload `{wheel_name}` (the Files panel on the left) and run `%pip install {wheel_name}` in a "
             "new cell.")
    return render("kit_README.md.j2", wheel=wheel_name, notebooks=rows, colab=colab,
                  rate=rates.pop() if len(rates) == 1 else None)


def _zip_folder(folder: Path, target: Path) -> Path:
    """``target`` holding ``folder/...`` (stable order and timestamps), written atomically."""
    with atomic_writer(target, mode=0o644) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):  # the kit is for sharing: 0o644
            info = zipfile.ZipInfo(file.relative_to(folder.parent).as_posix(), date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            archive.writestr(info, file.read_bytes())
    return target


def build_kit(out: str | Path, *, source_dir: str | Path = "solutions", project_dir: str | Path = ".",
              wheel_url: str = "") -> tuple[Path, Path]:
    """Build the kit folder ``out`` and ``out.zip``; returns both. Raises :class:`KitLeakError` on a leak.

    A folder ``out`` that holds anything but an earlier kit is never overwritten.
    """
    from seglab import __version__

    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()) and not (out / KIT_MARKER).exists():
        raise FileExistsError(f"{out} exists and is not a seglab kit: choose a new folder for the kit")
    secrets = SolutionSecrets.read(source_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent)) / out.name
    try:
        notebooks = release_all(source_dir, staging / "notebooks", wheel_url)
        wheel_name = f"seglab-{__version__}-py3-none-any.whl"
        readme = kit_readme(wheel_name, notebooks, wheel_url)
        wheel = build_wheel(project_dir, staging, readme, notebooks)
        if wheel.name != wheel_name:
            raise KitError(f"the wheel is {wheel.name}, expected {wheel_name}")
        (staging / "README.md").write_text(readme, encoding="utf-8")
        (staging / KIT_MARKER).write_text(f"seglab {__version__} student kit\n", encoding="utf-8")
        leaks = find_leaks(staging, secrets)
        if leaks:
            raise KitLeakError("the kit would give students solution material; nothing was written:\n  "
                               + "\n  ".join(leaks))
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
    archive = _zip_folder(out, out.with_name(out.name + ".zip"))
    leaks = find_leaks(archive, secrets)
    if leaks:  # cannot happen unless the folder changed under us; never hand out such a zip
        archive.unlink()
        raise KitLeakError("the kit's zip holds solution material:\n  " + "\n  ".join(leaks))
    return out, archive
