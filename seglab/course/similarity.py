"""Similar answers across a class: ``seglab similarity SUBMISSIONS``.

Only the students' own code counts: the code cells of each exercise's answer (nbgrader ``solution``
cells), without what the released stub already holds (signature, docstring, ``raise
NotImplementedError()``) and, between two students, without anything that also appears in seglab's own
source. An answer that is a pasted or renamed copy of the seglab code its exercise puts off-limits
(:func:`seglab.checks.borrowed.copied_reference`) is reported as a pair of the student and that seglab
function (``Pair.b`` is its qualified name, e.g. ``seglab.arithmetic.conv_output_size``). Each answer is
normalised first — comments, docstrings and formatting dropped, local names renamed in order of first
use, string contents ignored — so renaming variables or reformatting does not hide a copy. Answers
are compared as sets of k-token fingerprints (as MOSS does): the share of the smaller answer's
fingerprints found in the other. A pair is reported when its answers share at least ``threshold`` of
their fingerprints, over the exercises both answered with enough code to tell (``min_fingerprints``).

A report is a reason to look, not a verdict: short exercises have few ways to be written, which is why
answers below ``min_fingerprints`` do not count.
"""

from __future__ import annotations

import ast
import builtins
import html
import io
import keyword
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = ["Pair", "fingerprints", "normalise", "report_html", "seglab_copies", "similar_pairs"]

K = 5  # tokens per fingerprint


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
    """The tokens of ``source`` with comments, docstrings and formatting gone and local names renamed."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # not Python (a cell magic, a syntax error): compare its plain tokens
        return source.split()
    _strip_docstrings(tree)
    text = ast.unparse(_Renamer().visit(tree))
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


def _seglab_fingerprints() -> set[int]:
    import seglab

    found: set[int] = set()
    for path in Path(seglab.__file__).parent.rglob("*.py"):
        found |= fingerprints(normalise(path.read_text(encoding="utf-8")))
    return found


@dataclass
class Pair:
    a: str
    b: str
    score: float  # shared share of fingerprints, over the exercises that count
    exercises: list[tuple[str, float]] = field(default_factory=list)  # (exercise, its share)
    cells: dict[str, tuple[str, str]] = field(default_factory=dict)  # exercise: (a's code, b's code)


def _answers(path: Path, notebooks_dir: Path) -> dict[str, dict[str, str]]:
    """``{student: {exercise: code}}`` of the answers, told by comparing each submission with the released
    notebooks in ``notebooks_dir`` (:mod:`seglab.course.plan`: the labels a student can edit count for
    nothing, so an answer moved to a relabelled cell is still the answer), read once and never through a link."""
    from seglab.course.grade import identify, parse_submission
    from seglab.course.plan import released_as
    from seglab.course.submissions import collect

    releases = {p.name: released_as(nbformat.read(p, as_version=4), p.name)
                for p in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))}
    found: dict[str, dict[str, str]] = {}
    for submission in collect(path):
        if not submission.ok:
            continue
        try:
            plan = identify(parse_submission(submission.data), submission.name, releases)
        except Exception:  # not a notebook: nothing to compare
            continue
        if plan is None:
            continue
        for grade_id, index in plan.release.answers.items():
            if plan.release.cells[index].cell_type == "code" and plan.answers.get(grade_id):
                found.setdefault(submission.student, {})[grade_id] = plan.answer_source(grade_id)
    return found


def _stubs(notebooks_dir: Path) -> set[int]:
    """Fingerprints of the released notebooks' answer cells (the stub every student starts from)."""
    found: set[int] = set()
    for path in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
                found |= fingerprints(normalise(cell.source))
    return found


def seglab_copies(answers: dict[str, dict[str, str]]) -> list[Pair]:
    """One pair (student, seglab's qualified name) for each student whose answers copy off-limits seglab code;
    its score is the highest share of the reference's fingerprints found in one of the answers."""
    from seglab.checks import exercises
    from seglab.checks.borrowed import reference_source, references_copied

    known = exercises()
    found: dict[tuple[str, str], Pair] = {}
    for student in sorted(answers):
        for grade_id, code in sorted(answers[student].items()):
            if grade_id not in known:
                continue
            for reference, _, share in references_copied(code, known[grade_id].off_limits):
                pair = found.setdefault((student, reference), Pair(student, reference, 0.0))
                pair.score = max(pair.score, share)
                pair.exercises.append((grade_id, share))
                pair.cells[grade_id] = (code, reference_source(reference))
    return list(found.values())


def similar_pairs(path: str | Path, *, notebooks_dir: str | Path = "notebooks", threshold: float = 0.8,
                  min_fingerprints: int = 12) -> list[Pair]:
    """Pairs of students whose answers share at least ``threshold`` of their fingerprints, and pairs of a
    student and the seglab function their answer copies, most similar first. ``notebooks_dir``: the released
    (student) notebooks, whose stubs never count."""
    answers = _answers(Path(path), Path(notebooks_dir))
    common = _stubs(Path(notebooks_dir)) | _seglab_fingerprints()
    prints = {student: {exercise: fingerprints(normalise(code)) - common for exercise, code in own.items()}
              for student, own in answers.items()}
    students = sorted(prints)
    pairs = []
    for i, a in enumerate(students):
        for b in students[i + 1:]:
            shared = total = 0
            per_exercise = []
            for exercise in sorted(set(prints[a]) & set(prints[b])):
                x, y = prints[a][exercise], prints[b][exercise]
                smaller = min(len(x), len(y))
                if smaller < min_fingerprints:
                    continue
                overlap = len(x & y)
                shared, total = shared + overlap, total + smaller
                per_exercise.append((exercise, overlap / smaller))
            if total and shared / total >= threshold:
                cells = {e: (answers[a][e], answers[b][e]) for e, share in per_exercise if share >= threshold}
                pairs.append(Pair(a, b, shared / total, per_exercise, cells))
    pairs += seglab_copies(answers)
    return sorted(pairs, key=lambda p: -p.score)


def report_html(pairs: list[Pair], threshold: float) -> str:
    """A self-contained page: each pair, its share per exercise, and the matching cells side by side."""
    parts = ["<!doctype html><meta charset='utf-8'><title>seglab similarity</title><style>",
             "body{font-family:sans-serif;margin:2em;max-width:80em}pre{background:#f6f6f6;padding:.5em;"
             "white-space:pre-wrap;margin:0}table{border-collapse:collapse;width:100%}td{vertical-align:top;"
             "width:50%;padding:.3em}h2{border-top:1px solid #ccc;padding-top:.5em}</style>",
             f"<h1>Similar answers</h1><p>{len(pairs)} pairs share at least {threshold:.0%} of their code "
             "(names, comments and formatting ignored; the released stubs and seglab's own code excluded), "
             "or copy a seglab function the exercise asks to write (named as the second of the pair: "
             "<code>seglab....</code>). A reason to look, not a verdict.</p>"]
    for pair in pairs:
        a, b = html.escape(pair.a), html.escape(pair.b)
        parts.append(f"<h2>{a} and {b}: {pair.score:.0%}</h2><ul>")
        parts += [f"<li>{html.escape(e)}: {share:.0%}</li>" for e, share in pair.exercises]
        parts.append("</ul>")
        for exercise, (code_a, code_b) in pair.cells.items():
            parts.append(f"<h3>{html.escape(exercise)}</h3><table><tr><th>{a}</th><th>{b}</th></tr><tr>"
                         f"<td><pre>{html.escape(code_a)}</pre></td><td><pre>{html.escape(code_b)}</pre></td></tr>"
                         "</table>")
    return "\n".join(parts)
