"""transcripts.jsonl and summary.json: their schema (SCHEMA_VERSION), reading, validation and writing, in one place.

Every row is the dataclass `UtteranceResult`; reading validates a row against it (pydantic, strict: an index
written as a string, a negative count or a missing field is refused with the field named), and a summary
against its rows' counts, so what a tool reads back is what the harness wrote, or a one-line error.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from .errors import one_line
from .files import read_text, write_json_atomic, write_jsonl_atomic

Count = Annotated[int, Strict(), Field(ge=0, le=2**53)]  # no real count comes near; larger ones overflow C longs
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
    # the fields NeMo's and the Open ASR Leaderboard's manifests use, where the run has them (older runs lack them):
    # the audio file's absolute path (None for audio that came as bytes, from the Hub), and duration_s again
    audio_filepath: Text | None = field(default=None)
    duration: Seconds | None = field(default=None)
    # this utterance's share, by duration, of its batch's synchronised model time (decoding audio and the LM
    # beside the model not included); None where the model did not run on it
    model_s: Seconds | None = field(default=None)
    # where in its audio file the utterance starts (a manifest's segment); None: the whole file
    offset: Seconds | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        if row["offset"] is None:  # written for a segment only: a whole file's row is as it always was
            del row["offset"]
        return row


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
        raise RowError(_first_problem(err)) from None


def _first_problem(err: ValidationError) -> str:
    """`field <dotted path>: <what is wrong> (found <value>)` for the first problem pydantic found."""
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "row"
    shown = "" if first["type"] == "missing" else f" (found {repr(first.get('input'))[:60]})"
    return f"field {where}: {first['msg'].lower()}{shown}"


class ResultsFileError(ValueError):
    """A results file that is not what the harness writes; the message names the file, line and field."""


def _json_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = read_text(path)
    except ValueError as err:
        raise ResultsFileError(str(err)) from None
    # split on newlines only: a JSON string may hold U+2028 and other characters splitlines() breaks on
    return [(n, line) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]


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
        except (ValueError, RecursionError) as err:  # not JSON (or nested too deeply), or RowError
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


# ---- summary.json -------------------------------------------------------------------------------------------

SCHEMA_VERSION = 2  # 2 added `measurement` (a version-1 summary is read with its record derived, and said to be)
READ_VERSIONS = (1, 2)


def _rate(value: float) -> float:
    if not (math.isnan(value) or 0 <= value < math.inf):  # NaN: no reference words, so no rate
        raise ValueError(f"expected a rate >= 0 (or NaN), found {value!r}")
    return value


Rate = Annotated[float, Strict(), AfterValidator(_rate)]


class _ModelChoice(TypedDict):
    name: Text
    checkpoint: Text


class _DataChoice(TypedDict):
    name: Text
    partition: Text | None  # None: a set without LibriSpeech partitions (a manifest), named by `name`


class _Config(TypedDict):
    model: _ModelChoice
    data: _DataChoice
    split: Text
    batch_size: Annotated[int, Strict(), Field(ge=1)]
    limit: NotRequired[Annotated[int, Strict(), Field(ge=1)] | None]
    precision: NotRequired[Text]
    batching: NotRequired[Text]
    device: NotRequired[Text]


class _WordErrors(TypedDict):
    substitutions: Count
    deletions: Count
    insertions: Count


class _Reference(TypedDict):
    wer: Rate
    tolerance: Rate
    passed: Annotated[bool, Strict()]


# decoders and backends are whatever class a config names (settings.py): their names are text
class _Figure(TypedDict):
    wer: Rate
    decoder: Text


class _DecoderUsed(TypedDict):
    name: Text


class _BackendUsed(TypedDict):
    name: Text


class _PrecisionCheck(TypedDict):
    recheck_margin: Annotated[float, Strict(), Field(gt=0, le=1e4)] | None
    rechecked_utterances: Count
    compared_utterances: Count
    max_abs_logit_diff: Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)] | None
    bound_violations: Count | None


_Interval = Annotated[list[Annotated[float, Strict(), Field(ge=0, le=1e6, allow_inf_nan=False)]],
                      Field(min_length=2, max_length=2)]  # fmt: skip


class _IntervalMethod(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    method: Literal["bootstrap-percentile"]
    level: Annotated[float, Strict(), Field(gt=0, lt=1)]
    unit: Literal["speaker", "utterance"]
    blocks: Count
    samples: Count
    seed: Annotated[int, Strict()]


class _ModelInfo(TypedDict):
    architecture: NotRequired[Text]
    feat_extract_norm: NotRequired[Text]


class _Started(TypedDict):
    """What every summary.json holds from the run's start."""

    schema_version: Literal[1, 2]
    status: Literal["running", "failed", "complete", "rescored"]  # rescored: `w2v2bench.score`'s own summary
    config: _Config


