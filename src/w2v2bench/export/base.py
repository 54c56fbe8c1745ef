"""What every export format sees and is: the scored rows of a run, the run, the `Format` record and its registry.

A format is a `Format(name, per_run, combined=None)`: `per_run(run)` gives the files of one run and what
export.json records of it; `combined(runs)`, if any, the files made from all the runs together (model-index.yaml).
`register(fmt)` makes it one of `export`'s formats: export/__init__ registers the built-in ones (a module each in
this folder, in the order their files are written); a test or a user registers their own the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..metrics import Counts
from ..metrics.edits import scored_text
from ..metrics.normalizers import normalizer
from ..results import OFFICIAL_SPLITS

# the official LibriSpeech splits' sizes (OpenSLR SLR12's transcripts; results.OFFICIAL_SPLITS has their id lists)
OFFICIAL_UTTERANCES = {split: count for split, (count, _) in OFFICIAL_SPLITS.items()}
SAFE = re.compile(r"[^A-Za-z0-9._-]")  # what a leaderboard file name keeps of a name; the rest becomes "_"


class ExportError(ValueError):
    """A run that cannot be exported as asked; printed as one line, exit 1."""


@dataclass(frozen=True)
class Scored:
    """One utterance as every export writes it."""

    id: str
    audio_filepath: str | None
    duration: float
    speaker: str
    offset: float | None  # a segment of its audio file: where it starts (None: the whole file)
    time: float | None
    text: str
    pred_text: str
    words: Counts  # the row's own counts, as the run scored it
    chars: Counts


def _run_names(summary: dict) -> dict[str, str]:
    cfg = summary["config"]
    data, model = cfg.get("data", {}), cfg.get("model", {})
    return {
        "model_name": str(model.get("name")),
        "checkpoint": str(model.get("checkpoint")),
        "local": bool(summary.get("model", {}).get("local", True)),
        "data_source": str(data.get("source")),
        "data_name": str(data.get("name")),
        "dataset": str(data.get("dataset")),
        "partition": str(data.get("partition") or ""),  # "": a set without partitions (a manifest)
        "split": str(cfg.get("split")),
    }


def default_model_id(summary: dict) -> str:
    """The Hub id for a Hub checkpoint; `local/<model.name>` for a folder (the leaderboard reads `<org>/<name>`)."""
    names = _run_names(summary)
    if not names["local"] and "/" in names["checkpoint"]:
        return names["checkpoint"]
    name = names["model_name"]
    return name if name.startswith("local/") else f"local/{name}"  # a derived name is local/<folder>-<hash> already


def scored_rows(summary: dict, rows: list[dict]) -> tuple[list[Scored], int]:
    """(the scored utterances in the text that was scored, the number of failed ones left out)."""
    try:
        normalize = normalizer(None if summary["normalizer"] == "none" else summary["normalizer"])
    except ValueError as err:
        raise ExportError(str(err)) from None
    out, failed = [], 0
    for row in rows:
        if row["error"] is not None:
            failed += 1
            continue
        out.append(
            Scored(
                id=row["id"],
                audio_filepath=row.get("audio_filepath"),
                duration=row["duration_s"],
                speaker=row["speaker"],
                offset=row.get("offset"),
                time=row.get("model_s"),
                text=scored_text(row["text"], normalize),
                pred_text=scored_text(row["pred_text"], normalize),
                words=Counts(row["substitutions"], row["deletions"], row["insertions"], row["ref_words"]),
                chars=Counts(row["char_errors"], 0, 0, row["ref_chars"]),
            )
        )
    return out, failed


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


@dataclass(frozen=True)
class ExportRun:
    """One run as every format sees it."""

    folder: Path
    summary: dict
    rows: list[dict]
    scored: list[Scored]  # the transcribed utterances, in the scored text
    model_id: str
    stem: str  # <data>-<partition>-<split>, cleaned: the start of a per-run file name


Files = dict[str, str]  # file name -> text


@dataclass(frozen=True)
class Format:
    name: str
    per_run: Callable[[ExportRun], tuple[Files, dict[str, Any]]]  # (files, what export.json records of the run)
    combined: Callable[[list[ExportRun]], tuple[Files, dict[str, Any]]] | None = None  # (files, export.json keys)


REGISTRY: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Make `fmt` one of the formats `export` writes (and `formats=` names); a name is registered once."""
    if fmt.name in REGISTRY and REGISTRY[fmt.name] is not fmt:
        raise ValueError(f"export format {fmt.name!r} is registered already")
    REGISTRY[fmt.name] = fmt
    return fmt


def formats() -> tuple[str, ...]:
    """Every registered format's name, in registration order (the order of their files)."""
    return tuple(REGISTRY)
