"""Per-utterance edit counts (jiwer), and every rate derived from summed counts.

Corpus WER is sum(S + D + I) / sum(N) over utterances, which is what `jiwer.wer` computes over a whole
split; any table (per split, per speaker, per length bucket) is a re-aggregation of the same counts.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jiwer


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


def _basic(text: str) -> str:
    # upper-case, keep letters, digits and apostrophes, collapse whitespace
    return " ".join(re.sub(r"[^A-Z0-9' ]+", " ", text.upper()).split())


@functools.cache
def _whisper_normalizer() -> Callable[[str], str]:
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError as err:
        raise ValueError(
            "normalizer='whisper' needs the package whisper-normalizer (pip install whisper-normalizer)"
        ) from err
    return EnglishTextNormalizer()


def _whisper(text: str) -> str:
    # OpenAI Whisper's English normaliser, as the Open ASR Leaderboard applies it
    return _whisper_normalizer()(text)


NORMALIZERS: dict[str, Callable[[str], str]] = {"none": lambda text: text, "basic": _basic, "whisper": _whisper}


# `package.module:function` (the function may be an attribute path: `module:instance.method`)
CODE_NORMALIZER = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


# the standard library holds functions that run their text as a command or as code (os.system, timeit.timeit,
# pdb.run, ...): a normaliser is never one of its functions, nor reached through one of its modules
STANDARD_LIBRARY = frozenset(sys.stdlib_module_names) | {"builtins"}


def normalizer(name: str | None, allow_code: bool = False) -> Callable[[str], str]:
    """The normaliser called `name`; with `allow_code` (a command line's own value, never a file's) also a
    `module:function` importable from the Python path, such as the Open ASR Leaderboard's
    `normalizer.data_utils:normalizer`."""
    key = name or "none"
    if key in NORMALIZERS:
        return NORMALIZERS[key]
    if CODE_NORMALIZER.fullmatch(key):
        if not allow_code:
            raise ValueError(
                f"normalizer={name!r} is code (module:function): only `python -m w2v2bench.score` runs one, given on "
                "its command line (never a run, never one named by a file)"
            )
        top = key.split(".", 1)[0].split(":", 1)[0]
        if top in STANDARD_LIBRARY:
            raise ValueError(
                f"normalizer={name!r}: {top} is in Python's standard library, which is refused (some of its functions "
                "run their text as a command or as code)"
            )
        return _code_normalizer(key)
    raise ValueError(f"normalizer={name!r}: expected one of {sorted(NORMALIZERS)}, null, or module:function")


def _code_normalizer(spec: str) -> Callable[[str], str]:
    import importlib
    import inspect

    module_name, _, attribute = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as err:  # whatever the module's own import raises
        raise ValueError(f"normalizer={spec!r}: cannot import {module_name} ({type(err).__name__}: {err})") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"normalizer={spec!r}: {module_name} has no attribute {attribute}")
        target = getattr(target, part)
        if inspect.ismodule(target):  # `pkg:os.system` would walk into another module
            raise ValueError(f"normalizer={spec!r}: {part} is a module; name the function in its own module")
    if not callable(target):
        raise ValueError(f"normalizer={spec!r}: {attribute} is a {type(target).__name__}, not a function")
    home = str(getattr(target, "__module__", None) or getattr(type(target), "__module__", "")).split(".")[0]
    if home in STANDARD_LIBRARY:  # `mymod:system` after `from os import system`
        raise ValueError(f"normalizer={spec!r}: {attribute} comes from {home}, in Python's standard library: refused")

    def apply(text: str) -> str:
        try:
            out = target(text)
        except (Exception, SystemExit) as err:
            raise ValueError(f"normalizer={spec!r} failed on {text[:60]!r}: {type(err).__name__}: {err}") from None
        if not isinstance(out, str):
            raise ValueError(f"normalizer={spec!r} returned a {type(out).__name__} for {text[:60]!r}, not a str")
        return out

    return apply


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


def pct(x: float | None) -> str:
    """A fraction as a percentage with two decimals, for people ("n/a" for none or NaN)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 100:.2f}"


if __name__ == "__main__":  # the old spelling of `python -m w2v2bench score`
    from .cli.score import main

    raise SystemExit(main())
