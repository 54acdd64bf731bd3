"""Borrowed answers: an exercise's answer must not be, wrap or call what the exercise asks to write.

Each exercise declares what is off-limits (:class:`OffLimits`): seglab's own reference code (matched
by source file and qualified name, so a saved reference is still recognised; by its compiled code, so a
copy of its module under another name or its source compiled as another file is too; and by its
normalised source, so a pasted or renamed copy is too: :func:`copied_reference`), PyTorch operators (matched
where every PyTorch call ends up, the ATen dispatcher, so ``F.conv_transpose2d``,
``nn.ConvTranspose2d`` and ``torch.ops.aten.convolution(..., transposed=True)`` look alike; the
families below name every operator that computes a convolution, a pooling, an interpolation ...) and
the names the grader looks for in the answer's source. :func:`watch` records what a call used, in
the calling thread, in every thread started during the call, and it counts a thread that was
already running and ran during the call (one that is not the kernel's own) as used itself.

This is a check for honest mistakes and casual copying, run in the student's own process: code
written to switch it off can do so, which is why the grader also reads the answer cell's source
(:func:`names_used`) in its own process.
"""

from __future__ import annotations

import _thread
import ast
import contextlib
import copy
import functools
import importlib
import inspect
import os
import sys
import threading
import types
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from seglab.checks.fingerprint import fingerprints, normalise
from seglab.checks.origin import library_of
from seglab.checks.processes import CALL, OtherProcesses, calling

__all__ = [
    "ALL_OPS",
    "CONVOLUTION",
    "CONVOLUTION_BACKWARD",
    "FOLD",
    "INTERPOLATION",
    "POOLING",
    "RUNNING_A_LAYER",
    "TRANSPOSED_CONVOLUTION",
    "UNFOLD",
    "OffLimits",
    "copied_reference",
    "copy_share",
    "names_used",
    "references_copied",
    "watch",
]

# --- operator families: every ATen operator (and every backend's spelling of it) that computes one thing ------
# An operator is matched by its overload packet's name as the dispatcher sees it, after PyTorch's Python
# wrappers: ``F.conv2d`` arrives as ``convolution``, ``F.avg_pool1d`` as ``avg_pool2d``, ``F.unfold`` as ``im2col``.
# ``aten.convolution``, ``aten._convolution`` and ``aten.convolution_overrideable`` are told apart by their
# ``transposed`` argument: ``"conv"`` or ``"conv_transpose"``.

CONVOLUTION = (
    "conv", "conv1d", "conv2d", "conv3d", "_convolution_mode", "conv_tbc", "_conv_depthwise2d", "conv_depthwise3d",
    "_nnpack_spatial_convolution", "_slow_conv2d_forward", "thnn_conv2d", "slow_conv3d", "slow_conv3d_forward",
    "slow_conv_dilated2d", "slow_conv_dilated3d", "cudnn_convolution", "cudnn_convolution_relu",
    "cudnn_convolution_add_relu", "miopen_convolution", "miopen_convolution_relu", "miopen_convolution_add_relu",
    "miopen_depthwise_convolution", "mkldnn_convolution", "_mps_convolution")
TRANSPOSED_CONVOLUTION = (
    "conv_transpose", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "slow_conv_transpose2d",
    "slow_conv_transpose3d", "cudnn_convolution_transpose", "miopen_convolution_transpose",
    "_mps_convolution_transpose")
# The gradient of a convolution with respect to its input is a transposed convolution.
CONVOLUTION_BACKWARD = (
    "convolution_backward", "convolution_backward_overrideable", "_convolution_double_backward",
    "_slow_conv2d_backward", "conv_tbc_backward", "mps_convolution_backward", "mps_convolution_transpose_backward")
