"""Utterances listed in a manifest: a NeMo JSONL manifest, or a CSV/TSV with a header (`data=manifest`).

NeMo's manifest is one JSON object a line: `audio_filepath`, `text`, `duration`, and optionally `offset` (a segment
of a longer file), `id`/`utt_id`, `speaker`. A CSV or TSV names the same things in its header; `data.audio_column`,
`data.text_column`, `data.id_column` and `data.speaker_column` map other column names (a Common Voice `path` and
`sentence`, for instance). Relative audio paths resolve against the manifest's folder. An id comes from the
manifest, or else from the audio file's name (and the segment's offset: two segments of one file never collide).

What cannot be read at all (a line that is not JSON, a missing column) stops with one line naming the file and
line; what makes one utterance unusable (no text, no audio path, an id twice, a bad offset) is that utterance's
recorded failure. The set is named by `data.name` (default: the manifest's file name without its suffix), which
stands where a LibriSpeech run has `<partition>-<split>`; the manifest's sha256 is recorded as `data.commit`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..files import read_regular
from . import DataError, Utterance

FORMATS = ("auto", "nemo", "csv", "tsv")
MAX_MANIFEST_BYTES = 512 * 2**20
# the column names each field goes by, first found wins (NeMo, Common Voice, the HF datasets' usual names)
COLUMNS = {
    "audio": ("audio_filepath", "audio_path", "path", "audio", "file", "wav"),
    "text": ("text", "sentence", "transcript", "transcription", "normalized_text"),
    "id": ("id", "utt_id", "utterance_id", "key"),
    "speaker": ("speaker", "speaker_id", "client_id"),
}


@dataclass(frozen=True)
class ManifestSettings:
    name: str  # what the set is called in outputs: where a LibriSpeech run has <partition>-<split>
    path: str | None = None  # the manifest file
    format: str = "auto"  # auto (by the file's suffix: .csv, .tsv, else NeMo JSONL) | nemo | csv | tsv
    audio_column: str | None = None  # null: the first of COLUMNS["audio"] the manifest has
    text_column: str | None = None
    id_column: str | None = None
    speaker_column: str | None = None

    def __post_init__(self):
        if not self.path:
            raise ConfigError("data.path is not set: data=manifest needs data.path=<a NeMo JSONL, CSV or TSV file>")
        if self.format not in FORMATS:
            raise ConfigError(f"data.format={self.format!r}: expected one of {list(FORMATS)}")
        if not Path(self.path).expanduser().is_file():
            raise ConfigError(f"data.path={self.path!r}: no such file (expected a manifest: NeMo JSONL, CSV or TSV)")


def _format(settings: ManifestSettings) -> str:
    if settings.format != "auto":
        return settings.format
    suffix = Path(settings.path).suffix.lower()
    return {".csv": "csv", ".tsv": "tsv"}.get(suffix, "nemo")


def _records(path: Path, kind: str, content: str) -> list[tuple[str, dict]]:
    """(where, record) for each entry: `file:line` and its fields as text."""
    if kind == "nemo":
        records = []
        for number, line in enumerate(content.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                raise DataError(f"{path}:{number}: not a JSON line (a NeMo manifest has one object a line)") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, found {type(record).__name__}")
            records.append((f"{path}:{number}", record))
        return records
    tsv = kind == "tsv"  # a TSV quotes nothing (Common Voice's sentences hold bare quotes)
    reader = csv.DictReader(io.StringIO(content, newline=""), delimiter="\t" if tsv else ",",
                            quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)  # fmt: skip
    try:
        if not reader.fieldnames:
            raise DataError(f"{path}: no header line (a {kind.upper()} manifest names its columns on its first line)")
        return [(f"{path}:{reader.line_num}", row) for row in reader]
    except csv.Error as err:  # an unclosed quote running to the end, a field past the csv module's limit
        raise DataError(f"{path}:{reader.line_num}: not {kind.upper()} ({err})") from None


def _column(settings: ManifestSettings, field: str, seen: set[str], path: Path, required: bool) -> str | None:
    chosen = getattr(settings, f"{field}_column")
    if chosen is not None:
        if chosen not in seen:
            raise DataError(f"data.{field}_column={chosen!r}: {path} has no such field (it has {sorted(seen)})")
        return chosen
    found = next((c for c in COLUMNS[field] if c in seen), None)
    if found is None and required:
        raise DataError(
            f"{path}: no {field} field (looked for {list(COLUMNS[field])}; it has {sorted(seen)}): name it with "
            f"data.{field}_column=<field>"
        )
    return found


MAX_SECONDS = 1e7  # 115 days: no recording is longer, and sample counts of it still fit


def _seconds(value, what: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {value!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_SECONDS):
        raise ValueError(f"{what} {value!r} is not a number of seconds from 0 to {MAX_SECONDS:.0e}")
    return seconds


# an id that a results file, a .trn line (`text (id)`) and a file name all keep as it is
SAFE_ID = re.compile(r"[^\s()\x00-\x1f\x7f]+")


def plain_id(text: str, fallback: str = "id") -> str:
    """`text` made a plain id: whitespace, parentheses and unprintable characters become `_` (at most 200)."""
    return "".join(c if c.isprintable() and SAFE_ID.fullmatch(c) else "_" for c in text)[:200] or fallback


def unique_id(wanted: str, taken: dict, where: str) -> str:
    """`wanted`, or `wanted-line<N>` (and `-2`, `-3` ...) where that is taken already."""
    if wanted not in taken:
        return wanted
    line = where.rpartition(":")[2]
    candidate, n = f"{wanted}-line{line}", 2
    while candidate in taken:
        candidate, n = f"{wanted}-line{line}-{n}", n + 1
    return candidate


def manifest_utterances(settings: ManifestSettings) -> tuple[list[Utterance], str]:
    """(the manifest's utterances in its order, the manifest's sha256)."""
    path = Path(settings.path).expanduser()
    try:
        raw = read_regular(path, MAX_MANIFEST_BYTES)
    except OSError as err:
        raise DataError(f"data.path={settings.path!r}: cannot be read ({err.strerror or err})") from None
    except ValueError as err:  # too large
        raise DataError(str(err)) from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 (byte {err.start})") from None
    records = _records(path, _format(settings), content)
    if not records:
        raise DataError(f"{path}: no entries")
    seen = {k for _, r in records for k in r if k is not None}
    columns = {f: _column(settings, f, seen, path, required=f in ("audio", "text")) for f in COLUMNS}
    utterances, first = [], {}
    for index, (where, record) in enumerate(records):
        audio, text = record.get(columns["audio"]), record.get(columns["text"])
        error, offset, duration = None, 0.0, None
        try:
            offset = _seconds(record.get("offset"), "offset") or 0.0
            # the segment's length where it is a segment (NeMo: 0 or none is to the end); else the file's, as metadata
            duration = (_seconds(record.get("duration"), "duration") or None) if "offset" in record else None
        except ValueError as err:
            error = f"{where}: {err}"
        given = record.get(columns["id"]) if columns["id"] else None
        if given is not None and given != "":
            if isinstance(given, bool) or not isinstance(given, str | int) or not SAFE_ID.fullmatch(str(given)):
                error = error or (
                    f"{where}: id {given!r} is not a plain id (text or a whole number, without spaces, parentheses "
                    "or control characters: a .trn line could not hold it)"
                )
                given = plain_id(str(given))
            wanted = str(given)
            if wanted in first:  # the manifest's id twice: which entry is it? (a recorded failure)
                error = error or f"{where}: id {wanted!r} is also on {first[wanted]}: which is its audio?"
        else:  # the audio file's name (and where a segment starts)
            stem = plain_id(Path(str(audio or f"line{index}")).stem, "audio")
            wanted = stem + (f"-{round(offset * 1000):010d}ms" if "offset" in record else "")
        utt_id = unique_id(wanted, first, where)
        first[utt_id] = where
        value = record.get(columns["speaker"]) if columns["speaker"] else None
        speaker = "" if value is None else str(value)
        if not isinstance(text, str) or not text.strip():
            error = error or f"{where}: no text for {utt_id}"
            text = None
        else:
            text = " ".join(text.split())
        if not isinstance(audio, str) or not audio:
            error = error or f"{where}: no audio path for {utt_id}"
            audio = None
        try:
            resolved = None if audio is None else str((path.parent / Path(audio).expanduser()).resolve())
        except (ValueError, OSError, RuntimeError) as err:  # a NUL in the path, a loop of links, ~nobody
            error, resolved = error or f"{where}: audio path {audio!r} cannot be used ({err})", None
        utterances.append(
            Utterance(index, utt_id, speaker, "", text, resolved, error=error, offset=offset, duration=duration)
        )
    return utterances, hashlib.sha256(raw).hexdigest()


class ManifestSource:
    """`data=manifest`: the utterances a NeMo manifest or a CSV/TSV lists, read whole and counted up front."""

    name = "manifest"
    Settings = ManifestSettings

    def __init__(self, settings: ManifestSettings):
        self.settings = settings
        self.commit: str | None = None  # sha256:<hex> of the manifest, once read (summary.json's data.commit)

    @classmethod
    def create(cls, settings: ManifestSettings) -> ManifestSource:
        return cls(settings)

    def utterances(self, split: str, limit: int | None) -> tuple[list[Utterance], int]:
        """(the first `limit` utterances in the manifest's order, their count); a manifest has no splits."""
        found, digest = manifest_utterances(self.settings)
        self.commit = f"sha256:{digest}"
        found = found[:limit] if limit is not None else found
        return found, len(found)
