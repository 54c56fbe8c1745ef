"""Batch -> logits: one protocol, its implementations side by side, each named by `_target_` in conf/backend/.

`torch` (the default and the reference) is the model's own forward, with exact batching (model/exact.py). Other
runtimes run the same weights exported once into a cache keyed by the weights' hash, the runtime's version and
the export settings (onnx_export.py); `onnxruntime` and `openvino` run that export, which has none of the masks exact
batching needs, so they run at batch size 1 (the card's protocol) and say so in summary.json. What each can run
(devices, precisions, batching) is in its class attributes.
"""

from __future__ import annotations

from .base import Backend, BackendError

__all__ = ["Backend", "BackendError"]
