"""How many CPU threads PyTorch uses for seglab's training and evaluation.

PyTorch starts one thread per CPU it counts on the machine. A process may be allowed fewer: its CPU
affinity (``taskset``, a batch system's core binding) or a cgroup CPU quota (a container, a JupyterHub
spawner's ``cpu_limit``) that the CPU count does not show. More threads than that only wait for each
other or get throttled, so seglab lowers PyTorch's thread count to the CPUs the process may use
(:func:`limit_threads`).

Even then the cores may be shared: a second notebook's kernel, a browser, other users of a JupyterHub.
PyTorch's OpenMP threads busy-wait for each other at the end of every parallel operation, so when one
of them loses its core to another process, the others spin and the step takes many times longer (on 2
cores beside a second training notebook, 0.1 of the idle speed). The wait policy cannot be changed once
torch is imported, which notebooks do first, so seglab changes what it can: the number of threads.
While ``fit`` trains on the CPU, a :class:`ThreadTuner` times a few steps with each candidate count
(1, 2, 4, ... up to the usable CPUs; a count far slower than one already tried is dropped after one step)
and trains with the fastest; it measures again after a while, and at once when the step time changes
(another process started or stopped).

``SEGLAB_THREAD_POLICY`` chooses: ``adaptive`` (the default, as above), ``fixed`` (the usable CPUs,
never tuned) or ``torch`` (PyTorch's own count, untouched). ``OMP_NUM_THREADS`` fixes the count.
``seglab info`` prints the choice and why.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path

import torch

__all__ = ["ThreadTuner", "cgroup_cpu_quota", "limit_threads", "most_threads", "set_threads", "thread_choice",
           "thread_policy", "usable_cpus"]

POLICY_VARIABLE = "SEGLAB_THREAD_POLICY"
POLICIES = ("adaptive", "fixed", "torch")


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


def _explicit_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def thread_policy() -> str:
    """``SEGLAB_THREAD_POLICY``: ``"adaptive"`` (default), ``"fixed"`` or ``"torch"``; ``"fixed"`` when
    ``OMP_NUM_THREADS`` is set (the user chose the count)."""
    policy = os.environ.get(POLICY_VARIABLE, "").strip().lower() or "adaptive"
    if policy not in POLICIES:
        raise ValueError(f"{POLICY_VARIABLE}={policy!r} is not a thread policy: use one of {', '.join(POLICIES)} "
                         "(or unset it for adaptive)")
    return "fixed" if policy == "adaptive" and _explicit_threads() else policy


def thread_choice(root: str | Path = "/sys/fs/cgroup") -> tuple[int, str]:
    """``(most threads seglab uses, why)``: ``OMP_NUM_THREADS`` when it is set, else :func:`usable_cpus`;
    the why ends with the policy (adaptive: fewer while training when the cores are shared)."""
    policy = thread_policy()
    explicit = _explicit_threads()
    if explicit:
        return explicit, f"OMP_NUM_THREADS={explicit}"
    if policy == "torch":
        return torch.get_num_threads(), f"PyTorch's own count ({POLICY_VARIABLE}=torch)"
    count, why = usable_cpus(root)
    if policy == "adaptive" and count > 1:
        why += (f"; while training, fewer when they are faster: step times are measured, as other programs "
                f"share the cores ({POLICY_VARIABLE}=fixed to keep {count})")
    return count, why


#: ``(time.monotonic(), threads)`` of the last :class:`ThreadTuner` decision in this process.
_last_tuned: tuple[float, int] | None = None
RECENT_SECONDS = 120.0  # how long evaluation trusts a tuner's choice (the load may have changed since)
_set_by_seglab: int | None = None  # the count seglab set last: a different current count is the user's


def set_threads(threads: int) -> None:
    """``torch.set_num_threads``, remembered as seglab's own choice (which seglab may raise again later)."""
    global _set_by_seglab
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    _set_by_seglab = threads


def most_threads() -> int:
    """The most threads seglab may use now: :func:`thread_choice`'s count, and no more than a lower count the
    user set with ``torch.set_num_threads`` (a count seglab set itself does not bind)."""
    threads, _ = thread_choice()
    current = torch.get_num_threads()
    return threads if current == _set_by_seglab else min(threads, current)


def limit_threads() -> int:
    """Set PyTorch's intra-op threads to :func:`most_threads` (so never above a lower count the user set);
    returns the threads in use. Under the adaptive policy, a count a :class:`ThreadTuner` chose in the last
    ``RECENT_SECONDS`` caps it too, so that an evaluation right after training avoids the threads that
    training found slow. The ``torch`` policy leaves the count alone."""
    policy = thread_policy()
    if policy == "torch":
        return torch.get_num_threads()
    threads = most_threads()
    if policy == "adaptive" and _last_tuned is not None and time.monotonic() - _last_tuned[0] < RECENT_SECONDS:
        threads = min(threads, _last_tuned[1])
    set_threads(threads)
    return threads