class _Complete(TypedDict):
    """What a complete run's summary.json adds (the fields tools read back)."""

    wer: Rate | None  # null in summaries of runs that scored nothing, before NaN
    cer: Rate | None
    n_utterances: Count
    n_failed: Count
    ref_words: Count
    word_errors: _WordErrors
    audio_s: Seconds
    rtfx: Rate
    reference: _Reference | None
    normalizer: Text
    # written since the family and the LM decoder arrived; older summaries lack them
    reference_note: NotRequired[Text | None]
    reference_figure: NotRequired[_Figure | None]
    decoder: NotRequired[_DecoderUsed]
    backend: NotRequired[_BackendUsed]
    merge_compounds: NotRequired[Annotated[bool, Strict()]]  # w2v2bench.score's: compounds merged as kaldialign does
    precision_check: NotRequired[_PrecisionCheck | None]
    precision_differs_from_fp32: NotRequired[Count | None]
    batching_fallback: NotRequired[Text | None]
    model: NotRequired[_ModelInfo]
    device: NotRequired[Text]
    # the rates' 95 % intervals (metrics.significance.run_intervals), written since issue #30; older: "n/a"
    wer_ci95: NotRequired[_Interval | None]
    cer_ci95: NotRequired[_Interval | None]
    interval: NotRequired[_IntervalMethod | None]


_STARTED, _COMPLETE = TypeAdapter(_Started), TypeAdapter(_Complete)


def read_summary(path: str | os.PathLike, complete: bool = False) -> dict[str, Any]:
    """summary.json as a dict, validated (its start fields always; a complete run's figures when its status
    says complete, or when `complete` asks for a complete run)."""
    path = Path(path)
    try:
        summary = json.loads(read_text(path))
    except (ValueError, RecursionError) as err:
        raise ResultsFileError(f"{path}: not a JSON summary ({one_line(err)})") from None
    return validate_summary(summary, path, complete)


def validate_summary(summary: object, path: str | os.PathLike, complete: bool = False) -> dict[str, Any]:
    """A parsed summary.json checked as `read_summary` checks it (for callers that hold its bytes already)."""
    path = Path(path)
    if not isinstance(summary, dict):
        raise ResultsFileError(f"{path}: expected a JSON object, found {type(summary).__name__}")
    found = summary.get("schema_version")
    if isinstance(found, bool) or found not in READ_VERSIONS:
        raise ResultsFileError(
            f"{path}: field schema_version: {found!r}, expected one of {list(READ_VERSIONS)} (this version writes "
            f"{SCHEMA_VERSION})"
        )
    _validate(_STARTED, summary, path)
    if complete and summary["status"] != "complete":
        raise ResultsFileError(f"{path}: the run is not complete (status {summary['status']!r})")
    if summary["status"] in ("complete", "rescored"):
        _validate(_COMPLETE, summary, path)
        # the rates are those of the summary's own counts (a table or a model card shows both side by side)
        errors = summary["word_errors"]
        for key, wrong, total in (
            ("wer", errors["substitutions"] + errors["deletions"] + errors["insertions"], summary["ref_words"]),
            ("cer", summary.get("char_errors"), summary.get("ref_chars")),
        ):
            if wrong is not None and total is not None and not _same_rate(summary[key], wrong, total):
                raise ResultsFileError(
                    f"{path}: field {key}: {summary[key]!r}, but its own counts give {wrong}/{total}"
                )
        for key in ("wer_ci95", "cer_ci95"):
            bounds = summary.get(key)
            if bounds is not None and bounds[0] > bounds[1]:
                raise ResultsFileError(f"{path}: field {key}: {bounds!r}, its low bound above its high one")
        method = summary.get("interval")
        if (summary.get("wer_ci95") or summary.get("cer_ci95")) and method is None:
            raise ResultsFileError(f"{path}: field interval: null, but the summary has intervals: how were they made?")
        if method is not None and not (1 <= method["samples"] and method["blocks"] <= summary["n_utterances"]):
            raise ResultsFileError(
                f"{path}: field interval: {method['samples']} resamples of {method['blocks']} blocks, for a run of "
                f"{summary['n_utterances']} utterances"
            )
        try:
            if found == 1:
                summary["measurement"] = measurement(summary, derived=True)
            else:
                _check_measurement(summary, path)
        except (TypeError, KeyError, AttributeError, ValueError, RecursionError) as err:
            if isinstance(err, ResultsFileError):
                raise
            raise ResultsFileError(
                f"{path}: its measurement record cannot be made from its fields ({type(err).__name__}: {err})"
            ) from None
    return summary


