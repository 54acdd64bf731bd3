"""Set resource limits on this process, then become the command: the sandboxed kernel's launcher.

    python -m seglab.course.limits --memory BYTES --processes N --cpu SECONDS --file-size BYTES -- COMMAND...

``--processes`` is the absolute ``RLIMIT_NPROC`` (tasks of this user, system-wide, threads included);
0 leaves it alone (root is exempt from it anyway). Limits are inherited by every child process.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m seglab.course.limits")
    parser.add_argument("--memory", type=int, required=True, help="address space per process, bytes")
    parser.add_argument("--processes", type=int, default=0, help="RLIMIT_NPROC; 0: unchanged")
    parser.add_argument("--cpu", type=int, required=True, help="CPU seconds per process")
    parser.add_argument("--file-size", type=int, required=True, help="largest file written, bytes")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    resource.setrlimit(resource.RLIMIT_AS, (args.memory, args.memory))
    resource.setrlimit(resource.RLIMIT_CPU, (args.cpu, args.cpu + 10))  # SIGXCPU first, SIGKILL 10 s later
    resource.setrlimit(resource.RLIMIT_FSIZE, (args.file_size, args.file_size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if args.processes > 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (args.processes, args.processes))
    sys.stdout.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
