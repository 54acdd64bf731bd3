"""Borrowed answers: an exercise's answer must not be, wrap or call what the exercise asks to write.

Each exercise declares what is off-limits (:class:`OffLimits`): seglab's own reference code (matched
by source file and qualified name, so a saved or copied reference is still recognised), PyTorch
operators (matched where every PyTorch call ends up, the ATen dispatcher, so ``F.conv_transpose2d``,
``nn.ConvTranspose2d`` and ``torch.ops.aten.convolution(..., transposed=True)`` look alike) and the
names the grader looks for in the answer's source. :func:`watch` records what a call used.

This is a check for honest mistakes and casual copying, run in the student's own process: code
written to switch it off can do so, which is why the grader also reads the answer cell's source
(:func:`names_used`) in its own process.
"""

from __future__ import annotations

import ast
import sys
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["OffLimits", "names_used", "watch"]


@dataclass(frozen=True)
class OffLimits:
    """What one exercise's answer may not use.

    ``code``: ``"seglab/layers.py:bilinear_kernel"`` (a function) or ``"seglab/layers.py:Skip.*"`` (every
    method of a class). ``ops``: ATen operator names; ``"conv"`` and ``"conv_transpose"`` are the two
    kinds of ``aten.convolution``. ``names``: identifiers that must not appear in the answer cell.
    ``why``: what the exercise asks instead, for the message.
    """

    code: tuple[str, ...] = ()
    ops: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    why: str = ""

    def __bool__(self) -> bool:
        return bool(self.code or self.ops or self.names)


def _code_patterns(specs: tuple[str, ...]) -> list[tuple[str, str, str]]:
    patterns = []
    for spec in specs:
        path, _, qualname = spec.partition(":")
        label = path.removesuffix(".py").replace("/", ".") + "." + qualname.removesuffix(".*")
        patterns.append((path, qualname, label))
    return patterns


def _matches(code, patterns) -> str | None:
    filename = code.co_filename.replace("\\", "/")
    qualname = getattr(code, "co_qualname", code.co_name)
    for path, wanted, label in patterns:
        if filename.endswith("/" + path) and (
                qualname == wanted or (wanted.endswith(".*") and qualname.startswith(wanted[:-1]))):
            return label
    return None


def _op_name(func, args) -> str:
    name = func.overloadpacket.__name__
    if name in ("convolution", "_convolution") and len(args) > 6:
        return "conv_transpose" if args[6] else "conv"
    return name


def _op_recorder(ops: frozenset[str], found: list[str]):
    from torch.utils._python_dispatch import TorchDispatchMode

    class OpRecorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = _op_name(func, args)
            if name in ops and name not in found:
                found.append(f"torch ({name})")
            return func(*args, **(kwargs or {}))

    # PyTorch wraps __torch_dispatch__ so that torch.compile never traces it, and that wrapper imports
    # torch._dynamo on the first call: seconds on a small CPU, in every check. Nothing here is compiled,
    # so tell the wrapper the function is its own "disabled" version (where torch has no such wrapper,
    # this changes nothing).
    dispatch = OpRecorder.__dict__["__torch_dispatch__"]
    raw = getattr(dispatch, "__wrapped__", None)
    if raw is not None:
        setattr(raw, "__dynamo_disable", raw)
    return OpRecorder()


@contextmanager
def watch(off_limits: OffLimits):
    """Record, in the yielded list, the off-limits code and operators that run inside the block."""
    found: list[str] = []
    patterns = _code_patterns(off_limits.code)
    previous = sys.getprofile()

    def profile(frame, event, arg):
        if event == "call":
            label = _matches(frame.f_code, patterns)
            if label is not None and label not in found:
                found.append(label)

    recorder = _op_recorder(frozenset(off_limits.ops), found) if off_limits.ops else None
    if patterns:
        sys.setprofile(profile)
    try:
        if recorder is not None:
            with recorder:
                yield found
        else:
            yield found
    finally:
        if patterns:
            sys.setprofile(previous)


def names_used(source: str, names: tuple[str, ...]) -> list[str]:
    """The off-limits ``names`` that the answer's source uses as a name, an attribute or an import (its
    docstrings and comments may mention them)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
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
    return [name for name in names if name in seen]
