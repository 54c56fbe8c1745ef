"""w2v2bench: LibriSpeech word-error-rate benchmarking for wav2vec2 CTC checkpoints."""

import os

__version__ = "0.1.0"

# oneDNN (torch's CPU convolutions) keeps up to 1024 compiled primitives, one per input shape, each with
# its buffers. Length-sorted batches rarely repeat a shape, so the cache only grows with the corpus: keep a
# few. Read when oneDNN makes its first primitive, so setting it here, before any model runs, takes effect;
# a value already in the environment wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")

__all__ = ["Result", "evaluate"]


def __getattr__(name: str):
    """`w2v2bench.evaluate` and `w2v2bench.Result` (api.py), imported on first use: `import w2v2bench` stays light
    (no torch, no Hydra) and the package's foundation imports nothing above it."""
    if name in __all__:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.api"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
