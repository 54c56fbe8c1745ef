"""Stand-ins for the expensive parts, so the run loop is tested in milliseconds: in-memory utterances, a
transcriber that "hears" a text chosen by each input's length, and its CTC tokens."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping

import numpy as np
import soundfile as sf
import torch

from ..ctc import CTCTokens
from ..data import SAMPLE_RATE, Utterance
from ..model import Output
from .random_model import VOCAB


def tokens() -> CTCTokens:
    """wav2vec2-base-960h's letter vocabulary: blank <pad> = 0, word delimiter |."""
    return CTCTokens(dict(enumerate(VOCAB)), blank_id=0, word_delimiter="|", unk_token="<unk>", lower_case=False,
                     clean_up_spaces=False)  # fmt: skip


def flac(samples: int, seed: int = 0) -> bytes:
    """`samples` of quiet noise at 16 kHz as FLAC bytes (what a Hub row's audio holds)."""
    wave = np.random.default_rng(seed).normal(0, 0.01, samples).astype(np.float32)
    out = io.BytesIO()
    sf.write(out, wave, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return out.getvalue()


def utterances(texts: list[str], first_samples: int = 16_000, step: int = 1_600) -> list[Utterance]:
    """One in-memory utterance per reference text, each `step` samples longer than the one before (so a fake
    transcriber can tell them apart by length); ids `1-1-0000`, `1-1-0001`, ..."""
    return [
        Utterance(i, f"1-1-{i:04d}", "1", "1", text, data=flac(first_samples + i * step, seed=i))
        for i, text in enumerate(texts)
    ]


class FakeTranscriber:
    """`model.Transcriber`'s interface on the CPU with no model: `forward` hears, for each input, the text that
    `hear` gives for its length in samples, and returns its CTC ids as the real one does (collapsed). With
    `fits=n`, a batch of more than n inputs raises the CPU allocator's out-of-memory error (n=0: every batch)."""

    def __init__(self, hear: Mapping[int, str] | Callable[[int], str], fits: int | None = None):
        self.hear = hear if callable(hear) else hear.__getitem__
        self.fits = fits
        self.tokens = tokens()
        self.device = torch.device("cpu")
        self.emit = "ids"
        self.max_batch_size: int | None = None
        self.check_precision = False
        self.recheck_margin: float | None = None
        self.precision_stats = None
        self.batches: list[int] = []  # the size of every batch forward was given (failed ones included)
        self._ids = {t: i for i, t in self.tokens.id_to_token.items()}

    def prepare(self, wave: np.ndarray) -> np.ndarray:
        return wave.astype(np.float32)

    def forward(self, inputs: list[np.ndarray]) -> Output:
        self.batches.append(len(inputs))
        if self.fits is not None and len(inputs) > self.fits:
            raise RuntimeError(
                f"[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory ({len(inputs)})"
            )
        return Output([self.ids(self.hear(len(x))) for x in inputs])

    def ids(self, text: str) -> list[int]:
        """Collapsed CTC ids of `text` (a word delimiter between words; a letter twice stays twice)."""
        return [self._ids["|" if c == " " else c] for c in text]

    def text(self, ids: list[int]) -> str:
        return self.tokens.text(ids)
