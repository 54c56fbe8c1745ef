"""What every backend is: the `Backend` protocol and its one-line error."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch


class BackendError(ValueError):
    """A backend that cannot run here (its package missing, a setting it does not support): one line."""


class Backend(Protocol):
    """A backend class is named by `_target_` in conf/backend/<name>.yaml and built with `create(settings, model)`;
    its capabilities are class attributes, read by settings.validate before anything loads."""

    name: str
    Settings: ClassVar[type]  # a frozen dataclass of the keys its YAML may set (checked in __post_init__)
    devices: ClassVar[tuple[str, ...] | None]  # device types it runs on; None: any
    precisions: ClassVar[tuple[str, ...]]  # the run's `precision` values it takes
    batchings: ClassVar[tuple[str, ...]]  # the run's `batching` values it takes
    compiles: ClassVar[bool]  # whether compile=true applies
    reference: ClassVar[bool]  # its fp32 transcripts are the reference (nothing to re-check against)
    max_batch_size: int | None  # None: any batch (exact batching); 1: one unpadded utterance at a time

    def logits(self, batch: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """(batch, frames, vocabulary) logits of a padded batch, on the batch's device."""
        ...

    def settings(self) -> dict:
        """What summary.json records: runtime, version, precision, export settings, cache, export time."""
        ...


@dataclass(frozen=True)
class ExportedSettings:
    """The keys of a backend that runs the shared ONNX export (onnxruntime, openvino)."""

    cache: str = "~/.cache/w2v2bench"  # where exports are kept (one folder per weights x versions x settings)
    precision: str = "fp32"  # the runtime's own precision
    PRECISIONS: ClassVar[tuple[str, ...]] = ("fp32",)
    NAME: ClassVar[str] = ""  # the runtime's package, and the backend's name
    EXTRA: ClassVar[str] = ""  # the package's optional extra of w2v2bench
    HINT: ClassVar[str] = ""

    def __post_init__(self):
        if importlib.util.find_spec(self.NAME) is None:  # found before the model loads (imported at `create`)
            raise BackendError(
                f"backend={self.NAME} needs the {self.NAME} package (not installed): "
                f"pip install 'w2v2bench[{self.EXTRA}]'"
            )
        if self.precision not in self.PRECISIONS:
            raise BackendError(
                f"backend.precision={self.precision!r}: expected one of {list(self.PRECISIONS)} for {self.NAME}"
                + self.HINT
            )
