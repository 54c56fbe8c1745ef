"""Word and character edit counts of one utterance (jiwer), on the scored text."""

from __future__ import annotations

from collections.abc import Callable

import jiwer

from . import Counts


def _counts(out) -> Counts:
    return Counts(out.substitutions, out.deletions, out.insertions, out.hits + out.substitutions + out.deletions)


def word_counts(ref: str, hyp: str) -> Counts:
    """Word-level edit counts of one utterance (words split on whitespace)."""
    if not ref.split():
        return Counts(insertions=len(hyp.split()))
    if not hyp.split():
        return Counts(deletions=len(ref.split()), ref_words=len(ref.split()))
    return _counts(jiwer.process_words(ref, hyp))


def scored_text(text: str, normalize: Callable[[str], str]) -> str:
    """The one text every count and every file is made from: normalised, words joined by single spaces (what
    sclite, kaldialign and `str.split` take a word to be; jiwer alone would keep a tab inside a word and count a
    doubled space as a character)."""
    return " ".join(normalize(text).split())


def utterance_counts(
    ref: str, hyp: str, normalize: Callable[[str], str], merge_compounds: bool = False
) -> tuple[Counts, Counts]:
    """(word counts, character counts) of one utterance, from both texts' `scored_text`; `merge_compounds`
    counts words split or joined by the model (`bird` vs `bir d`) as no error, as kaldialign does for the Open ASR
    Leaderboard (characters are counted as they are)."""
    ref_n, hyp_n = scored_text(ref, normalize), scored_text(hyp, normalize)
    words = merged_word_counts(ref_n, hyp_n) if merge_compounds else word_counts(ref_n, hyp_n)
    return words, char_counts(ref_n, hyp_n)


def legacy_utterance_counts(ref: str, hyp: str, normalize: Callable[[str], str]) -> tuple[Counts, Counts]:
    """The counts of runs written before `scored_text` (whitespace as the normaliser left it): still valid."""
    ref_n, hyp_n = normalize(ref), normalize(hyp)
    return word_counts(ref_n, hyp_n), char_counts(ref_n, hyp_n)


def merged_word_counts(ref: str, hyp: str) -> Counts:
    """Word edit counts where adjacent words joined without a space match one word at no cost (kaldialign's
    `merge_compounds`, the Open ASR Leaderboard's scoring)."""
    import kaldialign

    r, h = ref.split(), hyp.split()
    if not r:
        return Counts(insertions=len(h))
    out = kaldialign.edit_distance(r, h, merge_compounds=True)
    return Counts(out["sub"], out["del"], out["ins"], len(r))


def char_counts(ref: str, hyp: str) -> Counts:
    """Character-level edit counts, spaces included, as `jiwer.cer` counts them."""
    if not ref.strip():
        return Counts(insertions=len(hyp.strip()))
    if not hyp.strip():
        return Counts(deletions=len(ref.strip()), ref_words=len(ref.strip()))
    return _counts(jiwer.process_characters(ref, hyp))
