"""Training helper: ``fit``, ``evaluate``, ``predict`` and checkpoints.

``fit`` uses the best device it finds (CUDA, then MPS, then the CPU) and what pays there: mixed
precision on CUDA (bf16 where supported, else fp16 with a gradient scaler), channels_last memory
layout on CUDA and the CPU, pinned memory and loader workers on CUDA (see :func:`make_loader`),
optionally ``torch.compile``. It shows one progress bar, checks every batch's labels before the
loss, stops cleanly on Ctrl-C ("interrupt kernel") and on a NaN/inf loss, and writes checkpoints
atomically, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from seglab import distributed
from seglab.device import pick_device
from seglab.layers import center_crop
from seglab.metrics import ConfusionMatrix, check_labels
from seglab.threads import ThreadTuner, limit_threads, set_threads

__all__ = ["History", "TrainSettings", "atomic_write", "evaluate", "fit", "load_checkpoint", "load_model",
           "make_loader", "predict", "save_checkpoint", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS


def make_loader(dataset: Dataset, batch_size: int = 32, *, train: bool, device: str | torch.device = "auto",
                num_workers: int | None = None, seed: int = 0) -> DataLoader:
    """A DataLoader set up for the device: pinned memory and worker processes on CUDA; on the CPU
    the main process loads (workers would compete with the training threads for the cores)."""
    device = pick_device(device)
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1) if device.type == "cuda" else 0
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=train, drop_last=train and len(dataset) > batch_size,
                      num_workers=num_workers, pin_memory=device.type == "cuda",
                      persistent_workers=num_workers > 0, generator=generator)


# --------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------

@dataclass
class History:
    """One dict per finished epoch: ``epoch``, ``train_loss``, ``train_pixel_accuracy``,
    ``train_miou``, ``val_loss``, ``val_pixel_accuracy``, ``val_miou``, ``val_iou`` (per class),
    ``lr``, ``images_per_second``, ``seconds``, ``threads`` (CPU threads at the epoch's end).
    ``history["val_miou"]`` gives one column."""

    epochs: list[dict] = field(default_factory=list)
    class_names: tuple[str, ...] | None = None
    stop_reason: str | None = None  # "interrupted", "non-finite loss", or None when it ran to the end

    def __getitem__(self, key: str) -> list:
        return [epoch.get(key) for epoch in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def last(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "class_names": self.class_names, "stop_reason": self.stop_reason}

    @classmethod
    def from_dict(cls, state: dict) -> History:
        names = state.get("class_names")
        return cls(list(state.get("epochs", [])), tuple(names) if names else None, state.get("stop_reason"))

    def plot(self, axes=None):
        """Loss and mIoU per epoch (train and validation): returns the matplotlib figure."""
        from seglab.viz import plot_history

        return plot_history(self, axes=axes)


# --------------------------------------------------------------------------------------------
# Settings that depend on the device
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainSettings:
    """What ``fit`` decided for this device (``fit(..., verbose=True)`` prints it)."""

    device: torch.device
    amp_dtype: torch.dtype | None  # None: full precision
    grad_scaler: bool
    channels_last: bool

    @classmethod
    def choose(cls, device, amp="auto", channels_last="auto") -> TrainSettings:
        device = pick_device(device)
        if amp == "auto":
            amp = device.type == "cuda"
        if amp is False or amp is None:
            dtype = None
        elif amp in ("bf16", "fp16"):
            dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        elif amp is True:
            cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
            dtype = torch.bfloat16 if device.type != "cuda" or cuda_bf16 else torch.float16
        else:
            raise ValueError(f'amp must be "auto", True, False, "bf16" or "fp16", got {amp!r}')
        if channels_last == "auto":
            channels_last = device.type in ("cuda", "cpu")
        return cls(device, dtype, dtype == torch.float16 and device.type == "cuda", bool(channels_last))

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images


def _match_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Centre-crop the targets to the logits' size (a valid-padding U-Net's output is smaller)."""
    if logits.shape[-2:] == target.shape[-2:]:
        return target
    if logits.shape[-2] > target.shape[-2] or logits.shape[-1] > target.shape[-1]:
        raise ValueError(f"the model's output {tuple(logits.shape[-2:])} is larger than the targets "
                         f"{tuple(target.shape[-2:])}")
    return center_crop(target, *logits.shape[-2:])


def _split_batch(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(images, masks, pixel weights or None)`` of a batch ``(images, masks)`` or ``(images, masks, weights)``."""
    if not (isinstance(batch, (tuple, list)) and len(batch) in (2, 3)):
        raise ValueError("each batch must be (images (B, C, H, W), masks (B, H, W)) or (images, masks, per-pixel "
                         "loss weights (B, H, W)); got "
                         f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}")
    weights = batch[2] if len(batch) == 3 else None
    if weights is not None and (not isinstance(weights, torch.Tensor) or weights.shape != batch[1].shape):
        raise ValueError(f"per-pixel loss weights must have the masks' shape {tuple(batch[1].shape)}, got "
                         f"{tuple(getattr(weights, 'shape', ())) or type(weights).__name__}")
    return batch[0], batch[1], weights


def _loss(logits: torch.Tensor, target: torch.Tensor, pixel_weights: torch.Tensor | None,
          class_weights: torch.Tensor | None, ignore_index: int) -> torch.Tensor:
    """Cross-entropy over the pixels that are not ``ignore_index``; with ``pixel_weights`` (B, H, W) the
    weighted mean ``Σ w·CE / Σ w`` (the U-Net paper's weighted loss, :mod:`seglab.data.weight_map`)."""
    if pixel_weights is None:
        return F.cross_entropy(logits.float(), target, weight=class_weights, ignore_index=ignore_index)
    per_pixel = F.cross_entropy(logits.float(), target, weight=class_weights, ignore_index=ignore_index,
                                reduction="none")  # (B, H, W), 0 where ignored
    weights = pixel_weights.float() * (target != ignore_index)
    return (per_pixel * weights).sum() / weights.sum().clamp_min(torch.finfo(torch.float32).tiny)


def _make_scheduler(scheduler, optimizer, lr: float, total_steps: int):
    if scheduler is None:
        return None
    if scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(total_steps, 1),
                                                   pct_start=0.15)
    if scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    if callable(scheduler):
        return scheduler(optimizer, total_steps)
    raise ValueError(f'scheduler must be "onecycle", "cosine", None or a callable(optimizer, total_steps), '
                     f'got {scheduler!r}')


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------

def fit(model: nn.Module, train_loader, val_loader=None, *, epochs: int, lr: float = 3e-3,
        weight_decay: float = 1e-4, optimizer: torch.optim.Optimizer | None = None, scheduler="onecycle",
        num_classes: int | None = None, ignore_index: int = 255, class_weights: torch.Tensor | None = None,
        device: str | torch.device = "auto", amp="auto", channels_last="auto", compile: bool = False,
        checkpoint: str | Path | None = None, resume: bool = False, progress: bool = True,
        live_plot: bool = False, class_names=None, verbose: bool = False) -> History:
    """Train ``model`` for ``epochs`` epochs; return its :class:`History` (the model is trained in place).

    The loss is cross-entropy (``ignore_index`` pixels left out); batches ``(images, masks, weights)``
    weight every pixel's loss (U-Net's weight map: ``NucleiDataset(..., weight_map=True)``). The optimiser
    is AdamW (``lr``, ``weight_decay``) with a one-cycle schedule over all epochs unless you pass your own. With
    ``checkpoint`` a checkpoint is written atomically after every epoch; ``resume=True`` continues
    from it up to ``epochs`` (the schedule is planned for the new total and resumes at the step reached).
    Ctrl-C stops cleanly: the model keeps its weights and the history so far is returned.
    """
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    num_classes = num_classes or getattr(model, "num_classes", None)
    if num_classes is None:
        raise ValueError("pass num_classes= (the model has no num_classes attribute)")
    if class_names is None:
        class_names = getattr(getattr(train_loader, "dataset", None), "class_names", None)
    settings = TrainSettings.choose(device, amp, channels_last)
    limit_threads()  # no more threads than the CPUs this process may use (affinity, cgroup quota)
    if verbose:
        print(f"training on {settings.device}, amp={settings.amp_dtype}, channels_last={settings.channels_last}")
    model.to(settings.device)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    world = distributed.setup(settings.device)  # > 1 under torchrun: data-parallel training
    main = distributed.is_main_process()
    runner = model
    if world > 1:
        runner = nn.parallel.DistributedDataParallel(model)
        train_loader = distributed.shard_loader(train_loader, train=True)
        progress = progress and main
    runner = torch.compile(runner) if compile else runner
    # on the CPU: fewer threads while they are faster (other programs share the cores; seglab.threads)
    threads_before = torch.get_num_threads()  # before the tuner sets its first count
    tuner = ThreadTuner.for_training(settings.device) if world == 1 else None
    optimizer = optimizer or torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                               weight_decay=weight_decay)
    steps_per_epoch = len(train_loader)
    lr_scheduler = _make_scheduler(scheduler, optimizer, lr, epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=settings.grad_scaler)
    weight = class_weights.to(settings.device) if class_weights is not None else None
    history = History(class_names=tuple(class_names) if class_names else None)
    first_epoch = 1

    if checkpoint is not None and resume and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, map_location=settings.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if lr_scheduler is not None:  # replay the schedule up to where it stopped (epochs may have grown)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "scheduler.step() before optimizer.step()"
                for _ in range(state["epoch"] * steps_per_epoch):
                    lr_scheduler.step()
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history = History.from_dict(state["history"])
        history.stop_reason = None
        first_epoch = state["epoch"] + 1

    plot = None
    if live_plot:
        from seglab.viz import LivePlot

        plot = LivePlot()
    good_weights = copy.deepcopy(model.state_dict())
    bar = _progress_bar(total=(epochs - first_epoch + 1) * steps_per_epoch, disable=not progress)
    epoch = first_epoch
    try:
        for epoch in range(first_epoch, epochs + 1):
            bar.set_description(f"epoch {epoch}/{epochs}")
            if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):
                train_loader.sampler.set_epoch(epoch)  # a new shuffle per epoch, the same in every process
            model.train()
            matrix = ConfusionMatrix(num_classes, ignore_index, device=settings.device)
            loss_sum = torch.zeros((), device=settings.device)
            images_seen, batches, start = 0, 0, time.perf_counter()
            for batch in train_loader:
                step_start = time.perf_counter()
                images, target, pixel_weights = _split_batch(batch)
                check_labels(target, num_classes, ignore_index)  # on the host: no device-side assert
                images = settings.to_device(images)
                target = target.to(settings.device, non_blocking=True)
                if pixel_weights is not None:
                    pixel_weights = pixel_weights.to(settings.device, non_blocking=True)
                with settings.autocast():
                    logits = runner(images)
                    target = _match_target(logits, target)
                    if pixel_weights is not None:
                        pixel_weights = _match_target(logits, pixel_weights)
                    loss = _loss(logits, target, pixel_weights, weight, ignore_index)
                finite = torch.isfinite(loss.detach()).float()
                if world > 1:  # every process must stop together
                    finite = distributed.all_reduce_sum(finite) / world
                if finite < 1:
                    model.load_state_dict(good_weights)
                    history.stop_reason = "non-finite loss"
                    warnings.warn(f"the loss became {loss.item()} in epoch {epoch}: training stopped and the weights "
                                  "of the last good epoch were restored. Lower the learning rate, check the inputs "
                                  "for nan/inf, or turn off amp.", RuntimeWarning, stacklevel=2)
                    return history
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if lr_scheduler is not None:
                    lr_scheduler.step()
                loss_sum += loss.detach()
                matrix.update(logits.detach(), target)
                if tuner is not None:  # CPU only: the step has finished (no queued device work to wait for)
                    tuner.step_done(time.perf_counter() - step_start, images.shape[0])
                images_seen += images.shape[0]
                batches += 1
                bar.update(1)
                if batches % 10 == 0 or batches == steps_per_epoch:
                    bar.set_postfix(loss=f"{loss_sum.item() / batches:.3f}", refresh=False)
            seconds = time.perf_counter() - start
            if world > 1:  # global training figures, as one process over all the data would report
                counts = distributed.all_reduce_sum(torch.tensor([batches, images_seen], device=settings.device))
                batches, images_seen = int(counts[0]), int(counts[1])
                distributed.all_reduce_sum(loss_sum)
                distributed.all_reduce_sum(matrix.matrix)
            train = matrix.compute()
            record = {
                "epoch": epoch,
                "train_loss": loss_sum.item() / max(batches, 1),
                "train_pixel_accuracy": train["pixel_accuracy"],
                "train_miou": train["miou"],
                "lr": optimizer.param_groups[0]["lr"],
                "images_per_second": images_seen / seconds if seconds > 0 else math.nan,
                "seconds": seconds,
                "threads": torch.get_num_threads(),
            }
            if val_loader is not None:
                val = evaluate(model, val_loader, num_classes, ignore_index=ignore_index, device=settings.device,
                               amp=settings.amp_dtype is not None, channels_last=settings.channels_last)
                record.update(val_loss=val["loss"], val_pixel_accuracy=val["pixel_accuracy"], val_miou=val["miou"],
                              val_iou=val["iou"])
                bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_miou=f"{val['miou']:.3f}")
            history.epochs.append(record)
            good_weights = copy.deepcopy(model.state_dict())
            if checkpoint is not None and main:
                save_checkpoint(checkpoint, model=model, optimizer=optimizer, scheduler=lr_scheduler, scaler=scaler,
                                epoch=epoch, history=history)
            if plot is not None and main:
                plot.update(history)
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
        bar.write(f"interrupted: stopped in epoch {epoch}; the model keeps its current "
                  f"weights and the history holds the {len(history)} finished epochs")
    finally:
        _close_progress_bar(bar)
        model.to(memory_format=torch.contiguous_format)
        if tuner is not None:
            set_threads(threads_before)  # evaluation afterwards: limit_threads() applies the tuner's last choice
            if verbose:
                print("threads chosen from step times:", ", ".join(
                    f"{threads} ({' '.join(f'{n}: {1000 * t:.1f}' for n, t in times.items())} ms/image)"
                    for threads, times in tuner.decisions))
    return history


