"""Training: ``fit`` (and the loader and seed helpers it is used with).

``fit`` uses the best device it finds (CUDA, then MPS, then the CPU) and what pays there: mixed
precision on CUDA (bf16 where supported, else fp16 with a gradient scaler), channels_last memory
layout on CUDA and the CPU, pinned memory and loader workers on CUDA (see :func:`make_loader`),
optionally ``torch.compile``. It shows one progress bar, checks every batch's labels before the
loss, stops cleanly on Ctrl-C ("interrupt kernel") and on a NaN/inf loss, and writes checkpoints
atomically, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from seglab.metrics import ConfusionMatrix, check_labels
from seglab.training import distributed
from seglab.training.checkpoints import load_checkpoint, save_checkpoint
from seglab.training.device import DeviceSettings, pick_device
from seglab.training.evaluation import evaluate, match_target, split_batch
from seglab.training.history import History
from seglab.training.threads import ThreadTuner, limit_threads, set_threads

__all__ = ["fit", "make_loader", "seed_everything"]


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

    The loss is cross-entropy (``ignore_index`` pixels left out). Ctrl-C stops cleanly: the model keeps its
    weights and the history so far is returned. A non-finite loss stops training and restores the weights
    of the last good epoch.

    Args:
        model: a module mapping ``(B, C, H, W)`` images to ``(B, K, H', W')`` logits (targets are cropped to
            ``H' x W'``).
        train_loader, val_loader: batches ``(images, masks)`` or ``(images, masks, weights)``; weights scale
            each pixel's loss (U-Net's weight map: ``NucleiDataset(..., weight_map=True)``). ``val_loader``
            is evaluated after every epoch (optional).
        epochs: the epoch to train up to (with ``resume``, counted from the first epoch of the run).
        lr, weight_decay, optimizer: AdamW with this peak ``lr`` and ``weight_decay``, unless you pass one.
        scheduler: ``"onecycle"`` over all steps, ``"cosine"``, ``None``, or ``callable(optimizer, steps)``.
        num_classes, class_names: default to the model's ``num_classes`` and the data set's names.
        ignore_index, class_weights: as in ``F.cross_entropy``.
        device, amp, channels_last: see :class:`DeviceSettings` (``"auto"``: CUDA > MPS > CPU; mixed
            precision and channels-last on CUDA).
        compile: ``torch.compile`` the model first.
        checkpoint, resume: write a checkpoint atomically after every epoch; ``resume=True`` continues from
            it up to ``epochs`` (the schedule is planned for the new total and resumes at the step reached).
        progress, live_plot, verbose: a progress bar; a live loss/mIoU plot in Jupyter; print the device
            settings and the CPU thread decisions.
    """
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    num_classes = num_classes or getattr(model, "num_classes", None)
    if num_classes is None:
        raise ValueError("pass num_classes= (the model has no num_classes attribute)")
    if class_names is None:
        class_names = getattr(getattr(train_loader, "dataset", None), "class_names", None)
    run = _start_run(model, train_loader, epochs=epochs, lr=lr, weight_decay=weight_decay, optimizer=optimizer,
                     scheduler=scheduler, num_classes=num_classes, ignore_index=ignore_index,
                     class_weights=class_weights, device=device, amp=amp, channels_last=channels_last,
                     compile=compile, verbose=verbose)
    history = History(class_names=tuple(class_names) if class_names else None)
    epoch, bar = 1, None
    try:  # from here on, _end_run restores the model's memory format and the thread count, whatever happens
        if checkpoint is not None and resume and Path(checkpoint).exists():
            history, epoch = _resume(run, checkpoint)
        first_epoch = epoch
        plot = None
        if live_plot and run.main:
            from seglab.notebook.curves import LivePlot

            plot = LivePlot()
        good_weights = copy.deepcopy(model.state_dict())
        bar = _progress_bar(total=(epochs - first_epoch + 1) * run.steps_per_epoch, disable=not (progress and run.main))
        epoch_start = time.perf_counter()
        for epoch in range(first_epoch, epochs + 1):
            bar.set_description(f"epoch {epoch}/{epochs}")
            try:
                record = _train_one_epoch(run, epoch, bar)
            except _NonFiniteLoss as error:
                model.load_state_dict(good_weights)
                history.stop_reason = "non-finite loss"
                warnings.warn(f"the loss became {error} in epoch {epoch}: training stopped and the weights of the "
                              "last good epoch were restored. Lower the learning rate, check the inputs for nan/inf, "
                              "or turn off amp.", RuntimeWarning, stacklevel=2)
                return history
            if val_loader is not None:
                record.update(_validate(run, val_loader))
                bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_miou=f"{record['val_miou']:.3f}")
            good_weights = _after_epoch(run, history, record, checkpoint, plot)
            if epoch == first_epoch and epoch < epochs and progress and run.main:
                bar.write(_forecast(time.perf_counter() - epoch_start, record, epochs - first_epoch + 1))
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
        (bar.write if bar is not None else print)(
            f"interrupted: stopped in epoch {epoch}; the model keeps its current weights and the history holds "
            f"the {len(history)} finished epochs")
    finally:
        if bar is not None:
            _close_progress_bar(bar)
        _end_run(run, verbose)
    return history


