"""SyntheticShapes generation speed on one core (target: >= 1,000 images/s at 64 px).

    python benchmarks/data_speed.py [--images 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table

from seglab.data import NucleiDataset, SyntheticShapes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine()} (1 thread used)\n")
    rows = []
    for name, data in (("SyntheticShapes 64 px", SyntheticShapes(args.images, size=64)),
                       ("SyntheticShapes 128 px", SyntheticShapes(args.images, size=128)),
                       ("NucleiDataset train 64 px crops", NucleiDataset("train", n=args.images))):
        start = time.perf_counter()
        for i in range(len(data)):
            data[i]
        rows.append([name, round(len(data) / (time.perf_counter() - start))])
    print(table(["data set", "images/s"], rows))
    print(f"\n{'PASS' if rows[0][1] >= 1000 else 'FAIL'}  SyntheticShapes 64 px >= 1000 images/s on one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
