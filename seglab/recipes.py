"""The course's default training recipe (CPU-friendly), shared by the CLI, benchmarks and notebooks.

>>> Recipe().epochs, Recipe(epochs=2).epochs
(20, 2)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from seglab.models import build_model
from seglab.train import History, fit, make_loader, seed_everything

__all__ = ["MODEL_NAMES", "Recipe", "make_datasets", "make_model", "train_model"]

MODEL_NAMES = ("fcn32s", "fcn16s", "fcn8s", "unet")


@dataclass(frozen=True)
class Recipe:
    """How a model is trained on the course's tasks: on a 2-core CPU a U-Net run takes about 2 minutes."""

    data: str = "synthetic"  # or "nuclei"
    size: int = 64  # image (crop) side
    n_train: int = 1000  # images (crops) per epoch
    n_val: int = 200  # validation images (synthetic data)
    epochs: int = 20
    batch_size: int = 8
    lr: float = 3e-3
    base_channels: int = 16  # U-Net width
    seed: int = 0
    weight_map: bool = False  # nuclei: weight each pixel's loss with the U-Net paper's weight map

    def quick(self) -> Recipe:
        """A much smaller run when ``SEGLAB_QUICK=1`` (tests and CI), the recipe itself otherwise."""
        if os.environ.get("SEGLAB_QUICK") != "1":
            return self
        return replace(self, n_train=min(self.n_train, 64), n_val=min(self.n_val, 32), epochs=min(self.epochs, 2))


def make_datasets(recipe: Recipe):
    """``(train, val)`` data sets of the recipe's task."""
    from seglab.data import NucleiDataset, SyntheticShapes

    if recipe.weight_map and recipe.data != "nuclei":
        raise ValueError('weight_map=True needs touching objects to separate: use data="nuclei"')
    if recipe.data == "synthetic":
        return (SyntheticShapes(recipe.n_train, size=recipe.size, seed=recipe.seed),
                SyntheticShapes(recipe.n_val, size=recipe.size, seed=recipe.seed + 1))
    if recipe.data == "nuclei":
        return NucleiDataset("train", crop=recipe.size, n=recipe.n_train, seed=recipe.seed,
                             weight_map=recipe.weight_map), NucleiDataset("val", crop=recipe.size)
    raise ValueError(f'data must be "synthetic" or "nuclei", got {recipe.data!r}')


def make_model(name: str, recipe: Recipe, *, in_channels: int, num_classes: int, **kwargs):
    """A model by name (``MODEL_NAMES``) sized as the recipe says; ``kwargs`` go to the U-Net (``up``, ``merge``)."""
    if name == "unet":
        kwargs.setdefault("base_channels", recipe.base_channels)
    return build_model(name, in_channels=in_channels, num_classes=num_classes, **kwargs)


def train_model(name: str, recipe: Recipe = Recipe(), *, device="auto", progress: bool = True,
                checkpoint=None, resume: bool = False, **model_kwargs) -> tuple:
    """Build, seed and train a model with the recipe: returns ``(model, history, (train, val))``."""
    seed_everything(recipe.seed)
    train_set, val_set = make_datasets(recipe)
    model = make_model(name, recipe, in_channels=train_set.in_channels, num_classes=train_set.num_classes,
                       **model_kwargs)
    train_loader = make_loader(train_set, recipe.batch_size, train=True, device=device, seed=recipe.seed)
    val_loader = make_loader(val_set, 64, train=False, device=device)
    history: History = fit(model, train_loader, val_loader, epochs=recipe.epochs, lr=recipe.lr, device=device,
                           checkpoint=checkpoint, resume=resume, progress=progress)
    return model, history, (train_set, val_set)
