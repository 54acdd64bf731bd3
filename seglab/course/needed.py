"""Which code cells grading must run: the answers, the checks, and the cells they depend on.

A course notebook spends most of its time on what no check reads: figures, widgets, training runs.
The grader runs only the cells an answer can depend on. Walking backwards from the *targets* (the
setup cell, every answer cell, every check cell), a cell is needed when it *binds* a global name that
a needed cell *reads*. Everything is decided from the source alone, in the grader's process.

- A cell **binds** a name when it assigns it (any target: ``a, b = ...``, ``for x in``, ``with ... as x``,
  ``except ... as x``, ``x := ...``), imports it, defines a function or class with it, assigns it through
  ``global`` inside a function, or changes it in place: ``x.attr = ...``, ``x[i] = ...``, ``x += ...``,
  ``del x[i]``, or a statement that calls a method of it (``weights.fill_(1)``), unless ``x`` is a module
  the notebook imported (``plt.show()`` or ``torch.manual_seed(0)`` do not make a cell needed).
- A cell **reads** the global names its code loads, function and class bodies included; names that are
  local to a function do not count.
- Everyday magics bind no name and are left out (``%load_ext``, ``%autoreload``, ``%matplotlib``, ``%config``,
  ``%env``, ``%cd``, ``%pip`` ...), so are ``!`` commands (``x = !ls`` binds ``x``) and cells of ``%%writefile``
  or ``%%html``; the body of ``%%capture`` and ``%%time`` is read as the cell's code.
- A cell the analysis cannot follow makes the whole notebook run: source that does not parse,
  ``exec``/``eval``/``globals()``/``locals()``/``vars()``/``get_ipython()``/``__import__``, star imports,
  other magics (``%run``, ``%time x = ...``) and other cell magics.

A slice can still miss a dependency the source does not show (a helper installed in ``builtins``); the
grader then sees a ``NameError`` and runs the whole notebook again (:mod:`seglab.course.grade`).
"""

from __future__ import annotations

import ast
import builtins
import re

from seglab.checks.fingerprint import TooDeep

__all__ = ["defining_code", "definitions", "needed_cells"]

OPAQUE_CALLS = {"exec", "eval", "globals", "locals", "vars", "get_ipython", "__import__", "compile"}
# line magics that bind no name of the notebook's (``%time`` and ``%timeit`` run a statement: opaque); ``!``
# commands bind none either, but ``x = !ls`` binds x as any assignment does
HARMLESS_MAGICS = {"matplotlib", "config", "pip", "conda", "autoreload", "load_ext", "reload_ext", "unload_ext",
                   "env", "cd", "pwd", "who", "whos", "who_ls", "precision", "xmode", "history", "lsmagic", "magic",
                   "pdb", "colors", "pprint", "page", "pinfo", "pinfo2", "psearch", "automagic", "doctest_mode"}
BODY_MAGICS = {"capture", "time"}  # cell magics whose body runs as the cell's code
SILENT_CELL_MAGICS = {"writefile", "html", "HTML", "markdown", "latex", "javascript", "js", "svg", "bash", "sh"}


class Opaque(Exception):
    """The analysis cannot tell what this cell binds or reads."""


class _Magics(ast.NodeTransformer):
    """IPython's calls for harmless magics and ``!`` commands replaced by ``None`` (they bind and read nothing)."""

    def visit_Call(self, node: ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call) and \
                isinstance(func.value.func, ast.Name) and func.value.func.id == "get_ipython":
            name = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            if func.attr in ("system", "getoutput") or (func.attr == "run_line_magic" and name in HARMLESS_MAGICS):
                return ast.copy_location(ast.Constant(None), node)
        return self.generic_visit(node)


def _tree(source: str) -> ast.Module:
    """The cell's code as IPython runs it, harmless magics and ``!`` commands left out; raises :class:`Opaque`
    for any other magic (a cell magic's body is the code when it runs as the cell: ``%%capture``, ``%%time``)."""
    from seglab.checks.tamper import python_of

    stripped = source.lstrip()
    if stripped.startswith("%%"):
        first, _, body = stripped.partition("\n")
        magic = first[2:].split(maxsplit=1)[0] if first[2:].strip() else ""
        if magic in SILENT_CELL_MAGICS:
            return ast.Module(body=[], type_ignores=[])
        if magic not in BODY_MAGICS:
            raise Opaque(f"cell magic %%{magic}")
        source = body
    return ast.fix_missing_locations(_Magics().visit(ast.parse(python_of(source))))


def _target_names(target: ast.AST) -> set[str]:
    """Names an assignment target binds; ``x.a`` and ``x[i]`` change ``x`` in place."""
    while isinstance(target, (ast.Attribute, ast.Subscript, ast.Starred)):
        target = target.value
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(_target_names(element) for element in target.elts))
    return set()


def _function_locals(function: ast.AST) -> set[str]:
    """Names local to a function (its parameters and what it assigns, less what it declares global)."""
    arguments = function.args
    names = {a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs}
    names |= {a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None}
    declared = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not function:
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared |= set(node.names)
    return names - declared


