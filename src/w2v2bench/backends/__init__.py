"""Batch -> logits: one protocol, its implementations side by side, chosen by the `backend` config group.

`torch` (the default and the reference) is the model's own forward, with exact batching (model.py). Other
runtimes run the same weights exported once into a cache keyed by the weights' hash, the runtime's version and
the export settings (onnx_export.py); `onnxruntime` and `openvino` run that export, which has none of the masks exact
batching needs, so they run at batch size 1 (the card's protocol) and say so in summary.json.
"""

from __future__ import annotations

from .base import Backend, BackendError

BACKENDS = ("torch", "onnxruntime", "openvino")


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
