"""OpenVINO (CPU, precision set explicitly) as a backend, on the shared ONNX export (export.py): batch size 1.

OpenVINO's CPU plugin defaults to bf16 inference where the CPU has it (it does on this project's machines), which
changes transcripts: the precision hint is set (f32 unless backend.precision=bf16) and the compiled model's own
hint is read back, checked and recorded.
It compiles kernels for each new input length: a real run sees most lengths once, so it is not fast here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .base import BackendError, ExportedBackend, ExportedSettings, probe
from .onnx_export import export_onnx

HINTS = {"fp32": "f32", "bf16": "bf16"}  # backend.precision -> the CPU plugin's INFERENCE_PRECISION_HINT


@dataclass(frozen=True)
class OpenVinoSettings(ExportedSettings):
    PRECISIONS: ClassVar[tuple[str, ...]] = tuple(HINTS)
    NAME: ClassVar[str] = "openvino"
    EXTRA: ClassVar[str] = "openvino"
    HINT: ClassVar[str] = " (int8: onnxruntime)"


class OpenVinoBackend(ExportedBackend):
    name = "openvino"
    Settings = OpenVinoSettings

    def __init__(self, model: nn.Module, cache: str | os.PathLike, threads: int | None = None, precision: str = "fp32"):
        if precision not in HINTS:
            raise BackendError(
                f"backend.precision={precision!r}: expected one of {list(HINTS)} for openvino (int8: onnxruntime)"
            )
        try:
            import openvino as ov
        except ImportError as err:
            raise BackendError(
                f"backend=openvino needs the openvino package ({err}): pip install 'w2v2bench[openvino]'"
            ) from None
        exported = export_onnx(model, cache)
        core = ov.Core()
        config = {
            "INFERENCE_PRECISION_HINT": HINTS[precision],
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
        }
        try:
            compiled = core.compile_model(core.read_model(str(exported.path)), "CPU", config)
        except Exception as err:  # OpenVINO's own error types: a damaged cache entry
            raise BackendError(
                f"{exported.path}: openvino cannot load it ({type(err).__name__}); delete {exported.path.parent}"
            ) from None
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        compiled_as = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)  # "f32", "bf16"
        if compiled_as != HINTS[precision]:
            raise BackendError(
                f"backend=openvino compiled with precision {compiled_as}, not the {HINTS[precision]} asked for "
                f"(backend.precision={precision}; this CPU may lack it)"
            )
        self._request = compiled.create_infer_request()
        # its first inference shapes what follows: a first input of one frame (400-719 samples) left every later
        # input with wrong logits (found by attacking this backend); one second of silence goes first
        self._request.infer({"input_values": torch.zeros(1, 16000).numpy()})
        if precision == "fp32":  # a variant's argmax may differ by design; its fp32 export is probed on fp32 runs
            probe(model, self.logits, exported.path.parent, self.name)
        self._settings = {
            "name": self.name,
            "version": ov.__version__,
            "precision": precision,
            "device": "CPU",
            "inference_precision_hint": compiled_as,
            **exported.record(),
        }

    def logits(self, batch: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if batch.shape[0] != 1 or attention_mask is not None:
            raise BackendError(f"backend={self.name} runs one unpadded utterance at a time, got {tuple(batch.shape)}")
        out = self._request.infer({"input_values": batch.detach().cpu().float().numpy()})["logits"]
        return torch.from_numpy(out.copy()).to(batch.device)

    def settings(self) -> dict:
        return self._settings