def _progress_bar(total: int, disable: bool):
    from tqdm.auto import tqdm
    from tqdm.notebook import tqdm as notebook_tqdm

    options = {"total": total, "disable": disable, "unit": "batch", "dynamic_ncols": True, "mininterval": 0.5}
    if disable or not issubclass(tqdm, notebook_tqdm):  # a terminal or a log file: compact, rarely refreshed
        return tqdm(**options)
    # In Jupyter: shown with a display id, so that closing it can replace the text a saved notebook keeps
    # (otherwise the bar's first state, "0%| | 0/…", as if training never ran).
    from IPython.display import display

    bar = tqdm(**options, display=False)
    bar.saved_display = display(bar.container, display_id=True)
    return bar


def _close_progress_bar(bar) -> None:
    bar.close()
    handle = getattr(bar, "saved_display", None)
    if handle is not None:
        handle.update(bar.container)


# --------------------------------------------------------------------------------------------
# evaluate and predict
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model: nn.Module, loader, num_classes: int | None = None, *, ignore_index: int = 255,
             device: str | torch.device = "auto", amp=False, channels_last="auto") -> dict:
    """Loss and metrics of ``model`` over ``loader``: ``loss``, ``pixel_accuracy``, ``iou``, ``miou``,
    ``dice``, ``mean_dice`` and ``matrix`` (see :class:`seglab.metrics.ConfusionMatrix`)."""
    num_classes = num_classes or getattr(model, "num_classes", None)
    if num_classes is None:
        raise ValueError("pass num_classes= (the model has no num_classes attribute)")
    settings = TrainSettings.choose(device, amp, channels_last)
    limit_threads()
    loader = distributed.shard_loader(loader, train=False)  # under torchrun: each sample in one process
    was_training = model.training
    model.eval()
    model.to(settings.device)
    matrix = ConfusionMatrix(num_classes, ignore_index, device=settings.device)
    loss_sum, pixels = torch.zeros((), device=settings.device, dtype=torch.float64), 0
    for batch in loader:
        images, target, _ = _split_batch(batch)  # the validation loss is not weighted
        check_labels(target, num_classes, ignore_index)
        images, target = settings.to_device(images), target.to(settings.device, non_blocking=True)
        with settings.autocast():
            logits = model(images)
        target = _match_target(logits, target)
        loss_sum += F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="sum").double()
        pixels += int((target != ignore_index).sum())
        matrix.update(logits, target)
    model.train(was_training)
    if distributed.world_size() > 1:  # global metrics: sum the matrices, losses and pixel counts
        distributed.all_reduce_sum(matrix.matrix)
        distributed.all_reduce_sum(loss_sum)
        pixels = int(distributed.all_reduce_sum(torch.tensor(pixels, device=settings.device)))
    return {"loss": loss_sum.item() / max(pixels, 1), **matrix.compute()}


