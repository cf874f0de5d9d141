"""Process-group setup for ``torchrun`` and the step-aligned sampler shared by all ranks.

One code path serves a plain ``python``/``tpsmm`` process (world size 1) and ``torchrun
--nproc_per_node N`` (NCCL on CUDA, gloo on CPU; ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from the
environment).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from ..core.device import resolve_device

__all__ = ["DistInfo", "training_device", "init_distributed", "shutdown_distributed", "StepSampler", "mix_seed",
           "chunk_seed", "all_reduce_sum"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: ``rank`` of ``world_size``, ``local_rank`` on its node, and the
    ``device`` it trains on. ``owns_group``: this process created the process group (and must destroy it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def training_device(name: str | None) -> torch.device:
    """The device of ``--device name`` (parsed and checked by :func:`~tpsmm.core.device.resolve_device`);
    ``None``: CUDA when available, else the CPU (training never picks MPS by itself)."""
    return resolve_device(name or ("cuda" if torch.cuda.is_available() else "cpu"), what="--device")


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the ``torchrun`` job described by the environment (or run alone when ``WORLD_SIZE`` is unset/1).

    Args:
        device: a device name of :func:`~tpsmm.core.device.resolve_device` or ``None`` (CUDA when available,
            else the CPU: training does not pick MPS by itself). Under torchrun each rank uses ``cuda:LOCAL_RANK``.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    dev = training_device(device)
    if dev.type == "cuda":
        if world > 1 or dev.index is None:
            dev = torch.device("cuda", local if world > 1 else 0)
        torch.cuda.set_device(dev)
    owns = False
    if world > 1 and not (dist.is_available() and dist.is_initialized()):
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev, owns_group=owns)


def shutdown_distributed(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def mix_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from non-negative integers (numpy ``SeedSequence``)."""
    a, b = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return ((int(a) << 32) | int(b)) & ((1 << 63) - 1)


def chunk_seed(seed: int, step: int, chunk: int) -> int:
    """Seed of the training noise (dropout masks, random TPS) of micro-batch ``chunk`` of optimizer step ``step``."""
    return mix_seed(seed, 0, step, chunk)


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a small tensor over all ranks (identity when alone)."""
    if info.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


class StepSampler(Sampler[int]):
    """This rank's sample indices for one epoch, aligned on optimizer steps.

    Each epoch shuffles ``range(length)`` with a generator seeded by ``(seed, epoch)`` (the same on every
    rank). Optimizer step ``s`` consumes the global batch ``perm[s*G : (s+1)*G]`` (``G`` =
    ``micro_batch * world_size * accumulate``), cut into micro-batches ``chunk = m * world_size + rank``
    (``m`` = accumulation index). So the samples of a step — and their positions, which seed their noise —
    depend only on the global batch, not on how it is split over processes and accumulation. The tail
    that does not fill a global batch is dropped. ``start_step`` skips steps already done (resume).
    Batch the yielded indices with ``batch_size=micro_batch``.
    """

    def __init__(self, length: int, *, micro_batch: int, world_size: int = 1, rank: int = 0, accumulate: int = 1,
                 seed: int = 0, epoch: int = 0, start_step: int = 0, shuffle: bool = True) -> None:
        if micro_batch < 1 or world_size < 1 or accumulate < 1 or not 0 <= rank < world_size:
            raise ValueError(f"StepSampler: invalid split (micro_batch {micro_batch}, world_size {world_size}, "
                             f"rank {rank}, accumulate {accumulate})")
        self.length, self.micro, self.world, self.rank = length, micro_batch, world_size, rank
        self.accumulate, self.seed, self.epoch, self.start_step, self.shuffle = accumulate, seed, epoch, start_step, shuffle

    @property
    def global_batch(self) -> int:
        return self.micro * self.world * self.accumulate

    @property
    def steps_per_epoch(self) -> int:
        return self.length // self.global_batch

    def __len__(self) -> int:
        return max(0, self.steps_per_epoch - self.start_step) * self.accumulate * self.micro

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(mix_seed(self.seed, 1, self.epoch))
            perm = torch.randperm(self.length, generator=g).tolist()
        else:
            perm = list(range(self.length))
        for step in range(self.start_step, self.steps_per_epoch):
            base = step * self.global_batch
            for m in range(self.accumulate):
                start = base + (m * self.world + self.rank) * self.micro
                yield from perm[start:start + self.micro]
