"""Utterances from a source: the records every source and step share (`Utterance`, `Decoded`) and the errors.

A source is an iterable of `Utterance` in corpus order (local.py: an OpenSLR tree, LibriSpeech ids sorted as
strings, as Kaldi sorts them; hub.py: a Hub dataset's rows). audio.py reads and decodes one utterance;
batching.py decodes a bounded look-ahead window in worker threads while the caller runs the model on the
previous one, and cuts each window into length-sorted batches. Every result carries its corpus index, so the
caller restores corpus order window by window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16_000


class DataError(ValueError):
    """A data source that cannot be read at all (as opposed to one bad utterance)."""


class AudioError(ValueError):
    """One utterance's audio that cannot be used; the run records it and goes on."""


@dataclass(frozen=True)
class Utterance:
    index: int
    id: str
    speaker: str
    chapter: str
    text: str | None
    path: str | None = None
    data: bytes | None = field(default=None, repr=False)
    error: str | None = None
    notes: tuple[str, ...] = ()
    offset: float = 0.0  # a segment of a longer file (a manifest's): where it starts, in seconds
    duration: float | None = None  # ... and how long it is (None: to the file's end)
    channel: int | None = None  # the one channel it is on (a lhotse supervision's); None: every channel, downmixed

    @property
    def origin(self) -> str:
        where = self.path or f"<{self.id} bytes>"
        if self.offset or self.duration is not None:
            end = "end" if self.duration is None else f"{self.offset + self.duration:.3f} s"
            where += f" [{self.offset:.3f} s - {end}]"
        return where


@dataclass(frozen=True)
class Decoded:
    utterance: Utterance
    # what the model sees: 16 kHz mono float32, normalised if the checkpoint asks for it
    input_values: np.ndarray | None
    duration_s: float
    notes: tuple[str, ...] = ()
    error: str | None = None
    audio_sha256: str | None = None  # of the bytes that were decoded


def reference_style(utterances: list[Utterance]) -> str | None:
    """One line when references hold lower-case letters or punctuation (the usual cause of a surprising WER on a
    new set scored as written: `Hello,` against `HELLO` is an error), else None."""
    texts = [u.text for u in utterances if u.text]
    marked = sum(1 for t in texts if any(c.islower() or not (c.isalnum() or c in " '") for c in t))
    if not marked:
        return None
    return (
        f"{marked} of {len(texts)} references have lower-case letters or punctuation, and normalizer=null scores "
        "them as written (the model's output is upper case, unpunctuated): normalizer=basic or whisper scores words"
    )
