"""Run All time of every solution notebook at full size (not the tests' quick mode), cell by cell.

Each notebook runs in a fresh kernel from a copy in a temporary folder, as a student's Run All does,
with training at the notebook's own budget (``SEGLAB_QUICK=0``). Prints per notebook the wall time,
the CPU seconds of the whole machine meanwhile (so run it on an otherwise idle machine), and its
slowest cells; these are the times the notebooks' opening cells and the kit README's table state.

Times of one day's machine do not transfer (the same machine type ran 3-4x faster or slower from one day
to the next), so they are stated at a rate: the default U-Net recipe's training images per second,
measured before and after the notebooks in the same run (``seglab.training.recipes.training_rate``; a student's
``seglab info --speed`` measures theirs). ``--write`` puts the measured times, with that rate, into the
opening cells' "**Time.**" line of ``solutions/`` (then run ``seglab release``).

    python benchmarks/notebook_times.py [--notebooks 03 04] [--json times.json] [--save executed/] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table
from grading import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]


def run(path: Path, timeout: int, save: Path | None = None) -> dict:
    notebook = nbformat.read(path, as_version=4)
    cells: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(path, folder)
        os.environ.update(SEGLAB_QUICK="0", MPLBACKEND="module://matplotlib_inline.backend_inline")
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": folder}})
        wall, cpu = time.perf_counter(), cpu_seconds()
        with client.setup_kernel():
            for index, cell in enumerate(notebook.cells):
                if cell.cell_type != "code":
                    continue
                start = time.perf_counter()
                client.execute_cell(cell, index)
                cells.append((index, time.perf_counter() - start))
        if save is not None:  # the executed notebook, to read its results
            save.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, save / path.name)
        return {"notebook": path.stem, "seconds": time.perf_counter() - wall, "cpu_seconds": cpu_seconds() - cpu,
                "cells": cells}


TIME_LINE = re.compile(r"\*\*Time\.\*\* Run All takes about .*?(?:; t|\. T)he exercises")


def duration(seconds: float) -> str:
    """A stated time: seconds below 90 s, else minutes (a range wider than 10 % is not claimed)."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def time_line(seconds: float, rate: float, day: str, trains: bool) -> str:
    """The opening cell's time statement, from a measured Run All and the machine's rate in the same run."""
    if seconds < 60:  # nothing trains: a rate would only puzzle
        return (f"**Time.** Run All takes about {duration(seconds)} on a 2-core CPU (measured on the course's CI "
                f"machine on {day}, with nothing else running). The exercises")
    return (f"**Time.** Run All takes about {duration(seconds)} on a 2-core CPU that trains the default U-Net "
            f"recipe at {rate:.0f} images/s (measured on the course's CI machine on {day}, with nothing else "
            "running; `seglab info --speed` measures your machine's rate: at half the rate expect twice the time; "
            "beside one other busy program about 1.5 times as long, beside two up to 3 times). "
            + ("Each training cell says what it trains and, after its first epoch, how long it will take on "
               "your machine. " if trains else "") + "The exercises")


def write_time_lines(results: list[dict], rate: float) -> list[str]:
    """Replace the "**Time.**" line of each measured solution notebook; returns the notebooks changed."""
    day, changed = datetime.date.today().isoformat(), []
    for result in results:
        path = ROOT / "solutions" / f"{result['notebook']}.ipynb"
        notebook = nbformat.read(path, as_version=4)
        opening = notebook.cells[0]
        trains = any(re.search(r"\b(fit|train_model)\(", cell.source) for cell in notebook.cells
                     if cell.cell_type == "code")
        line = time_line(result["seconds"], rate, day, trains)
        new = TIME_LINE.sub(lambda _match, line=line: line, opening.source, count=1)
        if new == opening.source and not TIME_LINE.search(opening.source):
            raise SystemExit(f"{path.name}: its opening cell has no '**Time.** Run All takes about ...; the "
                             "exercises' line to update")
        opening.source = new
        nbformat.write(notebook, path)
        changed.append(path.name)
    return changed


def write_readme_table(results: list[dict], rate: float) -> None:
    """The repository README's notebook table: each measured notebook's Run All column, and the header's rate."""
    path = ROOT / "README.md"
    text = path.read_text(encoding="utf-8")
    for result in results:
        row = re.compile(rf"^(\| `{re.escape(result['notebook'])}` \|[^|]*\| )[^|]*( \|)", flags=re.M)
        stated = duration(result["seconds"])
        text, found = row.subn(lambda m, t=stated: m.group(1) + t + m.group(2), text)
        if not found:
            raise SystemExit(f"README.md: no row for {result['notebook']} in the notebook table")
    text = re.sub(r"\| Run All(, measured| at \d+ images/s) \|", f"| Run All at {rate:.0f} images/s |", text)
    path.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="*", help="numbers or names (default: all of solutions/)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--json", type=Path, help="also write the per-cell times here")
    parser.add_argument("--save", type=Path, help="a folder for the executed notebooks (with their outputs)")
    parser.add_argument("--write", action="store_true",
                        help="write the measured times into the opening cells of solutions/ and the README's "
                             "notebook table (then: seglab release)")
    parser.add_argument("--write-from", type=Path, metavar="JSON",
                        help="write the times of an earlier run's --json file, without running anything")
    args = parser.parse_args()
    if args.write_from:
        earlier = json.loads(args.write_from.read_text())
        rate = (earlier["rate_before"] + earlier["rate_after"]) / 2
        print("written:", ", ".join(write_time_lines(earlier["notebooks"], rate)))
        write_readme_table(earlier["notebooks"], rate)
        return 0
    paths = sorted((ROOT / "solutions").glob("*.ipynb"))
    if args.notebooks:
        paths = [p for p in paths if any(p.stem.startswith(n) for n in args.notebooks)]
    from seglab.training.recipes import training_rate

    print(f"machine: {machine()}")
    rate_before = training_rate("unet", device="cpu")
    print(f"default U-Net recipe before: {rate_before:.0f} images/s\n", flush=True)
    results, rows = [], []
    for path in paths:
        result = run(path, args.timeout, args.save)
        results.append(result)
        slowest = sorted(result["cells"], key=lambda cell: -cell[1])[:3]
        rows.append([result["notebook"], round(result["seconds"]), round(result["cpu_seconds"]),
                     ", ".join(f"cell {i}: {s:.0f} s" for i, s in slowest)])
        print(table(["notebook", "Run All s", "CPU s", "slowest cells"], rows[-1:]).splitlines()[-1], flush=True)
    rate_after = training_rate("unet", device="cpu")
    rate = (rate_before + rate_after) / 2
    print()
    print(table(["notebook", "Run All s", "CPU s (machine)", "slowest cells"], rows))
    print(f"\ndefault U-Net recipe: {rate_before:.0f} images/s before, {rate_after:.0f} after (stated: {rate:.0f})")
    if abs(rate_after - rate_before) > 0.15 * rate:
        print("the machine's speed changed during the run by more than 15 %: the times are not written")
        args.write = False
    if args.json:
        args.json.write_text(json.dumps({"rate_before": rate_before, "rate_after": rate_after,
                                         "notebooks": results}, indent=1))
    if args.write:
        print("written:", ", ".join(write_time_lines(results, rate)))
        write_readme_table(results, rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
