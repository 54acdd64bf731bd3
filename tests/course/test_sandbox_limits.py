"""Limits of the whole sandbox, as hostile code in a real sandboxed kernel: memory spread over processes,
a full tmpfs, thousands of threads, the kernel's own user, the grader's log out of the kernel's reach,
and nothing left behind. Each test runs on this machine's enforcement (a cgroup where there is one) and
the memory and thread tests also on the fallback (no cgroup: rlimits, the kernel's own user, watchdog)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from seglab.course import sandbox as sandbox_module
from seglab.course.execute import execute_notebook
from seglab.course.sandbox import Limits, SandboxedKernel, bwrap_available

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="needs bubblewrap: tools/install-system-packages "
                                "(apt-get install bubblewrap) installs it")

MiB, GiB = 2**20, 2**30
LIMITS = Limits(memory_bytes=3 * GiB // 2, tmp_bytes=64 * MiB, shm_bytes=16 * MiB, tasks=256, processes=16,
                cpu_seconds=120)
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(params=["machine", "fallback"])
def backend(request, monkeypatch):
    """The machine's own enforcement, or the fallback without any cgroup."""
    if request.param == "fallback":
        monkeypatch.setattr(sandbox_module, "_BACKEND", {"kind": None, "why": "switched off by the test"})
    return request.param


def _run(workdir, *cells: str, sandbox: str = "bwrap", limits: Limits = LIMITS, before_cleanup=None, after_first=None):
    """Run ``cells`` the way the grader does; ``(outputs of each cell, stop reason, kernel, inspected)``:
    ``before_cleanup(kernel)``, or else ``after_first(kernel)`` after the first cell, is ``inspected``."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    kernel = SandboxedKernel(workdir, sandbox=sandbox, limits=limits)
    inspected = None

    def on_cell(index):
        nonlocal inspected
        if index == 0 and after_first is not None:
            inspected = after_first(kernel)

    try:
        kernel.start_watchdog()
        with open(kernel.log_path, "w") as log:
            stop = execute_notebook(notebook, workdir, timeout=60, total_timeout=120, kernel_manager=kernel.manager,
                                    kernel_log=log, on_cell=on_cell)
        if before_cleanup is not None:
            inspected = before_cleanup(kernel)
    finally:
        kernel.cleanup()
    texts = ["".join(o.get("text", "") if o.get("output_type") == "stream" else f"{o.get('ename')}: {o.get('evalue')}"
                     for o in cell.outputs) for cell in notebook.cells]
    return texts, stop, kernel, inspected


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _peak_memory(kernel) -> int | None:
    """The most memory the kernel's cgroup held, bytes (None without a memory cgroup)."""
    for folder in kernel._cgroup.folders if kernel._cgroup else []:
        for name in ("memory.peak", "memory.max_usage_in_bytes"):
            if os.path.exists(os.path.join(folder, name)):
                return int(Path(folder, name).read_text().split()[0])
    return None


SPREAD = """import os, time
children = []
for _ in range(4):  # 600 MiB each, under the per-process limit; 2.4 GiB together, over the sandbox's 1.5
    pid = os.fork()
    if pid == 0:
        try:
            block = bytearray(600 * 2**20)
            block[::4096] = b'x' * len(block[::4096])  # every page touched
            time.sleep(4)
            os._exit(0)
        except MemoryError:
            os._exit(3)
        finally:
            os._exit(4)
    children.append(pid)
print('statuses', [os.waitpid(pid, 0)[1] for pid in children])"""


def test_memory_spread_over_four_processes_is_stopped(tmp_path, backend):
    texts, stop, kernel, peak = _run(tmp_path, SPREAD, before_cleanup=_peak_memory)
    if "memory" in kernel.enforcement["memory"] and kernel._cgroup and "memory" in kernel._cgroup.controllers:
        assert peak is not None and peak <= LIMITS.memory_bytes, (peak, kernel.enforcement)
    statuses = eval(texts[0].split("statuses", 1)[1]) if "statuses" in texts[0] else None
    held = statuses is not None and all(status == 0 for status in statuses)
    assert not held, (texts, stop, kernel.killed_reason)  # some child was killed or failed, or the kernel was
    assert statuses is not None or stop or kernel.killed_reason


