r"""Code as a reader compares it: ``normalise`` (comments, docstrings and formatting dropped, local names renamed
in order of first use, string contents ignored) and its k-token ``fingerprints``, as MOSS compares programs.
Used to tell a pasted copy of seglab's code (:mod:`seglab.checks.borrowed`) and similar answers across a class
(:mod:`seglab.course.similarity`).

>>> normalise("def f(x):  # a comment\n    return x + 1") == normalise("def g(y):\n    return y + 1")
True
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import tokenize

__all__ = ["K", "TooDeep", "fingerprints", "normalise"]

K = 5  # tokens per fingerprint


class TooDeep(ValueError):
    """Code nested deeper than Python's own parser and unparser read (``1+1+...+1`` with thousands of terms):
    it cannot be normalised, so it cannot be compared."""


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]


class _Renamer(ast.NodeTransformer):
    """Local names become v1, v2, ... in order of first use; attributes, keywords and builtins stay."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def _new(self, name: str) -> str:
        if name in dir(builtins) or keyword.iskeyword(name):
            return name
        return self.names.setdefault(name, f"v{len(self.names) + 1}")

    def visit_Name(self, node):
        node.id = self._new(node.id)
        return node

    def visit_arg(self, node):
        node.arg, node.annotation = self._new(node.arg), None
        return node

    def visit_FunctionDef(self, node):
        node.name = self._new(node.name)
        self.generic_visit(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        node.name = self._new(node.name)
        self.generic_visit(node)
        return node

    def visit_Constant(self, node):
        if isinstance(node.value, str):
            node.value = "S"
        return node


def normalise(source: str) -> list[str]:
    """The tokens of ``source`` with comments, docstrings and formatting gone and local names renamed.

    Raises :class:`TooDeep` for code nested too deeply to read (Python's parser, renamer and unparser recurse
    once per level: a long enough chain of ``+`` raises ``RecursionError`` in any of them)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # not Python (a cell magic, a syntax error): compare its plain tokens
        return source.split()
    except (RecursionError, MemoryError):
        raise TooDeep("nested too deeply for Python to read") from None
    try:
        _strip_docstrings(tree)
        text = ast.unparse(_Renamer().visit(tree))
    except RecursionError:
        raise TooDeep("nested too deeply for Python to read") from None
    skip = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER, tokenize.COMMENT}
    tokens = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type not in skip:
            tokens.append(token.string)
        elif token.type in (tokenize.INDENT, tokenize.DEDENT):
            tokens.append(tokenize.tok_name[token.type])
    return tokens


def fingerprints(tokens: list[str]) -> set[int]:
    return {hash(tuple(tokens[i:i + K])) for i in range(len(tokens) - K + 1)}
