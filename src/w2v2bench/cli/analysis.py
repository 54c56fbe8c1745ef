"""`python -m w2v2bench analysis key=value ...`: the command-line shell of w2v2bench.analysis."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf

from ..analysis import _wer, write_analysis
from ..errors import Exit, one_line
from ..metrics import pct
from ._tool import quiet_defaults, quiet_hydra, tool_main

HELP = """w2v2bench.analysis: error analysis of a finished run, from its transcripts.jsonl (no model run)

Usage: python -m w2v2bench.analysis run=<run folder> [normalizer=none|basic|whisper]

Writes analysis.md, analysis.json, wer_by_length.png, ref.trn and hyp.trn into the run folder.
normalizer: the one the run was scored with (summary.json) unless given.

== Config ==
$CONFIG"""


@dataclass
class AnalysisConfig:
    run: str = MISSING
    normalizer: str | None = None
    defaults: list[Any] = quiet_defaults()
    hydra: Any = quiet_hydra(HELP, "analysis")


def run(cfg: Any) -> int | None:
    if OmegaConf.is_missing(cfg, "run"):
        print(
            "w2v2bench.analysis: error: missing run=; usage: python -m w2v2bench.analysis run=<run folder>",
            file=sys.stderr,
        )
        sys.exit(Exit.USAGE)
    try:
        analysis = write_analysis(Path(cfg.run), cfg.normalizer)
    except (ValueError, OSError) as err:
        print(f"w2v2bench.analysis: error: {one_line(err)}", file=sys.stderr)
        sys.exit(Exit.FAILED)
    print(
        f"WER {pct(_wer(analysis.words))} % ({analysis.normalizer}); wrote analysis.md, analysis.json, "
        f"wer_by_length.png, ref.trn, hyp.trn in {cfg.run}"
    )


def main() -> None:
    tool_main("analysis", AnalysisConfig, run)
