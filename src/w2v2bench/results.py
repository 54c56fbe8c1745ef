"""The per-utterance result: the dataclass every row of transcripts.jsonl is written from and read back into.

Reading validates a row against the same dataclass (pydantic, strict: an index written as a string, a
negative count or a missing field is refused with the field named), so what a tool reads back is what the
harness wrote, or a one-line error.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError

from .files import read_text

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


class ResultsFileError(ValueError):
    """A results file that is not what the harness writes; the message names the file, line and field."""


def _json_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = read_text(path)
    except ValueError as err:
        raise ResultsFileError(str(err)) from None
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_transcripts(path: str | os.PathLike) -> list[dict[str, Any]]:
    """transcripts.jsonl, validated: every line a result row (see `parse_row`), a scored row has both texts,
    ids and indices unique, indices within the file's rows. Rows come back as the harness wrote them."""
    path = Path(path)
    rows: list[UtteranceResult] = []
    first_line: dict[tuple[str, object], int] = {}
    lines = _json_lines(path)
    for number, line in lines:
        try:
            row = parse_row(json.loads(line))
        except ValueError as err:  # not JSON, or RowError
            raise ResultsFileError(
                f"{path}:{number}: {err if isinstance(err, RowError) else 'not a JSON line'}"
            ) from None
        if row.error is None and (row.text is None or row.pred_text is None):
            field_name = "text" if row.text is None else "pred_text"
            raise ResultsFileError(
                f"{path}:{number}: field {field_name} is null but error is null too: not scored, not failed"
            )
        if row.index >= len(lines):
            raise ResultsFileError(f"{path}:{number}: field index: {row.index} is beyond the file's {len(lines)} rows")
        for key in (("id", row.id), ("index", row.index)):
            if key in first_line:
                raise ResultsFileError(f"{path}:{number}: field {key[0]}: {key[1]!r} is also on line {first_line[key]}")
            first_line[key] = number
        rows.append(row)
    return [r.to_json() for r in rows]
