"""Logits -> text: one protocol, its implementations side by side, chosen by the `decoder` config group.

`greedy` (the model cards' protocol, the default) collapses argmax ids on the model's device and only the ids
cross to the host; `lm` (beam search with an n-gram LM, flashlight-text) needs each utterance's log-probs on
the host and decodes them in a process pool beside the model.
"""

from __future__ import annotations

from .base import Decoder, DecoderError

DECODERS = ("greedy", "lm")


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