@dataclass
class _Run:
    """What the steps of one ``fit`` share."""

    model: nn.Module
    runner: nn.Module  # what computes the logits: the model, or its DDP / compiled wrapper
    train_loader: object
    optimizer: torch.optim.Optimizer
    scheduler: object  # None, or stepped once per training step
    scaler: torch.amp.GradScaler
    settings: DeviceSettings
    num_classes: int
    ignore_index: int
    class_weights: torch.Tensor | None
    world: int  # processes under torchrun (1: this one alone)
    main: bool  # the process that reports and writes
    tuner: ThreadTuner | None  # CPU training: chooses the thread count from step times
    threads_before: int

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)


class _NonFiniteLoss(Exception):
    """A training step's loss was nan or inf (in any process)."""


def _start_run(model, train_loader, *, epochs, lr, weight_decay, optimizer, scheduler, num_classes, ignore_index,
               class_weights, device, amp, channels_last, compile, verbose) -> _Run:
    """Device, precision, processes, threads, optimiser and schedule of a run."""
    settings = DeviceSettings.choose(device, amp, channels_last)
    limit_threads()  # no more threads than the CPUs this process may use (affinity, cgroup quota)
    if verbose:
        print(f"training on {settings.device}, amp={settings.amp_dtype}, channels_last={settings.channels_last}")
    model.to(settings.device)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    world = distributed.setup(settings.device)  # > 1 under torchrun: data-parallel training
    runner = model
    if world > 1:
        runner = nn.parallel.DistributedDataParallel(model)
        train_loader = distributed.shard_loader(train_loader, train=True)
    runner = torch.compile(runner) if compile else runner
    # on the CPU: fewer threads while they are faster (other programs share the cores; seglab.training.threads)
    threads_before = torch.get_num_threads()  # before the tuner sets its first count
    tuner = ThreadTuner.for_training(settings.device) if world == 1 else None
    optimizer = optimizer or torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                               weight_decay=weight_decay)
    return _Run(model=model, runner=runner, train_loader=train_loader, optimizer=optimizer,
                scheduler=_make_scheduler(scheduler, optimizer, lr, epochs * len(train_loader)),
                scaler=torch.amp.GradScaler("cuda", enabled=settings.grad_scaler), settings=settings,
                num_classes=num_classes, ignore_index=ignore_index,
                class_weights=class_weights.to(settings.device) if class_weights is not None else None,
                world=world, main=distributed.is_main_process(), tuner=tuner, threads_before=threads_before)


def _resume(run: _Run, checkpoint) -> tuple[History, int]:
    """Load weights, optimiser and scaler from ``checkpoint``; return its history and the next epoch."""
    state = load_checkpoint(checkpoint, map_location=run.settings.device)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scheduler is not None:  # replay the schedule up to where it stopped (epochs may have grown)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "scheduler.step() before optimizer.step()"
            for _ in range(state["epoch"] * run.steps_per_epoch):
                run.scheduler.step()
    if state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    history = History.from_dict(state["history"])
    history.stop_reason = None
    return history, state["epoch"] + 1