UNFOLD = ("im2col", "unfold", "unfold_copy")  # sliding windows: a convolution is a matrix product away
FOLD = ("col2im", "unfold_backward")  # adding windows back: a transposed convolution is a matrix product away
POOLING = tuple(f"{kind}{n}d{suffix}" for kind, suffixes in (
    ("max_pool", ("", "_with_indices", "_backward", "_with_indices_backward")),
    ("avg_pool", ("", "_backward")),
    ("adaptive_avg_pool", ("", "_backward")), ("_adaptive_avg_pool", ("", "_backward")),
    ("adaptive_max_pool", ("", "_backward")),
    ("fractional_max_pool", ("", "_backward")),
    ("lp_pool", ("",)),
    ("mkldnn_max_pool", ("", "_backward")), ("mkldnn_adaptive_avg_pool", ("", "_backward")),
    ("quantized_max_pool", ("",)), ("_mps_max_pool", ("",)),
    ("max_unpool", ("",)),
) for n in (1, 2, 3) for suffix in suffixes)
_INTERPOLATION_MODES = ("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact1d",
                        "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "upsample_linear1d",
                        "upsample_bilinear2d", "_upsample_bilinear2d_aa", "upsample_bicubic2d",
                        "_upsample_bicubic2d_aa", "upsample_trilinear3d", "_upsample_lanczos2d_aa")
_SAMPLING = ("grid_sampler", "grid_sampler_2d", "grid_sampler_3d", "_grid_sampler_2d_cpu_fallback",
             "cudnn_grid_sampler", "affine_grid_generator", "cudnn_affine_grid_generator")
# (an upsampling's backward is its adjoint: fed an impulse, it returns the interpolation's kernel)
INTERPOLATION = tuple(f"{name}{suffix}" for name in _INTERPOLATION_MODES + _SAMPLING for suffix in ("", "_backward"))
# Running a layer at all (a module's forward): what an answer that reads a module's attributes must not do.
RUNNING_A_LAYER = CONVOLUTION + TRANSPOSED_CONVOLUTION + CONVOLUTION_BACKWARD + UNFOLD + FOLD + POOLING + INTERPOLATION
ALL_OPS = ("*",)  # every operator: an answer that may run no torch operator at all (a size formula)


@dataclass(frozen=True)
class OffLimits:
    """What one exercise's answer may not use.

    ``code``: ``"seglab/layers.py:bilinear_kernel"`` (a function) or ``"seglab/layers.py:Skip.*"`` (every
    method of a class). ``ops``: ATen operator names, usually sums of the families above; ``"conv"`` and
    ``"conv_transpose"`` are the two kinds of ``aten.convolution``; :data:`ALL_OPS`: any operator at all.
    ``names``: identifiers that must not appear in the answer cell. ``why``: what the exercise asks
    instead, for the message.
    """

    code: tuple[str, ...] = ()
    ops: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    why: str = ""

    def __bool__(self) -> bool:
        return bool(self.code or self.ops or self.names)

    @property
    def any_op(self) -> bool:
        return "*" in self.ops


# --- seglab's reference code, known by its place and by its code -------------------------------------------------
# A running function is the reference when its file and qualified name are the reference's, or when its code is:
# a copy of seglab/arithmetic.py imported under another name, or its source compiled as "other.py", runs the very
# same bytecode from another file. A code object's identity leaves out its file, line numbers and names (its own and
# its nested functions'): the bytecode, the constants (a nested function's code the same way, the docstring too),
# the names it reads, its variables and its signature's shape. The reference's identities are computed once per
# spec; a running code object's is computed once (cached by id, for as long as the code object lives), so the
# profile hook costs a dictionary look-up per call.

# Flags that say what kind of function it is; the others record how it was compiled (a future import, nesting).
_KIND_FLAGS = (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS | inspect.CO_GENERATOR | inspect.CO_COROUTINE
               | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE)
# A reference without a docstring and with less bytecode than this (a one-line method: `return F.interpolate(...)`)
# is too short to tell from an honest answer's code: it is known by its place only (what it calls is still known).
MIN_CODE_BYTES = 100


def _constant(value):
    """A constant of a code object as part of an identity: nested code by its identity, 1, 1.0 and True apart."""
    if isinstance(value, types.CodeType):
        return ("code", _identity(value))
    if isinstance(value, (tuple, frozenset)):
        items = tuple(_constant(item) for item in value)
        return (type(value).__name__, items if isinstance(value, tuple) else tuple(sorted(items, key=repr)))
    return (type(value).__name__, value)


def _identity(code: types.CodeType) -> tuple:
    """What a code object computes, apart from where it was compiled (file, lines) and the names it is known by."""
    return (code.co_code, code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
            code.co_flags & _KIND_FLAGS, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
            tuple(_constant(value) for value in code.co_consts))


_CODE_KEYS: dict[int, tuple[weakref.ref, int]] = {}  # id of a code object: (a weak reference to it, its key)


