"""The student kit, as a class gets it: built from a clean checkout, leaking nothing, and working when
its wheel is installed (not editable) into a fresh virtual environment and run from the kit's folder."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from seglab import __version__
from seglab.course.entry_test import ChoiceItem, load_bank
from seglab.course.execute import execute_notebook
from seglab.course.kit import KitLeakError, SolutionSecrets, build_kit, find_leaks
from seglab.course.release import BEGIN_SOLUTION, END_SOLUTION, SETUP_TAG, setup_cell
from tests.support import ROOT, course_notebooks, nbgrader

WHEEL = f"seglab-{__version__}-py3-none-any.whl"
NOTEBOOKS = [p.name for p in course_notebooks(ROOT / "solutions")]


def _clean_checkout(target: Path) -> Path:
    """What a clone of this working tree holds: tracked files and untracked ones git does not ignore."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: a clean checkout cannot be made")
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listing):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """``seglab release --kit`` run in a clean checkout, as a tutor runs it in the repository root."""
    base = tmp_path_factory.mktemp("kit")
    checkout = _clean_checkout(base / "checkout")
    _run([sys.executable, "-m", "seglab", "release", "--kit", base / "out" / "kit"], cwd=checkout)
    return {"dir": base / "out" / "kit", "zip": base / "out" / "kit.zip", "checkout": checkout}


@pytest.fixture(scope="module")
def secrets():
    return SolutionSecrets.read(ROOT / "solutions")


