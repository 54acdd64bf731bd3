"""The grader's first cell in a submission's kernel: what the probe needs, taken before any student code runs.

``seglab grade`` (and ``seglab check``, its twin) runs :func:`install` in a cell of its own before the
notebook's first cell. It

1. imports everything the probe runs through (the checks, the wire, the watch, IPython's display) and takes a
   **snapshot** of it: the functions and classes of those modules, their code and defaults, the exercises
   with their off-limits lists, ``builtins``, the entries of ``sys.modules``, the shell's display publisher.
   :func:`changed` compares the kernel with it; the probe calls it before it runs an answer and again before
   it shows the outcomes, and refuses to check when anything was replaced, however a cell reached it;
2. adds an **audit hook** (PEP 578, for the rest of the kernel's life) that refuses, at run time, what the
   source scan (:mod:`seglab.checks.tamper`) refuses in a cell: the notebook's own code cannot take a frame
   (``sys._getframe``, a traceback's ``tb_frame``, a generator's ``gi_frame``), list the interpreter's objects
   (``gc.get_objects``, ``get_referrers``), read a library function's ``__code__`` or set a tracer, profiler or
   audit hook (libraries still may: ``namedtuple``, ``traceback``, ``pdb``); code compiled from a string or a
   file at run time (``exec``, ``eval``, a module the notebook wrote) is scanned with the same rules before it
   runs; the
   process's raw memory (``/proc/self/mem``) cannot be opened; and while an answer is called
   (:func:`seglab.checks.processes.calling`) no process can be started and no signal sent to another process
   from Python (PyTorch's operators, threads and other processes are watched by :mod:`seglab.checks.borrowed`).

Honest notebooks meet none of this: it stands only where a cell tampers with grading itself.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import types
from dataclasses import dataclass, field, fields

from seglab.checks.processes import CALL

__all__ = ["STATE", "changed", "install", "scan_compiled"]

PATH_MODULES = ("seglab.checks", "seglab.checks.probe", "seglab.checks.wire", "seglab.checks.borrowed",
                "seglab.checks.origin", "seglab.checks.processes", "seglab.checks.guard", "seglab.checks.tamper",
                "seglab.checks.arithmetic", "seglab.checks.upsampling", "seglab.checks.fcn", "seglab.checks.unet",
                "IPython.core.display_functions", "IPython.display", "IPython.core.displaypub",
                "ipykernel.zmqshell", "ipykernel.iostream", "jupyter_client.session", "json", "json.encoder",
                "base64", "math", "traceback", "functools", "inspect", "threading", "_thread", "psutil")
# of numpy and torch, the names the wire uses (their namespaces change legitimately: importing torch._dynamo
# wraps torch.manual_seed)
WIRE_NAMES = {"numpy": ("ascontiguousarray", "bool_", "dtype", "float32", "float64", "frombuffer", "generic", "int64",
                        "integer", "iscomplexobj", "issubdtype", "ndarray"),
              "torch": ("Tensor", "float32", "float64", "from_numpy", "is_tensor")}
TENSOR_METHODS = ("detach", "cpu", "clone", "float", "numpy", "is_floating_point", "resolve_conj", "resolve_neg")
# what the notebook's own code may never do once the guard is in place (libraries may: namedtuple, traceback, pdb)
STUDENT_NEVER = {"sys._getframe", "sys._current_frames", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
                 "sys.settrace", "sys.setprofile", "sys.addaudithook"}
FRAME_GETS = {"tb_frame", "gi_frame", "cr_frame", "ag_frame"}  # attribute reads that hand out a frame
DURING_CALL = {"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "subprocess.Popen",
               "pty.spawn", "os.kill", "os.killpg", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata",
               "ctypes.string_at", "ctypes.wstring_at", "ctypes.call_function"}


@dataclass
class State:
    installed: bool = False
    snapshot: list = field(default_factory=list)  # (label, how to read it now, what it was)


STATE = State()
_local = threading.local()  # the hook's own work (scanning a compiled string) is not looked at again


def scan_compiled(source, filename: str, caller: str) -> str | None:
    """Why code compiled at run time must not run (the scan's first refused line), or ``None``. Scanned: what
    the notebook's own code compiles (``exec``, ``eval``, ``compile``; ``caller`` is the file of the code that
    asked), and a file outside the libraries (a module the notebook wrote and imports, a ``%run`` script).
    Libraries compile code of their own (IPython each cell's text, ``dataclasses`` a generated ``__init__``)."""
    from seglab.checks.origin import library_of
    from seglab.checks.tamper import Names, python_of, tampering

    if not isinstance(source, (str, bytes)):
        return None
    real_file = bool(filename) and not filename.startswith("<") and os.path.isfile(filename)  # a cell's is not
    if not (real_file and library_of(filename) is None) and (caller.startswith("<frozen") or library_of(caller)):
        return None
    import ast

    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    try:
        tree = ast.parse(python_of(text) if str(filename).startswith("<") else text)
    except Exception:  # it will not compile either, or it is too odd to read: compile says so
        return None
    hit = next((t for t in tampering(tree, Names([tree])) if t.refused), None)
    return None if hit is None else f"line {hit.line} {hit.what}"


def _hook(event: str, args: tuple) -> None:
    if getattr(_local, "busy", False):
        return
    if event == "open":
        path = args[0] if args else None
        if isinstance(path, (str, bytes)):
            text = os.fsdecode(path)
            if text.startswith(("/proc/", "/dev/mem", "/dev/kmem")) and text.rstrip("/").endswith("/mem"):
                raise PermissionError(f"grading does not let a notebook open {text} (raw memory)")
    elif event == "compile":
        _local.busy = True
        try:
            caller = sys._getframe(1).f_code.co_filename  # the code that compiles (C functions have no frame)
            why = scan_compiled(args[0] if args else None, str(args[1]) if len(args) > 1 else "", caller)
        finally:
            _local.busy = False
        if why:
            raise PermissionError(f"grading does not run this code: {why}")
    elif event in STUDENT_NEVER or (event == "object.__getattr__" and len(args) > 1
                                    and args[1] in FRAME_GETS | {"__code__"}):
        _local.busy = True  # what the hook reads here raises these events itself
        try:
            from seglab.checks.origin import library_of

            caller = sys._getframe(1).f_code.co_filename  # who asks: the notebook's own code, or a library's
            student = library_of(caller) is None and not caller.startswith("<frozen")
            if student and args[1:2] == ("__code__",):  # its own functions' code is the notebook's to read
                student = _library_function(args[0])
        finally:
            _local.busy = False
        if student:
            what = args[1] if event == "object.__getattr__" else event
            raise PermissionError(f"grading does not let a notebook's code use {what} (frames, the interpreter's "
                                  "objects, tracers): write your answer without it")
    elif CALL.active and event in DURING_CALL and not _own_signal(event, args):
        raise PermissionError(f"an answer may not start processes, send signals or call C code while it is "
                              f"checked ({event})")


def _library_function(value) -> bool:
    from seglab.checks.origin import library_of

    code = getattr(value, "__code__", None)
    return code is not None and library_of(code.co_filename) is not None


def _own_signal(event: str, args: tuple) -> bool:
    """A signal to the kernel itself: how ipykernel interrupts a cell at its time limit (``os.kill`` of its own
    pid, ``os.killpg`` of its own group with SIGINT). Signals to other processes (to resume a paused one) are not."""
    import signal

    if event == "os.kill":
        return len(args) == 2 and args[0] == os.getpid()
    if event == "os.killpg":
        return len(args) == 2 and args[0] == os.getpgid(0) and args[1] == signal.SIGINT
    return False


def _getter(container, key):
    return lambda: container.get(key, _MISSING) if isinstance(container, dict) else getattr(container, key,
                                                                                            _MISSING)


_MISSING = object()


def _is_code(value) -> bool:
    return callable(value) or isinstance(value, (types.ModuleType, property, staticmethod, classmethod))


def _take_snapshot() -> list:
    """(label, how to read it now, what it was) for everything the probe runs through: functions, classes and
    modules (data that changes as the kernel runs, a counter or a cache, is left out)."""
    import builtins

    taken = []

    def add(label, container, key):
        read = _getter(container, key)
        taken.append((label, read, read()))

    def add_contents(label, sequence):
        taken.append((label, lambda: tuple(sequence), tuple(sequence)))

    for name in vars(builtins):
        if name not in ("input", "raw_input"):  # ipykernel puts its own in place for each cell it runs
            add(f"builtins.{name}", vars(builtins), name)
    for module_name, names in WIRE_NAMES.items():
        if module_name in sys.modules:
            add(f"sys.modules[{module_name!r}]", sys.modules, module_name)
            for name in names:
                add(f"{module_name}.{name}", vars(sys.modules[module_name]), name)
    for module_name in [m for m in PATH_MODULES if m in sys.modules]:
        module = sys.modules[module_name]
        add(f"sys.modules[{module_name!r}]", sys.modules, module_name)
        for name, value in list(vars(module).items()):
            if name.startswith("__") or not _is_code(value):
                continue
            add(f"{module_name}.{name}", vars(module), name)
            for part in ("__code__", "__defaults__", "__kwdefaults__"):
                if isinstance(value, types.FunctionType):
                    add(f"{module_name}.{name}.{part}", value, part)
            if isinstance(value, type) and value.__module__ == module_name:
                for attribute, member in list(vars(value).items()):
                    if _is_code(member) and not attribute.startswith("__"):
                        add(f"{module_name}.{name}.{attribute}", vars(value), attribute)
    if "torch" in sys.modules:
        tensor = sys.modules["torch"].Tensor
        for method in TENSOR_METHODS:
            add(f"torch.Tensor.{method}", tensor, method)
    from seglab.checks import exercises

    for ex in exercises().values():
        for part in fields(ex):
            add(f"exercise {ex.id}: {part.name}", ex, part.name)
        for part in fields(ex.off_limits):
            add(f"exercise {ex.id}: off_limits.{part.name}", ex.off_limits, part.name)
    shell = _shell()
    if shell is not None:
        for name in ("display_pub", "displayhook", "display_formatter", "events", "input_transformers_cleanup",
                     "input_transformers_post", "ast_transformers"):
            add(f"get_ipython().{name}", shell, name)
        for name in ("input_transformers_cleanup", "input_transformers_post", "ast_transformers"):
            if isinstance(getattr(shell, name, None), list):
                add_contents(f"get_ipython().{name}", getattr(shell, name))
        publisher = getattr(shell, "display_pub", None)
        for name in ("session", "pub_socket"):
            if hasattr(publisher, name):
                add(f"get_ipython().display_pub.{name}", publisher, name)
        for name in ("publish", "send", "session"):  # an instance's own override of a method
            if hasattr(publisher, "__dict__") and name != "session":
                add(f"get_ipython().display_pub.{name} (its own)", vars(publisher), name)
    return taken


def _shell():
    try:
        from IPython import get_ipython

        return get_ipython()
    except ImportError:
        return None


def changed() -> list[str]:
    """What of the probe's path is no longer what :func:`install` found (empty: nothing): a function, class or
    module replaced, an exercise's data changed, a tracer or profiler left on, an IPython event handler that is
    the notebook's own code."""
    from seglab.checks.origin import library_of

    found = []
    for label, read, expected in STATE.snapshot:
        try:
            now = read()
        except Exception:
            now = _MISSING
        if now is not expected and not (isinstance(expected, tuple) and now == expected):
            found.append(label)
    if sys.gettrace() is not None or sys.getprofile() is not None:
        found.append("a tracer or profiler (sys.settrace, sys.setprofile)")
    shell = _shell()
    callbacks = getattr(getattr(shell, "events", None), "callbacks", {})
    for event, handlers in (callbacks.items() if isinstance(callbacks, dict) else ()):
        for handler in list(handlers):
            code = getattr(getattr(handler, "__func__", handler), "__code__", None)
            if code is not None and library_of(code.co_filename) is None:
                found.append(f"get_ipython().events ({event}: the notebook's {getattr(handler, '__name__', '?')})")
    return found


def install(*, sandboxed: bool | None = None) -> None:
    """Import the probe's path, take its snapshot and add the audit hook (once per kernel)."""
    if STATE.installed:
        return
    for name in (*PATH_MODULES, *WIRE_NAMES):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    from seglab.checks import exercises

    exercises()  # every check module imported, every exercise built
    CALL.sandboxed = (os.environ.get("SEGLAB_SANDBOX") == "bwrap") if sandboxed is None else sandboxed
    STATE.snapshot = _take_snapshot()
    STATE.installed = True
    sys.addaudithook(_hook)
