"""seglab's ConfusionMatrix against torchmetrics' MulticlassJaccardIndex: same values, our time <= theirs.

    python benchmarks/metrics_speed.py [--batches 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torchmetrics.classification import MulticlassJaccardIndex

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table

from seglab.metrics import ConfusionMatrix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    batches = []
    for _ in range(args.batches):
        logits = torch.randn(8, args.classes, 128, 128, device=device)
        target = torch.randint(0, args.classes, (8, 128, 128), device=device)
        target[torch.rand(target.shape, device=device) < 0.1] = 255
        batches.append((logits, target))
    print(f"machine: {machine()}\n{args.batches} batches of logits (8, {args.classes}, 128, 128), 10% ignored\n")

    def ours():
        metric = ConfusionMatrix(args.classes, device=device)
        for logits, target in batches:
            metric.update(logits, target)
        return torch.tensor(metric.compute()["miou"])

    def theirs():
        metric = MulticlassJaccardIndex(args.classes, ignore_index=255).to(device)
        for logits, target in batches:
            metric.update(logits, target)
        return metric.compute()

    results, times = {}, {}
    for name, run in (("seglab ConfusionMatrix", ours), ("torchmetrics MulticlassJaccardIndex", theirs)):
        samples = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            results[name] = float(run())
            if device == "cuda":
                torch.cuda.synchronize()
            samples.append(time.perf_counter() - start)
        times[name] = min(samples)
    print(table(["implementation", "mIoU", "best seconds"], [[n, results[n], round(times[n], 3)] for n in results]))
    a, b = results.values()
    same = abs(a - b) < 1e-5
    faster = times["seglab ConfusionMatrix"] <= times["torchmetrics MulticlassJaccardIndex"]
    print(f"\n{'PASS' if same else 'FAIL'}  same mIoU\n{'PASS' if faster else 'FAIL'}  our time <= theirs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