def test_kit_holds_notebooks_wheel_and_readme(kit):
    folder = kit["dir"]
    assert sorted(p.name for p in (folder / "notebooks").iterdir()) == NOTEBOOKS
    assert (folder / WHEEL).is_file()
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert f'python -m pip install "{WHEEL}[lab]"' in readme and "jupyter lab notebooks/" in readme
    assert "python -m seglab check" in readme
    for platform in ("**Linux**", "**macOS**", "**Windows**", "**JupyterHub**", "**Google Colab**"):
        assert platform in readme, platform
    # every notebook's measured Run All time and exercise estimate, read from its opening cell, for planning
    rows = [line for line in readme.splitlines() if line.startswith("| `notebooks/")]
    assert len(rows) == len(NOTEBOOKS) and all("?" not in row.split("|")[3] for row in rows), rows
    assert re.search(r"04_unet.ipynb` \| [^|]+ \| \d+ min; about an hour \|", readme)  # e.g. 9 min
    assert re.search(r"\| Run All \(measured at \d+ images/s\)", readme)  # the rate the times were measured at
    with zipfile.ZipFile(folder / WHEEL) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(f"seglab-{__version__}.dist-info/METADATA").decode()
    for data in ("image.png", "instances.png", "PROVENANCE.md", "LICENSE.md"):
        assert f"seglab/data/nuclei_sample/{data}" in names  # the data ships as package data
    assert "course kit" in metadata and "For tutors" not in metadata  # the wheel describes the kit, not the repo
    with zipfile.ZipFile(kit["zip"]) as archive:
        in_zip = {name.removeprefix("kit/") for name in archive.namelist()}
    assert in_zip == {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_nothing_in_the_kit_comes_from_the_solutions(kit, secrets):
    assert find_leaks(kit["dir"], secrets) == []  # every text file, and every file inside the wheel
    assert find_leaks(kit["zip"], secrets) == []  # the zip, and the wheel inside it
    with zipfile.ZipFile(kit["dir"] / WHEEL) as wheel:
        assert not [n for n in wheel.namelist() if "solutions" in n.split("/")]


def _rezip(path: Path, add: dict[str, str]) -> None:
    with zipfile.ZipFile(path) as old:
        members = {name: old.read(name) for name in old.namelist()}
    with zipfile.ZipFile(path, "w") as new:
        for name, data in {**members, **{k: v.encode() for k, v in add.items()}}.items():
            new.writestr(name, data)


def test_the_leak_scan_finds_planted_leaks(kit, secrets, tmp_path):
    """The scan is not vacuous: each kind of leak, planted in a copy of the kit, is reported."""
    folder = shutil.copytree(kit["dir"], tmp_path / "kit")
    solution = nbformat.read(ROOT / "solutions" / "01_convolution_arithmetic.ipynb", as_version=4)
    exercise = next(c for c in solution.cells if "### BEGIN SOLUTION" in c.source and c.cell_type == "code")
    hidden = next(c for c in solution.cells if "### BEGIN HIDDEN TESTS" in c.source)
    tutor = next(c for c in solution.cells if "tutor" in c.metadata.get("tags", []))
    body = exercise.source.split("### BEGIN SOLUTION\n")[1].split("### END SOLUTION")[0]
    item = next(i for i in load_bank(ROOT / "solutions" / "entry_test").items if isinstance(i, ChoiceItem))
    _rezip(folder / WHEEL, {"seglab/answers.py": body, "seglab/solutions/x.txt": "hello",
                            "seglab/entry.py": f"# {item.wordings[0].stem}\n"})  # an entry-test item
    student = nbformat.read(folder / "notebooks" / "02_upsampling.ipynb", as_version=4)
    student.cells.append(nbformat.v4.new_code_cell(tutor.source))
    printed = nbformat.v4.new_code_cell("print(answer)")
    printed.outputs = [nbformat.v4.new_output("stream", text=body)]  # a solution in an output
    student.cells.append(printed)
    student.cells.append(nbformat.v4.new_markdown_cell(hidden.source.split("### BEGIN HIDDEN TESTS")[1]
                                                       .split("### END HIDDEN TESTS")[0]))
    nbformat.write(student, folder / "notebooks" / "02_upsampling.ipynb")
    (folder / "notes.md").write_text("x\n### BEGIN SOLUTION\ny\n")
    leaks = "\n".join(find_leaks(folder, secrets))
    assert f"{WHEEL}!seglab/answers.py: the text of a solution" in leaks
    assert f"{WHEEL}!seglab/solutions/x.txt: a file from solutions/" in leaks
    assert leaks.count("02_upsampling.ipynb: the text of a solution, hidden-test or tutor cell") == 3
    assert "notes.md: a solution or hidden-test marker line" in leaks
    assert f"{WHEEL}!seglab/entry.py: an entry-test item" in leaks


def test_a_leaky_source_writes_no_kit(tmp_path):
    """A solution that a tutor also pasted into a markdown cell: the build stops, nothing is written."""
    solutions = shutil.copytree(ROOT / "solutions", tmp_path / "solutions")
    path = solutions / "01_convolution_arithmetic.ipynb"
    notebook = nbformat.read(path, as_version=4)
    exercise = next(c for c in notebook.cells if "### BEGIN SOLUTION" in c.source and c.cell_type == "code")
    body = exercise.source.split("### BEGIN SOLUTION\n")[1].split("### END SOLUTION")[0]
    notebook.cells.append(nbformat.v4.new_markdown_cell(f"Worked answer:\n\n{body}"))
    nbformat.write(notebook, path)
    with pytest.raises(KitLeakError, match="01_convolution_arithmetic.ipynb"):
        build_kit(tmp_path / "kit", source_dir=solutions, project_dir=ROOT)
    assert not (tmp_path / "kit").exists() and not (tmp_path / "kit.zip").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["solutions"]  # no staging folder left behind


def test_the_kit_never_replaces_a_folder_that_is_not_a_kit(tmp_path, capsys):
    from seglab.cli import main

    (tmp_path / "kit").mkdir()
    (tmp_path / "kit" / "thesis.tex").write_text("months of work")
    assert main(["release", "--kit", str(tmp_path / "kit"), "--source", str(ROOT / "solutions")]) == 2
    assert "is not a seglab kit" in capsys.readouterr().err
    assert (tmp_path / "kit" / "thesis.tex").read_text() == "months of work"


def test_release_kit_names_the_tutor_extra_when_a_package_is_missing(tmp_path, capsys, monkeypatch):
    import importlib.util

    from seglab.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "setuptools" else real(name, *a))
    assert main(["release", "--kit", str(tmp_path / "kit")]) == 2
    err = capsys.readouterr().err
    assert 'pip install "seglab[tutor]"' in err and "setuptools" in err and "Traceback" not in err


# ------------------------------------------------------------------ the kit installed as a student installs it


@pytest.fixture(scope="module")
def venv(kit, tmp_path_factory):
    """A fresh virtual environment with the kit's wheel installed from the file (not editable).

    It sees this Python's packages (torch is several GB; installing it again would test pip, not seglab),
    and pip installs with ``--no-index``: every dependency the wheel declares must resolve, nothing is
    downloaded. seglab itself must come from the wheel, which the tests check.
    """
    env = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", env])
    python = env / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "-q", kit["dir"] / WHEEL])
    return {"python": python, "seglab": env / "bin" / "seglab", "root": env}


