"""The ONNX export every non-PyTorch backend starts from: made once per weights x torch version x export settings.

torch's TorchScript-based exporter, opset 17, one unpadded utterance (`input_values` of shape (1, samples)) ->
`logits`. Exact batching's masked GroupNorm and attention mask are not in the graph, so the runtimes that run it
take one utterance at a time, which needs no mask.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..files import open_regular, read_text

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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path) as handle:  # a FIFO or a device is refused before a byte is read
        for block in iter(lambda: handle.read(2**22), b""):
            digest.update(block)
    return digest.hexdigest()


def check_cached(folder: Path, path: Path, key: dict) -> None:
    """A cached export is used only as it was written: a regular file (not a link), with the checksum and the
    key its export.json recorded; anything else is one line naming the folder to delete."""
    from . import BackendError

    def refuse(why: str) -> BackendError:
        return BackendError(f"{path}: {why}; delete {folder} and run again to export afresh")

    if path.is_symlink() or not path.is_file():
        raise refuse("not a regular file")
    try:
        record = json.loads(read_text(folder / "export.json", 2**20))
        onnx_sha256 = sha256_file(path)
    except (OSError, ValueError, RecursionError) as err:
        raise refuse(f"its export record cannot be read ({type(err).__name__})") from None
    if not isinstance(record, dict) or {k: record.get(k) for k in key} != key:
        raise refuse("its export record is for other weights or settings")
    if record.get("onnx_sha256") != onnx_sha256:
        raise refuse("it changed since it was exported (its sha256 differs from export.json's)")


@dataclass(frozen=True)
class Exported:
    path: Path
    cached: bool
    export_s: float
    weights_sha256: str

    def record(self) -> dict:
        return {**EXPORT, "cache": str(self.path), "cached": self.cached, "export_s": round(self.export_s, 3),
                "weights_sha256": self.weights_sha256}  # fmt: skip


def export_onnx(model: nn.Module, cache: str | os.PathLike) -> Exported:
    """`<cache>/onnx/<key>/model.onnx` for `model`, exported now unless it is there already."""
    key = {"weights": weights_sha256(model), "torch": torch.__version__, **EXPORT}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    folder = Path(cache).expanduser() / "onnx" / digest
    path = folder / "model.onnx"
    if path.exists() or path.is_symlink():
        check_cached(folder, path, key)
        return Exported(path, True, 0.0, key["weights"])
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"model.onnx.{os.getpid()}.partial"
    tic = time.perf_counter()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes: the TorchScript exporter is chosen
        torch.onnx.export(
            model,
            (torch.zeros(1, 16000),),
            str(partial),
            input_names=["input_values"],
            output_names=["logits"],
            dynamic_axes={"input_values": {1: "samples"}, "logits": {1: "frames"}},
            opset_version=OPSET,
            dynamo=False,
        )
    record = {**key, "onnx_sha256": sha256_file(partial)}
    (folder / "export.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(partial, path)  # a killed export leaves a .partial file, never a half-written model.onnx
    return Exported(path, False, time.perf_counter() - tic, key["weights"])
