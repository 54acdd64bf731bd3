"""Feedback for students: one self-contained HTML page per student and notebook.

``seglab grade run SUBMISSIONS --feedback DIR`` keeps, for every submission, a record of the grader's own
results (``DIR/<student>/<notebook>.json``: points per exercise and part, the first wrong case with its
inputs, the expected and the received value, the hint; the answers to questions graded by hand) and
renders ``DIR/<student>/<notebook>.html`` from it, the grades CSV and the hand-grading sheet. After
``seglab grade manual SHEET --feedback DIR`` the pages show the tutor's points and comments too.

A page holds nothing from the solution notebooks: no hidden-test source, no solution text (the
messages and hints are the checks' own, written for students), only the student's own answers.
Pictures (maps and images) are embedded PNGs, so a page opens offline and prints as it looks.

The page's markup and style are the template ``templates/feedback_page.html.j2`` (:mod:`seglab.course.pages`,
autoescaped): this module computes what it shows (texts cut to size, numbers, statuses, pictures).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import reprlib
from pathlib import Path

from seglab.checks.wire import decode, encode
from seglab.course.pages import render
from seglab.course.spreadsheet import clean_text, write_text

__all__ = ["folder_name", "render_page", "write_pages", "write_record"]

MAX_SHOWN = 12  # numbers of a tensor shown on a page
MAX_TEXT = 2_000  # characters of any other value shown
MAX_SIDE = 256  # pixels per side of a picture (larger planes are subsampled)


def write_record(folder: str | Path, student: str, notebook: str, exercises: list[dict],
                 answers: dict[str, str], findings: list[str] | None = None, *, refused: str | None = None) -> Path:
    """Keep the grader's results for one submission (values as :mod:`seglab.checks.wire` data), atomically,
    in ``folder/<student folder>/<notebook>.json`` (:func:`folder_name`). ``findings``: what the grader
    noticed in the submission's code, shown on the page; ``refused``: why the submission was not graded (refused
    when collected, unreadable, too large, a second copy, a step of the grader failed), said first on its page."""
    student, notebook = clean_text(student), clean_text(notebook)
    path = Path(folder) / folder_name(student) / f"{folder_name(_stem(notebook))}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"student": student, "notebook": notebook, "exercises": encode(exercises),
              "answers": {clean_text(k): clean_text(v) for k, v in (answers or {}).items()},
              "findings": [clean_text(f) for f in findings or []], "refused": clean_text(refused) if refused else ""}
    write_text(path, json.dumps(record))  # ASCII JSON: every other character escaped
    return path


def _stem(notebook: str) -> str:
    """A notebook's name without ``.ipynb``: ``01_x.ipynb (second copy)`` keeps its tail, so its page is not the
    graded copy's."""
    return notebook[:-len(".ipynb")] if notebook.lower().endswith(".ipynb") else notebook


def folder_name(name: str) -> str:
    """The folder (or file) name for a student or notebook: the normalised name
    (:func:`seglab.course.submissions.student_key`) when that is the name itself ("ada", "jane_doe"),
    else the normalised name and a hash of the exact name ("jane_doe-3f1c…" for "Jane Doe"), so two
    different names never share a folder (a normalised name holds no ``-``)."""
    from seglab.course.submissions import student_key

    name = clean_text(name)
    key = student_key(name)
    if key == name:
        return key
    return f"{key}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:12]}"


_safe = folder_name  # the older name


