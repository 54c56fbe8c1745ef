"""Data-parallel runs under torchrun: shards balanced by audio seconds, results gathered on rank 0.

`torchrun --nproc_per_node=N -m w2v2bench ...` sets RANK/WORLD_SIZE/LOCAL_RANK; each rank runs the same
exact batched inference on its shard (`cuda:<local_rank>`, or the CPU with gloo) and rank 0 restores
corpus order, scores and writes, so the outputs equal a single-process run's.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import soundfile as sf
import torch.distributed as dist

from .data import Utterance
from .files import open_regular


@dataclass(frozen=True)
class Rank:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device: str) -> Rank | None:
    """Join the process group torchrun describes; None for a plain single-process run."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return Rank(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def rank_device(device: str, rank: Rank | None) -> str:
    """Each rank's own GPU: `cuda` and `cuda:N` both become `cuda:<local_rank>` under torchrun."""
    if rank is None or not device.startswith("cuda"):
        return device
    return f"cuda:{rank.local_rank}"


def duration_s(utterance: Utterance) -> float:
    """Audio seconds from the file header (no decoding); 0 for an utterance that cannot be read."""
    if utterance.error or not utterance.path:
        return 0.0
    try:
        with open_regular(utterance.path) as handle:  # a FIFO would block the shard plan forever
            return sf.info(handle).duration
    except Exception:  # the run itself records why it cannot be read
        return 0.0


def shard(utterances: list[Utterance], world_size: int, rank: int) -> list[Utterance]:
    """This rank's utterances: longest first to the least-loaded rank (balanced by seconds), corpus order kept."""
    seconds = {u.index: duration_s(u) for u in utterances}
    loads = [(0.0, r) for r in range(world_size)]
    owner: dict[int, int] = {}
    for u in sorted(utterances, key=lambda u: (-seconds[u.index], u.index)):
        load, r = heapq.heappop(loads)
        owner[u.index] = r
        heapq.heappush(loads, (load + max(seconds[u.index], 1e-3), r))
    return [u for u in utterances if owner[u.index] == rank]


def broadcast(value: Any, rank: Rank | None) -> Any:
    """Rank 0's value on every rank."""
    if rank is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any, rank: Rank | None) -> list[Any]:
    """Every rank's value, on every rank, in rank order."""
    if rank is None:
        return [value]
    out: list[Any] = [None] * rank.world_size
    dist.all_gather_object(out, value)
    return out


def finish(rank: Rank | None) -> None:
    if rank is not None and dist.is_initialized():
        dist.destroy_process_group()


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run and the steps that differ under torchrun. For one process (`rank` None)
    each step is the identity, so the walk (harness.bench) has no branch for it."""

    rank: Rank | None = None

    @property
    def is_main(self) -> bool:
        return self.rank is None or self.rank.is_main

    @property
    def journal(self) -> int | None:
        """The journal this process writes: None (the one journal) for one process, else its rank's."""
        return None if self.rank is None else self.rank.rank

    def device(self, device: str) -> str:
        return rank_device(device, self.rank)

    def broadcast(self, value: Any) -> Any:
        return broadcast(value, self.rank)

    def gather(self, value: Any) -> list[Any]:
        return gather(value, self.rank)

    def shard(self, utterances: Iterable[Utterance], total: int | None) -> tuple[Iterable[Utterance], int | None]:
        """This rank's share of the utterances the main rank still has to do (its list is already the pending
        one; the others read the whole source and keep what the main rank names)."""
        if self.rank is None:
            return utterances, total
        utterances = list(utterances)
        todo = self.broadcast({u.index for u in utterances} if self.is_main else None)
        mine = shard([u for u in utterances if u.index in todo], self.rank.world_size, self.rank.rank)
        return mine, len(mine)


@contextmanager
def session(device: str) -> Iterator[Ranks]:
    """The process group torchrun describes, joined for the run and left after it; one process joins none."""
    ranks = Ranks(init(device))
    try:
        yield ranks
    finally:
        finish(ranks.rank)
