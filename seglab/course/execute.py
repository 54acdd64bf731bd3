"""Run a notebook's code cells in a fresh Jupyter kernel, the way a grader or a self-check needs it.

Errors are allowed (a failing cell does not stop the run), each cell has a time limit (the kernel is
interrupted and the cell gets a ``CellTimeout`` error output) and the whole notebook has one; a kernel
that dies ends the run, and the outputs so far stay in the notebook.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["execute_notebook"]


def execute_notebook(notebook, workdir: str | Path, *, timeout: float = 60, total_timeout: float = 900,
                     kernel_name: str = "python3", on_cell: Callable[[int], None] | None = None) -> str | None:
    """Execute ``notebook`` in place with ``workdir`` as the kernel's working folder.

    Returns why the run stopped early (a dead kernel, the total time limit, a kernel that could not
    start), or ``None`` when every code cell ran. ``on_cell(index)`` is called after each code cell.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    client = NotebookClient(
        notebook, timeout=timeout, kernel_name=kernel_name, allow_errors=True, interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeout", "evalue": f"the cell ran longer than {timeout:g} s",
                          "traceback": []},
        resources={"metadata": {"path": str(workdir)}})
    start, stop_reason = time.monotonic(), None
    try:
        with client.setup_kernel():
            for index, cell in enumerate(notebook.cells):
                if cell.cell_type != "code":
                    continue
                if time.monotonic() - start > total_timeout:
                    return f"the notebook ran longer than the total limit of {total_timeout:g} s"
                try:
                    client.execute_cell(cell, index)
                except DeadKernelError:
                    return f"the kernel died in cell {index + 1}"
                if on_cell is not None:
                    on_cell(index)
    except Exception as error:  # the kernel could not start, or died while starting
        stop_reason = f"could not run the notebook ({type(error).__name__}: {error})"
    return stop_reason
