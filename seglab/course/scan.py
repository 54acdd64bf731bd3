"""Read the code a submission will run, in the grader's process, for what grading cannot allow.

Every code cell of a submission that grading runs and that is not the tutor's own released cell,
unchanged, is read here before anything runs (IPython's magics turned into the Python they stand
for). A finding names the cell and what it does; any finding means the notebook's checks are not
trusted (:mod:`seglab.course.grade` gives its automatic exercises zero and says why). What is looked for:

* **changing how cells run**: IPython hooks and events, input and AST transformers, custom exception
  handlers, magics other than a few harmless ones (``%matplotlib``, ``%time``, ``%timeit``, ``%pip`` ...);
* **watching or rewriting other code**: tracers and profilers (``sys.settrace``, ``sys.setprofile``,
  ``threading.settrace`` ...), frame inspection (``sys._getframe``, ``inspect.currentframe``, ``f_back``,
  ``f_locals``, ``gc.get_referrers``), the cell history (``In``, ``_ih``, ``_i3`` ...), ``ctypes``;
* **patching other code**: assigning to (or deleting) an attribute of a module or an object the cells
  imported (``IPython.display.display = ...``, ``import seglab as s; s.checks.run_answer = ...``), also
  through ``setattr`` or a plain alias (``m = torch.nn.functional``);
* **code the scan cannot read**: ``exec``, ``eval``, ``compile``, ``__import__``, ``importlib``, ``builtins``,
  ``getattr``/``setattr``/``delattr`` with a computed name, ``globals()``, ``vars()``, ``pickle``/``marshal``;
* **running outside the answer's own thread or process**: ``threading``, ``_thread``,
  ``concurrent.futures``, ``multiprocessing``, ``subprocess``, ``os.fork``/``os.system``/``os.exec*``, ``asyncio``;
* **the grading machinery**: ``seglab.checks.probe``/``wire``, ``seglab.course``, names starting with ``_seglab``.

This is the layer outside the student's process: it cannot be switched off from a cell, but it reads
only what the source shows. Code that hides its intent well enough from a reader of the AST is why the
kernel also runs sandboxed and the answers are judged as data (see the README's security section).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

__all__ = ["LIMITS", "Finding", "ScanLimits", "imported_names", "python_of", "scan_cells", "scan_source"]

HARMLESS_MAGICS = {"matplotlib", "time", "timeit", "pip", "conda", "config", "precision", "who", "whos", "pwd",
                   "autosave", "page", "pinfo", "pinfo2", "psearch", "history"}
HOOK_ATTRIBUTES = {"events", "input_transformers_cleanup", "input_transformers_post", "input_transformer_manager",
                   "ast_transformers", "set_hook", "set_custom_exc", "register_magic_function", "register_magics",
                   "run_cell", "run_cell_async", "run_code", "run_ast_nodes", "ex", "ev", "user_ns", "user_global_ns",
                   "displayhook", "display_pub", "display_formatter", "excepthook", "showtraceback",
                   "register_post_execute", "_showtraceback", "kernel", "shell"}
COMMON_WORDS = {"events", "ex", "ev", "kernel", "shell", "run_cell", "run_code", "displayhook", "excepthook"}
TRACERS = {"settrace", "setprofile", "_settraceallthreads", "_setprofileallthreads", "settrace_all_threads",
           "setprofile_all_threads", "monitoring", "addaudithook", "setswitchinterval"}
FRAMES = {"_getframe", "currentframe", "getouterframes", "getinnerframes", "f_back", "f_locals",
          "f_globals", "f_code", "f_builtins", "tb_frame", "gi_frame", "cr_frame", "get_referrers", "get_referents",
          "get_objects", "_current_frames", "_current_exceptions", "__code__", "__globals__", "__closure__",
          "co_consts", "__subclasses__", "__reduce_ex__", "extract_stack", "walk_stack", "format_stack", "print_stack",
          "walk_tb"}
DYNAMIC_ATTRIBUTES = {"__dict__", "__getattribute__", "__builtins__", "__import__", "__loader__", "__spec__"}
DYNAMIC = {"exec", "eval", "compile", "__import__", "globals", "vars", "breakpoint", "__builtins__",
           "__builtin__", "__loader__", "__spec__"}
WATCH_OFF = re.compile(r"^_\w*[dD]ispatch|^Dispatch|^_(push|pop)_?mode|^_disable_current_modes$|^_?start_new_thread$|"
                       r"^(add_callback|spawn_callback|call_soon_threadsafe|run_coroutine_threadsafe|io_loop|"
                       r"iopub_thread|control_thread|IOLoop|load_inline|cpp_extension|_inductor)$")
MAGIC_CALLS = {"run_line_magic", "run_cell_magic", "system", "getoutput"}  # what IPython turns %, %% and ! into
ATTRIBUTE_BY_NAME = {"getattr", "setattr", "delattr"}
MODULES = {  # module: what importing it means
    "threading": "threads", "_thread": "threads", "concurrent": "threads", "multiprocessing": "processes",
    "subprocess": "processes", "asyncio": "threads", "pty": "processes", "signal": "signals",
    "ctypes": "raw memory", "_ctypes": "raw memory", "cffi": "raw memory", "mmap": "raw memory",
    "importlib": "code the scan cannot read", "builtins": "code the scan cannot read", "pickle": "code the scan "
    "cannot read", "marshal": "code the scan cannot read", "dill": "code the scan cannot read", "types": "code the "
    "scan cannot read", "inspect": "frame inspection", "gc": "frame inspection", "sys": None, "os": None,
    "IPython": "IPython's internals", "ipykernel": "IPython's internals", "traitlets": "IPython's internals",
    "pdb": "a debugger", "bdb": "a debugger", "trace": "a tracer", "cProfile": "a profiler", "profile": "a profiler",
    "tracemalloc": None, "code": "code the scan cannot read", "codeop": "code the scan cannot read",
    "runpy": "code the scan cannot read", "zipimport": "code the scan cannot read",
    "linecache": "code the scan cannot read", "_xxsubinterpreters": "processes", "tornado": "IPython's internals",
    "zmq": "IPython's internals", "jupyter_client": "IPython's internals",
}
OS_PROCESSES = {"fork", "forkpty", "system", "popen", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve",
                "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp", "execl", "execle", "execlp", "execlpe", "execv",
                "execve", "execvp", "execvpe", "kill", "killpg", "register_at_fork", "startfile"}
GRADING_MODULES = ("seglab.checks.probe", "seglab.checks.wire", "seglab.checks.borrowed", "seglab.course")
ALLOWED_MODULES = ("IPython.display", "os.path")  # pictures and tables; paths
GRADING_PACKAGES = {"seglab.checks", "seglab.course"}  # imported as a module object (aliased or from seglab)
GRADING_ATTRIBUTES = {"probe", "wire", "borrowed", "watch"}  # reached through such an object: c.probe.probe = ...
HISTORY = re.compile(r"^(In|Out|_ih|_oh|_dh|_i+|_i\d+|_\d+|__|___|_ii+)$")


@dataclass(frozen=True)
class ScanLimits:
    """What the grader reads of one submission before it calls it unreadable (a reason, not a crash)."""

    cells: int = 2000
    cell_bytes: int = 256 * 2**10  # of one cell's source
    notebook_bytes: int = 32 * 2**20  # of the notebook file
    nodes: int = 200_000  # AST nodes of one cell
    code_bytes: int = 512 * 2**10  # of all the student's code together (an honest notebook holds tens of KiB)


LIMITS = ScanLimits()


@dataclass(frozen=True)
class Finding:
    cell: int  # 1-based, as Jupyter numbers cells from the top
    what: str

    def __str__(self) -> str:
        return f"cell {self.cell}: {self.what}"


def python_of(source: str) -> str:
    """The cell's Python, its magics turned into the calls IPython makes for them."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):
        parts.append(_dotted(node.func) + "()")
    return ".".join(reversed(parts))