def _same_rate(found: object, errors: int, total: int) -> bool:
    """Whether `found` is errors / total (None or NaN where total is 0)."""
    if not isinstance(errors, int) or not isinstance(total, int):
        return False
    if total == 0:
        return found is None or (isinstance(found, float) and math.isnan(found))
    if isinstance(found, bool) or not isinstance(found, (int, float)):
        return False
    value = errors / total
    return abs(found - value) <= 1e-9 * max(1.0, abs(value))


def _validate(adapter: TypeAdapter, value: dict, path: Path) -> None:
    try:
        adapter.validate_python(value)
    except ValidationError as err:
        raise ResultsFileError(f"{path}: {_first_problem(err)}") from None


COUNT_FIELDS = ("substitutions", "deletions", "insertions", "ref_words", "char_errors", "ref_chars")


def edit_counts(
    result: UtteranceResult, normalize: Callable[[str], str], merge_compounds: bool = False
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(the row's stored edit counts, those of its own reference and transcript); a failed row counts nothing.
    Counts written before whitespace was collapsed for scoring (`score.scored_text`) still match."""
    from .metrics import Counts
    from .metrics.edits import legacy_utterance_counts, utterance_counts

    def fields(words: Counts, chars: Counts) -> tuple[int, ...]:
        return words.substitutions, words.deletions, words.insertions, words.ref_words, chars.errors, chars.ref_words

    stored = tuple(getattr(result, k) for k in COUNT_FIELDS)
    if result.error is not None or result.text is None or result.pred_text is None:
        return stored, fields(Counts(), Counts())
    counted = fields(*utterance_counts(result.text, result.pred_text, normalize, merge_compounds))
    if counted != stored and not merge_compounds:
        legacy = fields(*legacy_utterance_counts(result.text, result.pred_text, normalize))
        if legacy == stored:
            return stored, legacy
    return stored, counted


def check_figures(summary: dict[str, Any], rows: list[dict[str, Any]], path: Path) -> None:
    """The summary's counts are the sums over its rows (its rates are those of its counts: `validate_summary`),
    which is what a model card or an export would carry."""
    scored = [r for r in rows if r["error"] is None]
    expected = {
        "ref_words": sum(r["ref_words"] for r in scored),
        "word_errors": {k: sum(r[k] for r in scored) for k in ("substitutions", "deletions", "insertions")},
        "ref_chars": sum(r["ref_chars"] for r in scored),
        "char_errors": sum(r["char_errors"] for r in scored),
    }
    for key, value in expected.items():
        found = summary.get(key, value)  # a summary written before it had the field
        if found != value or isinstance(found, bool):
            raise ResultsFileError(f"{path}: field {key}: {found!r}, but its rows sum to {value!r}")


def read_run(folder: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A complete run folder's summary and rows, each validated and the two consistent: the summary counts
    its rows, and each scored row's edit counts are those of its own texts under the run's normaliser."""
    from .metrics.normalizers import normalizer

    folder = Path(folder)
    summary = read_summary(folder / "summary.json", complete=True)
    rows = read_transcripts(folder / "transcripts.jsonl")
    n_failed = sum(1 for r in rows if r["error"] is not None)
    if (summary["n_utterances"], summary["n_failed"]) != (len(rows), n_failed):
        raise ResultsFileError(
            f"{folder / 'summary.json'}: says {summary['n_utterances']} utterances, {summary['n_failed']} failed; "
            f"transcripts.jsonl has {len(rows)}, {n_failed} failed"
        )
    try:
        normalize = normalizer(summary["normalizer"] if summary["normalizer"] != "none" else None)
    except ValueError as err:
        raise ResultsFileError(f"{folder / 'summary.json'}: {err}") from None
    if summary.get("merge_compounds"):
        raise ResultsFileError(
            f"{folder / 'summary.json'}: merge_compounds is a re-score's setting (status rescored), not a run's"
        )
    for number, row in enumerate(rows, start=1):
        stored, counted = edit_counts(parse_row(row), normalize)
        if counted != stored:
            raise ResultsFileError(
                f"{folder / 'transcripts.jsonl'}:{number}: the edit counts {stored} are not those of its own "
                f"reference and transcript {counted}"
            )
    check_figures(summary, rows, folder / "summary.json")
    ids = ids_sha256(r["id"] for r in rows)
    record = summary["measurement"]
    if record["derived"]:  # a version-1 run: its rows give the id list its record could not
        summary["measurement"] = measurement(summary, ids_hash=ids, derived=True)
        summary["measurement"]["fingerprints"] = record["fingerprints"]
    elif record["fingerprints"].get("ids_sha256") != ids:
        raise ResultsFileError(
            f"{folder / 'summary.json'}: field measurement.fingerprints.ids_sha256 is not the hash of "
            "transcripts.jsonl's ids"
        )
    return summary, rows


def load_rows(run_dir: Path) -> list[dict]:
    """The run's per-utterance rows, in corpus order, validated (`results.read_transcripts`)."""
    path = Path(run_dir) / "transcripts.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"run={str(run_dir)!r}: no transcripts.jsonl in that folder")
    return read_transcripts(path)


def load_summary(run_dir: Path) -> dict | None:
    """The run's summary.json, validated (`results.read_summary`), or None when there is none."""
    path = Path(run_dir) / "summary.json"
    return read_summary(path) if path.exists() else None


def is_scored(row: dict) -> bool:
    """Whether a row counts towards WER: transcribed, with a reference (failed ones are reported apart)."""
    return row.get("error") is None and row.get("text") is not None and row.get("pred_text") is not None


def scored(rows: Iterable[dict]) -> list[dict]:
    return [r for r in rows if is_scored(r)]


def write_transcripts(folder: Path, rows: Iterable[dict]) -> None:
    """transcripts.jsonl, one row a line, written whole (atomically)."""
    write_jsonl_atomic(Path(folder) / "transcripts.jsonl", rows)


def write_summary(folder: Path, summary: dict) -> None:
    """summary.json, written whole (atomically): a reader sees the old file or the new one, never half of one."""
    write_json_atomic(Path(folder) / "summary.json", summary)


# ---- the measurement record: what a figure is of, and what it was measured with --------------------------------

# The official LibriSpeech splits (OpenSLR SLR12): utterance count and the sha256 of their ids, sorted, one per
# line with a final newline (`ids_sha256`); the lists: tests/data/librispeech-ids/
OFFICIAL_SPLITS: dict[str, tuple[int, str]] = {
    "test-clean": (2620, "ad23867bf9cc7446ce28d7e0abed7086f245c34bf27872fe04f490b9bdbb0684"),
    "test-other": (2939, "0d43bba4350a1e97b6a1d37fc2c26f4a9d393c851e7315c29878483b0bbb32f1"),
    "dev-clean": (2703, "60683b42a77d2cc04dd40b52132d2d8efd7254fa4cd659ba7cee7bf90f1bfadc"),
    "dev-other": (2864, "35ee59109d0e9413105c1dc9b6f0544ef33a7a82032b9198be553f7ae0c13a46"),
}
OFFICIAL_DATA = "librispeech"  # the data.name whose partition-split may be an official one

# a decoder's or backend's recorded settings that name files and versions (fingerprints), not the protocol
DECODER_FINGERPRINTS = frozenset(
    {"lm", "lexicon", "lm_sha256", "lexicon_sha256", "lexicon_words", "lexicon_dropped", "lexicon_oov",
     "settings_from"}
)  # fmt: skip
BACKEND_PROTOCOL = ("name", "precision", "quantization", "weight_type", "per_channel")
BACKEND_VOLATILE = frozenset({"cached", "export_s", "cache"})  # where and how fast, not what


def ids_sha256(ids: Iterable[str]) -> str:
    """The id-list hash of a set of utterances: sha256 of the ids, sorted, one per line with a final newline."""
    return hashlib.sha256("".join(f"{i}\n" for i in sorted(ids)).encode()).hexdigest()


def official_split(data: str, partition: str | None, split: str) -> tuple[int, str] | None:
    """(count, ids_sha256) of the official LibriSpeech split a run's data names, or None (another set)."""
    return OFFICIAL_SPLITS.get(f"{partition}-{split}") if data == OFFICIAL_DATA else None


def _coverage(summary: dict, ids_hash: str | None, derived: bool) -> dict[str, Any]:
    """The series' data: the set, and how much of it: the whole set (official: exactly the OpenSLR split's
    ids), or a subset with its count and id-list hash (a smoke run is a series of its own)."""
    cfg = summary["config"]
    data, split, n = cfg["data"], cfg["split"], summary["n_utterances"]
    limit = cfg.get("limit")
    official = official_split(data["name"], data.get("partition"), split)
    # a set without LibriSpeech partitions (a manifest) has no split either: its name is all there is
    found = {
        "name": data["name"],
        "partition": data.get("partition"),
        "split": split if data.get("partition") else None,
    }
    if official is not None:
        # a version-1 run of the split's full count, ids not read: its ids were the split's (derived)
        if ids_hash == official[1] or (derived and ids_hash is None and n == official[0]):
            return {**found, "coverage": "whole", "official": True}
        return {**found, "coverage": "subset", "official": False, "n_utterances": n, "ids_sha256": ids_hash}
    # another set: all of it unless a limit cut it (a limit past its end cut nothing); which set it is, is its ids
    whole = limit is None or n < limit
    return {**found, "coverage": "whole" if whole else "subset", "official": False, "n_utterances": n,
            "ids_sha256": ids_hash}  # fmt: skip


def _protocol(summary: dict) -> dict[str, Any]:
    cfg = summary["config"]
    decoder = summary.get("decoder") or {"name": "greedy"}
    backend = summary.get("backend") or _backend_of(cfg, "torch")
    batching = cfg.get("batching", "exact")
    return {
        "decoder": {k: v for k, v in decoder.items() if k not in DECODER_FINGERPRINTS},
        # PyTorch runs in `precision` (below); another runtime in its own
        "backend": {
            k: backend[k] for k in BACKEND_PROTOCOL if k in backend and (k, backend["name"]) != ("precision", "torch")
        },
        "precision": cfg.get("precision", "fp32"),
        # exact batches equal batch size 1 (measured: docs/exactness.md); naive ones depend on the batch size
        "batching": batching
        if batching == "exact"
        else (
            f"{batching} (batch_size {cfg.get('batch_size')}, max_batch_s {cfg.get('max_batch_s')}, sort_window "
            f"{cfg.get('sort_window')})"  # what makes up a naive batch, and so its padding
        ),
        "normalizer": summary.get("normalizer") or "none",
        "merge_compounds": bool(summary.get("merge_compounds", False)),
        "recheck_margin": cfg.get("recheck_margin"),
        "device": str(cfg.get("device", "cpu")).split(":")[0],
        "compile": bool(cfg.get("compile", False)),
    }


def _backend_of(cfg: dict, name: str) -> dict[str, Any]:
    """What a summary written before it recorded `backend` ran: PyTorch in the run's precision, or a runtime in
    its own (the config's backend.precision)."""
    own = (cfg.get("backend") or {}).get("precision") if name != "torch" else None
    return {"name": name, "precision": own or cfg.get("precision", "fp32")}


def series_id(series: dict) -> str:
    """The first 16 hex digits of the sha256 of a series, as canonical JSON: runs with one id compare."""
    return hashlib.sha256(json.dumps(series, sort_keys=True, ensure_ascii=True).encode()).hexdigest()[:16]


def measurement(
    summary: dict,
    *,
    ids_hash: str | None = None,
    fingerprints: dict | None = None,
    derived: bool = False,
) -> dict[str, Any]:
    """summary.json's `measurement`: the series (model, data with its coverage, protocol: what the figure is of;
    runs compare, table and baseline only within one) and the fingerprints (weights, data revision, versions, LM
    and export: what it was measured with; a change within a series is what a nightly reports). `derived`: made
    from what a version-1 summary stored, after the fact (its id list unknown). docs/formats.md, field by field."""
    cfg = summary["config"]
    series = {
        "model": cfg["model"]["name"],
        "data": _coverage(summary, ids_hash, derived),
        "protocol": _protocol(summary),
    }
    model = summary.get("model") or {}
    decoder, backend = summary.get("decoder") or {}, summary.get("backend") or {}
    found = {
        "weights": model.get("weights"),
        "checkpoint": model.get("checkpoint", cfg["model"].get("checkpoint")),
        "revision": model.get("revision", cfg["model"].get("revision")),
        "hub_commit": model.get("commit"),
        "data_source": cfg["data"].get("source"),
        "data_location": cfg["data"].get("root") or cfg["data"].get("dataset"),
        "data_revision": cfg["data"].get("commit") or cfg["data"].get("revision"),
        "decoder": {k: v for k, v in decoder.items() if k in DECODER_FINGERPRINTS},
        "backend": {k: v for k, v in backend.items() if k not in BACKEND_PROTOCOL and k not in BACKEND_VOLATILE},
        "ids_sha256": ids_hash,
        "n_utterances": summary["n_utterances"],
        "versions": summary.get("versions"),
        "git_hash": summary.get("git_hash"),
        **(fingerprints or {}),
    }
    return {"derived": derived, "series_id": series_id(series), "series": series, "fingerprints": found}


def remeasured(summary: dict) -> dict[str, Any]:
    """The record of a summary whose protocol changed after the run (a re-score): the series made again from its
    fields, with the run's id list, fingerprints and derivation kept."""
    old = summary.get("measurement") or measurement(summary, derived=True)
    record = measurement(summary, ids_hash=old["fingerprints"].get("ids_sha256"), derived=old["derived"])
    record["fingerprints"] = old["fingerprints"]
    return record


def _first_difference(found: object, made: object, where: str) -> tuple[str | None, object, object]:
    """(the dotted field where two JSON values first differ, its two values), or (None, ...) when equal."""
    if isinstance(found, dict) and isinstance(made, dict):
        for key in [*made, *(k for k in found if k not in made)]:
            inner = _first_difference(found.get(key), made.get(key), f"{where}.{key}")
            if inner[0]:
                return inner
        return None, found, made
    return (None if found == made and type(found) is type(made) else where), found, made


def with_ids(summary: dict, run_dir: Path) -> dict[str, Any]:
    """A summary's record checked against its run folder's rows: a written record's id list must be theirs (a
    ResultsFileError names the field); a derived one (a run written before the record) is made again with their
    ids, so a subset keeps its series across the upgrade and a whole split is decided by its ids, not its count.
    Without a transcripts.jsonl to read, the record as it is."""
    record = summary["measurement"]
    path = Path(run_dir) / "transcripts.jsonl"
    try:
        ids = ids_sha256(r["id"] for r in read_transcripts(path))
    except OSError:
        return record  # no rows to read (a re-score's source gone, a history row of a folder long gone)
    if not record["derived"]:
        if record["fingerprints"].get("ids_sha256") != ids:
            raise ResultsFileError(
                f"{Path(run_dir) / 'summary.json'}: field measurement.fingerprints.ids_sha256 is not the hash of "
                "transcripts.jsonl's ids"
            )
        return record
    remade = measurement(summary, ids_hash=ids, derived=True)
    return {**remade, "fingerprints": {**record["fingerprints"], "ids_sha256": ids}}


class _Series(TypedDict):
    model: Text
    data: dict
    protocol: dict


class _Measurement(TypedDict):
    derived: Annotated[bool, Strict()]
    series_id: Text
    series: _Series
    fingerprints: dict


_MEASUREMENT = TypeAdapter(_Measurement)


def _check_measurement(summary: dict, path: Path) -> None:
    """A version-2 summary's record is the one its own fields make (a record edited to claim a whole official
    split, another model or another protocol is refused, naming the field)."""
    record = summary.get("measurement")
    if record is None:
        raise ResultsFileError(f"{path}: field measurement: missing (a version-2 summary has one)")
    try:
        _MEASUREMENT.validate_python(record)
    except ValidationError as err:
        raise ResultsFileError(f"{path}: field measurement: {_first_problem(err)}") from None
    ids_hash = record["fingerprints"].get("ids_sha256")
    if ids_hash is not None and not (isinstance(ids_hash, str) and len(ids_hash) == 64):
        raise ResultsFileError(f"{path}: field measurement.series.data.ids_sha256: not a sha256 ({ids_hash!r})")
    expected = measurement(summary, ids_hash=ids_hash, derived=record["derived"])["series"]
    where, found, made = _first_difference(record["series"], expected, "measurement.series")
    if where:
        raise ResultsFileError(
            f"{path}: field {where}: {found!r}, but the summary's own fields make {made!r} (an edited record?)"
        )
    if record["series_id"] != series_id(record["series"]):
        raise ResultsFileError(f"{path}: field measurement.series_id: {record['series_id']!r} is not its series' hash")