def _forget(ident: int, reference: weakref.ref) -> None:
    if _CODE_KEYS.get(ident, (None,))[0] is reference:  # (not a newer code object's entry at a reused id)
        _CODE_KEYS.pop(ident, None)


def _code_key(code: types.CodeType) -> int:
    """The hash of the code object's identity, computed once per code object."""
    known = _CODE_KEYS.get(id(code))
    if known is not None and known[0]() is code:
        return known[1]
    key = hash(_identity(code))
    _CODE_KEYS[id(code)] = (weakref.ref(code, functools.partial(_forget, id(code))), key)
    return key


def _functions(value) -> list:
    """The functions that a module attribute is: itself, or a class's methods (properties' too, nested classes')."""
    if isinstance(value, type):
        return [function for member in vars(value).values() for function in _functions(member)]
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        return [function for function in (value.fget, value.fset, value.fdel) if function is not None]
    try:
        value = inspect.unwrap(value)  # a decorated function runs the code it wraps
    except ValueError:
        return []
    return [value] if isinstance(getattr(value, "__code__", None), types.CodeType) else []


@functools.cache
def _reference_codes(spec: str) -> tuple[tuple[tuple, int], ...]:
    """``(identity, key)`` of each function that an off-limits spec names: the code seglab's module itself runs
    (code generated from a string, as a dataclass's ``__init__``, is left out: a student's class with the same
    fields has the same)."""
    path, _, qualname = spec.partition(":")
    try:
        value = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        for name in qualname.removesuffix(".*").split("."):
            value = getattr(value, name)
    except (ImportError, AttributeError):
        return ()
    found = []
    for function in _functions(value):
        code = function.__code__
        if code.co_filename.replace("\\", "/").endswith("/" + path) and (
                function.__doc__ is not None or len(code.co_code) >= MIN_CODE_BYTES):
            identity = _identity(code)
            found.append((identity, hash(identity)))
    return tuple(found)


class _Patterns(tuple):
    """``(path, qualified name, label)`` of each off-limits spec, and in ``codes`` the labels of the reference's code
    identities, by key (a key's several identities, in case two hashes meet)."""

    codes: dict[int, tuple[tuple[tuple, str], ...]]


def _code_patterns(specs: tuple[str, ...]) -> _Patterns:
    places, codes = [], {}
    for spec in specs:
        path, _, qualname = spec.partition(":")
        label = path.removesuffix(".py").replace("/", ".") + "." + qualname.removesuffix(".*")
        places.append((path, qualname, label))
        for identity, key in _reference_codes(spec):
            codes[key] = (*codes.get(key, ()), (identity, label))
    patterns = _Patterns(places)
    patterns.codes = codes
    return patterns


def _matches(code, patterns) -> str | None:
    filename = code.co_filename.replace("\\", "/")
    qualname = getattr(code, "co_qualname", code.co_name)
    for path, wanted, label in patterns:
        if filename.endswith("/" + path) and (
                qualname == wanted or (wanted.endswith(".*") and qualname.startswith(wanted[:-1]))):
            return label
    codes = getattr(patterns, "codes", None)
    same = codes.get(_code_key(code)) if codes else None
    if same:  # (rare: a copy of the reference, or a hash that meets one's)
        identity = _identity(code)
        return next((label for reference, label in same if reference == identity), None)
    return None


_TRANSPOSABLE = ("convolution", "_convolution", "convolution_overrideable")
MOST_OPS_NAMED = 8  # an answer that may run no operator: name the first few it ran


def _op_name(func, args, kwargs=None) -> str:
    name = func.overloadpacket.__name__
    if name in _TRANSPOSABLE:
        transposed = args[6] if len(args) > 6 else (kwargs or {}).get("transposed", False)
        return "conv_transpose" if transposed else "conv"
    return name


def _recorder_class():
    from torch.utils._python_dispatch import TorchDispatchMode

    class OpRecorder(TorchDispatchMode):
        def __init__(self, ops: frozenset[str], found: list[str], active: list[bool]):
            super().__init__()
            self.ops, self.found, self.active, self.any = ops, found, active, "*" in ops

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if self.active[0]:
                name = _op_name(func, args, kwargs)
                label = f"torch ({name})"
                if (self.any or name in self.ops) and label not in self.found and (
                        not self.any or sum(v.startswith("torch (") for v in self.found) < MOST_OPS_NAMED):
                    self.found.append(label)
            return func(*args, **(kwargs or {}))

    # PyTorch wraps __torch_dispatch__ so that torch.compile never traces it, and that wrapper imports
    # torch._dynamo on the first call: seconds on a small CPU, in every check. Nothing here is compiled,
    # so tell the wrapper the function is its own "disabled" version (where torch has no such wrapper,
    # this changes nothing).
    dispatch = OpRecorder.__dict__["__torch_dispatch__"]
    raw = getattr(dispatch, "__wrapped__", None)
    if raw is not None:
        setattr(raw, "__dynamo_disable", raw)
    return OpRecorder


