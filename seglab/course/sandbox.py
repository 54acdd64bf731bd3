"""A sandboxed Jupyter kernel for one submission: bubblewrap on Linux, limits for the whole sandbox.

Inside the sandbox (``bwrap``, Debian package ``bubblewrap``) the kernel

* sees the system's programs and libraries, the Python installation and the seglab package, all
  read-only, and nothing else of the machine: not ``solutions/``, not the tutor's home, not other
  submissions, not the grader's log of it (:attr:`SandboxedKernel.log_path`);
* can write only to two tmpfs (in memory, never the host's disk): its ``/tmp`` of ``Limits.tmp_bytes``, which
  holds its working folder ``/tmp/work`` (also ``HOME``), and ``/dev/shm`` of ``Limits.shm_bytes``; everything
  else it sees is read-only (its ``/dev`` is its own: the usual devices and a private pseudo-terminal instance
  for ``!`` commands), except the folder of its sockets (:attr:`SandboxedKernel.control`), which it can no
  longer write to once it is ready (when the grader runs as root);
* has no network (a network namespace with nothing in it) and its own process namespace, so it can
  neither see nor signal the grader's processes (its "parent" is the sandbox's init, which ignores it);
* runs, when the grader runs as root, as a user and group of its own (a high number, different for
  every kernel, not 0), with no capabilities and ``PR_SET_NO_NEW_PRIVS``: it cannot become root again;
* is limited as a whole (every process and thread it starts counted together) by a cgroup of its own
  where the machine lets the grader create one (:func:`enforcement` says what is enforced how): cgroup
  v2 ``memory.max``/``memory.swap.max``, ``pids.max``, ``cpu.max``, or cgroup v1
  ``memory.limit_in_bytes``, ``pids.max``, ``cpu.cfs_quota_us``. Without a cgroup the fallback is per
  process (``RLIMIT_AS``), per user (``RLIMIT_NPROC``, per sandbox when the grader is root since each
  kernel has its own user) and a watchdog in the grader that adds up the sandbox's processes, threads
  and resident memory every 50 ms and kills it over the limits (it can be outrun between two looks);
* is also limited per process by :mod:`seglab.course.limits`: address space, CPU seconds, file size;
* talks to the grader over Unix sockets in a folder that both see (ZeroMQ ``ipc`` transport), and is
  interrupted by a control message rather than a signal.

``sandbox="none"`` runs the same kernel without bubblewrap, in the host folder ``workdir`` (limits,
cgroup and user still apply), for machines without it; the grader then warns loudly that a submission
can reach the tutor's files and processes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import site
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = ["SANDBOXES", "Limits", "SandboxUnavailable", "SandboxedKernel", "bwrap_available", "enforcement"]

SANDBOXES = ("bwrap", "none")
# inside bubblewrap: /tmp is the tmpfs the kernel may write to (with /dev/shm), with its working folder in
# it (a tmpfs elsewhere with /tmp a link to it fails: the sockets' folder is usually in the host's /tmp)
SANDBOX_ROOT = "/tmp"
WORK = f"{SANDBOX_ROOT}/work"
UIDS = (1 << 28, 1 << 30)  # kernels' own users and groups (root grader): far above any real account


class SandboxUnavailable(RuntimeError):
    """The requested sandbox cannot run on this machine."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 6 * 2**30  # memory of the whole sandbox (cgroup), and address space of each process
    processes: int = 64  # processes in the sandbox beyond the kernel's own (the watchdog's count)
    cpu_seconds: int = 3600  # CPU time of each process
    file_bytes: int = 256 * 2**20  # largest file it may write
    output_bytes: int = 2 * 2**20  # output a notebook may send to the grader (the rest is dropped)
    tmp_bytes: int = 512 * 2**20  # the tmpfs of the working folder and /tmp (in memory)
    shm_bytes: int = 128 * 2**20  # the tmpfs of /dev/shm (in memory)
    tasks: int = 512  # processes plus threads of the whole sandbox, the kernel's own (about 10-20) included
    cpus: float = 2.0  # CPU cores' worth of time the whole sandbox may use (cgroup only); 0: no limit
    address_space_bytes: int = 0  # RLIMIT_AS of each process; 0: memory_bytes, unless a cgroup limits memory


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


