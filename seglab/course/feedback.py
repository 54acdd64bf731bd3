"""Feedback for students: one self-contained HTML page per student and notebook.

``seglab grade SUBMISSIONS --feedback DIR`` keeps, for every submission, a record of the grader's own
results (``DIR/<student>/<notebook>.json``: points per exercise and part, the first wrong case with its
inputs, the expected and the received value, the hint; the answers to questions graded by hand) and
renders ``DIR/<student>/<notebook>.html`` from it, the grades CSV and the hand-grading sheet. After
``seglab grade --manual SHEET --feedback DIR`` the pages show the tutor's points and comments too.

A page holds nothing from the solution notebooks: no hidden-test source, no solution text (the
messages and hints are the checks' own, written for students), only the student's own answers.
Pictures (maps and images) are embedded PNGs, so a page opens offline and prints as it looks.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

from seglab.checks.wire import decode, encode

__all__ = ["render_page", "write_pages", "write_record"]

STYLE = """
body{font-family:system-ui,sans-serif;max-width:52em;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em} .sub{color:#555;margin-top:0}
table{border-collapse:collapse;width:100%;margin:1em 0} th,td{border-bottom:1px solid #ddd;padding:.35em;
text-align:left;vertical-align:top} .pts{white-space:nowrap;text-align:right}
.ok{color:#1a7f37} .no{color:#b3261e} .wait{color:#8a6d00}
section{border-top:1px solid #ccc;margin-top:1.5em;padding-top:.5em;break-inside:avoid}
pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap;border-radius:4px} img{max-width:100%}
.hint{background:#eef5ff;border-left:4px solid #3b6fd8;padding:.4em .8em}
@media print{body{margin:0;max-width:none} section{page-break-inside:avoid}}
"""


def write_record(folder: str | Path, student: str, notebook: str, exercises: list[dict],
                 answers: dict[str, str]) -> Path:
    """Keep the grader's results for one submission (values as :mod:`seglab.checks.wire` data)."""
    path = Path(folder) / _safe(student) / f"{Path(notebook).stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"student": student, "notebook": notebook, "exercises": encode(exercises), "answers": answers}
    partial = path.with_suffix(".json.part")
    partial.write_text(json.dumps(record), encoding="utf-8")
    os.replace(partial, path)
    return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"


def _picture(expected, received) -> str:
    """Expected, received and their difference as one embedded PNG (maps and images only)."""
    import torch

    if not (isinstance(expected, torch.Tensor) and expected.dim() >= 2 and expected.numel() > 1):
        return ""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    def plane(t):
        return t.detach().float().reshape(-1, *t.shape[-2:])[0]

    panels = [("expected", plane(expected))]  # the oracle: PyTorch, or the check's own reference (weight map)
    if isinstance(received, torch.Tensor) and received.dim() >= 2:
        panels.append(("yours", plane(received)))
        if panels[1][1].shape == panels[0][1].shape:
            panels.append(("|difference|", (panels[1][1] - panels[0][1]).abs()))
    figure, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.6), squeeze=False)
    low = min(float(p.min()) for _, p in panels[:2])
    high = max(float(p.max()) for _, p in panels[:2])
    for axis, (title, image) in zip(axes[0], panels, strict=True):
        shown = axis.imshow(image.numpy(), cmap="magma" if title.startswith("|") else "viridis",
                            vmin=None if title.startswith("|") else low, vmax=None if title.startswith("|") else high)
        axis.set_title(f"{title}\n{tuple(image.shape)}", fontsize=8)
        axis.set_xticks([]), axis.set_yticks([])
        figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.04)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<img alt='expected, yours and their difference' src='data:image/png;base64,{data}'>"


def _value(value) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        if value.numel() <= 12:
            numbers = ", ".join(f"{float(v):.4g}" for v in value.flatten().tolist())
            return html.escape(f"tensor of shape {tuple(value.shape)}: [{numbers}]")
        return html.escape(f"tensor of shape {tuple(value.shape)}")
    return html.escape(repr(value))


