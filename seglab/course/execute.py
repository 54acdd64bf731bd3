"""Run a notebook's code cells in a fresh Jupyter kernel, the way a grader or a self-check needs it.

Errors are allowed (a failing cell does not stop the run), each cell has a time limit (the kernel is
interrupted and the cell gets a ``CellTimeout`` error output) and the whole notebook has one; a kernel
that dies ends the run, and the outputs so far stay in the notebook. Output is capped per cell and per
notebook, so a cell that floods its output costs only itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["execute_notebook"]

OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error", "update_display_data"}


def _client_class():
    from nbclient import NotebookClient

    class CappedClient(NotebookClient):
        """A NotebookClient that keeps at most ``cell_output_bytes`` of output per cell."""

        cell_output_bytes = 1 << 20
        total_output_bytes = 16 << 20
        large_output_cells: frozenset[int] = frozenset()
        large_output_bytes = 256 << 20

        def process_message(self, msg, cell, cell_index):
            if msg["msg_type"] in OUTPUT_TYPES:
                size = len(json.dumps(msg["content"], default=str))
                used = self._cell_bytes.get(cell_index, 0)
                self._cell_bytes[cell_index] = used + size
                if cell_index in self.large_output_cells:  # the grader's own probes: their answers are data
                    limit, total = self.large_output_bytes, 0
                else:
                    self._total_bytes = getattr(self, "_total_bytes", 0) + size
                    limit, total = self.cell_output_bytes, self._total_bytes
                if used + size > limit or total > self.total_output_bytes:
                    if cell_index not in self._truncated:
                        self._truncated.add(cell_index)
                        cell.outputs.append({"output_type": "stream", "name": "stderr",
                                             "text": "[output truncated: the cell printed too much]\n"})
                    return None
            return super().process_message(msg, cell, cell_index)

    return CappedClient


def _mark_timeout(cell, timeout: float) -> None:
    """Say in the cell that it hit the time limit (nbclient tells only through the execute reply)."""
    if not any(o.get("output_type") == "error" for o in cell.outputs):
        cell.outputs.append({"output_type": "error", "ename": "CellTimeout",
                             "evalue": f"the cell ran longer than {timeout:g} s", "traceback": []})


def _responds(client, index: int, seconds: float = 15) -> bool:
    """After an interrupted cell: does the kernel run a new one? (A cell may ignore the interrupt.)"""
    import nbformat

    probe, timeout, cell = nbformat.v4.new_code_cell("pass"), client.timeout, client.nb.cells[index]
    client.timeout = seconds
    started = time.monotonic()
    try:
        client.execute_cell(probe, index)
    finally:
        client.timeout, client.nb.cells[index] = timeout, cell  # nbclient stores the probe at that index
    return time.monotonic() - started < seconds


def execute_notebook(notebook, workdir: str | Path, *, timeout: float = 60, total_timeout: float = 900,
                     kernel_name: str = "python3", on_cell: Callable[[int], None] | None = None,
                     kernel_manager=None, cell_output_bytes: int = 1 << 20, kernel_log=None,
                     cells: set[int] | None = None, large_output_cells: set[int] = frozenset()) -> str | None:
    """Execute ``notebook`` in place with ``workdir`` as the kernel's working folder.

    Returns why the run stopped early (a dead kernel, the total time limit, a kernel that could not
    start), or ``None`` when every code cell ran. ``on_cell(index)`` is called after each code cell.
    ``kernel_manager``: a ``jupyter_client`` kernel manager to use instead of one for ``kernel_name``
    (the grader's sandboxed kernel). ``kernel_log``: an open file for the kernel process's own console
    output (default: this process's). ``cells``: indices into ``notebook.cells`` of the code cells to run
    (default: all); the others are left as they are. ``large_output_cells``: indices of cells whose output
    is data the caller asked for (the grader's probes), capped at 256 MiB instead of ``cell_output_bytes``.
    """
    from nbclient.exceptions import DeadKernelError

    client = _client_class()(
        notebook, km=kernel_manager, timeout=timeout, kernel_name=kernel_name, allow_errors=True,
        interrupt_on_timeout=True, error_on_timeout={"ename": "CellTimeout", "evalue": "", "traceback": []},
        resources={"metadata": {"path": str(workdir)}})
    client._cell_bytes, client._truncated, client.cell_output_bytes = {}, set(), cell_output_bytes
    client.large_output_cells = frozenset(large_output_cells)
    start, stop_reason = time.monotonic(), None
    try:
        console = {"stdout": kernel_log, "stderr": kernel_log} if kernel_log is not None else {}
        with client.setup_kernel(**console):
            for index, cell in enumerate(notebook.cells):
                if cell.cell_type != "code" or (cells is not None and index not in cells):
                    continue
                if time.monotonic() - start > total_timeout:
                    return f"the notebook ran longer than the total limit of {total_timeout:g} s"
                try:
                    started = time.monotonic()
                    client.execute_cell(cell, index)
                    if time.monotonic() - started >= timeout:  # interrupted at the time limit
                        _mark_timeout(cell, timeout)
                        if not _responds(client, index):
                            return f"the kernel did not stop when cell {index + 1} was interrupted"
                except DeadKernelError:
                    return f"the kernel died in cell {index + 1}"
                if on_cell is not None:
                    on_cell(index)
    except Exception as error:  # the kernel could not start, or died while starting
        stop_reason = f"could not run the notebook ({type(error).__name__}: {error})"
    return stop_reason
