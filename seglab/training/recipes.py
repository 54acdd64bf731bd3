"""The course's default training recipe (CPU-friendly), shared by the CLI, benchmarks and notebooks.

>>> Recipe().epochs, Recipe(epochs=2).epochs
(20, 2)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace

from seglab.models import build_model
from seglab.training.fit import fit, make_loader, seed_everything
from seglab.training.history import History

__all__ = ["Recipe", "make_datasets", "make_model", "train_model", "training_rate"]

DATA = ("synthetic", "nuclei")


def _setting(default, help: str, **argparse_options):
    """A recipe field with its help text: the one declaration that ``seglab train``'s options are made from."""
    return field(default=default, metadata={"help": help, **argparse_options})


@dataclass(frozen=True)
class Recipe:
    """How a model is trained on the course's tasks (a run: 20 epochs of 1000 images of 64x64, 20 000 in all).

    Each field declares its help text once; the ``Args:`` below and ``seglab train --help`` are made from it.
    """

    data: str = _setting("synthetic", "the task: synthetic shapes or the nuclei images", choices=DATA)
    size: int = _setting(64, "image (crop) side in pixels")
    n_train: int = _setting(1000, "training images (crops) per epoch")
    n_val: int = _setting(200, "validation images (synthetic data)")
    epochs: int = _setting(20, "passes over the training images")
    batch_size: int = _setting(8, "training images per step")
    val_batch_size: int = _setting(64, "images per validation step (no gradients: larger batches fit)")
    lr: float = _setting(3e-3, "AdamW's peak learning rate (one-cycle schedule over the run)")
    base_channels: int = _setting(16, "U-Net width: channels of its first level")
    seed: int = _setting(0, "seed of the data, the weights and the shuffling")
    weight_map: bool = _setting(False, "nuclei: weight each pixel's loss with the U-Net paper's weight map")

    def quick(self) -> Recipe:
        """A much smaller run when ``SEGLAB_QUICK=1`` (tests and CI), the recipe itself otherwise."""
        if os.environ.get("SEGLAB_QUICK") != "1":
            return self
        return replace(self, n_train=min(self.n_train, 64), n_val=min(self.n_val, 32), epochs=min(self.epochs, 2))



Recipe.__doc__ += "\n    Args:\n" + "".join(f"        {setting.name}: {setting.metadata['help']} "
                                             f"(default: {setting.default!r})\n" for setting in fields(Recipe))


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
    raise ValueError(f"data must be one of {DATA}, got {recipe.data!r}")


def make_model(name: str, recipe: Recipe, *, in_channels: int, num_classes: int, **kwargs):
    """A model by name (``seglab.models.MODELS``) sized as the recipe says; ``kwargs`` go to its builder (the
    U-Net's ``up``, ``merge``)."""
    if name == "unet":
        kwargs.setdefault("base_channels", recipe.base_channels)
    return build_model(name, in_channels=in_channels, num_classes=num_classes, **kwargs)


def train_model(name: str, recipe: Recipe = Recipe(), *, device="auto", amp="auto", progress: bool = True,
                checkpoint=None, resume: bool = False, **model_kwargs) -> tuple:
    """Build, seed and train a model with the recipe: returns ``(model, history, (train, val))``. ``amp``
    goes to :func:`seglab.training.fit.fit` (mixed precision: ``"auto"`` uses it on CUDA)."""
    seed_everything(recipe.seed)
    train_set, val_set = make_datasets(recipe)
    model = make_model(name, recipe, in_channels=train_set.in_channels, num_classes=train_set.num_classes,
                       **model_kwargs)
    train_loader = make_loader(train_set, recipe.batch_size, train=True, device=device, seed=recipe.seed)
    val_loader = make_loader(val_set, recipe.val_batch_size, train=False, device=device)
    history: History = fit(model, train_loader, val_loader, epochs=recipe.epochs, lr=recipe.lr, device=device,
                           amp=amp, checkpoint=checkpoint, resume=resume, progress=progress)
    return model, history, (train_set, val_set)


def training_rate(name: str = "unet", recipe: Recipe = Recipe(), *, steps: int = 40, device="auto") -> float:
    """Training images per second of model ``name`` under ``recipe`` on this machine.

    The course's unit of speed: the notebooks state their times at a measured rate of the default U-Net, so
    that a student can scale them to this machine's rate (``seglab info --speed``). Two epochs of ``steps``
    steps run; the second is measured (the first allocates memory and tries thread counts).
    """
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    recipe = replace(recipe, n_train=steps * recipe.batch_size)
    seed_everything(recipe.seed)
    train_set, _ = make_datasets(recipe)
    model = make_model(name, recipe, in_channels=train_set.in_channels, num_classes=train_set.num_classes)
    loader = make_loader(train_set, recipe.batch_size, train=True, device=device, seed=recipe.seed)
    history = fit(model, loader, epochs=2, lr=recipe.lr, device=device, progress=False)
    return history.epochs[-1]["images_per_second"]
