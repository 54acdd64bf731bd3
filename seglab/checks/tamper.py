"""What would tamper with grading, read from code: the few things a notebook cell may not do.

Grading decides points from what a probe measures in the kernel, under run-time guards that hold whatever
the source looks like (:mod:`seglab.checks.guard`: other processes paused and new ones refused during the
call, every thread and every PyTorch operator watched, the probe's own code checked unchanged). So a line is
*refused* only when it reaches what grading itself runs through:

* **the grading machinery**: seglab's probe, guard, wire and run-time watch, ``seglab.checks.run_answer``,
  ``seglab.course``, names starting with ``_seglab``, and any change to ``seglab.checks``;
* **IPython's display and the shell's internals**: changes to IPython's display modules, ``ipykernel``,
  ``jupyter_client`` or ``zmq``; the shell's events, hooks, input and AST transformers, display publisher,
  kernel and namespaces (``get_ipython().events``, ``.input_transformers_post``, ``.kernel`` ...);
* **hooks**: tracers and profilers (``sys.settrace``, ``sys.setprofile``, ``threading.settrace``,
  ``sys.monitoring``), audit hooks, the import machinery (``sys.modules``, ``sys.meta_path``, ``sys.path_hooks``)
  and ``builtins`` changed, ``threading``'s internals changed;
* **frames and stacks**: ``sys._getframe``, ``inspect.currentframe``/``stack``, ``traceback.extract_stack``,
  ``gc.get_referrers``/``get_objects``, ``f_back``, ``f_locals``, ``tb_frame``, ``__globals__``, ``__closure__``;
* **the run-time watch's switches**: ``torch.utils._python_dispatch``, the dispatcher's thread-local switches
  (``torch._C._DisableTorchDispatch`` ...), kernels registered with ``torch.library``, compiled extensions;
* **raw memory**: ``ctypes``, ``cffi``, ``/proc/self/mem``.

Everything else runs as written: magics, ``!`` commands, threads and processes, ``inspect.signature``,
``pickle``, ``gc.collect``, ``importlib.reload``, ``vars``, a computed ``getattr``, configuration of other
libraries. What the rules notice but let run (code hidden from a reader: ``exec`` of a computed string) is a
*note* for the tutor's review, never points. Names are *resolved*, not matched as words: ``wandb.watch(model)``
runs, ``from seglab.checks.borrowed import watch`` does not. The resolver follows imports, plain aliases and
``get_ipython()`` across all the notebook's cells; what it cannot follow (a container, a computed name) is
left to the run-time guards, which also scan code compiled at run time with these rules.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Names", "Tamper", "cell_python", "python_of", "tampering"]


@dataclass(frozen=True)
class Tamper:
    """One line that grading refuses (``refused``), or a note for the tutor's review."""

    line: int  # 1-based, in the cell's source
    what: str  # "replaces IPython.display.display, which grading uses"
    fix: str  # what to do instead
    refused: bool = True


# --- what grading runs through ---------------------------------------------------------------------------------

GRADING = ("seglab.checks.probe", "seglab.checks.guard", "seglab.checks.wire", "seglab.checks.borrowed",
           "seglab.checks.tamper", "seglab.checks.run_answer", "seglab.course")
WRITABLE_NEVER = ("seglab.checks", "seglab.course", "IPython.display", "IPython.core.display",
                  "IPython.core.display_functions", "IPython.core.displaypub", "IPython.core.displayhook",
                  "IPython.core.formatters", "ipykernel", "jupyter_client", "zmq", "tornado", "traitlets",
                  "builtins", "threading", "_thread")
SHELL_INTERNALS = {"events", "input_transformers_cleanup", "input_transformers_post", "input_transformer_manager",
                   "ast_transformers", "set_hook", "set_custom_exc", "register_post_execute", "display_pub",
                   "display_formatter", "displayhook", "display_trap", "kernel", "user_ns", "user_global_ns",
                   "user_ns_hidden", "run_cell", "run_cell_async", "run_code", "run_ast_nodes", "ex", "ev",
                   "excepthook", "showtraceback", "_showtraceback", "compile", "history_manager", "payload_manager",
                   "builtin_trap", "data_pub", "transform_cell", "transform_ast", "should_run_async"}
