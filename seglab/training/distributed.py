"""Data-parallel training under ``torchrun``: process group, sharded loaders, global sums.

``fit`` and ``evaluate`` call these; outside ``torchrun`` (``WORLD_SIZE`` unset or 1) every function
is a no-op, so single-process code pays nothing. The backend is NCCL on CUDA and gloo on the CPU.
"""

from __future__ import annotations

import atexit
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, Sampler

__all__ = ["ShardSampler", "all_reduce_sum", "is_main_process", "setup", "shard_loader", "world_size"]


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world_size() > 1 else 0


def is_main_process() -> bool:
    """True in a single process and in rank 0: the one that logs and writes checkpoints."""
    return rank() == 0


def setup(device: torch.device) -> int:
    """Join the process group that ``torchrun`` describes (once) and return the world size."""
    wanted = int(os.environ.get("WORLD_SIZE", "1"))
    if wanted > 1 and dist.is_available() and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave_group)
    return world_size()


EXIT_BARRIER_SECONDS = 60


def _leave_group() -> None:
    """At exit: wait until every process has finished its work (after a normal exit), then leave the group
    while Python is still whole. A process that tears its group down while another still works with it, or
    exits without leaving, can abort at interpreter shutdown ("terminate called without an active
    exception"; pytorch/pytorch#190489, #179291); PyTorch's own tests end with a barrier and the destroy."""
    if not dist.is_initialized():  # the user's script left the group itself
        return
    if getattr(sys, "last_value", None) is None:  # no uncaught exception: the other processes are finishing too
        try:
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=timedelta(seconds=EXIT_BARRIER_SECONDS))
            else:
                dist.barrier()
        except RuntimeError:  # another process failed or left already: leave all the same
            pass
    dist.destroy_process_group()


class ShardSampler(Sampler):
    """Indices ``rank, rank + world, ...``: every sample exactly once over all processes (no padding,
    unlike ``DistributedSampler``), so evaluation counts each pixel once."""

    def __init__(self, length: int):
        self.indices = list(range(rank(), length, world_size()))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def shard_loader(loader, *, train: bool, seed: int = 0):
    """The same loader over this process's share of the data (unchanged in a single process)."""
    if world_size() == 1 or not isinstance(loader, DataLoader):
        return loader
    if isinstance(loader.sampler, (DistributedSampler, ShardSampler)):
        return loader
    dataset = loader.dataset
    sampler = DistributedSampler(dataset, shuffle=True, seed=seed) if train else ShardSampler(len(dataset))
    return DataLoader(dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
                      pin_memory=loader.pin_memory, drop_last=loader.drop_last, collate_fn=loader.collate_fn,
                      persistent_workers=loader.num_workers > 0)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes, in place (returned for convenience)."""
    if world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
