"""Greedy CTC decoding as a `Decoder`: the ids arrive collapsed (ctc.collapse on the model's device)."""

from __future__ import annotations

from collections.abc import Callable

from ..ctc import CTCTokens


class GreedyDecoder:
    name = "greedy"
    wants = "ids"

    def __init__(self, tokens: CTCTokens):
        self.tokens = tokens

    def submit(self, items: list[list[int]]) -> Callable[[], list[str]]:
        texts = [self.tokens.text(ids) for ids in items]
        return lambda: texts

    def settings(self) -> dict:
        return {"name": self.name}

    def close(self) -> None:
        pass
