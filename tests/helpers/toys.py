"""A toy data source, backend and decoder, defined here and chosen by tests/conf/<group>/toy.yaml: the seams take
a new implementation as new files only (docs/extending.md), with no package file edited."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from w2v2bench.errors import ConfigError
from w2v2bench.testing.fakes import utterances


@dataclass(frozen=True)
class ToySourceSettings:
    name: str
    partition: str = "test"
    texts: tuple[str, ...] = ("A B", "C D E", "F")

    def __post_init__(self):
        if not self.texts:
            raise ConfigError("data.texts is empty: expected at least one reference text")


class ToySource:
    """In-memory utterances of quiet noise, one per reference text (nothing on disk)."""

    name = "toy"
    Settings = ToySourceSettings

    def __init__(self, settings: ToySourceSettings):
        self.settings = settings
        self.commit = "toy-commit"  # recorded as config.data.commit, as a Hub source records its commit

    @classmethod
    def create(cls, settings: ToySourceSettings) -> ToySource:
        return cls(settings)

    def utterances(self, split: str, limit: int | None):
        found = utterances(list(self.settings.texts))[:limit]
        return found, len(found)


@dataclass(frozen=True)
class ToyBackendSettings:
    scale: float = 1.0  # logits are the model's times this


class ToyBackend:
    """The model's own forward, one unpadded utterance at a time, logits scaled; counts its calls."""

    name = "toy"
    Settings = ToyBackendSettings
    devices = ("cpu",)
    precisions = ("fp32",)
    batchings = ("exact",)
    compiles = False
    reference = False
    max_batch_size = 1
    calls = 0

    def __init__(self, model, scale: float):
        self.model, self.scale = model, scale

    @classmethod
    def create(cls, settings: ToyBackendSettings, model) -> ToyBackend:
        return cls(model, settings.scale)

    def logits(self, batch: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        type(self).calls += 1
        return self.model(batch).logits * self.scale

    def settings(self) -> dict:
        return {"name": self.name, "scale": self.scale}


@dataclass(frozen=True)
class ToyDecoderSettings:
    lowercase: bool = False


class ToyDecoder:
    """Greedy text, lower-cased when its one setting says so."""

    name = "toy"
    Settings = ToyDecoderSettings
    wants = "ids"

    def __init__(self, tokens, lowercase: bool):
        self.tokens, self.lowercase = tokens, lowercase

    @classmethod
    def create(cls, settings: ToyDecoderSettings, *, tokens, **context) -> ToyDecoder:
        return cls(tokens, settings.lowercase)

    def submit(self, items: list[list[int]]) -> Callable[[], list[str]]:
        texts = [self.tokens.text(ids) for ids in items]
        return lambda: [t.lower() if self.lowercase else t for t in texts]

    def settings(self) -> dict:
        return {"name": self.name, "lowercase": self.lowercase}

    def close(self) -> None:
        pass