# -- cgroups: one per kernel, where the machine has a writable hierarchy with the controllers

def _mountinfo() -> list[tuple[str, str, str, str]]:
    """``(mount point, file system type, super options, root)`` of this process's mounts.

    Read by hand: ``psutil.disk_partitions(all=True)`` reads ``/proc/self/mounts``, which has neither the
    root of a mount (a cgroup namespace or a bind mount: :func:`_inside` needs it) nor the super options
    apart from the mount's own."""
    mounts = []
    try:
        with open("/proc/self/mountinfo") as file:
            for line in file:
                left, _, right = line.partition(" - ")
                fields, tail = left.split(), right.split()
                if len(fields) >= 5 and len(tail) >= 3:
                    point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
                    mounts.append((point, tail[0], tail[2], fields[3]))
    except OSError:
        pass
    return mounts


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and under ``""`` its cgroup v2 path (by hand: psutil
    has no API for cgroups)."""
    own = {}
    try:
        with open("/proc/self/cgroup") as file:
            for line in file:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for controller in controllers.split(",") if controllers else [""]:
                    own[controller.removeprefix("name=")] = path
    except (OSError, ValueError):
        pass
    return own


def _inside(point: str, root: str, path: str) -> str:
    """The folder of cgroup ``path`` in a hierarchy mounted at ``point`` from ``root``."""
    if root != "/" and (path == root or path.startswith(root.rstrip("/") + "/")):
        path = path[len(root):]
    elif root != "/":
        path = "/"  # a cgroup namespace: what we see is our own
    return os.path.normpath(point + "/" + path.lstrip("/"))


def _write(path: str, value: str) -> None:
    with open(path, "w") as file:
        file.write(value)


def _read(path: str) -> str:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return ""


def _can_make_child(folder: str) -> bool:
    probe = os.path.join(folder, f"seglab-probe-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        os.mkdir(probe)
    except OSError:
        return False
    try:
        os.rmdir(probe)
    except OSError:
        pass
    return True


_BACKEND: dict | None = None
_BACKEND_LOCK = threading.Lock()


def _cgroup_backend() -> dict:
    """How kernels get a cgroup here: ``{"kind": "v2", "parent": dir, "controllers": {...}}``,
    ``{"kind": "v1", "parents": {controller: dir}}`` or ``{"kind": None, "why": ...}`` (found once)."""
    global _BACKEND
    with _BACKEND_LOCK:
        if _BACKEND is None:
            _BACKEND = _find_backend()
        return _BACKEND


def _find_backend() -> dict:
    if not sys.platform.startswith("linux") or os.environ.get("SEGLAB_CGROUP") == "off":
        return {"kind": None, "why": "not Linux" if not sys.platform.startswith("linux") else "SEGLAB_CGROUP=off"}
    mounts, own, why = _mountinfo(), _own_cgroups(), []
    for point, fstype, _, root in mounts:  # cgroup v2 (tutors' systemd machines)
        if fstype != "cgroup2":
            continue
        if os.environ.get("SEGLAB_CGROUP"):  # a delegated cgroup given by the tutor (systemd-run -p Delegate=yes)
            parent = os.environ["SEGLAB_CGROUP"]
        elif os.geteuid() == 0:
            parent = os.path.join(point, "seglab")
        else:  # a cgroup delegated to us whose children already have the controllers
            parent = _inside(point, root, own.get("", "/"))
        available = set(_read(os.path.join(point, "cgroup.controllers")).split())
        if not {"memory", "pids"} <= available:
            why.append(f"cgroup v2 at {point} has no memory and pids controllers")
            continue
        try:
            os.makedirs(parent, exist_ok=True)
            enabled = set(_read(os.path.join(parent, "cgroup.subtree_control")).split())
            offered = set(_read(os.path.join(parent, "cgroup.controllers")).split())
            for controller in ("memory", "pids", "cpu"):
                if controller not in enabled and controller in offered:
                    try:
                        _write(os.path.join(parent, "cgroup.subtree_control"), f"+{controller}")
                    except OSError:
                        pass
        except OSError as error:
            why.append(f"cannot use {parent}: {error.strerror}")
            continue
        enabled = set(_read(os.path.join(parent, "cgroup.subtree_control")).split())
        if {"memory", "pids"} <= enabled and _can_make_child(parent):
            return {"kind": "v2", "parent": parent, "controllers": enabled & {"memory", "pids", "cpu"}}
        why.append(f"cannot make a cgroup with memory and pids in {parent}")
    parents = {}
    for point, fstype, options, root in mounts:  # cgroup v1 (older machines, this project's CI)
        if fstype != "cgroup":
            continue
        for controller in ("memory", "pids", "cpu"):
            if controller in options.split(",") and controller not in parents:
                folder = _inside(point, root, own.get(controller, "/"))
                if os.path.isdir(folder) and _can_make_child(folder):
                    parents[controller] = folder
                else:
                    why.append(f"cannot make a {controller} cgroup in {folder}")
    if "memory" in parents or "pids" in parents:
        return {"kind": "v1", "parents": parents}
    return {"kind": None, "why": "; ".join(why) or "no cgroup hierarchy is mounted"}


def _remove_stale(parent: str) -> None:
    """Remove the empty cgroups that graders no longer running left in ``parent`` (killed before cleanup)."""
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    for entry in entries:
        parts = entry.split("-")
        if len(parts) >= 3 and parts[0] == "seglab" and parts[1].isdigit() and not psutil.pid_exists(int(parts[1])):
            try:  # an old one only: a grader in another process namespace may have just made it
                if time.time() - os.stat(os.path.join(parent, entry)).st_mtime > 600:
                    os.rmdir(os.path.join(parent, entry))
            except OSError:  # processes still in it: leave it to whoever looks
                pass


_swept: set[str] = set()


class _Cgroup:
    """The cgroup (or, for v1, cgroups) of one kernel, with the sandbox's limits written in."""

    def __init__(self, backend: dict, name: str, limits: Limits):
        self.kind, self.folders, self.controllers = backend["kind"], [], set()
        for parent in [backend["parent"]] if self.kind == "v2" else backend["parents"].values():
            if parent not in _swept:
                _swept.add(parent)
                _remove_stale(parent)
        try:
            if self.kind == "v2":
                folder = os.path.join(backend["parent"], name)
                os.mkdir(folder)
                self.folders.append(folder)
                _write(os.path.join(folder, "memory.max"), str(limits.memory_bytes))
                if os.path.exists(os.path.join(folder, "memory.swap.max")):
                    _write(os.path.join(folder, "memory.swap.max"), "0")
                _write(os.path.join(folder, "pids.max"), str(limits.tasks))
                self.controllers = {"memory", "pids"}
                if "cpu" in backend["controllers"] and limits.cpus > 0:
                    _write(os.path.join(folder, "cpu.max"), f"{max(1000, int(limits.cpus * 100_000))} 100000")
                    self.controllers.add("cpu")
            else:
                for controller, parent in backend["parents"].items():
                    folder = os.path.join(parent, name)
                    if controller == "cpu" and limits.cpus <= 0:
                        continue
                    os.mkdir(folder)
                    self.folders.append(folder)
                    if controller == "memory":
                        _write(os.path.join(folder, "memory.limit_in_bytes"), str(limits.memory_bytes))
                        try:  # memory plus swap, where swap accounting is on: no swapping out of the limit
                            _write(os.path.join(folder, "memory.memsw.limit_in_bytes"), str(limits.memory_bytes))
                        except OSError:
                            pass
                    elif controller == "pids":
                        _write(os.path.join(folder, "pids.max"), str(limits.tasks))
                    else:
                        _write(os.path.join(folder, "cpu.cfs_period_us"), "100000")
                        _write(os.path.join(folder, "cpu.cfs_quota_us"), str(max(1000, int(limits.cpus * 100_000))))
                    self.controllers.add(controller)
        except OSError:
            self.remove()
            raise

    def pids(self) -> list[int]:
        """The processes in the cgroup, whether or not they are still in the kernel's tree (read by hand:
        psutil has no API for a cgroup's members)."""
        found = set()
        for folder in self.folders:
            found.update(int(p) for p in _read(os.path.join(folder, "cgroup.procs")).split() if p.isdigit())
        return sorted(found)

    def remove(self, timeout: float = 10) -> bool:
        """Kill everything in the cgroup, then remove it; True when nothing is left."""
        deadline = time.monotonic() + timeout
        for folder in reversed(self.folders):
            if self.kind == "v2" and os.path.exists(os.path.join(folder, "cgroup.kill")):
                try:
                    _write(os.path.join(folder, "cgroup.kill"), "1")
                except OSError:
                    pass
            while os.path.isdir(folder):
                for pid in self.pids():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                try:
                    os.rmdir(folder)
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
        self.folders = [f for f in self.folders if os.path.isdir(f)]
        return not self.folders


