"""Per-utterance edit counts (jiwer), and every rate derived from summed counts.

Corpus WER is sum(S + D + I) / sum(N) over utterances, which is what `jiwer.wer` computes over a whole
split; any table (per split, per speaker, per length bucket) is a re-aggregation of the same counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Counts:
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    ref_words: int = 0  # reference length: words for WER counts, characters for CER counts

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.ref_words + other.ref_words,
        )


def rate(counts: Iterable[Counts]) -> float:
    """Errors over reference length, summed first; NaN for an empty reference."""
    total = sum(counts, Counts())
    return total.errors / total.ref_words if total.ref_words else float("nan")


@dataclass(frozen=True)
class Totals:
    n_utterances: int
    n_failed: int
    audio_s: float
    words: Counts
    chars: Counts

    @property
    def wer(self) -> float:
        return rate([self.words])

    @property
    def cer(self) -> float:
        return rate([self.chars])


def totals(results: Iterable) -> Totals:
    """Counts summed over `transcripts.jsonl` rows; failed utterances are counted, not scored."""
    n = failed = 0
    audio_s = 0.0
    words = chars = Counts()
    for r in results:
        n += 1
        audio_s += r.duration_s
        if r.error is not None:
            failed += 1
            continue
        words += Counts(r.substitutions, r.deletions, r.insertions, r.ref_words)
        chars += Counts(r.char_errors, 0, 0, r.ref_chars)
    return Totals(n, failed, audio_s, words, chars)


def ci95(bounds: list | None) -> str:
    """A 95 % interval in percent for people: "3.21-3.62"; "n/a" where the run has none (older than issue #30)."""
    if not bounds:
        return "n/a"
    return f"{bounds[0] * 100:.2f}-{bounds[1] * 100:.2f}"


def pct(x: float | None) -> str:
    """A fraction as a percentage with two decimals, for people ("n/a" for none or NaN)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 100:.2f}"
