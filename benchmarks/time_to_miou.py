"""FCN-32s, FCN-16s, FCN-8s and U-Net on the default synthetic task with the default CPU recipe.

Targets on a 2-core CPU with no other load: U-Net >= 0.85 mIoU within 20 epochs of 1,000 images;
FCN-32s < FCN-16s < FCN-8s < U-Net with each gap >= 0.05 mIoU; each model's run <= 3 minutes.

    python benchmarks/time_to_miou.py [--epochs 20] [--models unet fcn8s ...]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table

from seglab.models import trainable_models
from seglab.training.recipes import Recipe, train_model

#: the models notebooks 03 and 04 train, in the order their mIoU should rise
LESSON_MODELS = ("fcn32s", "fcn16s", "fcn8s", "unet")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=Recipe.epochs)
    parser.add_argument("--n-train", type=int, default=Recipe.n_train)
    parser.add_argument("--models", nargs="+", default=list(LESSON_MODELS), choices=trainable_models())
    args = parser.parse_args()
    recipe = replace(Recipe(), epochs=args.epochs, n_train=args.n_train)
    print(f"machine: {machine()}\nrecipe: {recipe}\n")
    rows, mious = [], {}
    for name in args.models:
        start = time.perf_counter()
        _, history, (train_set, _) = train_model(name, recipe, progress=False)
        seconds = time.perf_counter() - start
        last = history.last
        reached = next((e["epoch"] for e in history.epochs if e["val_miou"] >= 0.85), "-")
        mious[name] = last["val_miou"]
        rows.append([name, len(history), round(seconds), reached, *last["val_iou"], last["val_miou"]])
        print(f"{name}: {seconds:.0f} s, mIoU {last['val_miou']:.3f}", flush=True)
    print()
    print(table(["model", "epochs", "seconds", "epoch mIoU>=0.85", *train_set.class_names, "mIoU"], rows))
    checks = []
    if "unet" in mious:
        checks.append(("U-Net mIoU >= 0.85", mious["unet"] >= 0.85))
    ordered = [m for m in LESSON_MODELS if m in mious]
    for a, b in itertools.pairwise(ordered):
        checks.append((f"{b} - {a} >= 0.05 mIoU", mious[b] - mious[a] >= 0.05))
    checks += [(f"{row[0]} run <= 180 s", row[2] <= 180) for row in rows]
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
