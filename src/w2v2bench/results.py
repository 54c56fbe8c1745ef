"""The per-utterance result: the dataclass every row of transcripts.jsonl is written from and read back into.

Reading validates a row against the same dataclass (pydantic, strict: an index written as a string, a
negative count or a missing field is refused with the field named), so what a tool reads back is what the
harness wrote, or a one-line error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError

Count = Annotated[int, Strict(), Field(ge=0)]
Seconds = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
Text = Annotated[str, Strict()]


@dataclass(frozen=True)
class UtteranceResult:
    __pydantic_config__ = ConfigDict(extra="forbid")

    index: Count  # position in corpus order
    id: Text
    speaker: Text
    chapter: Text
    duration_s: Seconds
    text: Text | None  # the reference, as the corpus gives it
    pred_text: Text | None  # the hypothesis, as the model gave it
    substitutions: Count
    deletions: Count
    insertions: Count
    ref_words: Count
    char_errors: Count
    ref_chars: Count
    error: Text | None
    notes: list[Text]
    # SHA-256 of the audio file's bytes as read (None when there was none to read): which audio was scored
    audio_sha256: Text | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_ROW = TypeAdapter(UtteranceResult)


class RowError(ValueError):
    """A row that is not an UtteranceResult; the message names the field and what is wrong with it."""


def parse_row(row: Any) -> UtteranceResult:
    """A row read back from JSON, validated field by field (see the module docstring)."""
    if not isinstance(row, dict):
        raise RowError(f"expected a JSON object, found {type(row).__name__}")
    try:
        return _ROW.validate_python(row)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "row"
        value = first.get("input")
        shown = "" if first["type"] == "missing" else f" (found {value!r})"[:80]
        raise RowError(f"field {where}: {first['msg'].lower()}{shown}") from None