def test_installed_seglab_comes_from_the_wheel_and_finds_its_data(kit, venv):
    probe = ("import json, seglab\nfrom seglab.data import NucleiDataset\n"
             "print(json.dumps({'file': seglab.__file__, 'val': len(NucleiDataset('val'))}))")
    found = json.loads(_run([venv["python"], "-c", probe], cwd=kit["dir"]).stdout)
    assert Path(found["file"]).is_relative_to(venv["root"]) and found["val"] > 0
    assert "seglab" in _run([venv["seglab"], "info"], cwd=kit["dir"]).stdout


def test_notebook_kernels_use_the_environment_of_seglab_check(kit, venv):
    """The kernel that ``seglab check`` starts runs the venv's seglab, not the repository's."""
    probe = ("import nbformat\nfrom seglab.course.execute import execute_notebook\n"
             "cell = nbformat.v4.new_code_cell('import seglab; print(seglab.__file__)')\n"
             "execute_notebook(nbformat.v4.new_notebook(cells=[cell]), '.')\nprint(cell.outputs[0]['text'])")
    assert Path(_run([venv["python"], "-c", probe], cwd=kit["dir"]).stdout.strip()).is_relative_to(venv["root"])


def _readme_block(readme: str, heading: str) -> list[str]:
    """The command lines of the first code block after ``heading`` in the kit README."""
    after = readme.split(heading, 1)[1]
    block = after.split("```", 2)[1]
    return [line for line in block.splitlines()[1:] if line.strip()]


def test_the_readme_linux_quick_start_works_as_written(kit, tmp_path):
    """The Linux block of the kit README, run by bash in a copy of the kit, line by line as written, with
    three changes a test machine needs: the venv sees this Python's packages and their pip (torch is several
    GB and the test cannot download), so the CPU-only PyTorch line is skipped (download.pytorch.org is out of
    reach) and pip resolves offline; instead of opening JupyterLab, the environment's JupyterLab and
    ``python -m seglab check`` are run."""
    readme = (kit["dir"] / "README.md").read_text(encoding="utf-8")
    lines = _readme_block(readme, "**Linux**")
    assert lines[0] == "python3 -m venv .venv && . .venv/bin/activate"
    assert lines[1] == "python -m pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"
    assert lines[2:] == [f'python -m pip install "{WHEEL}[lab]"', "jupyter lab notebooks/"]
    work = shutil.copytree(kit["dir"], tmp_path / "kit")
    # --without-pip: the venv's own (bundled, older) setuptools would hide this Python's, which torch needs
    venv = lines[0].replace("-m venv", "-m venv --system-site-packages --without-pip")
    script = "\n".join(["set -euo pipefail", venv,
                         lines[2] + " --no-index -q",
                         "python -c 'import jupyterlab, seglab, sys; print(seglab.__file__, sys.prefix)'",
                         "python -m seglab check notebooks/01_convolution_arithmetic.ipynb --no-progress"])
    result = _run(["bash", "-c", script], cwd=work)
    where, prefix = result.stdout.splitlines()[0].split()
    assert Path(where).is_relative_to(work / ".venv") and Path(prefix) == work / ".venv"  # from the wheel
    assert "conv_output_size" in result.stdout and "not implemented yet" in result.stdout