FILL = """import errno, os
from ipykernel.kernelapp import IPKernelApp
control = os.path.dirname(IPKernelApp.instance().connection_file)
errors, chunk = [], b'x' * 2**20
targets = ['./fill-{token}', '/tmp/fill-{token}.tmp', '/dev/shm/fill-{token}', control + '/fill-{token}']
for target in targets:
    try:
        with open(target, 'wb', buffering=0) as file:
            for _ in range(40):
                file.write(chunk)
    except OSError as failure:
        errors.append(errno.errorcode.get(failure.errno))
print('written', sum(os.path.getsize(t) for t in targets if os.path.exists(t)), 'errors', errors)"""


def test_the_writable_space_is_two_size_limited_tmpfs(tmp_path):
    token = secrets.token_hex(4)
    texts, stop, _, _ = _run(tmp_path, FILL.replace("{token}", token))
    assert stop is None, texts
    written = int(texts[0].split("written ")[1].split()[0])
    assert "ENOSPC" in texts[0], texts
    assert 32 * MiB < written <= LIMITS.tmp_bytes + LIMITS.shm_bytes, texts  # ./ and /tmp share 64 MiB, /dev/shm 16
    if ROOT:
        assert "EACCES" in texts[0], texts  # the sockets' folder is read-only to the kernel once it is ready
    landed = [str(path) for folder in (tmp_path, Path(tempfile.gettempdir()), Path("/dev/shm"), Path("/var/tmp"))
              if folder.is_dir() for path in folder.glob(f"*/fill-{token}*")]
    landed += [str(path) for folder in (tmp_path, Path(tempfile.gettempdir()), Path("/dev/shm"), Path("/var/tmp"))
               if folder.is_dir() for path in folder.glob(f"fill-{token}*")]
    assert landed == []  # nothing on the host: not the working folder, not /tmp, not /dev/shm, not control


THREADS = """import threading, time
started, error = 0, None
try:
    for _ in range(3000):
        threading.Thread(target=time.sleep, args=(20,), daemon=True).start()
        started += 1
except RuntimeError as failure:
    error = failure
print('started', started, 'error', error)"""


def test_three_thousand_threads_cannot_be_started(tmp_path, backend):
    texts, stop, kernel, _ = _run(tmp_path, THREADS, "print('still answering')")
    if "started" in texts[0]:
        assert int(texts[0].split("started ")[1].split()[0]) < LIMITS.tasks, texts
        assert "error" in texts[0] and "None" not in texts[0].split("error", 1)[1], texts
    else:  # the watchdog stopped the sandbox first
        assert kernel.killed_reason and "threads" in kernel.killed_reason, (texts, stop)
    assert subprocess.run(["true"]).returncode == 0  # the grader can still start processes
    assert subprocess.run(["python", "-c", "import threading; t = threading.Thread(target=print); t.start(); "
                           "t.join()"]).returncode == 0


@pytest.mark.skipif(not ROOT, reason="the kernel's own user is for a grader running as root")
def test_the_kernel_runs_as_its_own_unprivileged_user(tmp_path):
    code = """import os
status = dict(line.split(':', 1) for line in open('/proc/self/status').read().splitlines() if ':' in line)
try:
    os.setuid(0)
    regained = True
except PermissionError:
    regained = False
print('uid', os.getuid(), os.geteuid(), os.getgid(), os.getgroups(), 'regained', regained,
      'caps', int(status['CapEff'], 16), int(status['CapPrm'], 16), 'nnp', status['NoNewPrivs'].strip())"""
    users = []
    for _ in range(2):
        texts, stop, kernel, _ = _run(tmp_path, code)
        assert stop is None, texts
        fields = texts[0].split()
        uid, euid = int(fields[1]), int(fields[2])
        assert uid == euid == kernel.uid != 0, texts
        assert "regained False" in texts[0] and "caps 0 0" in texts[0] and "nnp 1" in texts[0], texts
        assert "[]" in texts[0]  # no supplementary groups (root's 0 among them)
        users.append(uid)
    assert users[0] != users[1]  # RLIMIT_NPROC counts per user: one user per sandbox