# IPython's own words for its internals: no other library uses them, so they are refused on any object
IPYTHON_WORDS = SHELL_INTERNALS - {"events", "kernel", "ex", "ev", "compile", "displayhook", "excepthook", "set_hook",
                                   "run_cell", "run_code", "showtraceback", "transform_cell", "history_manager"}
TRACERS = {"sys.settrace", "sys.setprofile", "sys._settraceallthreads", "sys._setprofileallthreads",
           "sys.monitoring", "sys.addaudithook", "threading.settrace", "threading.setprofile",
           "threading.settrace_all_threads", "threading.setprofile_all_threads"}
FRAME_FUNCTIONS = {"sys._getframe", "sys._current_frames", "sys._current_exceptions", "inspect.currentframe",
                   "inspect.stack", "inspect.trace", "inspect.getouterframes", "inspect.getinnerframes",
                   "traceback.extract_stack", "traceback.walk_stack", "traceback.format_stack",
                   "traceback.print_stack", "traceback.walk_tb", "traceback.StackSummary", "gc.get_objects",
                   "gc.get_referrers", "gc.get_referents"}
FRAME_ATTRIBUTES = {"f_back", "f_locals", "f_globals", "f_builtins", "f_trace", "tb_frame", "gi_frame", "cr_frame",
                    "ag_frame", "__globals__", "__closure__"}
IMPORT_MACHINERY = {"modules", "meta_path", "path_hooks", "path_importer_cache"}
SYS_HOOKS = IMPORT_MACHINERY | {"displayhook", "excepthook", "breakpointhook", "unraisablehook", "audit",
                                "addaudithook", "settrace", "setprofile", "monitoring", "_getframe"}
MUTATORS = {"append", "insert", "extend", "pop", "remove", "clear", "update", "setdefault", "popitem",
            "__setitem__", "__delitem__"}
# the dispatcher's thread-local switches and mode stack: what would switch off the watch of PyTorch's operators
WATCH_OFF = re.compile(r"^_\w*[dD]ispatch|^Dispatch|^_(push|pop)_?\w*mode|^_disable_current_modes$|"
                       r"^_(Exclude|Include)DispatchKeyGuard$|^redispatch$|^_set_torch_function_mode$|"
                       r"^load_inline$|^_python_dispatch$|^cpp_extension$")
RAW_MEMORY = ("ctypes", "_ctypes", "cffi")
PROC_MEMORY = re.compile(r"/proc/(self|thread-self|\d+)(/task/\d+)?/mem\b|/dev/k?mem\b")  # linear: no backtracking
PYTHON_CELL_MAGICS = {"capture", "time", "timeit", "prun", "debug"}  # their body is Python that runs
DYNAMIC_CODE = {"exec", "eval", "compile", "__import__"}

FIX = {
    "grading": "delete this line: grading calls your answer itself, and a cell that reaches its machinery is "
               "not run",
    "shell": "delete this line: IPython's hooks and internals are not part of an answer",
    "tracer": "delete this line (use %time, %timeit or %prun to time code; they stop when the cell ends)",
    "frames": "delete this line (inspect.signature and traceback.print_exc() are fine)",
    "watch": "delete this line: write the computation with PyTorch's ordinary functions",
    "memory": "delete this line",
    "imports": "delete this line (sys.path.append and importlib.reload are fine)",
}


