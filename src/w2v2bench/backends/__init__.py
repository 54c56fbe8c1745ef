"""Batch -> logits: one protocol, its implementations side by side, chosen by the `backend` config group.

`torch` (the default and the reference) is the model's own forward, with exact batching (model.py). Other
runtimes run the same weights exported once into a cache keyed by the weights' hash, the runtime's version and
the export settings (export.py); `onnxruntime` and `openvino` run that export, which has none of the masks exact
batching needs, so they run at batch size 1 (the card's protocol) and say so in summary.json.
"""

from __future__ import annotations

from typing import Protocol

import torch

BACKENDS = ("torch", "onnxruntime", "openvino")


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


def make_backend(name: str, model, cache: str, precision: str = "fp32") -> Backend | None:
    """The backend called `name` (one of BACKENDS) for `model`; None for torch (the model's own forward)."""
    if name == "torch":
        if precision != "fp32":
            raise BackendError(f"backend.precision={precision!r}: backend=torch uses `precision` (fp32|bf16|fp16)")
        return None
    if name == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, cache, precision=precision)
    if name == "openvino":
        from .openvino import OpenVinoBackend

        return OpenVinoBackend(model, cache, precision=precision)
    raise BackendError(f"backend={name!r}: expected one of {list(BACKENDS)}")