def test_the_grader_log_is_out_of_reach_and_a_planted_link_is_not_followed(tmp_path):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("SECRET of the host")
    holder = {}

    def plant(kernel):
        holder["log"] = kernel.log_path.read_text()
        holder["spec in control"] = (kernel.control / "kernels").exists()
        return kernel.log_path

    code = """import os
from ipykernel.kernelapp import IPKernelApp
control = os.path.dirname(IPKernelApp.instance().connection_file)
print('log visible', os.path.exists({log!r}), os.path.exists(os.path.dirname({log!r})))
for name in ['kernel.log', 'connection.json', 'k-1', 'planted']:
    try:
        path = os.path.join(control, name)
        if os.path.lexists(path):
            os.replace(path, path + '.old')
        os.symlink({secret!r}, path)
        print('PLANTED', name)
    except OSError as error:
        print('could not plant', name, error.strerror)"""
    kernel_for_path = SandboxedKernel(tmp_path, limits=LIMITS)
    log_path = str(kernel_for_path.log_path)  # one like it: same kind of folder
    kernel_for_path.cleanup()
    texts, stop, kernel, _ = _run(tmp_path, code.format(log=log_path, secret=str(secret)), before_cleanup=plant)
    assert stop is None, texts
    assert "log visible False False" in texts[0], texts
    if ROOT:  # the sockets' folder is read-only to the kernel once it is ready
        assert "PLANTED" not in texts[0] and texts[0].count("could not plant") == 4, texts
    assert "SECRET" not in holder["log"]
    assert not holder["spec in control"]  # the kernel spec the grader reads is not where the kernel writes
    assert str(kernel.log_path.parent) not in str(kernel.control)
    assert secret.read_text() == "SECRET of the host"  # cleanup did not follow a link
    assert not kernel.log_path.exists() and not kernel.control.exists()


ESCAPE = """import os, time
if os.fork() == 0:  # a daemon: double fork, new session, out of the kernel's process tree
    os.setsid()
    if os.fork() == 0:
        open('/proc/self/comm', 'w').write('seglab-daemon')
        time.sleep(600)
    os._exit(0)
time.sleep(0.5)
print('forked')"""


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
def test_cleanup_leaves_no_cgroup_and_no_process(tmp_path, sandbox):
    def inventory(kernel):
        return {"folders": list(kernel._cgroup.folders) if kernel._cgroup else [],
                "pids": kernel._cgroup.pids() if kernel._cgroup else []}

    if sandbox == "none" and (sandbox_module._cgroup_backend()["kind"] is None):
        pytest.skip("without a cgroup, a daemon of sandbox none is out of reach (documented)")
    texts, stop, _, seen = _run(tmp_path, ESCAPE, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
                                     sandbox=sandbox, after_first=inventory)
    assert "forked" in texts[0] and stop and "died" in stop, (texts, stop)  # the kernel killed itself
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in seen["pids"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in seen["pids"] if _alive(pid)]
    assert not [folder for folder in seen["folders"] if os.path.exists(folder)]
    daemons = [p.pid for p in psutil.process_iter(["name", "status"])
               if p.info["name"] == "seglab-daemon" and p.info["status"] != psutil.STATUS_ZOMBIE]
    assert daemons == []
    if sandbox_module._cgroup_backend()["kind"]:
        assert seen["folders"] and seen["pids"], seen  # it had a cgroup, and the daemon was in it


