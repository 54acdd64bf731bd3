"""Stage 3 of grading, the run: the grading notebook's cells executed in a fresh Jupyter kernel inside the
sandbox (:mod:`seglab.course.sandbox`), errors allowed, with a time limit per cell and one for the notebook; a
kernel that dies ends the run, and what ran before still counts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from seglab.course.execute import execute_notebook
from seglab.course.options import GradeOptions
from seglab.course.sandbox import SandboxedKernel

__all__ = ["run_sandboxed"]

KERNEL_LOG_TAIL = 500  # bytes of the kernel's console quoted when it could not start


def run_sandboxed(notebook, cells: set[int] | None, probe_cells: set[int],
                  options: GradeOptions) -> tuple[str | None, set[int]]:
    """Run ``cells`` of ``notebook`` (all when ``None``) in place, in a fresh sandboxed kernel. ``(why it stopped
    early or None, the cells that ran to their end)``: a cell in which the kernel died or was stopped is not
    among them (what it showed before may be anybody's)."""
    completed: set[int] = set()
    # the kernel's console goes to a file of the grader's own, in a folder the sandbox does not see
    with tempfile.TemporaryDirectory(prefix="seglab-grade-") as workdir, \
            tempfile.TemporaryDirectory(prefix="seglab-log-") as private:
        kernel = SandboxedKernel(workdir, sandbox=options.sandbox, limits=options.limits,
                                 environment=options.kernel_environment())
        log_path = Path(private) / "kernel.log"
        try:
            kernel.start_watchdog()
            with open(log_path, "w", encoding="utf-8", errors="replace") as log:
                stop_reason = execute_notebook(notebook, workdir, timeout=options.timeout,
                                               total_timeout=options.total_timeout, kernel_manager=kernel.manager,
                                               cell_output_bytes=options.limits.output_bytes, kernel_log=log,
                                               cells=cells, large_output_cells=probe_cells,
                                               on_cell=completed.add)
            if stop_reason and stop_reason.startswith("could not run"):
                with open(log_path, "rb") as log:
                    log.seek(max(0, os.fstat(log.fileno()).st_size - KERNEL_LOG_TAIL))
                    stop_reason += " — kernel log: " + log.read().decode("utf-8", "replace")
        finally:
            kernel.cleanup()
    if kernel.killed_reason:
        stop_reason = f"the sandbox was stopped: {kernel.killed_reason}"
    return stop_reason, completed
