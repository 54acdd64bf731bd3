"""Set resource limits on this process, join its cgroups, drop root, then become the command: the
sandboxed kernel's launcher.

    python -m seglab.course.limits [--memory BYTES] [--processes N] [--cpu SECONDS] [--file-size BYTES]
        [--cgroup DIR]... [--chown PATH... --chown-group GID] [--uid UID --gid GID] -- COMMAND...

In this order, all before ``COMMAND`` starts (so nothing of it runs outside its limits):

1. ``--memory``, ``--cpu``, ``--file-size``: ``RLIMIT_AS`` (address space of each process), ``RLIMIT_CPU``
   (CPU seconds of each process) and ``RLIMIT_FSIZE`` (largest file); core dumps off;
2. ``--cgroup DIR`` (repeatable: one per cgroup v1 hierarchy, or one cgroup v2 folder): write this
   process's id to ``DIR/cgroup.procs``; every process and thread it starts is then counted there;
3. ``--chown PATH``: give ``PATH`` (not a link's target) to ``--chown-group`` as its group, readable by
   that group and not writable (the connection file a kernel running as another user must read, and must not change);
4. ``--processes N``: ``RLIMIT_NPROC`` (tasks, threads included, of the real user, system-wide);
   0 leaves it alone (root is exempt from it anyway);
5. ``--uid``/``--gid`` (root only): drop the supplementary groups, then the group, then the user, for
   good (real, effective and saved ids); the command then cannot become root again (inside bubblewrap
   ``PR_SET_NO_NEW_PRIVS`` is set, so not even a setuid program helps).

Limits and the cgroup are inherited by every child process.
"""

from __future__ import annotations

import argparse
import os
import resource
import stat
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m seglab.course.limits")
    parser.add_argument("--memory", type=int, default=0, help="address space per process, bytes; 0: unchanged")
    parser.add_argument("--processes", type=int, default=0, help="RLIMIT_NPROC; 0: unchanged")
    parser.add_argument("--cpu", type=int, default=0, help="CPU seconds per process; 0: unchanged")
    parser.add_argument("--file-size", type=int, default=0, help="largest file written, bytes; 0: unchanged")
    parser.add_argument("--cgroup", action="append", default=[], help="a cgroup folder to join (repeatable)")
    parser.add_argument("--chown", action="append", default=[], help="a file to make readable by --chown-group only")
    parser.add_argument("--chown-group", type=int, default=None, help="the group of the --chown files")
    parser.add_argument("--uid", type=int, default=None, help="become this user (root only)")
    parser.add_argument("--gid", type=int, default=None, help="and this group")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    if (args.uid is None) != (args.gid is None):
        parser.error("--uid and --gid go together")
    if args.memory:
        resource.setrlimit(resource.RLIMIT_AS, (args.memory, args.memory))
    if args.cpu:
        resource.setrlimit(resource.RLIMIT_CPU, (args.cpu, args.cpu + 10))  # SIGXCPU first, SIGKILL 10 s later
    if args.file_size:
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.file_size, args.file_size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for folder in args.cgroup:  # fails loudly: a kernel outside its cgroup must not start
        with open(os.path.join(folder, "cgroup.procs"), "w") as procs:
            procs.write(str(os.getpid()))
    for path in args.chown:
        _share_with_group(path, args.chown_group)
    if args.processes > 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (args.processes, args.processes))
    if args.uid is not None:
        drop_privileges(args.uid, args.gid)
    sys.stdout.flush()
    os.execvp(command[0], command)


def _share_with_group(path: str, gid: int | None) -> None:
    """Make the regular file ``path`` owned by root, group ``gid``, mode 0640, without following a link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SystemExit(f"{path} is not a regular file")
        if gid is not None:
            os.fchown(fd, -1, gid)
        os.fchmod(fd, 0o640)
    finally:
        os.close(fd)


def drop_privileges(uid: int, gid: int) -> None:
    """Become ``uid``/``gid`` for good; raise unless it worked (uid and gid must not be 0)."""
    if uid == 0 or gid == 0:
        raise SystemExit("refusing to 'drop' privileges to root")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise SystemExit("could not drop privileges")
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise SystemExit("could become root again after dropping privileges")


if __name__ == "__main__":
    main()
