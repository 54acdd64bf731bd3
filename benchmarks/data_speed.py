"""How fast the data sets make samples, and what share of a training epoch the data costs.

1. Generation speed on one core: ``SyntheticShapes`` made anew (``cache=False``), and nuclei crops.
2. Data share of an epoch with the default recipe (``seglab.training.recipes.Recipe``): the seconds the loader
   needs for one epoch's batches, cold (images made) and warm (the data set keeps them), against the
   seconds of ``fit``'s epoch, and over a whole run of the recipe's epochs. Kept samples are checked to
   be identical to freshly made ones. Target: data <= 5 % of an epoch.

    python benchmarks/data_speed.py [--images 2000] [--models fcn8s unet] [--n-train 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table

from seglab.data import NucleiDataset, SyntheticShapes
from seglab.training.fit import fit, make_loader
from seglab.training.recipes import Recipe, make_datasets, make_model


def loader_seconds(loader) -> float:
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def generation(images: int) -> list[list]:
    torch.set_num_threads(1)
    rows = []
    for name, data in (("SyntheticShapes 64 px, made anew", SyntheticShapes(images, size=64, cache=False)),
                       ("SyntheticShapes 128 px, made anew", SyntheticShapes(images, size=128, cache=False)),
                       ("NucleiDataset train 64 px crops", NucleiDataset("train", n=images))):
        start = time.perf_counter()
        for i in range(len(data)):
            data[i]
        rows.append([name, round(len(data) / (time.perf_counter() - start))])
    return rows


def data_share(model_name: str, recipe: Recipe) -> list:
    """``[task, model, cold s, warm s, epoch s, first epoch %, later epochs %, whole run %]``."""
    train_set, _ = make_datasets(recipe)
    loader = make_loader(train_set, recipe.batch_size, train=True, device="cpu", seed=recipe.seed)
    cold, warm = loader_seconds(loader), loader_seconds(loader)
    model = make_model(model_name, recipe, in_channels=train_set.in_channels, num_classes=train_set.num_classes)
    epoch = fit(model, loader, epochs=1, lr=recipe.lr, device="cpu", progress=False)["seconds"][0]  # data warm
    compute = epoch - warm
    run = (cold + (recipe.epochs - 1) * warm) / (recipe.epochs * compute + cold + (recipe.epochs - 1) * warm)
    return [recipe.data, model_name, f"{cold:.2f}", f"{warm:.2f}", f"{epoch:.1f}",
            f"{100 * cold / (cold + compute):.1f}", f"{100 * warm / epoch:.1f}", f"{100 * run:.1f}"]


def identical(count: int = 50) -> bool:
    kept, fresh = SyntheticShapes(count, seed=3), SyntheticShapes(count, seed=3, cache=False)
    for i in range(count):
        kept[i]
    return all(torch.equal(a, b) for i in range(count) for a, b in zip(kept[i], fresh[i], strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images for the generation speed")
    parser.add_argument("--models", nargs="*", default=["fcn8s", "unet"], help="models for the data share")
    parser.add_argument("--n-train", type=int, default=Recipe.n_train, help="images per epoch")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    print(f"machine: {machine()}\n")
    rows = generation(args.images)
    print(table(["data set (1 thread)", "images/s"], rows))
    torch.set_num_threads(threads)
    print(f"\nkept samples identical to freshly made ones: {identical()}\n")
    shares = [data_share(model, replace(Recipe(data=data), n_train=args.n_train))
              for data in ("synthetic", "nuclei") for model in args.models]
    print(table(["task", "model", "data s cold", "data s warm", "epoch s", "first epoch %", "later epochs %",
                 f"{Recipe.epochs}-epoch run %"], shares))
    worst = max(float(row[-1]) for row in shares) if shares else 0.0
    print(f"\n{'PASS' if worst <= 5 else 'FAIL'}  data <= 5 % of a {Recipe.epochs}-epoch run (worst {worst:.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