def _grading(dotted: str) -> bool:
    """Whether ``dotted`` names a module of the grading machinery, or the package that holds it as a module
    object (``import seglab.checks as c`` reaches ``c.probe``)."""
    return any(dotted == m or dotted.startswith(m + ".") for m in GRADING_MODULES) or dotted in GRADING_PACKAGES


def _imported(names: list[str]) -> list[str]:
    found = []
    for name in names:
        if _grading(name):
            found.append(f"imports {name}, part of the grader")
            continue
        meaning = MODULES.get(name.split(".")[0])
        if meaning and not name.startswith(ALLOWED_MODULES):
            found.append(f"imports {name} ({meaning})")
    return found


def imported_names(sources, *, limits: ScanLimits | None = None) -> set[str]:
    """The names that imports bind in ``sources`` (``import a.b as c``: c; ``import a.b``: a; ``from a import b``:
    b), and the names plainly assigned from one of them (``m = torch.nn.functional``: m), as far as the sources
    show."""
    limits = limits or LIMITS
    trees = []
    for source in sources:
        if len(source.encode("utf-8", "surrogatepass")) > limits.cell_bytes:
            continue  # not read (scan_source refuses the cell: it never runs)
        try:
            trees.append(ast.parse(python_of(source)))
        except Exception:  # not Python, or too odd to read: scan_source says so for its cell
            continue
    found: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                found |= {alias.asname or alias.name for alias in node.names if alias.name != "*"}
    aliases = [(target.id, _base(node.value)) for tree in trees for node in ast.walk(tree)
               if isinstance(node, ast.Assign) for target in node.targets if isinstance(target, ast.Name)]
    while True:  # m = torch; n = m.nn: both are modules
        more = {name for name, base in aliases if base in found} - found
        if not more:
            return found
        found |= more


