"""A sandboxed Jupyter kernel for one submission: bubblewrap on Linux, resource limits everywhere.

Inside the sandbox (``bwrap``, Debian package ``bubblewrap``) the kernel

* sees the system's programs and libraries, the Python installation and the seglab package, all
  read-only, and nothing else of the machine: not ``solutions/``, not the tutor's home, not other
  submissions;
* can write only to its own folder (a copy of the submission) and a small ``/tmp``;
* has no network (a network namespace with nothing in it) and its own process namespace, so it can
  neither see nor signal the grader's processes (its "parent" is the sandbox's init, which ignores it);
* runs with limits on address space (``memory``), processes, CPU time and file size, set by
  :mod:`seglab.course.limits` before the kernel starts; a watchdog in the grader also stops a
  sandbox whose process count passes the limit (root is exempt from ``RLIMIT_NPROC``);
* talks to the grader over Unix sockets in a folder that both see (ZeroMQ ``ipc`` transport), and is
  interrupted by a control message rather than a signal.

``sandbox="none"`` runs the same kernel without bubblewrap (limits still apply), for machines without
it; the grader then warns loudly that a submission can reach the tutor's files and processes.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SANDBOXES", "Limits", "SandboxUnavailable", "SandboxedKernel", "bwrap_available"]

SANDBOXES = ("bwrap", "none")


class SandboxUnavailable(RuntimeError):
    """The requested sandbox cannot run on this machine."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 6 * 2**30  # address space of each process (PyTorch alone maps about 2 GiB)
    processes: int = 64  # processes and threads in the sandbox beyond the kernel's own
    cpu_seconds: int = 3600  # CPU time of each process
    file_bytes: int = 256 * 2**20  # largest file it may write
    output_bytes: int = 2 * 2**20  # output a notebook may send to the grader (the rest is dropped)
    tmp_bytes: int = 512 * 2**20  # size of its /tmp


def bwrap_available() -> bool:
    return sys.platform.startswith("linux") and shutil.which("bwrap") is not None


def _read_only_paths() -> list[str]:
    """What the kernel needs to read: system folders, the Python installation, seglab's package folder."""
    import seglab

    paths = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", sys.prefix, sys.base_prefix,
             sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages(),
             str(Path(seglab.__file__).resolve().parent)]  # an editable install: the package folder alone
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        paths.append(user_site)
    found = []
    for path in paths:
        if os.path.isdir(path) and not any(path == p or path.startswith(p.rstrip("/") + "/") for p in found):
            found = [p for p in found if not p.startswith(path.rstrip("/") + "/")] + [path]
    return found


class SandboxedKernel:
    """The kernel manager for one submission; use ``manager`` with ``nbclient.NotebookClient(km=...)``."""

    def __init__(self, workdir: str | Path, *, sandbox: str = "bwrap", limits: Limits | None = None,
                 environment: dict[str, str] | None = None):
        from jupyter_client import AsyncKernelManager  # nbclient is async: a blocking manager deadlocks it
        from jupyter_client.kernelspec import KernelSpecManager

        if sandbox not in SANDBOXES:
            raise ValueError(f"sandbox must be one of {', '.join(SANDBOXES)}, not {sandbox!r}")
        if sandbox == "bwrap" and not bwrap_available():
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed: on Debian or Ubuntu run `sudo apt-get "
                                     "install bubblewrap`, or grade with --sandbox none (no isolation)")
        limits = limits or Limits()
        self.workdir, self.sandbox, self.limits = Path(workdir).resolve(), sandbox, limits
        self.control = Path(tempfile.mkdtemp(prefix="sgk-"))  # short: a Unix socket path has 108 bytes at most
        environment = {"HOME": str(self.workdir), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                       "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp", "IPYTHONDIR": "/tmp/ipython",
                       "JUPYTER_RUNTIME_DIR": "/tmp/jupyter", "PYTHONDONTWRITEBYTECODE": "1",
                       **(environment or {})}
        python = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        if hasattr(os, "getuid"):  # POSIX: resource limits (Windows has none to set)
            nproc = 0 if os.getuid() == 0 else _tasks_of_user(os.getuid()) + limits.processes  # system-wide count
            python = [sys.executable, "-m", "seglab.course.limits", "--memory", str(limits.memory_bytes),
                      "--processes", str(nproc), "--cpu", str(limits.cpu_seconds),
                      "--file-size", str(limits.file_bytes), "--", *python]
        if sandbox == "bwrap":
            argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
                    "--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
            for path in _read_only_paths():
                argv += ["--ro-bind", path, path]
            argv += ["--bind", str(self.workdir), str(self.workdir), "--bind", str(self.control), str(self.control),
                     "--chdir", str(self.workdir)]
            for name, value in environment.items():
                argv += ["--setenv", name, value]
            argv += python
            env = {}
        else:
            argv, env = python, environment
        spec_dir = self.control / "kernels" / "seglab-sandbox"
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(json.dumps({
            "argv": argv, "env": env, "display_name": "seglab sandbox", "language": "python",
            "interrupt_mode": "message"}))  # a signal would reach bubblewrap, not the kernel
        self.manager = AsyncKernelManager(kernel_name="seglab-sandbox",
                                     kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(self.control / "kernels")]),
                                     transport="ipc", ip=str(self.control / "k"),
                                     connection_file=str(self.control / "connection.json"))
        if sandbox == "none":
            self.manager.cwd = str(self.workdir)
        self._watchdog: threading.Thread | None = None
        self._stop = threading.Event()
        self.killed_reason: str | None = None

    # -- process watchdog: root is exempt from RLIMIT_NPROC, so count the sandbox's processes ourselves

    def start_watchdog(self, interval: float = 0.05) -> None:
        self._watchdog = threading.Thread(target=self._watch, args=(interval,), daemon=True)
        self._watchdog.start()

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            process = getattr(getattr(self.manager, "provisioner", None), "process", None)
            if process is None or process.poll() is not None:
                continue
            count = _count_descendants(process.pid)
            if count > self.limits.processes + 8:  # the kernel and its helpers are a few processes
                self.killed_reason = f"it started more than {self.limits.processes} processes (a fork bomb?)"
                _kill_tree(process.pid)

    def cleanup(self) -> None:
        """Stop the watchdog and the kernel with everything it started, and remove the sockets.

        nbclient shuts down only kernels it started itself; this one is ours. Killing bubblewrap ends
        the sandbox's process namespace, and with it every process inside."""
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
        process = getattr(getattr(self.manager, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            _kill_tree(process.pid)
            try:
                process.wait(timeout=10)
            except Exception:  # a zombie must not stop the batch
                pass
        shutil.rmtree(self.control, ignore_errors=True)


def _tasks_of_user(uid: int) -> int:
    """Processes and threads of ``uid`` on the machine (what ``RLIMIT_NPROC`` counts)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.stat(f"/proc/{entry.name}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _descendants(pid: int) -> list[int]:
    children, found, todo = _children_map(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _count_descendants(pid: int) -> int:
    return len(_descendants(pid)) if os.path.isdir("/proc") else 0


def _kill_tree(pid: int) -> None:
    import signal

    for process in [pid, *_descendants(pid)]:
        try:
            os.kill(process, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.05)
