"""How a batch is graded: one :class:`GradeOptions`, given by the command line (or a test) to the orchestrator
(:mod:`seglab.course.grade`), which hands it to every stage as it is."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from seglab.course.sandbox import Limits

__all__ = ["GradeOptions"]


@dataclass(frozen=True)
class GradeOptions:
    """Every setting of a grading batch, with the command line's defaults."""

    solutions_dir: str | Path = "solutions"  # the tutor's notebooks: official checks and releases
    timeout: float = 60  # seconds per cell
    total_timeout: float = 900  # seconds per notebook
    workers: int = 1  # submissions graded at once, each in its own process and kernel
    sandbox: str = "bwrap" if sys.platform == "linux" else "none"  # "none": no isolation (trusted work only)
    limits: Limits = field(default_factory=Limits)  # of each submission's sandbox
    seed: int | None = None  # with each student's name, chooses the cases (None: fresh ones every batch)
    quick: bool = True  # training cells at the tests' small budget (SEGLAB_QUICK=1); no check depends on them
    only_needed: bool = True  # run only the cells the answers and checks depend on (False: every cell)
    shard: tuple[int, int] | None = None  # (i, n): only the students of share i of n
    progress: bool = False  # a progress bar with the time left, on standard error
    feedback_dir: str | Path | None = None  # records (and pages) for the students' feedback

    def kernel_environment(self) -> dict[str, str]:
        """What a submission's kernel gets: its share of the cores as thread counts (no oversubscription), and
        ``SEGLAB_QUICK=1`` unless ``quick`` is False."""
        threads = max(1, (os.cpu_count() or 1) // max(self.workers, 1))
        environment = {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        environment["SEGLAB_QUICK"] = "1" if self.quick else "0"
        return environment