def _base(node: ast.AST) -> str | None:
    """The name an attribute chain starts from (``a`` of ``a.b.c``), ``None`` when it starts elsewhere."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _patched(node: ast.AST, modules: set[str]) -> list[str]:
    """The attributes of imported names that ``node`` assigns or deletes (or sets with ``setattr``)."""
    targets = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor, ast.comprehension)):
        targets = [node.target]
    elif isinstance(node, ast.Delete):
        targets = node.targets
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
    stored = []
    while targets:  # a, (b.c, *d) = ...: every target of an unpacking
        target = targets.pop()
        if isinstance(target, (ast.Tuple, ast.List)):
            targets += target.elts
        elif isinstance(target, ast.Starred):
            targets.append(target.value)
        else:
            stored.append(target)
    found = [_dotted(t) for t in stored if isinstance(t, ast.Attribute) and _base(t) in modules]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr") \
            and node.args and _base(node.args[0]) in modules:
        found.append(f"{node.func.id}({_dotted(node.args[0])}, ...)")
    return found


def scan_source(source: str, *, limits: ScanLimits = LIMITS, modules: set[str] = frozenset()) -> list[str]:
    """What one cell's source does that grading cannot allow (empty: nothing). ``modules``: names that other
    cells imported (this cell's own imports are added)."""
    if len(source.encode("utf-8", "surrogatepass")) > limits.cell_bytes:
        return [f"has more than {limits.cell_bytes // 1024} KiB of code"]
    try:
        python = python_of(source)
        tree = ast.parse(python)
    except (SyntaxError, ValueError):
        return []  # it cannot run either: the kernel reports the error, nothing is hidden in it
    except (RecursionError, MemoryError):
        return ["is nested too deeply to read"]
    except Exception as error:  # IPython's transformer on odd input
        return [f"cannot be read ({type(error).__name__})"]
    found: list[str] = []
    modules = set(modules) | imported_names([source], limits=limits)

    def add(what: str) -> None:
        if what not in found:
            found.append(what)

    magics = {id(node.func.value.func) for node in ast.walk(tree) if isinstance(node, ast.Call)
              and isinstance(node.func, ast.Attribute) and node.func.attr in MAGIC_CALLS
              and isinstance(node.func.value, ast.Call) and isinstance(node.func.value.func, ast.Name)}
    for count, node in enumerate(ast.walk(tree)):
        if count > limits.nodes:
            return [f"has more than {limits.nodes} syntax nodes"]
        for patched in _patched(node, modules):
            add(f"changes {patched}, code it imported (a cell must not patch other code)")
        if isinstance(node, ast.Import):
            for what in _imported([alias.name for alias in node.names]):
                add(what)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if "_python_dispatch" in module or any(WATCH_OFF.match(alias.name) for alias in node.names):
                add(f"imports from {module} what switches off the grader's run-time watch")
            for what in _imported([f"{module}.{alias.name}" for alias in node.names]):
                add(what)
            if module in ("os", "posix") and {a.name for a in node.names} & OS_PROCESSES:
                add(f"imports {', '.join(sorted({a.name for a in node.names} & OS_PROCESSES))} from os (processes)")
            if module == "sys" and {a.name for a in node.names} & (TRACERS | FRAMES | {"modules"}):
                add(f"imports {', '.join(sorted({a.name for a in node.names} & (TRACERS | FRAMES | {'modules'})))} "
                    "from sys")
        elif isinstance(node, ast.Name):
            if node.id in DYNAMIC:
                add(f"uses {node.id} (code the scan cannot read)")
            elif HISTORY.match(node.id) and node.id not in ("_", "__"):
                add(f"reads {node.id}, the notebook's cell history")
            elif WATCH_OFF.match(node.id):
                add(f"uses {node.id} (switches off the grader's run-time watch or runs code outside it)")
            elif node.id.startswith("_seglab"):
                add(f"uses {node.id}, part of the grader")
            elif node.id == "get_ipython" and id(node) not in magics:
                add("uses get_ipython() (changes how cells run)")  # a magic becomes get_ipython().run_line_magic
        elif isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if node.attr in DYNAMIC_ATTRIBUTES:
                add(f"uses {dotted} (code the scan cannot read)")
            elif WATCH_OFF.match(node.attr):
                add(f"uses {dotted} (switches off the grader's run-time watch or runs code outside it)")
            elif node.attr in TRACERS:
                add(f"uses {dotted} (a tracer or profiler)")
            elif node.attr in FRAMES:
                add(f"uses {dotted} (frame inspection)")
            elif node.attr in HOOK_ATTRIBUTES and (dotted.startswith("get_ipython()") or node.attr not in COMMON_WORDS):
                add(f"uses {dotted} (changes how cells run)")
            elif dotted.split(".")[0] in ("os", "posix") and node.attr in OS_PROCESSES:
                add(f"uses {dotted} (processes)")
            elif dotted in ("sys.modules", "sys.meta_path", "sys.path_hooks", "sys.displayhook", "sys.excepthook",
                            "sys.stdout", "sys.stderr", "sys.__stdout__"):
                add(f"uses {dotted} (changes what other code imports or prints)")
            elif node.attr.startswith("_seglab") or _grading(dotted) or node.attr in GRADING_ATTRIBUTES:
                add(f"uses {dotted}, part of the grader")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ATTRIBUTE_BY_NAME and (
                    len(node.args) < 2 or not (isinstance(node.args[1], ast.Constant)
                                               and isinstance(node.args[1].value, str))):
                add(f"calls {node.func.id} with a computed name (code the scan cannot read)")
        if isinstance(node, ast.Call) and _dotted(node.func) in ("get_ipython().run_line_magic",
                                                                 "get_ipython().run_cell_magic"):
            magic = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            if magic not in HARMLESS_MAGICS:
                add(f"runs the magic %{magic} (only {', '.join(sorted(HARMLESS_MAGICS))} are allowed)")
        if isinstance(node, ast.Call) and _dotted(node.func) in ("get_ipython().system", "get_ipython().getoutput"):
            text = ast.unparse(node.args[0]) if node.args else ""
            if not re.match(r"""^['"]\s*(pip|conda)\s""", text):
                add("runs a shell command (!...)")
    return found


def scan_cells(sources: dict[int, str], *, limits: ScanLimits = LIMITS, trusted: tuple[str, ...] = ()) -> list[Finding]:
    """Findings for the cells ``{index in the notebook: source}`` (indices 0-based; findings number them from 1).
    ``trusted``: the sources of the release's own cells that run too (their imports are modules as well)."""
    modules = imported_names([*trusted, *sources.values()], limits=limits)
    return [Finding(index + 1, what) for index, source in sorted(sources.items())
            for what in scan_source(source, limits=limits, modules=modules)]