@functools.cache
def _op_recorder_class():
    return _recorder_class()


# --- threads ---------------------------------------------------------------------------------------------------
# Threads started during the call: ``_thread.start_new_thread`` (which ``threading.Thread.start`` calls too) is
# replaced for the call's duration, so that a new thread runs its function under the same watch (the profile
# function for seglab's code, its own operator recorder: both are per thread). Threads that were already running
# (an earlier cell's worker, a thread pool fed through a queue) cannot be watched from outside on Python 3.11; a
# thread that is not the kernel's own and runs during the call (its Python stack moved, or it used CPU time) is
# recorded as used itself.

# (not torch: a torch loop that calls the objects it is handed, DataLoader's pin-memory loop, would run an
# answer's work in a thread the watch took for the kernel's own)
_LIBRARY_PACKAGES = ("ipykernel", "IPython", "jupyter_client", "zmq", "tornado", "traitlets", "comm", "debugpy",
                     "tqdm", "seglab", "_pytest", "pytest_timeout", "xdist", "execnet")


@functools.cache
def _package_dirs() -> tuple[str, ...]:
    found = []
    for name in _LIBRARY_PACKAGES:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if file is None:
            try:
                import importlib.util
                spec = importlib.util.find_spec(name)
                file = spec.origin if spec else None
            except (ImportError, ValueError):
                file = None
        if file:
            found.append(os.path.dirname(os.path.abspath(file)) + os.sep)
    return tuple(found)


@functools.lru_cache(maxsize=4096)
def _is_student_file(filename: str) -> bool:
    return library_of(filename) is None


def _code_file(function) -> str | None:
    try:
        function = inspect.unwrap(function)
    except ValueError:
        return None
    function = getattr(function, "__func__", function)
    code = getattr(function, "__code__", None)
    return code.co_filename if code is not None else None


_ENTRIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Thread: whether its entry is a library's


def _library_entry(thread: threading.Thread) -> bool:
    """Whether the thread's ``run`` (or target, or timer function) is defined in one of the packages whose
    threads are the kernel's own."""
    known = _ENTRIES.get(thread)
    if known is None:
        run = type(thread).run
        entry = run if run is not threading.Thread.run else (getattr(thread, "_target", None)
                                                             or getattr(thread, "function", None))
        filename = _code_file(entry) if entry is not None else None
        known = filename is not None and os.path.abspath(filename).startswith(_package_dirs())
        _ENTRIES[thread] = known
    return known


def _kernel_own(thread: threading.Thread | None, frame) -> bool:
    """A thread that ipykernel, IPython, tqdm, torch, pytest ... started and that runs their code only: its
    entry is defined in one of those packages and its stack holds no student code."""
    if thread is None or not _library_entry(thread):
        return False
    while frame is not None:
        if _is_student_file(frame.f_code.co_filename):
            return False
        frame = frame.f_back
    return True


def _cpu_ns(thread: threading.Thread | None) -> int | None:
    """The CPU time the thread has used (Linux: the scheduler's count, in ns), else ``None``."""
    native = getattr(thread, "native_id", None)
    if native is None:
        return None
    try:
        fd = os.open(f"/proc/self/task/{native}/schedstat", os.O_RDONLY)
        try:
            return int(os.read(fd, 64).split()[0])
        finally:
            os.close(fd)
    except (OSError, ValueError, IndexError):
        return None


def _stack(frame) -> tuple:
    return (frame, frame.f_lasti) if frame is not None else (None, -1)


