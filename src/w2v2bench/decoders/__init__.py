"""Logits -> text: one protocol, its implementations side by side, chosen by the `decoder` config group.

`greedy` (the model cards' protocol, the default) collapses argmax ids on the model's device and only the ids
cross to the host; `lm` (beam search with an n-gram LM, flashlight-text) needs each utterance's log-probs on
the host and decodes them in a process pool beside the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

Wants = Literal["ids", "log_probs"]


@dataclass(frozen=True)
class DecodeFailure:
    """An utterance the decoder could not decode (recorded as that utterance's failure; the run goes on)."""

    message: str


class Decoder(Protocol):
    """What the run loop needs of a decoder."""

    name: str
    wants: Wants  # what the model hands over per utterance: collapsed ids, or (frames x vocab) log-probs

    def submit(self, items: list[list[int] | np.ndarray]) -> Callable[[], list[str | DecodeFailure]]:
        """Start decoding one batch; the returned call blocks until its texts are ready, in input order."""
        ...

    def settings(self) -> dict:
        """What summary.json and the history record about this decoder."""
        ...

    def close(self) -> None: ...


DECODERS = ("greedy", "lm")


class DecoderError(ValueError):
    """A decoder setting or LM file that cannot be used: one line naming it."""


LM_DEFAULTS = {"beam_width": 50, "beam_threshold": 25.0, "lm_weight": 2.0, "word_score": 0.0, "sil_score": 0.0}


def make_decoder(name: str, tokens, **lm_options) -> Decoder:
    """The decoder called `name` (one of DECODERS); `lm_options` are `lm.load_lm_decoder`'s keywords."""
    if name == "greedy":
        from .greedy import GreedyDecoder

        return GreedyDecoder(tokens)
    if name == "lm":
        from .lm import load_lm_decoder

        return load_lm_decoder(tokens, **lm_options)
    raise DecoderError(f"decoder={name!r}: expected one of {list(DECODERS)}")