def enforcement(sandbox: str = "bwrap") -> dict[str, str]:
    """What limits each kernel, on this machine, for this user: one line per limit (for the grader to
    print once, and for the README)."""
    backend, root = _cgroup_backend(), hasattr(os, "geteuid") and os.geteuid() == 0
    return _describe(backend, set(_backend_controllers(backend)), root, sandbox)


def _backend_controllers(backend: dict) -> set[str]:
    if backend["kind"] == "v2":
        return set(backend["controllers"])
    if backend["kind"] == "v1":
        return set(backend["parents"])
    return set()


def _describe(backend: dict, controllers: set[str], root: bool, sandbox: str, uid: int | None = None) -> dict:
    kind, own_user = backend["kind"], root and sandbox == "bwrap"
    where = f"cgroup {kind}" if kind else None
    watchdog = "the grader's watchdog adds up the sandbox's {} every 50 ms (can be outrun between looks)"
    if "memory" in controllers:
        files = "memory.max, memory.swap.max" if kind == "v2" else "memory.limit_in_bytes"
        memory = f"whole sandbox: {where} {files} (no RLIMIT_AS unless Limits.address_space_bytes)"
    else:
        memory = "per process: RLIMIT_AS; whole sandbox: " + watchdog.format("resident memory")
    if "pids" in controllers:
        tasks = f"whole sandbox: {where} pids.max (processes and threads)"
    elif own_user:
        tasks = ("whole sandbox: RLIMIT_NPROC of the kernel's own user (processes and threads); "
                 + watchdog.format("processes and threads"))
    elif root:
        tasks = "root is exempt from RLIMIT_NPROC: " + watchdog.format("processes and threads")
    else:
        tasks = ("RLIMIT_NPROC of the tutor's user (system-wide count plus the limit); "
                 + watchdog.format("processes and threads"))
    if "cpu" in controllers:
        files = "cpu.max" if kind == "v2" else "cpu.cfs_quota_us"
        cpu = f"whole sandbox: {where} {files}; RLIMIT_CPU seconds per process"
    else:
        cpu = "per process only: RLIMIT_CPU seconds (no share of the machine's cores)"
    if sandbox == "bwrap":
        disk = ("two tmpfs in memory: working folder and /tmp (Limits.tmp_bytes), /dev/shm (Limits.shm_bytes); "
                "RLIMIT_FSIZE per file")
    else:
        disk = "none for the host folder (sandbox none): RLIMIT_FSIZE per file only"
    if own_user:
        user = f"uid {uid}, a user of its own (not root)" if uid is not None else \
            "a user of its own per kernel (not root)"
    else:
        user = "root (sandbox none: the kernel runs as the grader)" if root else "the tutor's own user"
    description = {"memory": memory, "tasks": tasks, "cpu": cpu, "disk": disk, "user": user}
    if not kind:
        description["cgroup"] = f"none: {backend.get('why', '')}"
    return description