class _Threads:
    """The other threads at the start of a call, to tell at its end which of them ran."""

    def __init__(self):
        me = threading.get_ident()
        objects = dict(threading._active)
        self.before = {}
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            thread = objects.get(ident)
            if not _kernel_own(thread, frame):
                self.before[ident] = (thread, _stack(frame), _cpu_ns(thread))
        self.known = set(sys._current_frames())

    def ran(self, started: set[int]) -> list[str]:
        """Labels of the threads besides the caller's that ran during the call: those that were running
        before and are not the kernel's own, and those started during the call without the watch."""
        me = threading.get_ident()
        objects = dict(threading._active)
        found = []
        for ident, frame in sys._current_frames().items():
            if ident == me or ident in started:
                continue
            thread = objects.get(ident)
            name = getattr(thread, "name", f"thread {ident}")
            if ident in self.before:
                _, stack, cpu = self.before[ident]
                now = _cpu_ns(thread)
                if stack != _stack(frame) or (cpu is not None and now is not None and now > cpu):
                    found.append(f"a thread besides your answer's own ({name}) that ran during the check")
            elif ident not in self.known and not _kernel_own(thread, frame):
                found.append(f"a thread besides your answer's own ({name}) started during the check")
        return found


_PATCH_LOCK = threading.Lock()


@contextmanager
def watch(off_limits: OffLimits):
    """Record, in the yielded list, the off-limits code and operators that run inside the block, in this
    thread or in any thread that runs during it, and any process besides this one that could run then: the
    others are paused for the block, and one started during it is recorded (:mod:`seglab.checks.processes`).
    Where the grader's guard is installed, no process can be started from Python during the block at all."""
    found: list[str] = []
    patterns = _code_patterns(off_limits.code)
    ops = frozenset(off_limits.ops)
    active = [True]
    started: set[int] = set()
    processes = OtherProcesses(sandboxed=CALL.sandboxed)

    def profile(frame, event, arg):
        if not active[0]:  # a thread started during the call that outlives it: stop watching it
            if threading.get_ident() in started:
                sys.setprofile(None)
        elif event == "call":
            label = _matches(frame.f_code, patterns)
            if label is not None and label not in found:
                found.append(label)

    recorder = _op_recorder_class() if ops else None
    original = _thread.start_new_thread

    def watched(function, args, kwargs=None):
        def run(*a, **kw):
            started.add(threading.get_ident())
            processes.note_thread()
            if not active[0]:
                return function(*a, **kw)
            if patterns:
                sys.setprofile(profile)
            try:
                if recorder is not None:
                    with recorder(ops, found, active):
                        return function(*a, **kw)
                return function(*a, **kw)
            finally:
                if patterns:
                    sys.setprofile(None)

        return original(run, args, kwargs) if kwargs is not None else original(run, args)

    previous, previous_threading = sys.getprofile(), threading.getprofile()
    others = _Threads()
    call = contextlib.ExitStack()
    call.enter_context(processes)  # the others paused first: pausing sends signals, refused during the call
    call.enter_context(calling())
    with _PATCH_LOCK:
        patched = threading._start_new_thread is original
        if patched:
            _thread.start_new_thread = threading._start_new_thread = watched
    if patterns:
        threading.setprofile(profile)
        sys.setprofile(profile)
    try:
        if recorder is not None:
            with recorder(ops, found, active):
                yield found
        else:
            yield found
    finally:
        active[0] = False
        if patterns:
            sys.setprofile(previous)
            threading.setprofile(previous_threading)
        if patched:
            with _PATCH_LOCK:
                _thread.start_new_thread = threading._start_new_thread = original
        elsewhere = processes.started()  # counted before the paused processes go on
        call.close()
        for label in others.ran(started) + [f"another process ({what})" for what in elsewhere]:
            if label not in found:
                found.append(label)


# --- pasted or renamed copies of seglab's reference ------------------------------------------------------------
# Both sides are normalised as :mod:`seglab.course.similarity` does (docstrings, comments, annotations and
# formatting dropped, every local name, the function's own and its arguments' included, renamed in order of first
# use, string contents ignored). A function or class of the answer is a copy of a reference when its tokens are
# the reference's, or when it holds nearly all of the reference's k-token fingerprints (a paste with a few lines
# changed, added or moved); references too short to tell from an honest answer (a one-line method) are only
# compared as part of their class.

COPY_SHARE = 0.8  # of the reference's fingerprints found in one function of the answer
COPY_MIN_FINGERPRINTS = 20  # a reference with fewer is compared only as part of its class (or not at all)


def _root() -> Path:
    return Path(__file__).resolve().parents[2]  # the folder that holds the seglab package


