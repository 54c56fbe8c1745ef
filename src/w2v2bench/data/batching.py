"""Decoding in worker threads a bounded window ahead of the model, and length-sorted batches within a window."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from . import Decoded, Utterance
from .audio import decode


def decoded_windows(
    utterances: Iterable[Utterance],
    prepare: Callable[[np.ndarray], np.ndarray],
    window: int,
    workers: int,
) -> Iterator[list[Decoded]]:
    """Windows of decoded utterances in corpus order; the next window decodes while the caller works.

    `workers=0` decodes in the calling thread instead: on a CPU device the model already uses every core,
    and decoding threads beside it only make the two contend."""
    it = iter(utterances)
    chunks = iter(lambda: list(itertools.islice(it, max(1, window))), [])
    if workers == 0:
        for chunk in chunks:
            yield [decode(u, prepare) for u in chunk]
        return
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        pending: list[Future[Decoded]] | None = None
        for chunk in chunks:
            submitted = [pool.submit(decode, u, prepare) for u in chunk]
            if pending is not None:
                yield [f.result() for f in pending]
            pending = submitted
        if pending is not None:
            yield [f.result() for f in pending]


def plan_batches(lengths: list[int], batch_size: int, max_batch_samples: int) -> list[list[int]]:
    """Positions into `lengths`, longest first, grouped so that count <= batch_size and
    count x longest <= max_batch_samples (a single longer utterance gets a batch of its own)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches:
            batch = batches[-1]
            longest = lengths[batch[0]]
            if len(batch) < batch_size and (len(batch) + 1) * longest <= max_batch_samples:
                batch.append(i)
                continue
        batches.append([i])
    return batches