def _plane(tensor):
    """The first 2-d plane of ``tensor`` as floats, subsampled to at most MAX_SIDE per side (``None``: none)."""
    import torch

    if not isinstance(tensor, torch.Tensor) or tensor.dim() < 2 or tensor.numel() == 0:
        return None
    plane = tensor.detach().reshape(-1, *tensor.shape[-2:])[0].float()
    steps = [max(1, -(-size // MAX_SIDE)) for size in plane.shape]
    return plane[::steps[0], ::steps[1]]


def _picture(expected, received) -> str:
    """Expected, received and their difference as one PNG, base64-encoded (maps and images only; "": none)."""
    try:
        return _draw(expected, received)
    except Exception:  # a picture is a help, never a reason for a page to fail
        return ""


def _draw(expected, received) -> str:
    import torch

    if not (isinstance(expected, torch.Tensor) and expected.dim() >= 2 and expected.numel() > 1):
        return ""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = [("expected", _plane(expected))]  # the oracle: PyTorch, or the check's own reference (weight map)
    yours = _plane(received)
    if yours is not None:
        panels.append(("yours", yours))
        if tuple(received.shape[-2:]) == tuple(expected.shape[-2:]):
            panels.append(("|difference|", (yours - panels[0][1]).abs()))
    values = torch.cat([p.flatten() for _, p in panels[:2]])
    values = values[torch.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if values.numel() else (0.0, 1.0)
    figure, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.6), squeeze=False)
    try:
        for axis, (title, image) in zip(axes[0], panels, strict=True):
            shown = axis.imshow(torch.nan_to_num(image, nan=0.0, posinf=high, neginf=low).numpy(),
                                cmap="magma" if title.startswith("|") else "viridis",
                                vmin=None if title.startswith("|") else low,
                                vmax=None if title.startswith("|") else high)
            axis.set_title(f"{title}\n{tuple(image.shape)}", fontsize=8)
            axis.set_xticks([]), axis.set_yticks([])
            figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.04)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
    finally:
        plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _text(value, limit: int = MAX_TEXT) -> str:
    """Any text, cleaned and cut at ``limit`` characters (the template escapes it)."""
    text = clean_text(value)
    if len(text) > limit:
        text = text[:limit] + f" ... ({len(text) - limit} more characters)"
    return text


def _value(value) -> str:
    """A value as a short text: a small tensor's numbers, a larger one's shape, else a capped ``repr``."""
    try:
        import torch

        if isinstance(value, torch.Tensor):
            shape = tuple(value.shape)
            if value.numel() == 0:
                return _text(f"an empty tensor of shape {shape}")
            if value.numel() <= MAX_SHOWN:
                numbers = ", ".join(f"{float(v):.4g}" for v in value.detach().flatten().tolist())
                return _text(f"tensor of shape {shape}: [{numbers}]" if shape else f"tensor (one number): {numbers}")
            return _text(f"tensor of shape {shape}")
        return _text(reprlib.repr(value) if isinstance(value, (list, tuple, dict, set)) else repr(value))
    except Exception as error:  # a value whose repr fails: say what it is
        return _text(f"<a {type(value).__name__} that cannot be shown: {type(error).__name__}>")


def _failure(failure) -> dict | None:
    """The first wrong case as the template shows it (``None``: none)."""
    if not isinstance(failure, dict) or not failure:
        return None
    inputs = failure.get("inputs") or {}
    expected, received = failure.get("expected"), failure.get("received")
    return {"label": _text(failure.get("label", "")),
            "inputs": [(_text(k, 200), _value(v)) for k, v in list(inputs.items())[:50]]
            if isinstance(inputs, dict) else [],
            "compared": expected is not None or received is not None,
            "expected": _value(expected), "received": _value(received),
            "picture": _picture(expected, received), "hint": _text(failure.get("hint", ""))}


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _status(points, maximum) -> dict[str, str]:
    """``{"mark": "ok" | "no" | "wait", "text": ...}``: full points, fewer (or unreadable), to be graded by hand."""
    if points == "":
        return {"mark": "wait", "text": "to be graded by hand"}
    points, maximum = _number(points), _number(maximum)
    if points is None or maximum is None:
        return {"mark": "no", "text": "?"}
    return {"mark": "ok" if points >= maximum else "no", "text": f"{points:g} / {maximum:g}"}


def _parts(parts) -> list[dict[str, str]]:
    """The parts of an exercise with their points (``[name, points, most]`` each; others are skipped)."""
    shown = []
    for part in parts if isinstance(parts, list) else []:
        try:
            name, got, most = part
            got, most = float(got), float(most)
        except (TypeError, ValueError):
            continue
        shown.append({"name": _text(name, 200), "mark": "ok" if got >= most else "no", "text": f"{got:g} / {most:g}"})
    return shown


def render_page(record: dict, rows, manual: dict[str, tuple[str, str]] | None = None) -> str:
    """The page for one submission: ``rows`` are its grades (CSV rows, hand-graded points included);
    ``manual``: ``{question: (points, comment)}`` from the hand-grading sheet. Any text and any value
    (empty or 0-d tensors, NaN, huge shapes) renders; what is shown is capped."""
    manual = manual or {}
    try:
        decoded = decode(record.get("exercises") or [])
        details = {str(e["exercise"]): e for e in decoded if isinstance(e, dict) and "exercise" in e}
        broken = False
    except Exception:  # a record that is not what write_record wrote: the page still shows the points
        details, broken = {}, True
    total = sum(_number(r.points) or 0.0 for r in rows if r.points != "")
    maximum = sum(_number(r.max) or 0.0 for r in rows)
    waiting = sum(1 for r in rows if r.points == "")
    student, stem = clean_text(record.get("student", "")), _stem(clean_text(record.get("notebook", "")))
    findings = record.get("findings") or []
    refused = record.get("refused") if isinstance(record.get("refused"), str) else ""
    answers = record.get("answers") if isinstance(record.get("answers"), dict) else {}
    sections = []
    for row in rows:
        detail = details.get(row.exercise, {})
        answer = answers.get(row.exercise)
        if answer is None and not detail.get("failure") and not detail.get("parts"):
            continue
        _, comment = manual.get(row.exercise, ("", ""))
        sections.append({"title": _text(detail.get("title") or row.exercise), "status": _status(row.points, row.max),
                         "parts": _parts(detail.get("parts")), "failure": _failure(detail.get("failure")),
                         "answer": None if answer is None else _text(answer, 100_000),
                         "comment": _text(comment, 20_000) if answer is not None and comment else ""})
    return render("feedback_page.html.j2", title=_text(f"{student}: {stem}"), notebook=_text(stem),
                  student=_text(student), total=f"{total:g}", maximum=f"{maximum:g}", waiting=waiting,
                  rows=[{"exercise": _text(r.exercise), "status": _status(r.points, r.max), "message": _text(r.message)}
                        for r in rows],
                  broken=broken, refused=_text(refused),
                  findings=[_text(f) for f in findings[:50]] if isinstance(findings, list) else [],
                  sections=sections)


def write_pages(folder: str | Path, rows, manual_entries=()) -> list[Path]:
    """Render every record in ``folder`` with the grades ``rows`` and the hand-grading sheet's entries
    (atomically, as UTF-8; a record that cannot be read is skipped, the others are written)."""
    folder = Path(folder)
    comments: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
    for e in manual_entries:
        comments.setdefault((clean_text(e.student), clean_text(e.notebook)), {})[clean_text(e.question)] = \
            (e.points, e.comment)
    own: dict[tuple[str, str], list] = {}
    for row in rows:
        own.setdefault((clean_text(row.student), clean_text(row.notebook)), []).append(row)
    written = []
    for path in sorted(folder.glob("*/*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            key = (clean_text(record["student"]), clean_text(record["notebook"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a record write_record wrote
        if key not in own:
            continue
        page = path.with_suffix(".html")
        write_text(page, render_page(record, own[key], comments.get(key, {})))
        written.append(page)
    return written
