"""Logits -> text: one protocol, its implementations side by side, each named by `_target_` in conf/decoder/.

`greedy` (the model cards' protocol, the default) collapses argmax ids on the model's device and only the ids
cross to the host; `lm` (beam search with an n-gram LM, flashlight-text) needs each utterance's log-probs on
the host and decodes them in a process pool beside the model. A decoder's `wants` says which.
"""

from __future__ import annotations

from .base import Decoder, DecoderError

__all__ = ["Decoder", "DecoderError"]
