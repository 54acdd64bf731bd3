"""Training throughput of each model against the machine's peak 3x3-convolution rate.

Measures, in one run: the peak GFLOP/s of a 3x3 convolution's training step (forward and backward,
channels_last, the best of several widths), then each model's training step on batches already in
memory: images/s x FLOPs counted by ``torch.utils.flop_counter`` = achieved GFLOP/s, and the ratio to
the peak. Target on the CPU: U-Net >= 0.6 of peak. On a GPU it runs with AMP and channels_last.
The default batch of 32 measures what the hardware sustains; the course recipe trains with batches
of 8 for faster convergence, which runs at a lower fraction (``--batch-size 8``).

    python benchmarks/throughput.py [--batch-size 32] [--size 64] [--seconds 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table

from seglab.models import trainable_models
from seglab.training.device import DeviceSettings
from seglab.training.recipes import Recipe, make_model


def training_step(model, optimizer, images, target, settings):
    with settings.autocast():
        loss = F.cross_entropy(model(images).float(), target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def count_flops(model, optimizer, images, target, settings) -> int:
    with FlopCounterMode(display=False) as counter:
        training_step(model, optimizer, images, target, settings)
    return counter.get_total_flops()


def rate(step, seconds: float) -> float:
    """Calls of ``step`` per second, after a warm-up, over about ``seconds``."""
    for _ in range(3):
        step()
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        calls += 1
    sync()
    return calls / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=Recipe.size)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--models", nargs="+", default=trainable_models(), choices=trainable_models())
    args = parser.parse_args()
    settings = DeviceSettings.choose("auto")
    print(f"machine: {machine()}\nsettings: {settings}\n")

    peak_rows, peak = [], 0.0
    for width in (16, 32, 64, 128):
        conv = torch.nn.Conv2d(width, width, 3, padding=1).to(settings.device, memory_format=torch.channels_last)
        x = settings.to_device(torch.randn(args.batch_size, width, args.size, args.size))
        x.requires_grad_(True)

        def step(conv=conv, x=x):
            with settings.autocast():
                conv(x).float().sum().backward()

        with FlopCounterMode(display=False) as counter:
            step()
        gflops = counter.get_total_flops() * rate(step, args.seconds / 4) / 1e9
        peak = max(peak, gflops)
        peak_rows.append([f"3x3 conv {width}->{width}", round(gflops, 1)])
    print(table(["peak candidate (fwd+bwd, channels_last)", "GFLOP/s"], peak_rows))
    print(f"\npeak: {peak:.1f} GFLOP/s\n")

    rows = []
    for name in args.models:
        model = make_model(name, Recipe(), in_channels=1, num_classes=5).to(settings.device)
        if settings.channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        images = settings.to_device(torch.randn(args.batch_size, 1, args.size, args.size))
        target = torch.randint(0, 5, (args.batch_size, args.size, args.size), device=settings.device)
        flops = count_flops(model, optimizer, images, target, settings)
        steps = rate(lambda m=model, o=optimizer, x=images, y=target: training_step(m, o, x, y, settings), args.seconds)
        gflops = flops * steps / 1e9
        rows.append([name, round(flops / args.batch_size / 1e9, 3), round(steps * args.batch_size, 1),
                     round(gflops, 1), round(gflops / peak, 2)])
        print(f"{name}: {steps * args.batch_size:.0f} images/s", flush=True)
    print()
    print(table(["model", "GFLOP per image (train)", "images/s", "GFLOP/s", "fraction of peak"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