def python_of(source: str) -> str:
    """The cell's Python, its magics turned into the calls IPython makes for them."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def cell_python(source: str) -> list[tuple[str, int]]:
    """``(Python, line offset)`` of a cell: its own Python, and the body of a Python cell magic (``%%time``,
    ``%%capture``) read as Python too, since it runs."""
    stripped = source.lstrip("\n")
    if stripped.startswith("%%"):
        first, _, body = stripped.partition("\n")
        magic = first[2:].split(maxsplit=1)[0] if first[2:].strip() else ""
        offset = len(source) - len(stripped)
        offset = source[:offset].count("\n") + 1
        return [(python_of(body), offset)] if magic in PYTHON_CELL_MAGICS else []
    return [(python_of(source), 0)]


# --- the resolver: what a name stands for, across the notebook's cells ------------------------------------------

def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


class Names:
    """What the names bound by imports and plain aliases stand for, as qualified names
    (``import IPython.display as shown``: ``shown`` is ``IPython.display``; ``ip = get_ipython()``: ``ip`` is
    ``get_ipython()``), gathered from every cell given."""

    def __init__(self, trees: Iterable[ast.AST] = ()):
        self.bound: dict[str, set[str]] = {"get_ipython": {"get_ipython"}, "__builtins__": {"builtins"}}
        trees = list(trees)
        for tree in trees:
            self._imports(tree)
        for _ in range(4):  # aliases of aliases: m = torch; n = m.nn
            changed = False
            for tree in trees:
                changed |= self._aliases(tree)
            if not changed:
                break

    def _bind(self, name: str, qualified: str) -> bool:
        known = self.bound.setdefault(name, set())
        if qualified in known:
            return False
        known.add(qualified)
        return True

    def _imports(self, tree: ast.AST) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self._bind(alias.asname, alias.name)
                    else:
                        self._bind(alias.name.split(".")[0], alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name != "*":
                        self._bind(alias.asname or alias.name, f"{node.module}.{alias.name}")

    def _aliases(self, tree: ast.AST) -> bool:
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        for qualified in self.resolve(node.value):
                            changed |= self._bind(target.id, qualified)
            elif isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
                for qualified in self.resolve(node.context_expr):
                    changed |= self._bind(node.optional_vars.id, qualified)
        return changed

    def resolve(self, node: ast.AST) -> set[str]:
        """The qualified names ``node`` may stand for (empty: none the resolver can tell)."""
        if isinstance(node, ast.Name):
            return set(self.bound.get(node.id, ()))
        if isinstance(node, ast.Attribute):
            if node.attr == "__dict__":
                return self.resolve(node.value)
            return {_canonical(f"{q}.{node.attr}") for q in self.resolve(node.value)}
        if isinstance(node, ast.Call):
            func = self.resolve(node.func)
            if func & {"get_ipython", "IPython.get_ipython", "IPython.core.getipython.get_ipython"}:
                return {"get_ipython()"}
            if func & {"importlib.import_module", "__import__", "builtins.__import__"} or (
                    isinstance(node.func, ast.Name) and node.func.id == "__import__"):
                name = _constant(node.args[0]) if node.args else None
                return {name} if name else set()
            if isinstance(node.func, ast.Name) and node.func.id in ("vars", "getattr") and node.args:
                base = self.resolve(node.args[0])
                if node.func.id == "vars":
                    return base
                name = _constant(node.args[1]) if len(node.args) > 1 else None
                return {f"{q}.{name}" for q in base} if name else set()
        if isinstance(node, ast.Subscript):  # sys.modules["m"]; vars(m)["x"], m.__dict__["x"]
            name = _constant(node.slice)
            if name and "sys.modules" in self.resolve(node.value):
                return {name}
            if name and ((isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                         and node.value.func.id == "vars") or (isinstance(node.value, ast.Attribute)
                         and node.value.attr == "__dict__")):
                return {f"{q}.{name}" for q in self.resolve(node.value)}
        return set()


def _canonical(name: str) -> str:
    for alias, meant in (("IPython.get_ipython", "get_ipython"), ("IPython.core.getipython.get_ipython", "get_ipython"),
                         ("__builtins__", "builtins")):
        if name == alias or name.startswith(alias + "."):
            return meant + name[len(alias):]
    return name


def _constant(node) -> str | None:
    """The string ``node`` always is: a constant, or constants joined (``"tb_" + "frame"``, ``f"{'_get'}frame"``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _constant(node.left), _constant(node.right)
        return left + right if left is not None and right is not None else None
    if isinstance(node, ast.JoinedStr):
        parts = [_constant(v.value) if isinstance(v, ast.FormattedValue) and not v.format_spec and v.conversion == -1
                 else _constant(v) for v in node.values]
        return "".join(parts) if all(p is not None for p in parts) else None
    return None


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# --- the rules ------------------------------------------------------------------------------------------------

def _reached(qualified: str) -> tuple[str, str] | None:
    """``(what, fix kind)`` when a reference to ``qualified`` reaches what grading runs through."""
    last = qualified.rsplit(".", 1)[-1]
    if _under(qualified, GRADING) or last.startswith("_seglab"):
        return f"reaches {qualified}, part of the grader", "grading"
    if qualified in TRACERS or _under(qualified, ("sys.monitoring",)):
        return f"uses {qualified}, a tracer, profiler or audit hook that would watch the grader's code", "tracer"
    if qualified in FRAME_FUNCTIONS:
        return f"uses {qualified}, which reads other code's frames (the grader's among them)", "frames"
    if qualified.startswith("get_ipython().") and qualified.split(".")[1] in SHELL_INTERNALS:
        return f"uses {qualified}, the shell's internals that run and show every cell", "shell"
    if _under(qualified, ("ipykernel", "jupyter_client", "zmq", "tornado")) and "." in qualified and last not in (
            "__version__", "version_info"):  # importing the package to print its version is fine
        return f"reaches {qualified}, the kernel's internals", "shell"
    if _under(qualified, ("torch.library", "torch.utils._python_dispatch", "torch.utils.cpp_extension")):
        return f"uses {qualified}, which changes how PyTorch runs its operators (the grader watches them)", "watch"
    if _under(qualified, RAW_MEMORY):
        return f"uses {qualified}, raw memory access", "memory"
    return None


def _written(qualified: str) -> tuple[str, str] | None:
    """``(what, fix kind)`` when changing ``qualified`` (an attribute or item) tampers with grading."""
    if _under(qualified, WRITABLE_NEVER) or _under(qualified, GRADING):
        return f"changes {qualified}, which grading runs through", "grading" if qualified.startswith(
            "seglab") else "shell"
    if qualified.startswith("sys.") and qualified.split(".")[1] in SYS_HOOKS:
        return f"changes {qualified}, the interpreter's hooks or import machinery", "imports"
    if qualified.startswith("get_ipython().") and qualified.split(".")[1] in SHELL_INTERNALS:
        return f"changes {qualified}, the shell's internals", "shell"
    return None


def _targets(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Assign):
        found = list(node.targets)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor, ast.comprehension)):
        found = [node.target]
    elif isinstance(node, ast.Delete):
        found = list(node.targets)
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        found = [item.optional_vars for item in node.items if item.optional_vars is not None]
    else:
        return []
    flat = []
    while found:
        target = found.pop()
        if isinstance(target, (ast.Tuple, ast.List)):
            found += target.elts
        elif isinstance(target, ast.Starred):
            found.append(target.value)
        else:
            flat.append(target)
    return flat