# -- the kernel

_names = itertools.count()


class SandboxedKernel:
    """The kernel manager for one submission; use ``manager`` with ``nbclient.NotebookClient(km=...)``.

    ``control``: the folder of the kernel's connection file and sockets (the sandbox sees it; read
    nothing from it). ``log_path``: where to write the kernel's console output, in a folder the sandbox
    can neither see nor write. ``enforcement``: what limits this kernel (see :func:`enforcement`).
    ``uid``: the kernel's user (``None``: the grader's own). ``workdir``: the kernel's working folder
    with ``sandbox="none"`` (with bubblewrap the kernel works in ``/tmp/work``, in its tmpfs).
    """

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
        self._watchdog: threading.Thread | None = None
        self._stop = threading.Event()
        self.killed_reason: str | None = None
        self._cgroup: _Cgroup | None = None
        posix = hasattr(os, "getuid")
        root = posix and os.geteuid() == 0
        own_user = root and sandbox == "bwrap"  # sandbox none: limits only, as the grader's user
        self.uid = secrets.randbelow(UIDS[1] - UIDS[0]) + UIDS[0] if own_user else None
        self._private = Path(tempfile.mkdtemp(prefix="sgl-"))  # 0700, not in the sandbox: kernel spec, log
        self.log_path = self._private / "kernel.log"
        self.control = Path(tempfile.mkdtemp(prefix="sgk-"))  # short: a Unix socket path has 108 bytes at most
        try:
            if self.uid is not None:  # the kernel's user makes its sockets here until it is ready
                os.chown(self.control, 0, self.uid)
                os.chmod(self.control, 0o770)
            backend = _cgroup_backend() if posix else {"kind": None, "why": "not POSIX"}
            if backend["kind"]:
                name = f"seglab-{os.getpid()}-{next(_names)}-{self.uid or secrets.token_hex(4)}"
                try:
                    self._cgroup = _Cgroup(backend, name, limits)
                except OSError as error:  # e.g. a full hierarchy: the fallback, said in enforcement
                    backend = {"kind": None, "why": f"could not make the kernel's cgroup ({error})"}
            controllers = self._cgroup.controllers if self._cgroup else set()
            self.enforcement = _describe(backend, controllers, root, sandbox, self.uid)
            self._build(AsyncKernelManager, KernelSpecManager, environment, posix, root)
        except BaseException:
            self.cleanup()
            raise

    def _build(self, manager_class, spec_manager_class, environment, posix: bool, root: bool) -> None:
        limits, sandbox = self.limits, self.sandbox
        home = WORK if sandbox == "bwrap" else str(self.workdir)
        tmp = "/tmp" if sandbox == "bwrap" else tempfile.gettempdir()
        environment = {"HOME": home, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                       "USER": "student", "LOGNAME": "student", "TMPDIR": tmp,
                       "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{tmp}/matplotlib", "IPYTHONDIR": f"{tmp}/ipython",
                       "JUPYTER_RUNTIME_DIR": f"{tmp}/jupyter", "XDG_CACHE_HOME": f"{tmp}/cache",
                       "PYTHONDONTWRITEBYTECODE": "1", "SEGLAB_SANDBOX": sandbox,  # the guard: a pid namespace?
                       **(environment or {})}
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        outer = []
        if posix:  # resource limits, cgroup, user (Windows has none of them)
            address_space = limits.address_space_bytes or (0 if "memory" in self._cgroup_controllers()
                                                           else limits.memory_bytes)  # torch maps 2 GiB unused
            outer = [sys.executable, "-m", "seglab.course.limits", "--memory", str(address_space),
                     "--cpu", str(limits.cpu_seconds), "--file-size", str(limits.file_bytes)]
            for folder in self._cgroup.folders if self._cgroup else []:
                outer += ["--cgroup", folder]
            if self.uid is not None:
                outer += ["--chown", "{connection_file}", "--chown-group", str(self.uid)]
            nproc = limits.tasks if root else _tasks_of_user(os.getuid()) + limits.tasks  # system-wide count
            drop = ["--processes", str(nproc)] + (["--uid", str(self.uid), "--gid", str(self.uid)]
                                                  if self.uid is not None else [])
            if self.uid is None:
                outer += drop
            else:  # as root: bubblewrap runs as root (no user namespace), the kernel's launcher drops root
                kernel = [sys.executable, "-m", "seglab.course.limits", *drop, "--", *kernel]
            outer.append("--")
        if sandbox == "bwrap":
            argv = [*outer, *self._bwrap(root), *[x for n, v in environment.items() for x in ("--setenv", n, v)],
                    *kernel]
            env = {}
        else:
            argv, env = [*outer, *kernel], environment
        spec_dir = self._private / "kernels" / "seglab-sandbox"  # the grader reads it: not where the kernel writes
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(json.dumps({
            "argv": argv, "env": env, "display_name": "seglab sandbox", "language": "python",
            "interrupt_mode": "message"}))  # a signal would reach bubblewrap, not the kernel
        specs = spec_manager_class(kernel_dirs=[str(self._private / "kernels")])
        self.manager = manager_class(kernel_name="seglab-sandbox", kernel_spec_manager=specs,
                                     transport="ipc", ip=str(self.control / "k"),
                                     connection_file=str(self.control / "connection.json"))
        if sandbox == "none":
            self.manager.cwd = str(self.workdir)
        if self.uid is not None:
            client = self.manager.client

            def locking_client(**kwargs):  # once the kernel is ready, its sockets' folder is read-only to it
                kc = client(**kwargs)
                wait = kc.wait_for_ready

                async def wait_for_ready(*args, **kw):
                    result = await wait(*args, **kw)
                    self._lock_control()
                    return result

                kc.wait_for_ready = wait_for_ready
                return kc

            self.manager.client = locking_client

    def _cgroup_controllers(self) -> set[str]:
        return self._cgroup.controllers if self._cgroup else set()

    def _bwrap(self, root: bool) -> list[str]:
        if root:  # no user namespace: the kernel's launcher needs real setuid/setgid (and nothing more)
            argv = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                    "--unshare-cgroup-try", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            argv = ["bwrap", "--unshare-all"]
        # a /dev of its own: the usual devices and a private pseudo-terminal instance (IPython runs `!` commands
        # on a pty), its /dev/shm a size-limited tmpfs (multiprocessing's semaphores, DataLoader workers)
        argv += ["--die-with-parent", "--new-session", "--clearenv", "--proc", "/proc", "--dev", "/dev",
                 "--size", str(self.limits.shm_bytes), "--perms", "1777", "--tmpfs", "/dev/shm"]
        argv += ["--size", str(self.limits.tmp_bytes), "--perms", "1777", "--tmpfs", SANDBOX_ROOT]
        argv += ["--perms", "1777", "--dir", WORK, "--remount-ro", "/dev"]
        paths, parents = _read_only_paths(), []
        for path in paths:  # bubblewrap makes a mount point's missing parents 0700: the kernel's user could
            for parent in list(Path(path).parents)[-2::-1]:  # not reach the Python installation in /root
                if str(parent) not in parents and not any(str(parent).startswith(p.rstrip("/") + "/") or
                                                          str(parent) == p for p in paths):
                    parents.append(str(parent))
        for parent in parents:
            argv += ["--perms", "0755", "--dir", parent]
        for path in paths:
            argv += ["--ro-bind", path, path]
        for parent in list(self.control.parents)[-2::-1]:  # a TMPDIR elsewhere: its folders reachable too
            if str(parent) != SANDBOX_ROOT and not any(str(parent) == p or str(parent).startswith(p.rstrip("/") + "/")
                                                       for p in paths):
                argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--bind", str(self.control), str(self.control), "--remount-ro", "/", "--chdir", WORK]
        return argv

    def _lock_control(self, wait: float = 5) -> None:
        """Make ``control`` read-only for the kernel once all its sockets are there (root grader only)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:  # the grader's own record of the ports, not the file in control
                info = self.manager.get_connection_info()
                ports = [info[k] for k in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")]
            except (AttributeError, KeyError):
                break
            if all(os.path.exists(f"{self.control}/k-{port}") for port in ports):
                break
            time.sleep(0.02)
        try:
            os.chmod(self.control, 0o750)
        except OSError:  # cleaned up meanwhile
            pass

    # -- watchdog: counts the sandbox's processes (root is exempt from RLIMIT_NPROC) and, where no cgroup
    # limits the sandbox as a whole, its threads and memory too

    def start_watchdog(self, interval: float = 0.05) -> None:
        self._watchdog = threading.Thread(target=self._watch, args=(interval,), daemon=True)
        self._watchdog.start()

    def _watch(self, interval: float) -> None:
        controllers = self._cgroup.controllers if self._cgroup else set()
        while not self._stop.wait(interval):
            process = getattr(getattr(self.manager, "provisioner", None), "process", None)
            if process is None or process.poll() is not None:
                continue
            tree = _descendants(process.pid)
            if self._cgroup is not None:  # also what left the tree (a double fork in sandbox none)
                tree = sorted(set(tree) | set(self._cgroup.pids()) - {process.pid})
            if len(tree) > self.limits.processes + 8:  # the kernel and its helpers are a few processes
                self.killed_reason = f"it started more than {self.limits.processes} processes (a fork bomb?)"
            elif "pids" not in controllers and _threads([process.pid, *tree]) > self.limits.tasks:
                self.killed_reason = f"it started more than {self.limits.tasks} processes and threads"
            elif "memory" not in controllers and _resident([process.pid, *tree]) > self.limits.memory_bytes:
                self.killed_reason = f"it used more than {self.limits.memory_bytes / 2**30:.1f} GiB of memory"
            else:
                continue
            _kill_tree(process.pid)
            if self._cgroup is not None:
                for pid in self._cgroup.pids():
                    _kill(pid)

    def cleanup(self) -> None:
        """Stop the watchdog and the kernel with everything it started, remove its cgroup, sockets and log.

        nbclient shuts down only kernels it started itself; this one is ours. Killing bubblewrap ends
        the sandbox's process namespace, and with it every process inside; the cgroup catches the rest."""
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
        process = getattr(getattr(getattr(self, "manager", None), "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            _kill_tree(process.pid)
            try:
                process.wait(timeout=10)
            except Exception:  # a zombie must not stop the batch
                pass
        if self._cgroup is not None:
            self._cgroup.remove()
        shutil.rmtree(self.control, ignore_errors=True)
        shutil.rmtree(self._private, ignore_errors=True)


def _kill(pid: int) -> None:
    """SIGKILL a process read from ``cgroup.procs`` a moment ago. A plain ``os.kill``: a ``psutil.Process``
    made now would guard against nothing more (it learns the process's identity only now, after the read)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


# what psutil raises for a process that ended (or is a zombie) between being listed and being read, or that
# the grader may not read: the watchdog and the kill skip it (a ZombieProcess is also a NoSuchProcess)
_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)


def _processes(pids: list[int]):
    """The live ones of these processes (psutil), skipping any that ended meanwhile."""
    for pid in pids:
        try:
            yield psutil.Process(pid)
        except _GONE:
            continue


def _threads(pids: list[int]) -> int:
    """Threads of these processes (each process counts its main thread)."""
    total = 0
    for process in _processes(pids):
        with contextlib.suppress(*_GONE):
            total += process.num_threads()
    return total


def _resident(pids: list[int]) -> int:
    """Resident memory of these processes, bytes (shared pages counted in each)."""
    total = 0
    for process in _processes(pids):
        with contextlib.suppress(*_GONE):
            total += process.memory_info().rss
    return total


def _tasks_of_user(uid: int) -> int:
    """Processes and threads of ``uid`` on the machine (what ``RLIMIT_NPROC`` counts)."""
    return sum(process.info["num_threads"] or 0 for process in psutil.process_iter(["uids", "num_threads"])
               if process.info["uids"] is not None and process.info["uids"].real == uid)


def _tree(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and all its descendants (``[]`` once it has ended), listed once: what re-parented
    itself out of the tree (a double fork) is not in it; the pid namespace or the cgroup catches that."""
    try:
        root = psutil.Process(pid)
    except _GONE:
        return []
    try:
        return [root, *root.children(recursive=True)]  # psutil skips the children that end while it looks
    except _GONE:  # the root ended meanwhile: its children, if any, are someone else's now
        return [root]


def _descendants(pid: int) -> list[int]:
    return [process.pid for process in _tree(pid)[1:]]


def _kill_tree(pid: int) -> None:
    """SIGKILL the process ``pid`` and every descendant, then wait up to 50 ms for the descendants to end."""
    tree = _tree(pid)
    for process in tree:
        with contextlib.suppress(*_GONE):
            process.kill()  # psutil checks first that the pid is not another process's by now
    # not psutil.wait_procs on the root: the grader's own child, it would be reaped here, and its exit status
    # lost to its subprocess.Popen (the kernel provisioner's, which tells how the kernel ended)
    with contextlib.suppress(psutil.Error, OSError):
        psutil.wait_procs(tree[1:], timeout=0.05)