def test_jupyterhub_user_install_and_python_m_seglab(kit, tmp_path):
    """The README's JupyterHub steps. The hub's Python is played by a venv that sees this Python's
    packages (a hub image has torch and JupyterLab), with a home folder of its own: ``pip install --user``
    puts seglab under ``~/.local``, whose ``bin`` is not on PATH, so ``seglab`` is not found and
    ``python3 -m seglab check`` works. In a venv of the student's own, ``--user`` fails with the message
    the README quotes (and the README's advice, the same line without ``--user``, works)."""
    readme = (kit["dir"] / "README.md").read_text(encoding="utf-8")
    lines = _readme_block(readme, "**JupyterHub**")
    assert lines == ["python3 -m pip install --user torch torchvision --index-url https://download.pytorch.org/whl/cpu",
                     f"python3 -m pip install --user {WHEEL}"]
    hub = tmp_path / "hub"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", hub])  # this Python's pip
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "PYTHONUSERBASE": str(home / ".local"),
           "PATH": f"{hub / 'bin'}:/usr/bin:/bin"}
    work = shutil.copytree(kit["dir"], tmp_path / "kit")
    _run(["bash", "-c", lines[1].replace("python3", str(hub / "bin" / "python")) + " --no-index -q"], cwd=work,
         env=env)
    assert list((home / ".local").glob("lib/python*/site-packages/seglab/__init__.py"))
    assert shutil.which("seglab", path=env["PATH"]) is None  # ~/.local/bin is not on PATH
    result = _run([hub / "bin" / "python", "-m", "seglab", "check", "notebooks/01_convolution_arithmetic.ipynb",
                   "--no-progress"], cwd=work, env=env)
    assert "conv_output_size" in result.stdout and "not implemented yet" in result.stdout

    own = tmp_path / "own"
    _run([sys.executable, "-m", "venv", own])
    refused = subprocess.run([own / "bin" / "python", "-m", "pip", "install", "--user", "--no-index", "-q", WHEEL],
                             cwd=work, env=env, capture_output=True, text=True)
    quoted = re.search(r"pip says `([^`]+)`", readme).group(1)
    assert refused.returncode != 0 and quoted in refused.stderr, refused.stderr


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_kit_notebook_runs_unsolved_with_checks_not_implemented_yet(kit, venv, name):
    """Run All, top to bottom, from the kit's folder, in the venv (quick mode): no cell fails, and every
    automatic check says "not implemented yet"."""
    probe = ("import json, sys\nfrom dataclasses import asdict\nfrom seglab.course.selfcheck import check_notebook\n"
             "print(json.dumps(asdict(check_notebook(sys.argv[1], progress=False))))")
    result = json.loads(_run([venv["python"], "-c", probe, f"notebooks/{name}"], cwd=kit["dir"]).stdout)
    assert result["stop_reason"] is None and result["errors"] == []
    assert result["exercises"] or name.startswith(("00", "06"))  # 00 and 06 are not graded
    for exercise in result["exercises"]:
        expected = "not answered yet" if exercise["points"] is None else "not implemented yet"
        assert exercise["status"] == expected, exercise


def _solve(student_path: Path, solution_path: Path) -> None:
    """Put every solution cell (code and answers) into a student notebook, without the markers."""
    solution = {c.metadata["nbgrader"]["grade_id"]: c for c in nbformat.read(solution_path, as_version=4).cells
                if nbgrader(c).get("solution")}
    notebook = nbformat.read(student_path, as_version=4)
    for cell in notebook.cells:
        grade_id = nbgrader(cell).get("grade_id")
        if grade_id in solution:
            lines = solution[grade_id].source.split("\n")
            cell.source = "\n".join(line for line in lines if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION))
    nbformat.write(notebook, student_path)


def test_seglab_check_in_the_venv_on_a_solved_and_an_unsolved_notebook(kit, venv, tmp_path):
    work = shutil.copytree(kit["dir"], tmp_path / "kit")
    solved = work / "notebooks" / "01_convolution_arithmetic.ipynb"
    _solve(solved, ROOT / "solutions" / solved.name)
    result = _run([venv["seglab"], "check", "notebooks/01_convolution_arithmetic.ipynb", "--zip", "--out",
                   "handin", "--no-progress"], cwd=work)
    report = result.stdout
    assert "IPKernelApp" not in result.stderr, "the kernel's console stays out of the student's terminal"
    for exercise in ("conv_output_size", "pool_output_size", "transposed_conv_output_size", "receptive_field"):
        assert f"| {exercise} " in report
    assert report.count("✔ passed") == 4 and "automatic checks: 9 / 9 points" in report
    assert "✎ graded by hand" in report and "hidden checks" in report
    digest = hashlib.sha256(solved.read_bytes()).hexdigest()
    archive = work / "handin" / f"01_convolution_arithmetic-{digest[:12]}.zip"
    with zipfile.ZipFile(archive) as z:
        assert z.read(solved.name) == solved.read_bytes()
        assert json.loads(z.read("MANIFEST.json"))["sha256"] == digest

    unsolved = _run([venv["seglab"], "check", "notebooks/04_unet.ipynb", "--no-progress"], cwd=work).stdout
    assert unsolved.count("… not implemented yet") == 5 and "automatic checks: 0 / 12 points" in unsolved
    assert "✎ not answered yet" in unsolved


def test_seglab_check_says_what_went_wrong(tmp_path, capsys):
    from seglab.cli import main

    (tmp_path / "broken.ipynb").write_text("{ not json")
    assert main(["check", str(tmp_path / "broken.ipynb")]) == 2
    assert "not a readable notebook" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "missing.ipynb")]) == 2
    assert "no notebook at" in capsys.readouterr().err


