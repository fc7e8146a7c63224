"""A training sampler that draws every class equally often, each DDP rank taking a disjoint share of the draws."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


class BalancedDistributedSampler(DistributedSampler):
    """Class-balanced draws: each epoch, every class is drawn len(labels) / num_classes times (rounded up or down).

    Within a class the videos are taken in a fresh random order, repeated as often as the class needs, so a
    small class's videos recur (each about equally often) and a large class's videos are each drawn at most
    once. The epoch keeps its length, len(labels) draws (rounded up to a multiple of num_replicas, as
    `DistributedSampler` pads), and is shuffled with a generator seeded by
    `seed + epoch`, the same on every rank; rank r takes draws r, r + num_replicas, ... (a disjoint share, as
    `DistributedSampler` deals them). Call `set_epoch` before each epoch (Lightning's fit loop does).

    A `DistributedSampler` subclass, so Lightning uses it as it is under DDP instead of wrapping it in one.
    `num_replicas` and `rank` default to the process group's when one is initialized, else 1 and 0; `seed` to
    the seed of `seed_everything` (`PL_GLOBAL_SEED`), else 0.
    """

    def __init__(
        self,
        labels: Sequence[int],
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int | None = None,
    ):
        distributed = dist.is_available() and dist.is_initialized()
        num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if distributed else 1)
        rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        seed = seed if seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        super().__init__(labels, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        labels = torch.as_tensor(labels)
        self.members = [torch.nonzero(labels == c).flatten() for c in labels.unique()]

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        num_classes = len(self.members)
        # total_size draws shared out as evenly as the division allows; random classes take the remainder
        counts = torch.full((num_classes,), self.total_size // num_classes)
        counts[torch.randperm(num_classes, generator=generator)[: self.total_size % num_classes]] += 1
        draws = torch.cat([self._draw(m, int(n), generator) for m, n in zip(self.members, counts, strict=True)])
        draws = draws[torch.randperm(len(draws), generator=generator)]
        return iter(draws[self.rank : self.total_size : self.num_replicas].tolist())

    @staticmethod
    def _draw(members: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
        """`count` of a class's videos: whole random permutations of them, the last one cut short."""
        rounds = max(1, math.ceil(count / len(members)))
        return torch.cat([members[torch.randperm(len(members), generator=generator)] for _ in range(rounds)])[:count]
