"""The README's layout section stays true: every module of the package is listed under its folder, and
nothing listed is missing from the tree."""

import re
import sys

from tests.support import ROOT

NOT_LISTED = {"__init__.py", "__main__.py"}  # a package's own files need no line


def _layout_block() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Layout\n", 1)[1]
    return section.split("```", 2)[1].splitlines()[1:]


def _listed() -> dict[str, set[str]]:
    """``{"seglab/models": {"fcn.py", ...}, ...}``: the names each folder's lines mention."""
    listed: dict[str, set[str]] = {}
    folder = None
    for line in _layout_block():
        indent = len(line) - len(line.lstrip(" "))
        entry = line.strip().split(" ", 1)[0]
        if indent == 0:
            folder = "seglab" if entry == "seglab/" else None
            continue
        if indent == 2:  # a module of seglab/, or one of its folders (whose lines go on below, indented more)
            folder = f"seglab/{entry.rstrip('/')}" if entry.endswith("/") else "seglab"
        if folder is not None:
            names = set(re.findall(r"[\w.]+\.py\b|[\w]+/", line))
            if indent == 2 and entry.endswith("/"):
                names.discard(entry)
                listed.setdefault("seglab", set()).add(entry)
            listed.setdefault(folder, set()).update(names)
    return listed


def _tree() -> dict[str, set[str]]:
    tree: dict[str, set[str]] = {}
    for package in [ROOT / "seglab", *sorted(p.parent for p in (ROOT / "seglab").glob("*/__init__.py"))]:
        key = package.relative_to(ROOT).as_posix()
        tree[key] = {p.name for p in package.glob("*.py") if p.name not in NOT_LISTED}
        tree[key] |= {f"{p.name}/" for p in package.iterdir()
                      if p.is_dir() and p.name != "__pycache__" and not p.name.endswith(".egg-info")}
    return tree


def test_every_module_is_in_the_readme_layout_and_every_listed_one_exists():
    listed, tree = _listed(), _tree()
    assert set(listed) == set(tree), f"folders: README {sorted(listed)}, tree {sorted(tree)}"
    for folder, names in tree.items():
        missing, gone = sorted(names - listed[folder]), sorted(listed[folder] - names)
        assert not missing, f"{folder}: not in the README's layout section: {missing}"
        assert not gone, f"{folder}: in the README's layout section but not in the tree: {gone}"


def test_the_layout_parser_sees_a_missing_and_a_stale_module(monkeypatch):
    """The test is not vacuous: a module dropped from the text, or a name that is gone, is found."""
    lines = _layout_block()
    stale = [line.replace("metrics.py", "scores.py") for line in lines]
    monkeypatch.setattr(sys.modules[__name__], "_layout_block", lambda: stale)
    listed, tree = _listed(), _tree()
    assert "metrics.py" in tree["seglab"] - listed["seglab"] and "scores.py" in listed["seglab"] - tree["seglab"]
