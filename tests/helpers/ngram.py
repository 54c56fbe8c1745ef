"""A tiny bigram ARPA file counted from transcripts, for the LM decoder's tests (no downloads, no KenLM tools)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

BIGRAM_SHARE = 0.7  # of a word's mass given to seen bigrams; the rest backs off to the unigrams


def transcripts(root: Path) -> list[str]:
    """The text of every `*.trans.txt` line under an OpenSLR-style folder, without the utterance ids."""
    lines = []
    for path in sorted(root.rglob("*.trans.txt")):
        lines += [line.split(" ", 1)[1] for line in path.read_text().splitlines() if " " in line]
    return lines


def write_arpa(sentences: list[str], path: Path) -> Path:
    """A bigram LM: unigram p(w) = count / total, p(w2 | w1) = share x count(w1 w2) / count(w1) with backoff."""
    unigrams, bigrams, followers = Counter(), Counter(), Counter()
    for sentence in sentences:
        words = ["<s>", *sentence.split(), "</s>"]
        unigrams.update(words[1:])
        for a, b in zip(words, words[1:], strict=False):
            bigrams[a, b] += 1
            followers[a] += 1
    total = sum(unigrams.values())
    backoff = math.log10(1 - BIGRAM_SHARE)
    lines = ["\\data\\", f"ngram 1={len(unigrams) + 1}", f"ngram 2={len(bigrams)}", "", "\\1-grams:"]
    lines.append(f"-99\t<s>\t{backoff:.6f}")
    for word, count in sorted(unigrams.items()):
        lines.append(f"{math.log10(count / total):.6f}\t{word}" + ("" if word == "</s>" else f"\t{backoff:.6f}"))
    lines += ["", "\\2-grams:"]
    for (a, b), count in sorted(bigrams.items()):
        lines.append(f"{math.log10(BIGRAM_SHARE * count / followers[a]):.6f}\t{a} {b}")
    lines += ["", "\\end\\", ""]
    path.write_text("\n".join(lines))
    return path
