"""Greedy CTC decoding as a `Decoder`: the ids arrive collapsed (ctc.collapse on the model's device)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..ctc import CTCTokens


@dataclass(frozen=True)
class GreedySettings:
    """Greedy decoding takes no settings."""


class GreedyDecoder:
    name = "greedy"
    Settings = GreedySettings
    wants = "ids"

    def __init__(self, tokens: CTCTokens):
        self.tokens = tokens

    @classmethod
    def create(cls, settings: GreedySettings, *, tokens: CTCTokens, **context) -> GreedyDecoder:
        return cls(tokens)

    def submit(self, items: list[list[int]]) -> Callable[[], list[str]]:
        texts = [self.tokens.text(ids) for ids in items]
        return lambda: texts

    def settings(self) -> dict:
        return {"name": self.name}

    def close(self) -> None:
        pass