@torch.no_grad()
def predict(model: nn.Module, images, *, device: str | torch.device = "auto", batch_size: int = 32,
            probabilities: bool = False) -> torch.Tensor:
    """Class labels ``(B, H, W)`` (or softmax probabilities ``(B, K, H, W)``) on the CPU for a batch
    ``(B, C, H, W)``, one image ``(C, H, W)``, or a data set of (image, mask) pairs."""
    device = pick_device(device)
    limit_threads()
    if isinstance(images, torch.Tensor):
        batch = images[None] if images.ndim == 3 else images
        chunks = batch.split(batch_size)
    else:
        loader = images if isinstance(images, DataLoader) else DataLoader(images, batch_size=batch_size)
        chunks = (b[0] if isinstance(b, (tuple, list)) else b for b in loader)
    was_training = model.training
    model.eval()
    model.to(device)
    outputs = []
    for chunk in chunks:
        logits = model(chunk.to(device)).float()
        outputs.append((logits.softmax(1) if probabilities else logits.argmax(1)).cpu())
    model.train(was_training)
    out = torch.cat(outputs)
    return out[0] if isinstance(images, torch.Tensor) and images.ndim == 3 else out


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------

def save_checkpoint(path: str | Path, *, model: nn.Module, optimizer=None, scheduler=None, scaler=None,
                    epoch: int = 0, history: History | None = None) -> Path:
    """Write a checkpoint atomically: to a temporary file in the same folder, then renamed over
    ``path``, so an interrupted save never leaves a broken checkpoint behind."""
    import seglab

    state = {
        "seglab_version": seglab.__version__,
        "model": model.state_dict(),
        "config": getattr(model, "config", None),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "epoch": epoch,
        "history": (history or History()).to_dict(),
    }
    return atomic_write(state, path)


def atomic_write(obj, path: str | Path) -> Path:
    """``torch.save(obj, path)`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, with a clear error when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train first (seglab train ... --checkpoint {path})")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:
        raise ValueError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error}); it may be "
                         "truncated or from another program: train again or use an earlier checkpoint") from error
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise ValueError(f"{path} is a PyTorch file but not a seglab checkpoint (no 'model' and 'epoch' entries)")
    return state


def load_model(path: str | Path, map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model saved in a checkpoint from its config and load its weights."""
    from seglab.models import build_model

    state = load_checkpoint(path, map_location)
    if not state.get("config"):
        raise ValueError(f"{path} has no model config, so the model cannot be rebuilt: build it yourself and "
                         "load state['model']")
    model = build_model(**state["config"])
    model.load_state_dict(state["model"])
    return model, state
