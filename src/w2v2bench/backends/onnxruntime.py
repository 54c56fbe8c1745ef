"""ONNX Runtime (CPU provider, fp32) as a backend, on the shared ONNX export (export.py): batch size 1."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .base import BackendError, ExportedBackend, ExportedSettings, probe
from .onnx_export import INT8, export_onnx, quantize_int8

PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class OnnxRuntimeSettings(ExportedSettings):
    PRECISIONS: ClassVar[tuple[str, ...]] = PRECISIONS
    NAME: ClassVar[str] = "onnxruntime"
    EXTRA: ClassVar[str] = "onnx"
    HINT: ClassVar[str] = ""


class OnnxRuntimeBackend(ExportedBackend):
    name = "onnxruntime"
    Settings = OnnxRuntimeSettings

    def __init__(self, model: nn.Module, cache: str | os.PathLike, threads: int | None = None, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise BackendError(f"backend.precision={precision!r}: expected one of {list(PRECISIONS)} for onnxruntime")
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise BackendError(
                f"backend=onnxruntime needs the onnxruntime package ({err}): pip install 'w2v2bench[onnx]'"
            ) from None
        exported = export_onnx(model, cache)
        if precision == "int8":
            exported = quantize_int8(exported)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3  # errors reach the run as exceptions; its own coloured log lines stay out
        try:
            self._session = ort.InferenceSession(str(exported.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own error types: a damaged cache entry
            raise BackendError(
                f"{exported.path}: onnxruntime cannot load it ({type(err).__name__}); delete {exported.path.parent}"
            ) from None
        if precision == "fp32":  # a variant's argmax may differ by design; its fp32 export is probed on fp32 runs
            probe(model, self.logits, exported.path.parent, self.name)
        self._settings = {
            "name": self.name,
            "version": ort.__version__,
            "precision": precision,
            "provider": "CPUExecutionProvider",
            **exported.record(),
            **(INT8 if precision == "int8" else {}),
        }

    def logits(self, batch: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if batch.shape[0] != 1 or attention_mask is not None:
            raise BackendError(f"backend={self.name} runs one unpadded utterance at a time, got {tuple(batch.shape)}")
        (out,) = self._session.run(["logits"], {"input_values": batch.detach().cpu().float().numpy()})
        return torch.from_numpy(out).to(batch.device)

    def settings(self) -> dict:
        return self._settings
