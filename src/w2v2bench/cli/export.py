"""`python -m w2v2bench export key=value ...`: the command-line shell of w2v2bench.export."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, OmegaConf

from ..errors import Exit, one_line
from ..export import export, formats
from ..export.base import ExportError
from ._tool import quiet_defaults, quiet_hydra, tool_main

HELP = """w2v2bench.export: a finished run in the shapes other tools read as they are

Usage: python -m w2v2bench.export run=<run folder> [out=<folder>] [model_id=<org>/<name>] [formats=[...]]
       python -m w2v2bench.export 'run=[<clean run>,<other run>]'   (one model-index block for both)

  run        one run folder, or a list of them (the same model)
  out        default <first run>/export; nothing else is written
  model_id   the model's name in the files; default its Hub id, or local/<model.name> for a folder
  formats    any of leaderboard, nemo, jiwer, model-index, lhotse (default all):
             leaderboard  MODEL_<org>-<name>_DATASET_<path>_<name>_<partition>.<split>.jsonl with audio_filepath,
                          duration, time, text, pred_text: the Open ASR Leaderboard's score_results reads it
             nemo         <data>-<partition>-<split>.nemo.json (JSON lines): NeMo's speech_to_text_eval.py reads it
             jiwer        <...>.ref.txt and <...>.hyp.txt: jiwer -r <ref.txt> -h <hyp.txt> [--cer]
             model-index  model-index.yaml: paste into a model card's metadata (runs over a whole split only)
             lhotse       <...>.recordings.json and <...>.supervisions.json: lhotse's load_manifest reads them
                          (audio from files only; the transcript in each supervision's custom.pred_text)

Every file holds the scored text (the run's normaliser, single spaces): each tool's WER and CER equal the run's.
Failed utterances are left out (the run's WER leaves them out too) and counted in export.json.

== Config ==
$CONFIG"""


@dataclass
class ExportConfig:
    run: Any = MISSING  # a folder or a list of folders
    out: str | None = None
    model_id: str | None = None
    formats: list[str] = field(default_factory=lambda: list(formats()))
    defaults: list[Any] = quiet_defaults()
    hydra: Any = quiet_hydra(HELP, "export")


def run(cfg: Any) -> int | None:
    if OmegaConf.is_missing(cfg, "run"):
        print(
            "w2v2bench.export: error: missing run=; usage: python -m w2v2bench.export run=<run folder>", file=sys.stderr
        )
        sys.exit(Exit.USAGE)
    runs = list(cfg.run) if OmegaConf.is_list(cfg.run) else [cfg.run]
    try:
        record = export([str(r) for r in runs], cfg.out, cfg.model_id, list(cfg.formats))
    except (ExportError, OSError, ValueError) as err:  # ValueError: a name the OS cannot take (a NUL in it)
        print(f"w2v2bench.export: error: {one_line(err)}", file=sys.stderr)
        sys.exit(Exit.FAILED)
    for run in record["runs"]:
        left = f", {run['failed_left_out']} failed left out" if run["failed_left_out"] else ""
        print(f"{run['run']}: {run['scored']} utterances{left}")
    for why in record["model_index_skipped"]:
        print(f"note: no model-index entry for {why}")
    print(f"outputs: {record['out']}: {', '.join(record['files'])}, export.json")


def main() -> None:
    tool_main("export", ExportConfig, run)
