"""The package's shape: no import cycle (every import is followed, those inside functions included: an import
moved into a function to dodge a cycle still makes one), and one name per idea."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "seglab").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph(modules: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """``{module: the seglab modules it imports}``, every ``import`` and ``from ... import`` in the file counted,
    wherever it stands; ``from package import name`` is an import of ``package.name`` when that is a module."""
    modules = _modules() if modules is None else modules
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # from .x import y, from .. import z
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                while target and target not in modules:  # import seglab.a.b as c: the module seglab.a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_in_seglab():
    found = cycles(import_graph())
    assert not found, "import cycles (function-level imports included): " + "; ".join(" <-> ".join(c) for c in found)


def test_the_walk_sees_a_cycle_hidden_in_a_function(tmp_path):
    """Not vacuous: two modules that import each other, one of them inside a function, are a cycle."""
    package = tmp_path / "seglab"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from seglab.b import g\n")
    (package / "b.py").write_text("def g():\n    from seglab import a\n    return a\n")
    modules = {"seglab": package / "__init__.py", "seglab.a": package / "a.py", "seglab.b": package / "b.py"}
    assert cycles(import_graph(modules)) == [["seglab.a", "seglab.b"]]


ENTRY_POINTS = {"main"}  # a module's own command line (seglab.cli, python -m seglab.course.limits)


def public_names() -> dict[str, list[str]]:
    """``{name: the modules that define it}`` for every public top-level function and class of seglab."""
    found: dict[str, list[str]] = {}
    for name, path in _modules().items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            defines = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            if defines and not node.name.startswith("_"):
                found.setdefault(node.name, []).append(name)
    return found


def test_one_name_per_idea():
    """Two public functions or classes with one name are two ideas a reader mixes up (the grader's Exercise
    and the checks' Exercise were imported under another name to dodge the clash)."""
    twice = {name: modules for name, modules in public_names().items() if len(modules) > 1 and name not in ENTRY_POINTS}
    assert not twice, f"defined in more than one module: {twice}"


def test_a_grade_call_goes_down_the_layers():
    """The command line calls the orchestrator, the orchestrator calls the stages: no stage reaches back up to
    the orchestrator or the command line."""
    graph = import_graph()
    assert [m for m, targets in graph.items() if "seglab.cli" in targets] == ["seglab.__main__"]
    assert [m for m, targets in graph.items() if "seglab.course.grade" in targets] == ["seglab.cli"]
    stages = ["seglab.course.submissions", "seglab.course.plan", "seglab.course.probes", "seglab.course.run",
              "seglab.course.results", "seglab.course.judge", "seglab.course.rows"]
    for later, stage in enumerate(stages):
        ahead = graph[stage] & set(stages[later + 1:])
        assert not ahead, f"{stage} imports a later stage: {ahead}"
