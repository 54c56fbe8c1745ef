"""w2v2bench: LibriSpeech word-error-rate benchmarking for wav2vec2 CTC checkpoints."""

import os

__version__ = "0.1.0"

# oneDNN (torch's CPU convolutions) keeps up to 1024 compiled primitives, one per input shape, each with
# its buffers. Length-sorted batches rarely repeat a shape, so the cache only grows with the corpus: keep a
# few. Read when oneDNN makes its first primitive, so setting it here, before any model runs, takes effect;
# a value already in the environment wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")
