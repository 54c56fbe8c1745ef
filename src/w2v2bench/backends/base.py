"""What every backend is: the `Backend` protocol and its one-line error."""

from __future__ import annotations

import importlib.util
import os
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


class ExportedBackend:
    """What the backends that run the shared ONNX export have in common: their capabilities (the export has no
    padding masks, and runs on the CPU here) and how they are built; each sets `name` and `Settings`."""

    devices = ("cpu",)
    precisions = ("fp32",)  # the run's `precision`; the runtime's own is backend.precision
    batchings = ("exact",)
    compiles = False
    reference = False
    max_batch_size = 1

    @classmethod
    def create(cls, settings: ExportedSettings, model):
        return cls(model, os.path.expanduser(settings.cache), precision=settings.precision)


PROBED: set[str] = set()  # cached exports already probed in this process


def probe(model, logits, folder, name: str) -> None:
    """A cached export's output checked against the model in memory (PyTorch fp32), once per process: one second
    of seeded noise through both, the argmax compared frame by frame where PyTorch's top two logits are clearly
    apart. The reference is computed here, not read from the cache entry, so a replaced model file and a forged
    export.json cannot pass as this model. A mismatch is one line naming the folder to delete."""
    key = str(folder)
    if key in PROBED:
        return
    x = torch.randn(1, 16_000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(x).logits[0].float()
    theirs = logits(x, None)[0].float()
    top2 = ours.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-3
    if theirs.shape != ours.shape:
        differ, frames = "all", ours.shape[0]
    else:
        differ = int((ours.argmax(-1) != theirs.argmax(-1))[clear].sum())
        frames = int(clear.sum())
    if differ:
        raise BackendError(
            f"{folder}: backend={name} gives other output than this model in PyTorch fp32 on a probe ({differ} of "
            f"{frames} frames' argmax differ): the cached export is not this model's; delete {folder}"
        )
    PROBED.add(key)
