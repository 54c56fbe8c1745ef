"""`python -m w2v2bench score run=<folder> ...`: re-score a finished run (w2v2bench.rescore)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf

from ..errors import Exit, one_line
from ..metrics import pct
from ..rescore import rescore
from ._tool import quiet_defaults, quiet_hydra, tool_main

HELP = """w2v2bench.score: re-score a finished run from its transcripts.jsonl (no model run)

Usage: python -m w2v2bench.score run=<run folder> [normalizer=none|basic|whisper|module:function]
                                 [merge_compounds=true] [out=<folder>] [overwrite=true]

  run              a run folder (summary.json and transcripts.jsonl)
  normalizer       applied to reference and hypothesis before scoring; default: the one the run used.
                   none: as written | basic: upper-case, punctuation but apostrophes removed |
                   whisper: OpenAI Whisper's EnglishTextNormalizer (pip install whisper-normalizer) |
                   a code normaliser on the allow-list, by name or module:function: an entry point of
                   w2v2bench.normalizers (leaderboard: the Open ASR Leaderboard's, PYTHONPATH=<its checkout>) or a
                   line of $$W2V2BENCH_NORMALIZERS (default ~/.config/w2v2bench/normalizers.txt)
  merge_compounds  true: words split or joined by the model count as no error (kaldialign, as the Open ASR
                   Leaderboard scores); default false (the model cards' jiwer WER)
  out              default <run>/rescore/<normalizer>[+merge_compounds]; receives summary.json (status "rescored"),
              transcripts.jsonl, wer.md, wer.csv, analysis.md, analysis.json, wer_by_length.png, ref.trn, hyp.trn.
                   Never a run folder, nor one holding other files (refused in one line naming a free folder)
  overwrite        true: replace an earlier re-score in out (default false: refused)

== Config ==
$CONFIG"""


@dataclass
class RescoreConfig:
    run: str = MISSING
    normalizer: str | None = None
    merge_compounds: bool = False
    out: str | None = None
    overwrite: bool = False
    defaults: list[Any] = quiet_defaults()
    hydra: Any = quiet_hydra(HELP, "rescore")


def run(cfg: Any) -> int | None:
    if OmegaConf.is_missing(cfg, "run"):
        print(
            "w2v2bench.score: error: missing run=; usage: python -m w2v2bench.score run=<run folder> "
            "[normalizer=none|basic|whisper|module:function] [merge_compounds=true]",
            file=sys.stderr,
        )
        sys.exit(Exit.USAGE)
    try:
        new, out = rescore(
            Path(cfg.run),
            cfg.normalizer,
            Path(cfg.out) if cfg.out else None,
            merge_compounds=cfg.merge_compounds,
            overwrite=cfg.overwrite,
        )
    except (ValueError, OSError, KeyError) as err:
        print(f"w2v2bench.score: error: {one_line(err)}", file=sys.stderr)
        sys.exit(Exit.FAILED)
    source = new["rescore"]
    errors = new["word_errors"]
    print(f"{'':12}{'WER %':>8}{'CER %':>8}  normalizer")
    print(f"{'as run':12}{pct(source['source_wer']):>8}{pct(source['source_cer']):>8}  {source['source_normalizer']}")
    print(f"{'re-scored':12}{pct(new['wer']):>8}{pct(new['cer']):>8}  {new['normalizer']}")
    print(
        f"{errors['substitutions']} substitutions, {errors['deletions']} deletions, {errors['insertions']} "
        f"insertions in {new['ref_words']} reference words; outputs: {out}"
    )
    if new["reference"] is not None:
        print(f"reference check {'PASS' if new['reference']['passed'] else 'FAIL'}")
        if not new["reference"]["passed"]:
            sys.exit(Exit.REFERENCE_FAILED)  # as the benchmark itself exits
    elif new.get("reference_note"):
        print(f"reference check: none ({new['reference_note']})")


def main() -> None:
    tool_main("rescore", RescoreConfig, run)