def _reads(tree: ast.AST) -> set[str]:
    """Global names the code loads (anywhere, function bodies included, less each function's locals)."""
    reads: set[str] = set()

    def visit(node: ast.AST, local: frozenset[str]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                visit(default, local)
            for decorator in getattr(node, "decorator_list", []):
                visit(decorator, local)
            inner = local | _function_locals(node)
            for child in (node.body if isinstance(node.body, list) else [node.body]):
                visit(child, frozenset(inner))
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in local:
            reads.add(node.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in OPAQUE_CALLS:
            raise Opaque(f"{node.func.id}()")
        for child in ast.iter_child_nodes(node):
            visit(child, local)

    visit(tree, frozenset())
    return reads - set(dir(builtins))


def _binds(tree: ast.Module, modules: set[str]) -> tuple[set[str], set[str]]:
    """``(names the cell binds, names of modules it imports)``."""
    binds, imported = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(alias.name == "*" for alias in node.names):
                raise Opaque("star import")
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                binds.add(name)
                if isinstance(node, ast.Import) or (alias.asname is None and node.module):
                    imported.add(name)
        elif isinstance(node, (ast.Global,)):
            binds |= set(node.names)
    for statement in tree.body:
        for node in ast.walk(statement):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and node is not statement:
                continue
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                for target in getattr(node, "targets", None) or [node.target]:
                    binds |= _target_names(target)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                binds |= _target_names(node.target)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        binds |= _target_names(item.optional_vars)
            elif isinstance(node, ast.Delete):
                for target in node.targets:
                    binds |= _target_names(target)
            elif isinstance(node, ast.NamedExpr):
                binds |= _target_names(node.target)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                binds.add(node.name)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                binds.add(node.name)
            elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                owner = node.value.func
                if isinstance(owner, ast.Attribute):  # x.method(...) may change x in place
                    names = _target_names(owner.value)
                    binds |= names - modules - imported
    return binds, imported


def needed_cells(sources: list[str], targets: set[int], *, trusted: set[int] = frozenset()) -> set[int] | None:
    """Indices (into ``sources``, the notebook's code cells) of the cells to run so that every target
    cell sees what it reads; ``None`` when the analysis cannot tell (then run them all). ``trusted``:
    cells that always run and are not analysed (the kit's setup cell)."""
    modules: set[str] = set()
    cells: list[tuple[set[str], set[str]]] = []  # (binds, reads) per cell
    try:
        for index, source in enumerate(sources):
            if index in trusted:
                cells.append((set(), set()))
                continue
            tree = _tree(source)
            binds, imported = _binds(tree, modules)
            modules |= imported
            cells.append((binds, _reads(tree)))
    except (Opaque, SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    needed, wanted = set(), set()  # wanted: what the needed cells after this one read
    for index in range(len(sources) - 1, -1, -1):
        binds, reads = cells[index]
        if index in targets or index in trusted or binds & wanted:
            needed.add(index)
            wanted |= reads
    return needed


# --- the code that defines what a check calls (the judge reads off-limits names there; similarity compares it)

MAGIC = re.compile(r"^\s*[%!]")  # a line magic or shell command: not Python, blanked before parsing


def definitions(source: str) -> list[tuple[set[str], set[str], str]]:
    """``(names bound, names read, source)`` of each top-level definition in a cell: a function, a class, an
    assignment to names (``conv_output_size = mine``) or an import, decorators included. A cell that does not
    parse defines nothing; one nested too deeply to read raises :class:`seglab.checks.fingerprint.TooDeep`."""
    python = "\n".join("" if MAGIC.match(line) else line for line in source.split("\n"))
    try:
        tree = ast.parse(python)
    except (SyntaxError, ValueError):
        return []
    except (RecursionError, MemoryError):
        raise TooDeep("nested too deeply for Python to read") from None
    found = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound = {node.name}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound = {alias.asname or alias.name.split(".")[0] for alias in node.names if alias.name != "*"}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound = {target.id for target in targets if isinstance(target, ast.Name)}
        else:
            continue
        if bound:
            read = {name.id for name in ast.walk(node) if isinstance(name, ast.Name)}
            code = [f"@{ast.get_source_segment(python, d)}" for d in getattr(node, "decorator_list", [])]
            found.append((bound, read, "\n".join([*code, ast.get_source_segment(python, node) or ""])))
    return found


def defining_code(plan, objects: tuple[str, ...], before: int | None,
                   cells: dict[int, list[tuple[set[str], set[str], str]]]) -> str | None:
    """The student's code that defines ``objects`` as the check at position ``before`` finds them (the last
    definition in an earlier cell; ``None``: the check was deleted and runs last), and the definitions of the
    student's names that code reads (helpers), wherever they stand in the student's cells; ``None``: none is
    defined. ``cells``: the definitions of each of the student's code cells, by position."""
    live: dict[str, tuple[tuple[int, int], set[str], str]] = {}
    for position in sorted(cells):
        if before is None or position < before:
            for order, (bound, read, code) in enumerate(cells[position]):
                for name in bound:
                    live[name] = ((position, order), read, code)
    chosen: dict[tuple[int, int], str] = {}
    todo, seen = list(objects), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in live:
            continue
        seen.add(name)
        where, read, code = live[name]
        chosen[where] = code
        todo += read
    return "\n\n".join(code for _, code in sorted(chosen.items())) if chosen else None