def _train_one_epoch(run: _Run, epoch: int, bar) -> dict:
    """One pass over the training data: the epoch's training figures (global under torchrun)."""
    settings, loader = run.settings, run.train_loader
    if hasattr(getattr(loader, "sampler", None), "set_epoch"):
        loader.sampler.set_epoch(epoch)  # a new shuffle per epoch, the same in every process
    run.model.train()
    matrix = ConfusionMatrix(run.num_classes, run.ignore_index, device=settings.device)
    loss_sum = torch.zeros((), device=settings.device)
    images_seen, batches, start = 0, 0, time.perf_counter()
    for batch in loader:
        step_start = time.perf_counter()
        images, target, pixel_weights = split_batch(batch)
        check_labels(target, run.num_classes, run.ignore_index)  # on the host, once: no device-side assert
        images = settings.to_device(images)  # (B, C, H, W)
        target = target.to(settings.device, non_blocking=True)  # (B, H, W)
        if pixel_weights is not None:
            pixel_weights = pixel_weights.to(settings.device, non_blocking=True)
        with settings.autocast():
            logits = run.runner(images)  # (B, K, H', W')
            target = match_target(logits, target)
            if pixel_weights is not None:
                pixel_weights = match_target(logits, pixel_weights)
            loss = _loss(logits, target, pixel_weights, run.class_weights, run.ignore_index)
        finite = torch.isfinite(loss.detach()).float()
        if run.world > 1:  # every process must stop together
            finite = distributed.all_reduce_sum(finite) / run.world
        if finite < 1:  # sync point: the host waits for this step's loss
            raise _NonFiniteLoss(loss.item())
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        if run.scheduler is not None:
            run.scheduler.step()
        loss_sum += loss.detach()  # summed on the device: no sync
        matrix.update(logits.detach(), target, labels_checked=True)
        if run.tuner is not None:  # CPU only: the step has finished (no queued device work to wait for)
            run.tuner.step_done(time.perf_counter() - step_start, images.shape[0])
        images_seen += images.shape[0]
        batches += 1
        bar.update(1)
        if batches % 10 == 0 or batches == run.steps_per_epoch:  # sync point, every 10 steps: the shown loss
            bar.set_postfix(loss=f"{loss_sum.item() / batches:.3f}", refresh=False)
    seconds = time.perf_counter() - start
    if run.world > 1:  # global training figures, as one process over all the data would report
        counts = distributed.all_reduce_sum(torch.tensor([batches, images_seen], device=settings.device))
        batches, images_seen = int(counts[0]), int(counts[1])
        distributed.all_reduce_sum(loss_sum)
        distributed.all_reduce_sum(matrix.matrix)
    train = matrix.compute()
    return {
        "epoch": epoch,
        "train_loss": loss_sum.item() / max(batches, 1),
        "train_pixel_accuracy": train["pixel_accuracy"],
        "train_miou": train["miou"],
        "lr": run.optimizer.param_groups[0]["lr"],
        "images_per_second": images_seen / seconds if seconds > 0 else math.nan,
        "seconds": seconds,
        "threads": torch.get_num_threads(),
    }


def _validate(run: _Run, val_loader) -> dict:
    """The validation figures of the epoch's record (global under torchrun)."""
    val = evaluate(run.model, val_loader, run.num_classes, ignore_index=run.ignore_index, device=run.settings.device,
                   amp=run.settings.amp_dtype is not None, channels_last=run.settings.channels_last)
    return {"val_loss": val["loss"], "val_pixel_accuracy": val["pixel_accuracy"], "val_miou": val["miou"],
            "val_iou": val["iou"]}


def _after_epoch(run: _Run, history: History, record: dict, checkpoint, plot) -> dict:
    """Add the epoch's record, write the checkpoint (one process), redraw the live plot; return a copy of the
    weights, which a later non-finite loss restores."""
    history.epochs.append(record)
    if checkpoint is not None and run.main:
        save_checkpoint(checkpoint, model=run.model, optimizer=run.optimizer, scaler=run.scaler,
                        epoch=record["epoch"], history=history)
    if plot is not None:
        plot.update(history)
    return copy.deepcopy(run.model.state_dict())


def _duration(seconds: float) -> str:
    """``"40 s"``, ``"4.5 min"``, ``"1.2 h"``: a time to plan with."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _forecast(first_epoch_seconds: float, record: dict, epochs: int) -> str:
    """What the run's first epoch says about the whole run on this machine: its work, its rate, its time."""
    images = round(record["images_per_second"] * record["seconds"])
    return (f"epoch {record['epoch']} took {_duration(first_epoch_seconds)} ({images} training images at "
            f"{record['images_per_second']:.0f} images/s, then the validation): the {epochs} epochs of this run "
            f"take at most about {_duration(first_epoch_seconds * epochs)} on this machine (the first is the slowest)")


def _end_run(run: _Run, verbose: bool) -> None:
    run.model.to(memory_format=torch.contiguous_format)
    if run.tuner is not None:
        set_threads(run.threads_before)  # evaluation afterwards: limit_threads() applies the tuner's last choice
        if verbose:
            print("threads chosen from step times:", ", ".join(
                f"{threads} ({' '.join(f'{n}: {1000 * t:.1f}' for n, t in times.items())} ms/image)"
                for threads, times in run.tuner.decisions))


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