def _strip(node: ast.AST) -> ast.AST:
    node = copy.deepcopy(node)
    for part in ast.walk(node):
        if isinstance(part, (ast.FunctionDef, ast.AsyncFunctionDef)):
            part.returns, part.decorator_list = None, []
        elif isinstance(part, ast.ClassDef):
            part.decorator_list = []
        elif isinstance(part, ast.AnnAssign) and part.value is not None:
            part.annotation = ast.Constant(None)
    return node


def _tokens(node: ast.AST) -> list[str]:
    return normalise(ast.unparse(_strip(node)))


@functools.cache
def _reference_units(spec: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``(qualified name, normalised tokens)`` of the functions (and the class) that an off-limits spec names."""
    path, _, qualname = spec.partition(":")
    try:
        tree = ast.parse((_root() / path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return ()
    module = path.removesuffix(".py").replace("/", ".")
    units = []

    def visit(body, prefix):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + node.name
                wanted = qualname == name or (qualname.endswith(".*") and (name + ".").startswith(qualname[:-1]))
                if wanted:
                    units.append((f"{module}.{name}", tuple(_tokens(node))))
                if isinstance(node, ast.ClassDef):
                    visit(node.body, name + ".")

    visit(tree.body, "")
    return tuple(units)


def reference_source(qualified: str) -> str:
    """The source text of seglab's ``seglab.module.Class.function`` (for a report), or ``""``."""
    parts = qualified.split(".")
    for split in range(len(parts) - 1, 0, -1):
        path = _root() / ("/".join(parts[:split]) + ".py")
        if path.is_file():
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (OSError, SyntaxError):
                return ""
            nodes = tree.body
            node = None
            for name in parts[split:]:
                node = next((n for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                             and n.name == name), None)
                if node is None:
                    return ""
                nodes = getattr(node, "body", [])
            return ast.get_source_segment(path.read_text(encoding="utf-8"), node) or ""
    return ""


def _python(source: str) -> str:
    """The cell's source without IPython's magics and shell escapes (which are not Python)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def copy_share(answer: list[str], reference: tuple[str, ...]) -> float:
    """The share of the reference's fingerprints that the answer's tokens hold (1.0: all of them)."""
    if list(answer) == list(reference):
        return 1.0
    theirs = fingerprints(list(reference))
    return len(theirs & fingerprints(answer)) / len(theirs) if theirs else 0.0


def references_copied(source: str, off_limits: OffLimits) -> list[tuple[str, str, float]]:
    """``(seglab's qualified name, the answer's function or class, share)`` for every off-limits seglab
    function or class of which a function or class in ``source`` is a pasted or renamed copy."""
    if not off_limits.code:
        return []
    try:
        tree = ast.parse(_python(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    own = [(node.name, _tokens(node)) for node in ast.walk(tree)
           if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    found = []
    for spec in off_limits.code:
        for qualified, reference in _reference_units(spec):
            enough = len(fingerprints(list(reference))) >= COPY_MIN_FINGERPRINTS
            for name, tokens in own:
                share = copy_share(tokens, reference)
                if (share == 1.0 and list(tokens) == list(reference) and enough) or (enough and share >= COPY_SHARE):
                    found.append((qualified, name, share))
                    break
    return found


def copied_reference(source: str, off_limits: OffLimits) -> str | None:
    """The qualified name (``"seglab.arithmetic.conv_output_size"``) of the off-limits seglab code that the
    answer's ``source`` is a pasted or renamed copy of, else ``None``."""
    found = references_copied(source, off_limits)
    return max(found, key=lambda one: one[2])[0] if found else None


def names_used(source: str, names: tuple[str, ...]) -> list[str]:
    """The off-limits ``names`` that the answer's source uses as a name, an attribute or an import (its
    docstrings and comments may mention them)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # surrogates, null bytes, too deep
        return [name for name in names if name in source]
    seen, own = set(), set()  # names used; names the answer binds itself (its own variable `summary` is fine)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.arg):
            own.add(node.arg)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in own:
            seen.add(node.id)
        elif isinstance(node, ast.Attribute):
            seen.add(node.attr)
        elif isinstance(node, ast.alias):
            seen.update(part for part in [*node.name.split("."), node.asname or ""] if part)
        elif isinstance(node, ast.ImportFrom) and node.module:  # from seglab.arithmetic import ...
            seen.update(node.module.split("."))
    return [name for name in names if name in seen]
