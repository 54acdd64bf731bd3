"""The ``seglab`` command line. ``seglab --help`` lists the subcommands."""

from __future__ import annotations

import argparse
import os
import platform
import sys

__all__ = ["main"]


def _info(_args: argparse.Namespace) -> int:
    import numpy
    import torch
    import torchvision

    import seglab
    from seglab.device import pick_device

    device = pick_device("auto")
    rows = [
        ("seglab", seglab.__version__),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("torchvision", torchvision.__version__),
        ("numpy", numpy.__version__),
        ("device (auto)", str(device)),
        ("CUDA available", str(torch.cuda.is_available())),
    ]
    if device.type == "cuda":
        rows.append(("GPU", f"{torch.cuda.get_device_name(device)} (x{torch.cuda.device_count()})"))
    rows += [
        ("CPU cores", str(os.cpu_count())),
        ("torch threads", f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op"),
        ("platform", platform.platform()),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seglab",
        description="Semantic segmentation with deep learning: the course package's command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="versions, compute device and threads")
    info.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
