"""The cost of ``fit()`` over a minimal hand-written training loop (target: ratio <= 1.03).

Both train the same U-Net on the same in-memory batches with AdamW, cross-entropy and channels_last;
``fit`` adds its progress bar, label checks, training metrics, NaN guard and scheduler. Each is timed
several times, alternating, and the best times are compared.

    python benchmarks/overhead.py [--repeats 3] [--images 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table

from seglab.data import SyntheticShapes
from seglab.training.device import DeviceSettings
from seglab.training.fit import fit, seed_everything
from seglab.training.recipes import Recipe, make_model


def minimal_loop(model, loader, settings, epochs):
    model.to(settings.device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    model.train()
    for _ in range(epochs):
        for images, target in loader:
            logits = model(settings.to_device(images))
            loss = F.cross_entropy(logits, target.to(settings.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    settings = DeviceSettings.choose("auto")
    data = SyntheticShapes(args.images)
    images, masks = map(torch.stack, zip(*[data[i] for i in range(len(data))], strict=True))
    loader = DataLoader(TensorDataset(images, masks), batch_size=Recipe.batch_size, shuffle=False)
    print(f"machine: {machine()}\n{args.images} images x {args.epochs} epochs, U-Net, batch {Recipe.batch_size}\n")

    times = {"minimal loop": [], "fit()": []}
    for _ in range(args.repeats):
        for label in times:
            seed_everything(0)
            model = make_model("unet", Recipe(), in_channels=1, num_classes=5)
            start = time.perf_counter()
            if label == "fit()":
                fit(model, loader, epochs=args.epochs, device=settings.device, progress=True)
            else:
                minimal_loop(model, loader, settings, args.epochs)
            times[label].append(time.perf_counter() - start)
    best = {label: min(t) for label, t in times.items()}
    rows = [[label, round(best[label], 2), " ".join(f"{t:.2f}" for t in times[label])] for label in times]
    print(table(["loop", "best seconds", "all runs"], rows))
    ratio = best["fit()"] / best["minimal loop"]
    print(f"\nfit() / minimal loop = {ratio:.3f}  ({'PASS' if ratio <= 1.03 else 'FAIL'}: target <= 1.03)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
