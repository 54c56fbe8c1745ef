"""What every backend is: the `Backend` protocol and its one-line error."""

from __future__ import annotations

from typing import Protocol

import torch


class BackendError(ValueError):
    """A backend that cannot run here (its package missing, a setting it does not support): one line."""


class Backend(Protocol):
    name: str
    max_batch_size: int | None  # None: any batch (exact batching); 1: one unpadded utterance at a time

    def logits(self, batch: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """(batch, frames, vocabulary) logits of a padded batch, on the batch's device."""
        ...

    def settings(self) -> dict:
        """What summary.json records: runtime, version, precision, export settings, cache, export time."""
        ...
