"""What every decoder is: the `Decoder` protocol, a per-utterance `DecodeFailure` and the one-line error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import numpy as np

Wants = Literal["ids", "log_probs"]


@dataclass(frozen=True)
class DecodeFailure:
    """An utterance the decoder could not decode (recorded as that utterance's failure; the run goes on)."""

    message: str


class Decoder(Protocol):
    """What the run loop needs of a decoder. A decoder class is named by `_target_` in conf/decoder/<name>.yaml
    and built with `create(settings, tokens=..., checkpoint=..., local=..., revision=..., verbose=...)`, after
    the model (it needs its tokens) and before any audio is read."""

    name: str
    Settings: ClassVar[type]  # a frozen dataclass of the keys its YAML may set (checked in __post_init__)
    wants: Wants  # what the model hands over per utterance: collapsed ids, or (frames x vocab) log-probs

    def submit(self, items: list[list[int] | np.ndarray]) -> Callable[[], list[str | DecodeFailure]]:
        """Start decoding one batch; the returned call blocks until its texts are ready, in input order."""
        ...

    def settings(self) -> dict:
        """What summary.json and the history record about this decoder."""
        ...

    def close(self) -> None: ...


class DecoderError(ValueError):
    """A decoder setting or LM file that cannot be used: one line naming it."""
