"""w2v2bench: LibriSpeech word-error-rate benchmarking for wav2vec2 CTC checkpoints."""

__version__ = "0.1.0"