def test_a_cgroup_v2_machine_gets_a_cgroup_per_kernel_with_the_limits(tmp_path, monkeypatch):
    """cgroup v2 is not on this machine (CI has v1): the files the grader writes, on a stand-in hierarchy."""
    mount = tmp_path / "cgroup"
    (mount / "seglab").mkdir(parents=True)
    (mount / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (mount / "seglab" / "cgroup.controllers").write_text("cpu memory pids\n")
    (mount / "seglab" / "cgroup.subtree_control").write_text("cpu memory pids\n")
    monkeypatch.setattr(sandbox_module, "_mountinfo", lambda: [(str(mount), "cgroup2", "rw", "/")])
    monkeypatch.setattr(sandbox_module, "_own_cgroups", lambda: {"": "/user.slice/session-1.scope"})
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.delenv("SEGLAB_CGROUP", raising=False)
    backend = sandbox_module._find_backend()
    assert backend == {"kind": "v2", "parent": str(mount / "seglab"), "controllers": {"cpu", "memory", "pids"}}
    cgroup = sandbox_module._Cgroup(backend, "seglab-1-0-x", Limits(memory_bytes=GiB, tasks=100, cpus=1.5))
    folder = mount / "seglab" / "seglab-1-0-x"
    assert cgroup.folders == [str(folder)] and cgroup.controllers == {"cpu", "memory", "pids"}
    assert (folder / "memory.max").read_text() == str(GiB)
    assert (folder / "pids.max").read_text() == "100"
    assert (folder / "cpu.max").read_text() == "150000 100000"
    described = sandbox_module._describe(backend, cgroup.controllers, True, "bwrap", 123456789)
    assert "cgroup v2 memory.max" in described["memory"] and "pids.max" in described["tasks"]
    assert "cpu.max" in described["cpu"] and "uid 123456789" in described["user"]
    assert not cgroup.remove(timeout=0.1)  # a stand-in folder of plain files cannot be removed: it says so


# -- the watchdog's and the kill's view of a process tree (psutil), without a kernel

@pytest.fixture
def reaper():
    """This process as the child subreaper while a test kills process trees: the orphans come to it and it
    reaps them afterwards (the machine's init may not reap, and they would stay zombies)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        pytest.skip("this process cannot be a child subreaper")
    before = {child.pid for child in psutil.Process().children()}
    try:
        yield
    finally:
        libc.prctl(36, 0, 0, 0, 0)
        for child in psutil.Process().children():
            if child.pid not in before:
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(child.pid, os.WNOHANG)[0] == 0:  # ours, unreaped: its pid is still its own
                        os.kill(child.pid, signal.SIGKILL)
                        os.waitpid(child.pid, 0)


def _ended(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _python(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"})


def _wait_for_descendants(pid: int, count: int) -> list[int]:
    deadline = time.monotonic() + 30
    while len(tree := sandbox_module._descendants(pid)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(tree) >= count, tree
    return tree


TREE = """import os, time
for _ in range(3):  # a tree of 8 processes: 7 descendants of the first, 3 levels deep
    os.fork()
time.sleep(120)"""


def test_the_kill_reaches_every_descendant_and_leaves_the_kernels_exit_status_to_its_popen(reaper):
    root = _python(TREE)
    try:
        processes = [psutil.Process(pid) for pid in _wait_for_descendants(root.pid, 7)]
        sandbox_module._kill_tree(root.pid)
        assert root.wait(timeout=10) == -signal.SIGKILL  # not reaped by psutil: Popen still reads how it ended
        deadline = time.monotonic() + 5
        while not all(_ended(p) for p in processes) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [p.pid for p in processes if not _ended(p)] == []
        assert sandbox_module._descendants(root.pid) == [] and sandbox_module._threads([root.pid]) == 0
    finally:
        if root.poll() is None:  # not reaped: the pid is still its own
            sandbox_module._kill_tree(root.pid)
        root.kill()
        root.wait()


CHURN = """import os, random, time
children = set()
while True:  # children that live a few milliseconds: some end while the grader lists and reads the tree
    if len(children) < 8:
        pid = os.fork()
        if pid == 0:
            time.sleep(random.random() / 100)
            os._exit(0)
        children.add(pid)
    else:
        children.discard(os.wait()[0])"""


def test_processes_that_end_while_the_tree_is_walked_are_skipped(reaper):
    root = _python(CHURN)
    try:
        most, deadline = 0, time.monotonic() + 2
        while time.monotonic() < deadline:
            tree = sandbox_module._descendants(root.pid)
            most = max(most, len(tree))
            assert sandbox_module._threads([root.pid, *tree]) >= 1
            assert sandbox_module._resident([root.pid, *tree]) > 0
        assert most > 0
        sandbox_module._kill_tree(root.pid)  # children end and start while it lists and kills them
        assert root.wait(timeout=10) == -signal.SIGKILL
    finally:
        root.kill()
        root.wait()


@pytest.mark.parametrize("error", [psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied])
def test_a_process_gone_between_listing_and_reading_is_skipped(reaper, monkeypatch, error):
    """psutil lists a process, then reading or killing it fails: it ended (or is a zombie) meanwhile, or it
    is not the grader's to read. The count skips it, the kill goes on with the others."""
    root, other = _python(TREE), _python("import time; time.sleep(120)")
    short = _python("pass")
    ended = psutil.Process(short.pid)  # a process that is listed, then ends before it is killed
    short.wait(timeout=30)
    try:
        descendants = [psutil.Process(pid) for pid in _wait_for_descendants(root.pid, 7)]
        num_threads, memory_info, kill = psutil.Process.num_threads, psutil.Process.memory_info, psutil.Process.kill
        children = psutil.Process.children

        def failing(method):
            def read(self, *args, **kwargs):
                if self.pid == root.pid:
                    raise error(self.pid)
                return method(self, *args, **kwargs)
            return read

        monkeypatch.setattr(psutil.Process, "num_threads", failing(num_threads))
        monkeypatch.setattr(psutil.Process, "memory_info", failing(memory_info))
        monkeypatch.setattr(psutil.Process, "kill", failing(kill))
        monkeypatch.setattr(psutil.Process, "children", lambda self, recursive=False: [
            ended, *children(self, recursive=recursive)])
        assert sandbox_module._threads([root.pid]) == 0 and sandbox_module._resident([root.pid]) == 0
        assert sandbox_module._threads([other.pid, root.pid, ended.pid]) == 1  # other's own thread only
        assert sandbox_module._resident([other.pid, root.pid]) > 0
        sandbox_module._kill_tree(root.pid)  # the root cannot be killed, the ended one is gone: the rest dies
        assert root.poll() is None
        deadline = time.monotonic() + 5
        while not all(_ended(p) for p in descendants) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [p.pid for p in descendants if not _ended(p)] == []
        monkeypatch.setattr(psutil.Process, "children", failing(children))  # the root ends while it is listed
        assert sandbox_module._descendants(root.pid) == []
    finally:
        monkeypatch.undo()
        for process in (root, other):
            process.kill()
            process.wait()


def test_stale_cgroups_of_graders_no_longer_running_are_removed(tmp_path):
    gone, long_ago = 2**22 + 1, time.time() - 3600  # above any pid_max: no such process
    folders = {f"seglab-{gone}-0-a": long_ago, f"seglab-{gone}-1-b": time.time(),
               f"seglab-{os.getpid()}-0-c": long_ago, "other-1-2": long_ago}
    for name, mtime in folders.items():
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (mtime, mtime))
    sandbox_module._remove_stale(str(tmp_path))
    # a grader gone: removed; one just made (maybe by a grader in another pid namespace) and ours: kept
    assert sorted(os.listdir(tmp_path)) == sorted(set(folders) - {f"seglab-{gone}-0-a"})
