"""How sure a figure is: a run's 95 % interval (a bootstrap over speakers), and the significance of a difference
between two systems on the same utterances (the paired bootstrap on the same resampling unit; MAPSSWE).

Utterances of one speaker are not independent (Liu & Peng 2020, arXiv 1912.09508): resampling them one by one
makes the interval too narrow. So the unit is the speaker (a blockwise bootstrap: every resample draws speakers
with replacement and takes all their utterances), and the utterance only where speakers are unknown or fewer than
`MIN_SPEAKERS` (Bisani & Ney 2004's utterance-level bootstrap). A fixed resample count and seed make the same rows
give the same interval on every computation.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Mapsswe:
    """The matched-pairs sentence-segment word error test (Gillick & Cox 1989; sclite's MAPSSWE).

    Segments are utterances: Z_i = errors_a_i - errors_b_i, W = mean(Z) / (stdev(Z) / sqrt(n)) is about
    standard normal when A and B make as many errors, and p is its two-sided tail. sclite cuts utterances
    further, at words both systems got right; whole utterances keep the test's independence assumption.
    """

    n: int
    mean: float  # mean of Z: positive when B makes fewer errors
    stdev: float  # sample standard deviation of Z (n - 1 in the denominator)
    w: float
    p_value: float


def mapsswe(errors_a: Sequence[int], errors_b: Sequence[int]) -> Mapsswe:
    """MAPSSWE over paired per-utterance word error counts; p = 1 when no utterance's count differs.

    Undefined (NaN) for no utterances, or a single one that differs; p = 0 when every Z is the same nonzero.
    """
    z = [a - b for a, b in zip(errors_a, errors_b, strict=True)]
    n = len(z)
    if n and not any(z):
        return Mapsswe(n, 0.0, 0.0, 0.0, 1.0)
    if n < 2:
        return Mapsswe(n, float(z[0]) if z else math.nan, math.nan, math.nan, math.nan)
    mean, stdev = statistics.fmean(z), statistics.stdev(z)
    if stdev == 0:
        return Mapsswe(n, mean, 0.0, math.copysign(math.inf, mean), 0.0)
    w = mean / (stdev / math.sqrt(n))
    return Mapsswe(n, mean, stdev, w, math.erfc(abs(w) / math.sqrt(2)))


SAMPLES = 1_000  # resamples for a run's interval
SEED = 0
LEVEL = 0.95
MIN_SPEAKERS = 5  # fewer (or any utterance without one): the utterance is the unit
MIN_BLOCKS = 5  # fewer units than this to resample: no interval, no test (n/a), never a verdict from one or two


@dataclass(frozen=True)
class Blocks:
    """The resampling unit of a set of rows: each row's block (its speaker's, or its own) and how many there are."""

    unit: str  # "speaker" | "utterance"
    index: np.ndarray  # row -> block number
    count: int


def blocks(speakers: Sequence[str | None]) -> Blocks:
    """Speakers as the unit when every row has one and there are at least MIN_SPEAKERS; else each row its own."""
    named = [s if isinstance(s, str) and s else None for s in speakers]
    distinct = sorted(set(named) - {None})
    if None not in named and len(distinct) >= MIN_SPEAKERS:
        number = {s: i for i, s in enumerate(distinct)}
        return Blocks("speaker", np.array([number[s] for s in named], dtype=np.int64), len(distinct))
    return Blocks("utterance", np.arange(len(named), dtype=np.int64), len(named))


def _resampled_rates(errors: np.ndarray, refs: np.ndarray, unit: Blocks, samples: int, seed: int) -> np.ndarray:
    """errors.sum / refs.sum over `samples` resamples of the blocks (numpy's default_rng(seed)); NaN where a
    resample has no reference word."""
    e = np.bincount(unit.index, weights=errors, minlength=unit.count)
    r = np.bincount(unit.index, weights=refs, minlength=unit.count)
    rng = np.random.default_rng(seed)
    out = np.empty(samples)
    chunk = max(1, 2_000_000 // max(unit.count, 1))  # bounds the index matrix to ~16 MB
    for start in range(0, samples, chunk):
        idx = rng.integers(0, unit.count, size=(min(chunk, samples - start), unit.count))
        total = r[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + len(idx)] = np.where(total > 0, e[idx].sum(axis=1) / total, np.nan)
    return out


@dataclass(frozen=True)
class Interval:
    """A rate's 95 % percentile-bootstrap interval, and how it was made."""

    low: float
    high: float
    unit: str  # what was resampled: "speaker" or "utterance"
    blocks: int  # how many of them
    samples: int = SAMPLES
    seed: int = SEED

    def record(self) -> dict:
        return {"method": "bootstrap-percentile", "level": LEVEL, "unit": self.unit, "blocks": self.blocks,
                "samples": self.samples, "seed": self.seed}  # fmt: skip


def interval(
    errors: Sequence[int], refs: Sequence[int], speakers: Sequence[str | None], samples: int = SAMPLES, seed: int = SEED
) -> Interval | None:
    """The 95 % interval of sum(errors) / sum(refs) over rows, resampling `blocks(speakers)`; None with no
    reference word or fewer than MIN_BLOCKS blocks (too few to resample)."""
    unit = blocks(speakers)
    e, r = np.asarray(errors, dtype=np.float64), np.asarray(refs, dtype=np.float64)
    if unit.count < MIN_BLOCKS or r.sum() == 0:
        return None
    rates = _resampled_rates(e, r, unit, samples, seed)
    rates = rates[~np.isnan(rates)]
    low, high = np.percentile(rates, [50 * (1 - LEVEL), 100 - 50 * (1 - LEVEL)])
    return Interval(float(low), float(high), unit.unit, unit.count, samples, seed)


@dataclass(frozen=True)
class Bootstrap:
    """Paired bootstrap of the corpus WER difference B - A: utterances resampled with replacement."""

    samples: int
    seed: int
    delta_low: float  # 2.5th percentile of WER_B - WER_A over the resamples (a fraction)
    delta_high: float  # 97.5th percentile
    p_value: float  # two-sided: twice the smaller share of resamples on either side of 0, (k + 1) / (samples + 1)
    unit: str = "utterance"  # what was resampled (the same unit as the runs' intervals)
    blocks: int = 0

    @property
    def verdict(self) -> str:
        """ "significant" or "within noise" at ALPHA (one comparison; several: `holm`); "n/a" with too few units."""
        if math.isnan(self.p_value):
            return "n/a"
        return "significant" if self.p_value < ALPHA else "within noise"


ALPHA = 0.05  # the threshold of one test; several in one report are held to it together (Holm)


def paired_bootstrap(
    errors_a: Sequence[int],
    errors_b: Sequence[int],
    ref_words: Sequence[int],
    samples: int = 10_000,
    seed: int = 0,
    speakers: Sequence[str | None] | None = None,
) -> Bootstrap:
    """The distribution of WER_B - WER_A over `samples` resamples (numpy's default_rng(seed)) of the rows' blocks:
    speakers (`blocks(speakers)`, the unit of the runs' intervals) or, without them, utterances."""
    ea, eb, refs = (np.asarray(x, dtype=np.float64) for x in (errors_a, errors_b, ref_words))
    unit = blocks(speakers if speakers is not None else [None] * len(ea))
    if unit.count < MIN_BLOCKS or samples < 1 or refs.sum() == 0:  # too few to resample: no verdict (n/a)
        return Bootstrap(samples, seed, math.nan, math.nan, math.nan, unit.unit, unit.count)
    deltas = _resampled_rates(eb - ea, refs, unit, samples, seed)
    deltas = deltas[~np.isnan(deltas)]
    low, high = np.percentile(deltas, [2.5, 97.5])
    tail = min(int((deltas <= 0).sum()), int((deltas >= 0).sum()))
    p_value = min(1.0, 2 * (tail + 1) / (len(deltas) + 1))
    return Bootstrap(samples, seed, float(low), float(high), p_value, unit.unit, unit.count)


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Which of several tests are significant with the family-wise error held at `alpha` (Holm 1979: the k-th
    smallest p against alpha / (m - k)); NaN is never significant."""
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    significant = [False] * len(p_values)
    for k, (p, i) in enumerate(order):
        if p >= alpha / (len(order) - k):
            break
        significant[i] = True
    return significant


def run_intervals(rows: Iterable[Any]) -> dict[str, Any]:
    """summary.json's `wer_ci95`, `cer_ci95` ([low, high] fractions, as `wer` is; None where there is nothing to
    resample) and `interval` (how they were made) for a run's rows (transcripts.jsonl rows or UtteranceResults);
    failed rows are not scored."""
    fields = ("speaker", "substitutions", "deletions", "insertions", "ref_words", "char_errors", "ref_chars")
    scored = []
    for row in rows:
        get = row.get if isinstance(row, Mapping) else lambda key, row=row: getattr(row, key)
        if get("error") is None:
            scored.append([get(key) for key in fields])
    speakers = [r[0] for r in scored]
    words = interval([r[1] + r[2] + r[3] for r in scored], [r[4] for r in scored], speakers)
    chars = interval([r[5] for r in scored], [r[6] for r in scored], speakers)
    return {
        "wer_ci95": None if words is None else [words.low, words.high],
        "cer_ci95": None if chars is None else [chars.low, chars.high],
        "interval": (words or chars).record() if (words or chars) else None,
    }