def candidate_counts(most: int) -> list[int]:
    """The thread counts a :class:`ThreadTuner` tries: ``most``, then halved down to 1 (16 → 16, 8, 4, 2, 1)."""
    counts = [max(1, most)]
    while counts[-1] > 1:
        counts.append(counts[-1] // 2)
    return counts


class ThreadTuner:
    """Picks PyTorch's thread count for CPU training from measured step times.

    Call :meth:`step_done` after every training step with its seconds and images; the tuner sets the
    thread count for the next step. It trials each candidate (:func:`candidate_counts`, fewest first) for
    ``block`` steps (the first of each block only settles, the others are timed), trains with the fastest
    per image, and trials again after ``interval`` seconds (doubled, up to ``longest``, while the choice
    stays the same) or as soon as the median of the last ``block`` steps differs from the trial's by more
    than ``change`` times (another process started or stopped using the cores). A count whose step,
    settling or timed, takes more than ``give_up`` times the best median so far is dropped from the trial
    at once: on shared cores a step with too many threads can take seconds, and one such step says enough.
    The warm-up steps run with one thread for the same reason. ``decisions`` keeps
    ``(threads, {count: seconds per image})`` per trial.
    """

    def __init__(self, most: int, *, warmup: int = 2, block: int = 4, interval: float = 10.0,
                 longest: float = 60.0, change: float = 1.5, give_up: float = 2.0, clock=time.perf_counter):
        self.candidates = candidate_counts(most)[::-1]  # fewest first: the cheap trial sets the bar
        self.choice = self.candidates[0]
        self.warmup, self.block, self.change, self.give_up, self.clock = warmup, block, change, give_up, clock
        self.first_interval, self.longest, self.interval = interval, longest, interval
        self.decisions: list[tuple[int, dict[int, float]]] = []
        self._queue: list[tuple[int, bool]] = []  # (threads, timed) of the trial steps still to run
        self._trial: dict[int, list[float]] = {}
        self._recent: list[float] = []
        self._reference = math.nan  # seconds per image of the choice when it was made
        self._due = math.inf
        set_threads(self.choice)

    @classmethod
    def for_training(cls, device: torch.device, **options) -> ThreadTuner | None:
        """A tuner when training runs on the CPU under the adaptive policy with more than one usable CPU."""
        if device.type != "cpu" or thread_policy() != "adaptive":
            return None
        most = most_threads()  # not lowered by an earlier decision: the tuner tries fewer itself
        return cls(most, **options) if most > 1 else None

    def step_done(self, seconds: float, images: int) -> None:
        """Record one training step and set the thread count for the next."""
        per_image = seconds / max(images, 1)
        if self.warmup > 0:  # the first steps allocate memory and build caches: not typical
            self.warmup -= 1
            if self.warmup == 0:
                self._start_trial()
            return
        if self._queue:
            threads, timed = self._queue.pop(0)
            hopeless = per_image > self.give_up * self._best_so_far(other_than=threads)
            if timed or hopeless:
                self._trial.setdefault(threads, []).append(per_image)
            if hopeless:  # far slower than a count already tried: its other steps would only cost time
                self._queue = [(count, timed) for count, timed in self._queue if count != threads]
            if self._queue:
                self._use(self._queue[0][0])
            else:
                self._decide()
            return
        self._recent = [*self._recent, per_image][-self.block:]
        if len(self._recent) == self.block:
            ratio = statistics.median(self._recent) / self._reference
            if not 1 / self.change <= ratio <= self.change:  # the machine's load changed: measure again
                self.interval = self.first_interval
                self._start_trial()
                return
        if self.clock() >= self._due:
            self._start_trial()

    def _start_trial(self) -> None:
        # the first step of each block pays for the switch of thread count: run, not timed
        self._queue = [(threads, step > 0) for threads in self.candidates for step in range(self.block)]
        self._trial, self._recent = {}, []
        self._use(self._queue[0][0])

    def _best_so_far(self, other_than: int) -> float:
        """The lowest median seconds per image of the other counts this trial has timed (inf if none)."""
        medians = [statistics.median(times) for threads, times in self._trial.items() if threads != other_than]
        return min(medians, default=math.inf)

    def _decide(self) -> None:
        medians = {threads: statistics.median(times) for threads, times in self._trial.items() if times}
        choice = min(medians, key=medians.get)
        self.interval = min(self.interval * 2, self.longest) if choice == self.choice else self.first_interval
        self.choice, self._reference = choice, medians[choice]
        self._due = self.clock() + self.interval
        self.decisions.append((choice, medians))
        self._use(choice)
        global _last_tuned
        _last_tuned = (time.monotonic(), choice)

    @staticmethod
    def _use(threads: int) -> None:
        set_threads(threads)
