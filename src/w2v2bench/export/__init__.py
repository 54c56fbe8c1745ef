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
from pathlib import Path
from typing import Any

from ..errors import one_line
from ..files import OutputFolderError, check_output_folder, read_text, write_json_atomic, write_text_atomic
from ..provenance import git_hash
from ..results import ResultsFileError, read_run
from . import jiwer, leaderboard, lhotse, model_index, nemo
from .base import (
    REGISTRY,
    SAFE,
    ExportError,
    ExportRun,
    Format,
    _run_names,
    default_model_id,
    formats,
    register,
    scored_rows,
)

__all__ = ["ExportError", "ExportRun", "Format", "export", "formats", "register"]

# the built-in formats, in the order their files are written; another is one `register(Format(...))` away
for _format in (leaderboard.FORMAT, nemo.FORMAT, jiwer.FORMAT, model_index.FORMAT, lhotse.FORMAT):
    register(_format)


def _earlier_export(out: Path) -> list[str] | None:
    """The files an earlier export recorded writing into `out` (its export.json), or None where there is none."""
    try:
        record = json.loads(read_text(out / "export.json", 2**20))
    except (OSError, ValueError, RecursionError):
        return None
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) and f and "/" not in f for f in files):
        return None
    return files


def export(runs: list[str | Path], out: str | Path | None = None, model_id: str | None = None,
           formats: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:  # fmt: skip
    """Write each run's exports into `out` (default: the first run's `export/` folder) in the `formats` named (default:
    every registered one); returns export.json's content. Only `out` is written."""
    chosen = [f for f in REGISTRY if f in formats] if formats is not None else list(REGISTRY)
    unknown = [f for f in (formats if formats is not None else []) if f not in REGISTRY]
    if unknown or not chosen:
        raise ExportError(f"formats={list(formats or [])}: expected a non-empty list of {list(REGISTRY)}")
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
    planned: dict[str, str] = {}  # file name -> text: every name checked before anything is written

    def plan(files: dict[str, str]) -> None:
        for name, text in files.items():
            if (
                not isinstance(name, str)
                or not isinstance(text, str)
                or "/" in name
                or name in ("", ".", "..")
                or "\0" in name
            ):
                raise ExportError(f"{str(name)[:60]!r}: not a plain file name with text (an export format's files)")
            if len(name.encode()) > 200:  # with the atomic write's temporary suffix it must fit the file system's 255
                raise ExportError(
                    f"{name[:60]}...: a file name of {len(name.encode())} bytes, over 200: shorten the run's names"
                )
            if name in planned:
                raise ExportError(
                    f"two runs would both write {name} (the same model, data and split): export them apart"
                )
            planned[name] = text

    exported = []
    for folder, summary, rows in loaded:
        scored, failed = scored_rows(summary, rows)
        names = _run_names(summary)
        # names from the run's own files: cleaned as the leaderboard's are (never a path of their own)
        keys = ("data_name", "partition", "split") if names["partition"] else ("data_name",)  # a manifest: its name
        stem = "-".join(SAFE.sub("_", names[k]) for k in keys)
        if stem[0] in "-.":  # never a hidden file, nor one a command line would take for an option
            stem = "_" + stem
        run = ExportRun(folder, summary, rows, scored, model, stem)
        exported.append(run)
        run_record = {
            "run": str(folder), "utterances": len(rows), "failed_left_out": failed, "scored": len(scored),
            "wer": summary["wer"], "cer": summary["cer"],
        }  # fmt: skip
        for name in chosen:
            files, about = REGISTRY[name].per_run(run)
            run_record.update(about)
            plan(files)
        record["runs"].append(run_record)
    record["model_index_skipped"] = []  # export.json has always had it, whichever formats ran
    for name in chosen:
        if REGISTRY[name].combined is not None:
            files, about = REGISTRY[name].combined(exported)
            record.update(about)
            plan(files)
    record["time"] = (
        "leaderboard `time` = the utterance's share, by duration, of its batch's synchronised model forward time "
        "(transcripts.jsonl model_s; the warm-up batch included, which summary.json's model_rtfx leaves out); audio "
        "decoding and LM decoding beside the model are not in it"
    )
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ExportError(f"out={str(out)!r} is a link or not a folder: give a folder for the exports")
    earlier = _earlier_export(out)
    try:
        check_output_folder(out, {*earlier, "export.json"} if earlier is not None else (), "export")
    except OutputFolderError as err:
        raise ExportError(str(err)) from None
    if earlier:
        print(f"export: replacing the earlier export in {out} ({len(earlier)} files, export.json)")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in planned.items():
        write_text_atomic(out / name, text)
        record["files"].append(name)
    write_json_atomic(out / "export.json", record)
    return record | {"out": str(out)}
