"""PyTorch eager as a backend: the model's own forward, with exact batching (model/exact.py). The reference."""

from __future__ import annotations

from dataclasses import dataclass

from .base import BackendError


@dataclass(frozen=True)
class TorchSettings:
    cache: str = "~/.cache/w2v2bench"  # unused: nothing is exported
    precision: str = "fp32"

    def __post_init__(self):
        if self.precision != "fp32":
            raise BackendError(f"backend.precision={self.precision!r}: backend=torch uses `precision` (fp32|bf16|fp16)")


class TorchBackend:
    name = "torch"
    Settings = TorchSettings
    # capabilities (settings.validate reads these, not the name)
    devices = None  # any torch device
    precisions = ("fp32", "bf16", "fp16")  # the run's `precision` (autocast)
    batchings = ("exact", "naive")
    compiles = True
    reference = True  # its fp32 transcripts are the ones a recheck or check_precision compares against
    max_batch_size = None  # any batch (exact batching)

    @classmethod
    def create(cls, settings: TorchSettings, model) -> None:
        """None: the Transcriber runs the model's own forward (nothing to build)."""
        return None
