"""Word alignments for people: a reference and hypotheses in aligned columns, errors marked S, D, I.

The alignment is jiwer's (`process_words`), the one `score.word_counts` counts, so the marks add up to
the counts. Several hypotheses are each aligned to the reference and shown on the reference's columns,
sclite style: `*` fills a deleted word and the reference side of an insertion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jiwer

GAP = "*"


@dataclass(frozen=True)
class _Cell:
    word: str | None  # None: nothing in this column (a deletion, or another hypothesis's insertion)
    mark: str = ""  # "", "S", "D" or "I"


def _place(ref_words: list[str], hyp: str) -> tuple[list[_Cell], list[list[str]]]:
    """(cell under each reference word, words inserted before reference position i, for i in 0..len)."""
    under = [_Cell(None, "D") for _ in ref_words]
    inserted: list[list[str]] = [[] for _ in range(len(ref_words) + 1)]
    hyp_words = hyp.split()
    if not ref_words:
        inserted[0] = hyp_words
        return under, inserted
    if not hyp_words:
        return under, inserted
    for chunk in jiwer.process_words(" ".join(ref_words), " ".join(hyp_words)).alignments[0]:
        r, h = chunk.ref_start_idx, chunk.hyp_start_idx
        if chunk.type == "insert":
            inserted[r] += hyp_words[h : chunk.hyp_end_idx]
        elif chunk.type in ("equal", "substitute"):
            mark = "" if chunk.type == "equal" else "S"
            for k in range(chunk.ref_end_idx - r):
                under[r + k] = _Cell(hyp_words[h + k], mark)
    return under, inserted


def _columns(ref: str, hyps: Mapping[str, str]) -> list[list[_Cell]]:
    """Each column: the reference cell first, then one cell per hypothesis."""
    ref_words = ref.split()
    placed = [_place(ref_words, hyp) for hyp in hyps.values()]
    columns = []
    for i in range(len(ref_words) + 1):
        for slot in range(max(len(inserted[i]) for _, inserted in placed)):
            column = [_Cell(None, "I")]
            for _, inserted in placed:
                column.append(_Cell(inserted[i][slot], "I") if slot < len(inserted[i]) else _Cell(None))
            columns.append(column)
        if i < len(ref_words):
            columns.append([_Cell(ref_words[i])] + [under[i] for under, _ in placed])
    return columns


def aligned(ref: str, hyps: Mapping[str, str], width: int = 100, ref_label: str = "REF") -> str:
    """`ref` and each labelled hypothesis in aligned columns, a mark line under each hypothesis.

    Lines are wrapped into blocks at about `width` characters. A mark line is left out where it is blank.
    """
    labels = [ref_label, *hyps]
    pad = max(len(label) for label in labels) + 2
    columns = _columns(ref, hyps)
    blocks, block, used = [], [], pad
    for column in columns:
        size = max(len(cell.word or cell.mark) for cell in column)
        if block and used + size + 1 > width:
            blocks.append(block)
            block, used = [], pad
        block.append((size, column))
        used += size + 1
    if block or not blocks:
        blocks.append(block)

    out = []
    for block in blocks:
        rows = []
        for row, label in enumerate(labels):
            words = []
            for size, column in block:
                cell = column[row]
                if cell.word is not None:
                    words.append(cell.word.ljust(size))
                else:  # a deletion or the reference side of an insertion: starred; another's insertion: blank
                    words.append((GAP * size) if cell.mark else " " * size)
            rows.append((f"{label + ':':<{pad}}" + " ".join(words)).rstrip())
            if row:
                marks = " ".join(column[row].mark.ljust(size) for size, column in block).rstrip()
                if marks:
                    rows.append(" " * pad + marks)
        out.append("\n".join(rows))
    return "\n\n".join(out)
