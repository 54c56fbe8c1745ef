"""Greedy CTC decoding: argmax ids -> text, exactly as `Wav2Vec2Processor.batch_decode` gives it.

The collapse runs on the model's device and only the surviving ids cross to the host. Repeats are
merged *before* blanks are dropped, so `L <pad> L` stays "LL": the double-letter trap of decoders
that drop blanks first (or decode label ids with grouping) is avoided by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def collapse(ids: torch.Tensor, lengths: torch.Tensor, blank_id: int) -> list[list[int]]:
    """Merge repeats, then drop blanks, over each row's first `lengths[b]` frames; returns host lists."""
    frames = torch.arange(ids.shape[1], device=ids.device)
    valid = frames[None, :] < lengths[:, None]
    changed = torch.ones_like(valid)
    changed[:, 1:] = ids[:, 1:] != ids[:, :-1]
    keep = valid & changed & (ids != blank_id)
    counts = keep.sum(dim=1).tolist()
    flat = ids[keep].tolist()
    out, start = [], 0
    for n in counts:
        out.append(flat[start : start + n])
        start += n
    return out


def within_bound(logits: torch.Tensor, bound: float) -> torch.Tensor:
    """(..., vocabulary) mask of the tokens within `bound` of each frame's top logit: where the true argmax may be
    when every logit is off by less than `bound / 2`. In float64, the bound widened by a millionth, so that
    rounding cannot narrow it."""
    logits = logits.double()
    return logits >= logits.max(dim=-1, keepdim=True).values - bound * (1 + 1e-6)


def doubtful_rows(
    logits: torch.Tensor, lengths: torch.Tensor, blank_id: int, bound: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which rows' collapsed ids could change if every logit moved by less than `bound / 2`.

    A frame is *close* when a second token's logit is within `bound` of the top one: only there can the argmax
    change under such an error (the true argmax is always among the tokens within `bound`). A close frame
    cannot change the collapsed ids when its neighbours are not close and every token within `bound` is neutral
    between them: the previous or next frame's token, or the blank when those two differ (`A ? B`: A, B or
    blank all give "AB"; `A ? A`: a blank would split it into "AA"; `A ? _`: A or blank). The sequence's edges
    count as blanks. A frame with a NaN or +inf logit (an overflow) is always doubtful; a -inf logit is a token
    the model rules out. Returns (rows with any other close frame, close frames per row)."""
    top = logits.max(dim=-1, keepdim=True).values
    candidates = within_bound(logits, bound)  # (batch, frames, vocabulary)
    valid = torch.arange(logits.shape[1], device=logits.device)[None, :] < lengths[:, None]
    # NaN or +inf anywhere, or no finite top: an overflow (a -inf logit is a token the model rules out, as some do)
    broken = (
        torch.isnan(logits).any(dim=-1) | torch.isposinf(logits).any(dim=-1) | ~torch.isfinite(top[..., 0])
    ) & valid
    close = (candidates.sum(dim=-1) > 1) & valid | broken
    ids = logits.argmax(dim=-1).masked_fill(~valid, blank_id)
    blank = torch.full_like(ids[:, :1], blank_id)
    before = torch.cat([blank, ids[:, :-1]], dim=1)
    after = torch.cat([ids[:, 1:], blank], dim=1)
    vocabulary = logits.shape[-1]
    one_hot = torch.nn.functional.one_hot
    neutral = one_hot(before, vocabulary).bool() | one_hot(after, vocabulary).bool()
    neutral[..., blank_id] |= before != after
    no = torch.zeros_like(close[:, :1])
    neighbour_close = torch.cat([no, close[:, :-1]], dim=1) | torch.cat([close[:, 1:], no], dim=1)
    unsafe = close & (neighbour_close | (candidates & ~neutral).any(dim=-1)) | broken
    return unsafe.any(dim=1), close.sum(dim=1)


@dataclass(frozen=True)
class CTCTokens:
    """The slice of a `Wav2Vec2CTCTokenizer` that greedy decoding needs, read from the tokenizer itself."""

    id_to_token: dict[int, str]
    blank_id: int
    word_delimiter: str
    unk_token: str
    lower_case: bool
    clean_up_spaces: bool

    @classmethod
    def from_tokenizer(cls, tokenizer) -> CTCTokens:
        return cls(
            id_to_token={i: t for t, i in tokenizer.get_vocab().items()},
            blank_id=tokenizer.pad_token_id,
            word_delimiter=tokenizer.word_delimiter_token,
            unk_token=tokenizer.unk_token,
            lower_case=bool(getattr(tokenizer, "do_lower_case", False)),
            clean_up_spaces=bool(tokenizer.clean_up_tokenization_spaces),
        )

    def text(self, collapsed_ids: list[int]) -> str:
        """Text of ids that `collapse` returned (repeats merged, blanks gone)."""
        tokens = (self.id_to_token.get(i, self.unk_token) for i in collapsed_ids)
        text = "".join(" " if t == self.word_delimiter else t for t in tokens).strip()
        if self.lower_case:
            text = text.lower()
        if self.clean_up_spaces:
            text = clean_up_tokenization(text)
        return text


def clean_up_tokenization(text: str) -> str:
    # transformers' PreTrainedTokenizerBase.clean_up_tokenization, for tokenizers that enable it
    pairs = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't")]
    pairs += [(" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]
    for before, after in pairs:
        text = text.replace(before, after)
    return text
