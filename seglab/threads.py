"""How many CPU threads PyTorch uses for seglab's training and evaluation.

PyTorch starts one thread per CPU it counts on the machine. A process may be allowed fewer: its CPU
affinity (``taskset``, a batch system's core binding) or a cgroup CPU quota (a container, a JupyterHub
spawner's ``cpu_limit``) that the CPU count does not show. More threads than that only wait for each
other or get throttled, so seglab lowers PyTorch's thread count to the CPUs the process may use,
unless ``OMP_NUM_THREADS`` says otherwise. ``seglab info`` prints the choice and why.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

__all__ = ["cgroup_cpu_quota", "limit_threads", "thread_choice", "usable_cpus"]


def cgroup_cpu_quota(root: str | Path = "/sys/fs/cgroup") -> float | None:
    """The CPU quota of this process's cgroup in CPUs (``1.5`` = 150 ms per 100 ms), ``None`` if unlimited
    or unknown. Reads cgroup v2's ``cpu.max`` or v1's ``cpu/cpu.cfs_quota_us`` and ``cpu.cfs_period_us``."""
    root = Path(root)
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cpus(root: str | Path = "/sys/fs/cgroup") -> tuple[int, str]:
    """``(CPUs this process may use, why)``: the machine's count, lowered by the affinity and the cgroup quota
    (rounded down: a quota of 1.5 CPUs gives 1 thread that is never throttled)."""
    machine = os.cpu_count() or 1
    count, reasons = machine, [f"{machine} CPUs on the machine"]
    if hasattr(os, "sched_getaffinity"):
        allowed = len(os.sched_getaffinity(0))
        if allowed < count:
            count = allowed
            reasons.append(f"the affinity allows {allowed}")
    quota = cgroup_cpu_quota(root)
    if quota is not None and max(1, math.floor(quota)) < count:
        count = max(1, math.floor(quota))
        reasons.append(f"the cgroup quota is {quota:g} CPUs")
    return count, ", ".join(reasons)


def thread_choice(root: str | Path = "/sys/fs/cgroup") -> tuple[int, str]:
    """``(threads seglab uses, why)``: ``OMP_NUM_THREADS`` when it is set, else :func:`usable_cpus`."""
    explicit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if explicit.isdigit() and int(explicit) > 0:
        return int(explicit), f"OMP_NUM_THREADS={explicit}"
    return usable_cpus(root)


def limit_threads() -> int:
    """Lower PyTorch's intra-op threads to :func:`thread_choice` (never raise them: a count set with
    ``torch.set_num_threads`` stays when it is lower); returns the threads in use."""
    threads, _ = thread_choice()
    if torch.get_num_threads() > threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
