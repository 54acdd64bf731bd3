"""Run All time of every solution notebook at full size (not the tests' quick mode), cell by cell.

Each notebook runs in a fresh kernel from a copy in a temporary folder, as a student's Run All does,
with training at the notebook's own budget (``SEGLAB_QUICK=0``). Prints per notebook the wall time,
the CPU seconds of the whole machine meanwhile (so run it on an otherwise idle machine), and its
slowest cells; these are the times the notebooks' opening cells and the README's table state.

    python benchmarks/notebook_times.py [--notebooks 03 04] [--json times.json] [--save executed/]
"""

from __future__ import annotations

import argparse
import json
import os
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="*", help="numbers or names (default: all of solutions/)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--json", type=Path, help="also write the per-cell times here")
    parser.add_argument("--save", type=Path, help="a folder for the executed notebooks (with their outputs)")
    args = parser.parse_args()
    paths = sorted((ROOT / "solutions").glob("*.ipynb"))
    if args.notebooks:
        paths = [p for p in paths if any(p.stem.startswith(n) for n in args.notebooks)]
    print(f"machine: {machine()}\n")
    results, rows = [], []
    for path in paths:
        result = run(path, args.timeout, args.save)
        results.append(result)
        slowest = sorted(result["cells"], key=lambda cell: -cell[1])[:3]
        rows.append([result["notebook"], round(result["seconds"]), round(result["cpu_seconds"]),
                     ", ".join(f"cell {i}: {s:.0f} s" for i, s in slowest)])
        print(table(["notebook", "Run All s", "CPU s", "slowest cells"], rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(["notebook", "Run All s", "CPU s (machine)", "slowest cells"], rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
