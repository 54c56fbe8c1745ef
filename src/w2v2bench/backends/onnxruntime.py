"""ONNX Runtime (CPU) as a backend: the model exported once with torch's TorchScript-based exporter (opset 17),
cached by the weights' sha256, the runtime's and torch's versions and the export settings, then run in fp32.

The graph takes one unpadded utterance (`input_values` of shape (1, samples)): exact batching's masked GroupNorm
and attention mask are not in it, so it runs at batch size 1, which needs no mask. fp32 only: a lower precision
changes transcripts (issue #16's measurements) and is not offered until it can be checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from . import BackendError

OPSET = 17
EXPORT = {"exporter": "torchscript", "opset": OPSET, "input": "input_values (1, samples) fp32", "output": "logits"}


def weights_sha256(model: nn.Module) -> str:
    """sha256 of every parameter and buffer, by name, in the model's own state: whatever the checkpoint's source."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode() + str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class OnnxRuntimeBackend:
    name = "onnxruntime"
    max_batch_size = 1

    def __init__(self, model: nn.Module, cache: str | os.PathLike, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise BackendError(
                f"backend=onnxruntime needs the onnxruntime package ({err}): pip install 'w2v2bench[onnx]'"
            ) from None
        self._ort = ort
        key = {"weights": weights_sha256(model), "onnxruntime": ort.__version__, "torch": torch.__version__, **EXPORT}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        folder = Path(cache).expanduser() / "onnx" / digest
        path = folder / "model.onnx"
        self.export_s, self.cached = 0.0, path.is_file()
        if not self.cached:
            self.export_s = self._export(model, folder, path, key)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own error types: a damaged cache entry
            raise BackendError(f"{path}: onnxruntime cannot load it ({type(err).__name__}); delete {folder}") from None
        self._settings = {
            "name": self.name,
            "version": ort.__version__,
            "precision": "fp32",
            "provider": "CPUExecutionProvider",
            **EXPORT,
            "cache": str(path),
            "cached": self.cached,
            "export_s": round(self.export_s, 3),
            "weights_sha256": key["weights"],
        }

    @staticmethod
    def _export(model: nn.Module, folder: Path, path: Path, key: dict) -> float:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"model.onnx.{os.getpid()}.partial"
        tic = time.perf_counter()
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation notes: the TorchScript exporter is chosen
            torch.onnx.export(
                model.cpu(),
                (torch.zeros(1, 16000),),
                str(partial),
                input_names=["input_values"],
                output_names=["logits"],
                dynamic_axes={"input_values": {1: "samples"}, "logits": {1: "frames"}},
                opset_version=OPSET,
                dynamo=False,
            )
        (folder / "export.json").write_text(json.dumps(key, indent=1, sort_keys=True) + "\n")
        os.replace(partial, path)  # a killed export leaves a .partial file, never a half-written model.onnx
        return time.perf_counter() - tic

    def logits(self, batch: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if batch.shape[0] != 1 or attention_mask is not None:
            raise BackendError(f"backend=onnxruntime runs one unpadded utterance at a time, got {tuple(batch.shape)}")
        (out,) = self._session.run(["logits"], {"input_values": batch.detach().cpu().float().numpy()})
        return torch.from_numpy(out).to(batch.device)

    def settings(self) -> dict:
        return self._settings
