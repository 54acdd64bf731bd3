"""Other processes while an answer is called: paused, and new ones noticed.

An answer must be computed in the kernel's own process, where the run-time watch sees its operators and the
code it calls. So, for the duration of a call, :class:`OtherProcesses` pauses every other process that could do
the work (a server an earlier cell started, a ``multiprocessing`` pool, a shell command left running) and
resumes each one afterwards, and it tells which processes started during the call. In the grader's sandbox
(its own process namespace) that is every process in the namespace but the kernel and its ancestors, and the
namespace's pid counter (``/proc/sys/kernel/ns_last_pid``) counts every process and thread made during the
call, including ones that already ended; elsewhere (a student's own notebook, ``--sandbox none``) it is the
kernel's descendants (one that started and ended during the call goes unseen there).
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass

import psutil

__all__ = ["CALL", "OtherProcesses", "calling"]


@dataclass
class CallState:
    active: int = 0  # > 0 while an answer is called (the grader's audit hook refuses new processes then)
    sandboxed: bool = False  # the kernel has a process namespace of its own (set by the grader's guard)


CALL = CallState()


@contextlib.contextmanager
def calling():
    """The call of an answer: while it lasts, the grader's guard (where installed) refuses to start processes or
    send signals from Python."""
    CALL.active += 1
    try:
        yield
    finally:
        CALL.active = max(0, CALL.active - 1)

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)
LAST_PID = "/proc/sys/kernel/ns_last_pid"


def _read_int(path: str) -> int | None:
    try:
        with open(path, "rb") as file:
            return int(file.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _own_tasks() -> set[int]:
    try:
        return {int(name) for name in os.listdir(f"/proc/{os.getpid()}/task")}
    except (OSError, ValueError):
        return set()


class OtherProcesses:
    """Pause the other processes for a ``with`` block; :meth:`started` then names what started during it.

    ``sandboxed``: the kernel has a process namespace of its own (the grader's sandbox), so every process in
    it is the submission's."""

    def __init__(self, *, sandboxed: bool = False):
        self.sandboxed = sandboxed
        self.paused: list[psutil.Process] = []
        self.thread_ids: set[int] = set()  # native ids of the threads the watch started during the block

    def _others(self) -> list[psutil.Process]:
        me = psutil.Process()
        if not self.sandboxed:
            found = []
            for pid in _descendants():
                with contextlib.suppress(*_GONE):
                    found.append(psutil.Process(pid))
            return found
        keep = {me.pid, *(p.pid for p in _ancestors(me))}
        found = []
        for pid in psutil.pids():
            if pid in keep:
                continue
            with contextlib.suppress(*_GONE):
                found.append(psutil.Process(pid))
        return found

    def __enter__(self) -> OtherProcesses:
        others = self._others()
        self.before = {p.pid for p in others}
        self.last_pid = _read_int(LAST_PID) if self.sandboxed else None
        self.tasks = _own_tasks()
        for process in others:
            with contextlib.suppress(*_GONE):
                process.suspend()
                self.paused.append(process)
        return self

    def __exit__(self, *exc) -> None:
        for process in self.paused:
            with contextlib.suppress(*_GONE):
                process.resume()

    def note_thread(self) -> None:
        """Called in a thread the watch starts: it is the answer's own, not a process."""
        self.thread_ids.add(threading.get_native_id())

    def started(self) -> list[str]:
        """What started during the block besides the answer's own threads (call after the block)."""
        if self.sandboxed and self.last_pid is not None:
            now = _read_int(LAST_PID)
            pid_max = _read_int("/proc/sys/kernel/pid_max") or 1 << 22
            if now is None:
                return []
            made = (now - self.last_pid) % pid_max
            own = (_own_tasks() - self.tasks) | self.thread_ids
            if made > len(own):
                return [f"{made - len(own)} process(es) started during the check"]
            return []
        new = [pid for pid in _descendants() if pid not in self.before]
        return [f"{len(new)} process(es) started during the check"] if new else []


def _descendants() -> list[int]:
    """This process's descendants: on Linux from each task's ``children`` file (a few small reads: an answer is
    called thousands of times in a test run), elsewhere from psutil (which reads every process's parent)."""
    if not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"):
        with contextlib.suppress(*_GONE):
            return [p.pid for p in psutil.Process().children(recursive=True)]
        return []
    found, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children", "rb") as file:
                    children = [int(child) for child in file.read().split()]
            except (OSError, ValueError):
                continue
            found += children
            todo += children
    return found


def _ancestors(process: psutil.Process) -> list[psutil.Process]:
    with contextlib.suppress(*_GONE):
        return process.parents()
    return []
