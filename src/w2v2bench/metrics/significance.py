"""Significance of a WER difference between two systems on the same utterances: MAPSSWE and a paired bootstrap."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Bootstrap:
    """Paired bootstrap of the corpus WER difference B - A: utterances resampled with replacement."""

    samples: int
    seed: int
    delta_low: float  # 2.5th percentile of WER_B - WER_A over the resamples (a fraction)
    delta_high: float  # 97.5th percentile
    p_value: float  # two-sided: twice the smaller share of resamples on either side of 0, (k + 1) / (samples + 1)


def paired_bootstrap(
    errors_a: Sequence[int], errors_b: Sequence[int], ref_words: Sequence[int], samples: int = 10_000, seed: int = 0
) -> Bootstrap:
    """Resample utterances `samples` times (numpy's default_rng(seed)); corpus WER from summed counts each time."""
    ea, eb, refs = (np.asarray(x, dtype=np.int64) for x in (errors_a, errors_b, ref_words))
    n = len(ea)
    if n == 0 or samples < 1 or refs.sum() == 0:
        return Bootstrap(samples, seed, math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    diff = eb - ea
    deltas = np.empty(samples)
    chunk = max(1, 2_000_000 // n)  # bounds the index matrix to ~16 MB
    for start in range(0, samples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, samples - start), n))
        total = refs[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            deltas[start : start + len(idx)] = np.where(total > 0, diff[idx].sum(axis=1) / total, np.nan)
    deltas = deltas[~np.isnan(deltas)]
    low, high = np.percentile(deltas, [2.5, 97.5])
    tail = min(int((deltas <= 0).sum()), int((deltas >= 0).sum()))
    p_value = min(1.0, 2 * (tail + 1) / (len(deltas) + 1))
    return Bootstrap(samples, seed, float(low), float(high), p_value)