def test_seglab_check_shows_the_kernel_console_only_when_the_kernel_died(tmp_path, capfd):
    from seglab.course.selfcheck import check_notebook

    notebook = nbformat.read(ROOT / "notebooks" / "01_convolution_arithmetic.ipynb", as_version=4)
    notebook.cells.insert(2, nbformat.v4.new_code_cell(
        "import os, sys\nprint('out of memory, say', file=sys.__stderr__, flush=True)\nos._exit(3)"))
    nbformat.write(notebook, tmp_path / "01_convolution_arithmetic.ipynb")  # a course notebook: the kit's check
    check = check_notebook(tmp_path / "01_convolution_arithmetic.ipynb", progress=False, timeout=60)
    assert check.stop_reason and "out of memory, say" in check.stop_reason
    assert "out of memory, say" not in capfd.readouterr().err


# ------------------------------------------------------------------ the setup cell, where seglab is missing


def test_setup_cell_stops_a_bare_python_with_install_instructions(tmp_path):
    """A Python with nothing installed (no seglab, no IPython): the cell stops with the instructions."""
    _run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "bare"])
    script = tmp_path / "setup.py"
    script.write_text(setup_cell().source)
    result = subprocess.run([tmp_path / "bare" / "bin" / "python", script], capture_output=True, text=True)
    assert result.returncode == 1
    assert "SeglabNotInstalled: seglab, the course package, is not installed" in result.stderr
    assert f"%pip install ../{WHEEL}" in result.stderr and f"upload {WHEEL}" in result.stderr


def _run_in_kernel(*sources: str, cwd: Path) -> list:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    assert execute_notebook(notebook, cwd, timeout=60) is None
    return notebook.cells


HIDE_SEGLAB = "import sys\nsys.modules['seglab'] = None  # as if seglab were not installed"


def test_setup_cell_in_jupyter_shows_one_message_and_stops_run_all(tmp_path):
    cells = _run_in_kernel(HIDE_SEGLAB, setup_cell("https://example.org/w.whl").source, "print('ran')",
                           "%pip --version", cwd=tmp_path)
    (error,) = cells[1].outputs
    assert error.output_type == "error" and error.ename == "SeglabNotInstalled"  # an error: Run All stops here
    assert len(error.traceback) == 1 and "Traceback" not in error.traceback[0]  # the message alone
    assert "set INSTALL_SEGLAB = True above and run this cell again" in error.traceback[0]
    (later,) = cells[2].outputs  # a later cell does not run while seglab is missing; it says why
    assert later.ename == "SeglabNotInstalled" and "see the first code cell" in later.traceback[0]
    assert "pip" in cells[3].outputs[0].text  # an install command still runs


def test_setup_cell_installs_from_the_wheel_url_only_when_asked(tmp_path):
    pretend_pip = ("calls = []\nip = get_ipython()\n"
                   "ip.run_line_magic = lambda *args: (calls.append(args), sys.modules.pop('seglab'))")
    asked = setup_cell("https://example.org/w.whl").source.replace("INSTALL_SEGLAB = False", "INSTALL_SEGLAB = True")
    refused = setup_cell("https://example.org/w.whl").source  # run first as it is: it stops, nothing installed
    cells = _run_in_kernel(HIDE_SEGLAB, pretend_pip, refused, "print(calls)", asked,
                           "print(calls, seglab.__name__)", cwd=tmp_path)
    assert cells[2].outputs[0].ename == "SeglabNotInstalled" and cells[3].outputs[0].ename == "SeglabNotInstalled"
    assert not cells[4].outputs  # the setup cell, run again with INSTALL_SEGLAB = True, installs
    assert cells[5].outputs[0].text.strip() == "[('pip', 'install https://example.org/w.whl')] seglab"


def test_setup_cell_with_seglab_installed_is_quiet(tmp_path):
    (cell,) = _run_in_kernel(setup_cell().source, cwd=tmp_path)
    assert cell.outputs == [] and SETUP_TAG in setup_cell().metadata["tags"]


def test_submission_zip_is_named_by_its_hash(tmp_path):
    from seglab.course.selfcheck import submission_zip

    notebook = tmp_path / "07_x.ipynb"
    notebook.write_bytes(b'{"cells": []}')
    archive = submission_zip(notebook, tmp_path / "out")
    digest = hashlib.sha256(notebook.read_bytes()).hexdigest()
    assert archive.name == f"07_x-{digest[:12]}.zip"
    with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as z:
        assert sorted(z.namelist()) == ["07_x.ipynb", "MANIFEST.json"]
    assert archive.stat().st_mode & 0o044  # others may read it: it is meant to be handed in
