"""`seglab grade` on a class of generated submissions of notebook 01.

The submissions cycle through five kinds: correct, partially correct, broken (syntax error), endless
loop, and not a notebook (invalid JSON). The script grades the first n of them for several n with
``--workers`` parallel workers, prints submissions per minute (time should grow linearly with n), then
grades the largest set one by one (``--workers 1``) and checks that every grade is identical. Last, it
grades the largest set without the sandbox (``sandbox="none"``) to show what the isolation costs.

With ``--course`` it grades one student's whole course instead: every graded notebook (01–05) with all
its exercises solved, one at a time, as ``seglab grade`` does by default (training cells in quick mode,
only the cells that answers and checks depend on), and prints the wall and CPU seconds (the grader and
its kernels together: run it on an idle machine) per notebook and per student.

    python benchmarks/grading.py [--count 100] [--workers 2] [--timeout 10] [--sandbox bwrap]
    python benchmarks/grading.py --course [--full] [--all-cells]
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table

from seglab.course.grade import GradeOptions, grade
from seglab.course.sandbox import bwrap_available

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("correct", "partial", "broken", "endless", "invalid")


def _cell(notebook, grade_id):
    return next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def make_submissions(folder: Path, count: int) -> None:
    solution = nbformat.read(ROOT / "solutions" / "01_convolution_arithmetic.ipynb", as_version=4)
    student = nbformat.read(ROOT / "notebooks" / "01_convolution_arithmetic.ipynb", as_version=4)
    exercises = ["conv_output_size", "pool_output_size", "transposed_conv_output_size", "receptive_field"]
    for n in range(count):
        kind, path = KINDS[n % len(KINDS)], folder / f"student{n:03d}.ipynb"
        if kind == "invalid":
            path.write_text('{"cells": [ this is not json')
            continue
        notebook = copy.deepcopy(student)
        solved = exercises if kind == "correct" else exercises[: 1 + n % 3]
        for grade_id in solved:
            _cell(notebook, grade_id).source = _cell(solution, grade_id).source
        if kind == "broken":
            _cell(notebook, "receptive_field").source = "def receptive_field(layers)\n    return 1, 1"
        if kind == "endless":
            _cell(notebook, "receptive_field").source = "def receptive_field(layers):\n    while True:\n        pass"
        nbformat.write(notebook, path)


def solved(name: str) -> nbformat.NotebookNode:
    """The student version of notebook ``name`` with every answer cell filled in from the solution."""
    solution = nbformat.read(ROOT / "solutions" / name, as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers and cell.cell_type == "code":
            cell.source = answers[grade_id]
    return notebook


def cpu_seconds() -> float:
    """CPU time used on this machine so far (all processes, from /proc/stat: the grader, its sandboxes and
    kernels, which are not all this process's waited-for children); this process's own and its children's
    where there is no /proc. Run on an otherwise idle machine."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
        return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def course(args) -> int:
    """Seconds to grade one student's whole course, notebook by notebook."""
    from seglab.course.graded import load_course

    graded = [name for name, found in load_course(ROOT / "solutions").exercises.items() if found]
    print(f"machine: {machine()}\none student, {len(graded)} graded notebooks, sandbox {args.sandbox}, "
          f"training cells {'at full size' if args.full else 'in quick mode'}\n")
    rows, total, total_cpu, ok = [], 0.0, 0.0, True
    with tempfile.TemporaryDirectory() as tmp:
        for name in graded:
            folder = Path(tmp) / name[:2]
            folder.mkdir()
            nbformat.write(solved(name), folder / "student.ipynb")
            start, start_cpu = time.perf_counter(), cpu_seconds()
            result = grade(folder, GradeOptions(solutions_dir=ROOT / "solutions", timeout=args.timeout * 30,
                                                total_timeout=3600, sandbox=args.sandbox, seed=1, quick=not args.full,
                                                only_needed=not args.all_cells))
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
            points = sum(float(r.points) for r in result if r.points != "")
            most = sum(float(r.max) for r in result if r.points != "")
            ok &= points == most
            total, total_cpu = total + seconds, total_cpu + cpu
            rows.append([name, round(seconds, 1), round(cpu, 1), f"{points:g} / {most:g}"])
    rows.append(["whole course (one student)", round(total, 1), round(total_cpu, 1), ""])
    print(table(["notebook", "seconds", "CPU seconds", "automatic points"], rows))
    print(f"{'PASS' if ok else 'FAIL'}  every solved exercise gets its points")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10, help="seconds per cell")
    parser.add_argument("--sandbox", choices=["bwrap", "none"], default="bwrap" if bwrap_available() else "none")
    parser.add_argument("--course", action="store_true", help="grade one student's whole course instead")
    parser.add_argument("--full", action="store_true", help="(--course) training cells at full size")
    parser.add_argument("--all-cells", action="store_true", help="(--course) run every cell, as before slicing")
    args = parser.parse_args()
    if args.course:
        return course(args)
    sizes = sorted({max(1, args.count // 4), max(1, args.count // 2), args.count})
    print(f"machine: {machine()}\n{args.count} submissions ({', '.join(KINDS)}), {args.workers} workers, "
          f"sandbox {args.sandbox}\n")
    rows, graded = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            folder = Path(tmp) / f"class{size}"
            folder.mkdir()
            make_submissions(folder, size)
            start = time.perf_counter()
            graded[size] = grade(folder, GradeOptions(solutions_dir=ROOT / "solutions", timeout=args.timeout, seed=1,
                                 workers=args.workers, sandbox=args.sandbox))
            seconds = time.perf_counter() - start
            rows.append([size, round(seconds, 1), round(size / seconds * 60, 1), round(seconds / size, 2)])
            print(f"{size} submissions: {seconds:.0f} s", flush=True)
        print()
        print(table(["submissions", "seconds", "submissions/min", "seconds per submission"], rows))
        largest = Path(tmp) / f"class{args.count}"
        start = time.perf_counter()
        one_by_one = grade(largest, GradeOptions(solutions_dir=ROOT / "solutions", timeout=args.timeout, workers=1,
                                                 seed=1, sandbox=args.sandbox))
        print(f"\none by one: {time.perf_counter() - start:.0f} s")
        other = "none" if args.sandbox == "bwrap" else "bwrap"
        if other == "none" or bwrap_available():
            start = time.perf_counter()
            grade(largest, GradeOptions(solutions_dir=ROOT / "solutions", timeout=args.timeout, workers=args.workers,
                                        sandbox=other))
            seconds = time.perf_counter() - start
            print(f"sandbox {other}: {args.count / seconds * 60:.1f} submissions/min "
                  f"({seconds / args.count:.2f} s each) against {rows[-1][2]} with sandbox {args.sandbox}")

    def key(rows):
        return sorted((r.student, r.exercise, r.points, r.message) for r in rows)

    same = key(one_by_one) == key(graded[args.count])
    per_submission = [row[3] for row in rows]
    linear = max(per_submission) <= 1.3 * min(per_submission)
    print(f"{'PASS' if same else 'FAIL'}  grades with {args.workers} workers identical to one by one")
    print(f"{'PASS' if linear else 'FAIL'}  time grows linearly (seconds per submission within 30 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
