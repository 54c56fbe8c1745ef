"""The ONNX export every non-PyTorch backend starts from: made once per weights x torch version x export settings.

torch's TorchScript-based exporter, opset 17, one unpadded utterance (`input_values` of shape (1, samples)) ->
`logits`. Exact batching's masked GroupNorm and attention mask are not in the graph, so the runtimes that run it
take one utterance at a time, which needs no mask.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..files import read_text, sha256_regular
from ..model import TRAINING_ONLY
from .base import BackendError

OPSET = 17
EXPORT = {"exporter": "torchscript", "opset": OPSET, "input": "input_values (1, samples) fp32", "output": "logits"}


def weights_sha256(model: nn.Module) -> str:
    """sha256 of every parameter and buffer, by name, in the model's own state: whatever the checkpoint's source.
    Tensors only training uses (`masked_spec_embed`, random when a checkpoint lacks it) are left out."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if TRAINING_ONLY.fullmatch(name):
            continue
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode() + str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def export_key(model: nn.Module) -> dict:
    """What decides the exported graph: the weights, the model's class and config (heads, activations ... change
    the graph, not the weights), the transformers and torch versions, and the export settings."""
    import transformers

    config = json.dumps(model.config.to_dict(), sort_keys=True, default=str)
    return {
        "weights": weights_sha256(model),
        "class": type(model).__name__,
        "config_sha256": hashlib.sha256(config.encode()).hexdigest(),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        **EXPORT,
    }


def files_sha256(folder: Path) -> dict[str, str]:
    """Every file of an export folder but its record: model.onnx and, for models over 2 GB, its weight files."""
    return {p.name: sha256_regular(p) for p in sorted(folder.iterdir()) if p.name != "export.json"}


def check_cached(folder: Path, path: Path, key: dict) -> None:
    """A cached export is used only as it was written: regular files (no links), exactly the files with the
    checksums its export.json recorded, and its key; anything else is one line naming the folder to delete."""

    def refuse(why: str) -> BackendError:
        return BackendError(f"{path}: {why}; delete {folder} and run again to export afresh")

    if any(p.is_symlink() or not p.is_file() for p in [path, *folder.iterdir()]):
        raise refuse("not a regular file, or a folder holding something else")
    try:
        record = json.loads(read_text(folder / "export.json", 2**20))
        found = files_sha256(folder)
    except (OSError, ValueError, RecursionError) as err:
        raise refuse(f"its export record cannot be read ({type(err).__name__})") from None
    if not isinstance(record, dict) or {k: record.get(k) for k in key} != key:
        raise refuse("its export record is for other weights or settings")
    if record.get("files_sha256") != found:
        raise refuse("it changed since it was exported (its files differ from export.json's sha256s)")


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
    """`<cache>/onnx/<key>/model.onnx` for `model`, exported now unless it is there already. The export is
    written into a private folder and renamed into place whole: a killed or concurrent export never leaves a
    half-written entry (a race's loser discards its own copy)."""
    key = export_key(model)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    root = Path(cache).expanduser() / "onnx"
    folder = root / digest
    path = folder / "model.onnx"
    if folder.exists() or folder.is_symlink():
        check_cached(folder, path, key)
        return Exported(path, True, 0.0, key["weights"])
    root.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=root))
    try:
        tic = time.perf_counter()
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation notes: the TorchScript exporter is chosen
            torch.onnx.export(
                model,
                (torch.zeros(1, 16000),),
                str(private / "model.onnx"),
                input_names=["input_values"],
                output_names=["logits"],
                dynamic_axes={"input_values": {1: "samples"}, "logits": {1: "frames"}},
                opset_version=OPSET,
                dynamo=False,
            )
        export_s = time.perf_counter() - tic
        record = {**key, "files_sha256": files_sha256(private)}
        (private / "export.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        try:
            private.rename(folder)
        except OSError:  # another process put the same export there first: use that one
            check_cached(folder, path, key)
            return Exported(path, True, 0.0, key["weights"])
        return Exported(path, False, export_s, key["weights"])
    finally:
        shutil.rmtree(private, ignore_errors=True)


INT8 = {"quantization": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8", "per_channel": False}


def quantize_int8(exported: Exported) -> Exported:
    """The export with its weights quantised to int8 (ONNX Runtime's dynamic quantisation), cached beside it under
    `<key>-int8/`, written and checked as the fp32 export is. It changes transcripts: a variant to measure what
    int8 costs in WER, never the reference."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = exported.path.parent
    key = {**json.loads(read_text(source / "export.json", 2**20)), **INT8}
    key.pop("files_sha256", None)
    folder = source.parent / f"{source.name}-int8"
    path = folder / "model.onnx"
    if folder.exists() or folder.is_symlink():
        check_cached(folder, path, key)
        return Exported(path, True, 0.0, exported.weights_sha256)
    private = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=source.parent))
    try:
        tic = time.perf_counter()
        quantize_dynamic(exported.path, private / "model.onnx", weight_type=QuantType.QInt8, per_channel=False)
        export_s = exported.export_s + time.perf_counter() - tic
        record = {**key, "files_sha256": files_sha256(private)}
        (private / "export.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        try:
            private.rename(folder)
        except OSError:
            check_cached(folder, path, key)
            return Exported(path, True, 0.0, exported.weights_sha256)
        return Exported(path, False, export_s, exported.weights_sha256)
    finally:
        shutil.rmtree(private, ignore_errors=True)