def _failure(failure: dict | None) -> str:
    if not failure:
        return ""
    parts = [f"<p>For example: {html.escape(str(failure.get('label', '')))}</p>"]
    inputs = failure.get("inputs") or {}
    if inputs:
        parts.append("<table><tr><th>input</th><th>value</th></tr>" + "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{_value(v)}</td></tr>" for k, v in inputs.items()) + "</table>")
    expected, received = failure.get("expected"), failure.get("received")
    if expected is not None or received is not None:
        parts.append(f"<p>expected: {_value(expected)}<br>yours: {_value(received)}</p>")
    parts.append(_picture(expected, received))
    parts.append(f"<p class='hint'>Hint: {html.escape(str(failure.get('hint', '')))}</p>")
    return "".join(parts)


def _status(points, maximum) -> str:
    if points == "":
        return "<span class='wait'>to be graded by hand</span>"
    points, maximum = float(points), float(maximum)
    mark = "ok" if points >= maximum else "no"
    return f"<span class='{mark}'>{points:g} / {maximum:g}</span>"


def render_page(record: dict, rows, manual: dict[str, tuple[str, str]] | None = None) -> str:
    """The page for one submission: ``rows`` are its grades (CSV rows, hand-graded points included);
    ``manual``: ``{question: (points, comment)}`` from the hand-grading sheet."""
    manual = manual or {}
    details = {e["exercise"]: e for e in decode(record["exercises"])}
    total = sum(float(r.points) for r in rows if r.points != "")
    maximum = sum(float(r.max) for r in rows)
    waiting = sum(1 for r in rows if r.points == "")
    title = f"{record['student']}: {Path(record['notebook']).stem}"
    out = [f"<!doctype html><html lang='en'><meta charset='utf-8'><title>{html.escape(title)}</title>",
           f"<style>{STYLE}</style><h1>{html.escape(Path(record['notebook']).stem)}</h1>",
           f"<p class='sub'>Feedback for {html.escape(record['student'])}: {total:g} of {maximum:g} points"
           + (f"; {waiting} answer(s) still to be graded by hand" if waiting else "") + ".</p>",
           "<table><tr><th>exercise</th><th class='pts'>points</th><th>result</th></tr>"]
    for row in rows:
        out.append(f"<tr><td>{html.escape(row.exercise)}</td><td class='pts'>{_status(row.points, row.max)}</td>"
                   f"<td>{html.escape(row.message)}</td></tr>")
    out.append("</table>")
    for row in rows:
        detail = details.get(row.exercise, {})
        answer = record.get("answers", {}).get(row.exercise)
        if answer is None and not detail.get("failure") and not detail.get("parts"):
            continue
        out.append(f"<section><h2>{html.escape(detail.get('title') or row.exercise)} — "
                   f"{_status(row.points, row.max)}</h2>")
        if detail.get("parts"):
            out.append("<ul>" + "".join(f"<li class='{'ok' if got >= most else 'no'}'>{html.escape(name)}: "
                                        f"{got:g} / {most:g}</li>" for name, got, most in detail["parts"]) + "</ul>")
        out.append(_failure(detail.get("failure")))
        if answer is not None:
            _, comment = manual.get(row.exercise, ("", ""))
            out.append(f"<p>Your answer:</p><pre>{html.escape(answer)}</pre>")
            if comment:
                out.append(f"<p>Tutor's comment: {html.escape(comment)}</p>")
        out.append("</section>")
    out.append("</html>")
    return "\n".join(out)


def write_pages(folder: str | Path, rows, manual_entries=()) -> list[Path]:
    """Render every record in ``folder`` with the grades ``rows`` and the hand-grading sheet's entries."""
    folder = Path(folder)
    comments = {(e.student, e.notebook, e.question): (e.points, e.comment) for e in manual_entries}
    written = []
    for path in sorted(folder.glob("*/*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        own = [r for r in rows if r.student == record["student"] and r.notebook == record["notebook"]]
        if not own:
            continue
        manual = {q: v for (s, n, q), v in comments.items() if s == record["student"] and n == record["notebook"]}
        page = path.with_suffix(".html")
        page.write_text(render_page(record, own, manual), encoding="utf-8")
        written.append(page)
    return written