_WHY_NAME = "a frame, the shell's internals, a tracer or a switch of the grader's watch"


def tampering(tree: ast.AST, names: Names) -> list[Tamper]:
    """What in one parsed cell tampers with grading (``refused``) or hides code from a reader (a note)."""
    found: dict[tuple[int, str], Tamper] = {}
    own = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                      ast.ClassDef))}  # a student's own eval()

    def add(node: ast.AST, what: str, kind: str, refused: bool = True) -> None:
        line = getattr(node, "lineno", 1)
        key = (line, kind)  # one finding per line and kind: the outermost attribute of a chain says it best
        if key not in found:
            fix = FIX.get(kind, "")
            found[key] = Tamper(line, what, fix, refused)

    def written(target: ast.AST, node: ast.AST) -> None:
        if isinstance(target, ast.Attribute):
            for q in names.resolve(target.value):
                hit = _written(f"{q}.{target.attr}")
                if hit:
                    add(node, *hit)
            if target.attr in ("__code__", "__defaults__", "__kwdefaults__", "cell_contents") and any(
                    "." in q or q in WRITABLE_NEVER for q in names.resolve(target.value)):
                add(node, f"changes the code of {_dotted(target.value) or 'a library function'}", "grading")
        elif isinstance(target, ast.Subscript):
            key = _constant(target.slice)
            for q in names.resolve(target.value):
                hit = _written(f"{q}.{key}") if key else _written(f"{q}.*")
                if hit:
                    add(node, *hit)

    for node in ast.walk(tree):
        for target in _targets(node):
            written(target, node)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [f"{node.module}.{a.name}" for a in node.names] if node.module and not node.level else [])
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.append(node.module)
            for module in modules:
                hit = _reached(module)
                if hit:
                    add(node, *hit)
                if WATCH_OFF.match(module.rsplit(".", 1)[-1]):
                    add(node, f"imports {module}, which switches off the grader's watch of PyTorch's operators",
                        "watch")
        elif isinstance(node, ast.Name):
            if node.id.startswith("_seglab"):
                add(node, f"uses {node.id}, part of the grader", "grading")
            elif WATCH_OFF.match(node.id) and node.id in names.bound:
                add(node, f"uses {node.id}, which switches off the grader's watch of PyTorch's operators", "watch")
        elif isinstance(node, ast.Attribute):
            if node.attr in FRAME_ATTRIBUTES:
                add(node, f"uses {_dotted(node) or node.attr}, another function's frame or namespace", "frames")
            elif node.attr in IPYTHON_WORDS:
                add(node, f"uses {_dotted(node) or node.attr}, the shell's internals", "shell")
            elif WATCH_OFF.match(node.attr):
                add(node, f"uses {_dotted(node) or node.attr}, which switches off the grader's watch of PyTorch's "
                          "operators", "watch")
            else:
                for q in names.resolve(node):
                    hit = _reached(q)
                    if hit:
                        add(node, *hit)
        elif isinstance(node, ast.Call):
            func = node.func
            callee = func.id if isinstance(func, ast.Name) else None
            if callee in ("setattr", "delattr") and node.args:
                name = _constant(node.args[1]) if len(node.args) > 1 else None
                for q in names.resolve(node.args[0]):
                    hit = _written(f"{q}.{name}" if name else f"{q}.*")
                    if hit:
                        add(node, *hit)
            elif callee in ("getattr", "hasattr") and len(node.args) > 1 and _constant(node.args[1]) is not None:
                name = _constant(node.args[1])  # a name joined from strings is the name: getattr(tb, "tb_" + "frame")
                if name in FRAME_ATTRIBUTES or name in IPYTHON_WORDS or WATCH_OFF.match(name) or \
                        name in {q.rsplit(".", 1)[-1] for q in FRAME_FUNCTIONS | TRACERS}:
                    add(node, f"uses {name} by name: {_WHY_NAME}", "frames")
                for q in names.resolve(node.args[0]):
                    hit = _reached(f"{q}.{name}")
                    if hit:
                        add(node, *hit)
            elif callee in ("getattr", "vars") and node.args and (callee == "vars" or (len(node.args) > 1 and
                                                                   _constant(node.args[1]) is None)):
                for q in names.resolve(node.args[0]):
                    if _under(q, WRITABLE_NEVER + GRADING + ("sys", "get_ipython()")):
                        add(node, f"reaches attributes of {q}, chosen at run time (grading runs through them)",
                            "grading" if q.startswith("seglab") else "shell")
            elif callee in ("__import__",) or "importlib.import_module" in names.resolve(func):
                for module in names.resolve(node):  # importlib.import_module("torch.utils." + "_python_dispatch")
                    hit = _reached(module)
                    if hit:
                        add(node, *hit)
            if callee in DYNAMIC_CODE and callee not in own and node.args and _constant(node.args[0]) is None:
                add(node, f"runs code made at run time with {callee}() (checked again when it runs)", "review",
                    refused=False)
            if isinstance(func, ast.Attribute) and func.attr in MUTATORS:
                for q in names.resolve(func.value):
                    hit = _written(f"{q}.*")
                    if hit:
                        add(node, *hit)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and PROC_MEMORY.search(node.value):
            add(node, f"names {PROC_MEMORY.search(node.value).group(0)}, the process's raw memory", "memory")
    return sorted(found.values(), key=lambda t: (t.line, t.what))
