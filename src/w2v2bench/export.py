"""A finished run in the shapes other tools read as they are: the Open ASR Leaderboard's result file, a NeMo
manifest, plain text for the jiwer CLI, a Hugging Face `model-index` block for a model card, and lhotse manifests.

Usage: python -m w2v2bench.export run=<run folder> [run=[<folder>,<folder>]] [out=<folder>] [model_id=<org/name>]
       [formats=[leaderboard,nemo,jiwer,model-index,lhotse]]

Every file holds the text that was scored (`score.scored_text`: the run's normaliser, single spaces), so each
tool's WER and CER on it equal the run's. Failed utterances are left out, as the run's WER leaves them out, and
counted in export.json. sclite reads the run's own ref.trn and hyp.trn (the same text).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import one_line
from .files import write_json_atomic, write_text_atomic
from .metrics import Counts, rate
from .metrics.edits import scored_text
from .metrics.normalizers import normalizer
from .provenance import git_hash
from .results import ResultsFileError, read_run

__all__ = ["ExportError", "export", "leaderboard_name"]

FORMATS = ("leaderboard", "nemo", "jiwer", "model-index", "lhotse")
SAFE = re.compile(r"[^A-Za-z0-9._-]")  # what a leaderboard file name keeps of a name; the rest becomes "_"
# the Hub's task and dataset names for LibriSpeech (model-index `dataset.type` is a Hub dataset id)
LIBRISPEECH_HUB_ID = "openslr/librispeech_asr"


class ExportError(ValueError):
    """A run that cannot be exported as asked; printed as one line, exit 1."""


@dataclass(frozen=True)
class Scored:
    """One utterance as every export writes it."""

    id: str
    audio_filepath: str | None
    duration: float
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
        "partition": str(data.get("partition")),
        "split": str(cfg.get("split")),
    }


def default_model_id(summary: dict) -> str:
    """The Hub id for a Hub checkpoint; `local/<model.name>` for a folder (the leaderboard reads `<org>/<name>`)."""
    names = _run_names(summary)
    return names["checkpoint"] if not names["local"] and "/" in names["checkpoint"] else f"local/{names['model_name']}"


def leaderboard_name(model_id: str, summary: dict) -> str:
    """The Open ASR Leaderboard's result file name, `MODEL_<org>-<model>_DATASET_<path>_<name>_<split>.jsonl`:
    its scorer takes model and dataset from this name (the first `-` of the model part back to `/`), and labels
    `librispeech_test.clean` / `librispeech_test.other` as its LS Clean / LS Other columns."""
    names = _run_names(summary)
    if "/" not in model_id:
        raise ExportError(f"model_id={model_id!r}: expected <org>/<name> (the leaderboard reads the org from it)")
    dataset_path = names["dataset"] if names["data_source"] == "hub" else names["data_source"]
    parts = {
        "model": model_id.replace("/", "-"),
        "path": dataset_path.replace("/", "-"),
        "name": names["data_name"],
        "split": f"{names['partition']}.{names['split']}",
    }
    for key, value in parts.items():
        parts[key] = cleaned = SAFE.sub("_", value)
        if "MODEL_" in cleaned or "DATASET_" in cleaned:
            raise ExportError(
                f"{key} {value!r} holds MODEL_ or DATASET_ (once cleaned), which the leaderboard's file name parser "
                "splits on"
            )
    return f"MODEL_{parts['model']}_DATASET_{parts['path']}_{parts['name']}_{parts['split']}.jsonl"


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
                time=row.get("model_s"),
                text=scored_text(row["text"], normalize),
                pred_text=scored_text(row["pred_text"], normalize),
                words=Counts(row["substitutions"], row["deletions"], row["insertions"], row["ref_words"]),
                chars=Counts(row["char_errors"], 0, 0, row["ref_chars"]),
            )
        )
    return out, failed


def lhotse_manifests(scored: list[Scored]) -> tuple[list[dict], list[dict], list[str]]:
    """(lhotse recordings, supervisions, ids left out): a recording per audio file, its header read with soundfile
    (a path that is not a regular file, gone or unreadable is left out: a FIFO would hang the reader); the
    supervision holds the scored reference as `text` and the transcript in `custom.pred_text`."""
    import soundfile as sf

    recordings, supervisions, left_out = [], [], []
    for s in scored:
        path = s.audio_filepath
        try:
            if path is None or not stat.S_ISREG(os.stat(path).st_mode):
                raise OSError("not a regular file")
            info = sf.info(path)
        except (OSError, RuntimeError, sf.LibsndfileError):
            left_out.append(s.id)
            continue
        duration = info.frames / info.samplerate
        recordings.append(
            {"id": s.id, "sources": [{"type": "file", "channels": list(range(info.channels)), "source": path}],
             "sampling_rate": info.samplerate, "num_samples": info.frames, "duration": duration,
             "channel_ids": list(range(info.channels))}
        )  # fmt: skip
        supervisions.append(
            {"id": s.id, "recording_id": s.id, "start": 0.0, "duration": duration, "channel": 0, "text": s.text,
             "custom": {"pred_text": s.pred_text}}
        )  # fmt: skip
    return recordings, supervisions, left_out


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _model_index_result(summary: dict) -> tuple[dict | None, str | None]:
    """(one model-index `results` entry, or None and why a model card should not carry this run's figure)."""
    names = _run_names(summary)
    cfg = summary["config"]
    if summary["n_failed"]:
        return None, f"{summary['n_failed']} utterance(s) failed: a card's figure needs every utterance"
    if cfg.get("limit") is not None:
        return None, f"limit={cfg['limit']} scores a subset"
    if not all(isinstance(summary.get(k), float) and math.isfinite(summary[k]) for k in ("wer", "cer")):
        return None, "no WER (no reference words)"
    librispeech = names["data_name"] == "librispeech"
    hub_split = {"dev": "validation"}.get(names["partition"], names["partition"])
    decoder = (summary.get("decoder") or {}).get("name", "greedy")
    metric_name = f"{'Test' if names['partition'] == 'test' else 'Dev'} WER" + (
        " (n-gram LM)" if decoder == "lm" else ""
    )
    entry = {
        "task": {"type": "automatic-speech-recognition", "name": "Automatic Speech Recognition"},
        "dataset": {
            "name": f"LibriSpeech ({names['split']})" if librispeech else f"{names['data_name']} ({names['split']})",
            "type": LIBRISPEECH_HUB_ID if librispeech else names["data_name"],
            "config": names["split"],
            "split": hub_split,
            "args": {"language": "en"},
        },
        "metrics": [
            {"type": "wer", "value": round(summary["wer"] * 100, 2), "name": metric_name},
            {"type": "cer", "value": round(summary["cer"] * 100, 2), "name": metric_name.replace("WER", "CER")},
        ],
    }
    return entry, None


def export(runs: list[str | Path], out: str | Path | None = None, model_id: str | None = None,
           formats: list[str] | tuple[str, ...] = FORMATS) -> dict[str, Any]:  # fmt: skip
    """Write each run's exports into `out` (default: the first run's `export/` folder); returns export.json's
    content. Only `out` is written."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"formats={list(formats)}: expected a non-empty list of {list(FORMATS)}")
    if not runs:
        raise ExportError("run=: no run folder given")
    loaded = []
    for run in runs:
        try:
            summary, rows = read_run(run)
        except (ResultsFileError, OSError) as err:
            raise ExportError(one_line(err)) from None
        if summary["status"] != "complete":
            raise ExportError(f"{run}: status {summary['status']!r}: export a run of the model, not a re-score")
        loaded.append((Path(run), summary, rows))
    ids = {model_id or default_model_id(s) for _, s, _ in loaded}
    if len(ids) > 1:
        raise ExportError(f"the runs are of different models ({sorted(ids)}): export them one model at a time")
    (model,) = ids
    if out is not None and not str(out).strip():
        raise ExportError("out='': give a folder for the exports (default: <first run>/export)")
    out = Path(out) if out is not None else loaded[0][0] / "export"
    record: dict[str, Any] = {"model_id": model, "git_hash": git_hash(), "runs": [], "files": []}
    index_entries, index_skipped = [], []
    planned: dict[str, str] = {}  # file name -> text: every name checked before anything is written

    def plan(name: str, text: str) -> None:
        if len(name.encode()) > 200:  # with the atomic write's temporary suffix it must fit the file system's 255
            raise ExportError(
                f"{name[:60]}...: a file name of {len(name.encode())} bytes, over 200: shorten the run's names"
            )
        if name in planned:
            raise ExportError(f"two runs would both write {name} (the same model, data and split): export them apart")
        planned[name] = text

    for folder, summary, rows in loaded:
        scored, failed = scored_rows(summary, rows)
        names = _run_names(summary)
        # names from the run's own files: cleaned as the leaderboard's are (never a path of their own)
        stem = "-".join(SAFE.sub("_", names[k]) for k in ("data_name", "partition", "split"))
        if stem[0] in "-.":  # never a hidden file, nor one a command line would take for an option
            stem = "_" + stem
        # the jiwer CLI skips every line of fewer than 2 characters (an empty transcript, "I"), which would pair
        # the wrong lines: those utterances are left out, and the rates over the rest are what it must print
        kept = [s for s in scored if len(s.text) > 1 and len(s.pred_text) > 1]
        run_record = {
            "run": str(folder), "utterances": len(rows), "failed_left_out": failed, "scored": len(scored),
            "wer": summary["wer"], "cer": summary["cer"],
        }  # fmt: skip
        if "jiwer" in formats:
            run_record["jiwer"] = {
                "left_out": [s.id for s in scored if not (len(s.text) > 1 and len(s.pred_text) > 1)],
                "wer": rate(s.words for s in kept),
                "cer": rate(s.chars for s in kept),
            }
        record["runs"].append(run_record)
        if "leaderboard" in formats:
            plan(
                leaderboard_name(model, summary),
                _jsonl(
                    [{"audio_filepath": s.audio_filepath or s.id, "duration": s.duration, "time": s.time,
                      "text": s.text, "pred_text": s.pred_text, "id": s.id} for s in scored]
                ),
            )  # fmt: skip
        if "nemo" in formats:
            plan(
                f"{stem}.nemo.jsonl",
                _jsonl(
                    [{"audio_filepath": s.audio_filepath or s.id, "duration": s.duration, "text": s.text,
                      "pred_text": s.pred_text} for s in scored]
                ),
            )  # fmt: skip
        if "jiwer" in formats:
            plan(f"{stem}.ref.txt", "".join(s.text + "\n" for s in kept))
            plan(f"{stem}.hyp.txt", "".join(s.pred_text + "\n" for s in kept))
        if "lhotse" in formats:
            recordings, supervisions, left_out = lhotse_manifests(scored)
            run_record["lhotse_left_out"] = left_out
            plan(f"{stem}.recordings.jsonl", _jsonl(recordings))
            plan(f"{stem}.supervisions.jsonl", _jsonl(supervisions))
        if "model-index" in formats:
            entry, why = _model_index_result(summary)
            if entry is None:
                index_skipped.append(f"{folder}: {why}")
            else:
                index_entries.append(entry)
    if "model-index" in formats and index_entries:
        block = {"model-index": [{"name": model, "results": index_entries}]}
        plan("model-index.yaml", yaml.safe_dump(block, sort_keys=False, allow_unicode=True))
    record["model_index_skipped"] = index_skipped
    record["time"] = (
        "leaderboard `time` = the utterance's share, by duration, of its batch's synchronised model forward time "
        "(transcripts.jsonl model_s; the warm-up batch included, which summary.json's model_rtfx leaves out); audio "
        "decoding and LM decoding beside the model are not in it"
    )
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ExportError(f"out={str(out)!r} is a link or not a folder: give a folder for the exports")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in planned.items():
        if "/" in name or name in (".", "..") or "\0" in name:
            raise ExportError(f"{name!r}: not a plain file name")  # cannot happen: every part is cleaned
        write_text_atomic(out / name, text)
        record["files"].append(name)
    write_json_atomic(out / "export.json", record)
    return record | {"out": str(out)}


# ----------------------------------------------------------------------------------------------------------
# Command line


if __name__ == "__main__":  # the old spelling of `python -m w2v2bench export`
    from .cli.export import main

    raise SystemExit(main())
