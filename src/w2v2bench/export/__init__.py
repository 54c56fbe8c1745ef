"""A finished run in the shapes other tools read as they are: the Open ASR Leaderboard's result file, a NeMo
manifest, plain text for the jiwer CLI, a Hugging Face `model-index` block for a model card, and lhotse manifests.

Usage: python -m w2v2bench.export run=<run folder> [run=[<folder>,<folder>]] [out=<folder>] [model_id=<org/name>]
       [formats=[leaderboard,nemo,jiwer,model-index,lhotse]]

Every file holds the text that was scored (`score.scored_text`: the run's normaliser, single spaces), so each
tool's WER and CER on it equal the run's. Failed utterances are left out, as the run's WER leaves them out, and
counted in export.json. sclite reads the run's own ref.trn and hyp.trn (the same text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import one_line
from ..files import write_json_atomic, write_text_atomic
from ..metrics import rate
from ..provenance import git_hash
from ..results import ResultsFileError, read_run
from .leaderboard import leaderboard_name
from .lhotse import lhotse_manifests
from .model_index import _model_index_result
from .scored import SAFE, ExportError, _jsonl, _run_names, default_model_id, scored_rows

__all__ = ["ExportError", "export", "leaderboard_name"]

FORMATS = ("leaderboard", "nemo", "jiwer", "model-index", "lhotse")


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
