"""Multi-GPU training under torchrun: which process this is, and the few collective steps it needs.

Run ``torchrun --nproc_per_node K -m fa3d train ...``: each process takes every K-th sample
of the same order (the schedule's batch size is the *global* batch), DDP averages the
gradients, and rank 0 alone validates, logs and writes checkpoints. A plain ``python``
process is a world of one and none of this does anything.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> Dist:
    """Join the process group when launched by torchrun (env WORLD_SIZE > 1): nccl on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank = int(os.environ["RANK"])
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return Dist(rank, world)


def wrap(module: nn.Module, d: Dist, device: torch.device) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel when there is more than one process."""
    if d.world <= 1:
        return module
    return nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def mean_over_processes(value: float, d: Dist, device: torch.device) -> float:
    """The mean of a number over all processes (the value itself in a world of one)."""
    if d.world <= 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / d.world


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def finish(d: Dist) -> None:
    """Wait for every process, then leave the process group."""
    if d.world > 1:
        dist.barrier()
        dist.destroy_process_group()
