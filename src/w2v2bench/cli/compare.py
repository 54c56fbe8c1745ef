"""`python -m w2v2bench compare key=value ...`: the command-line shell of w2v2bench.compare."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf

from ..compare import compare
from ..compare.render import write
from ..errors import Exit, one_line
from ._tool import quiet_defaults, quiet_hydra, tool_main

HELP = """w2v2bench.compare: two runs, or two checkpoints run on the same data, side by side

Usage: python -m w2v2bench.compare a=<A> b=<B> [key=value ...]

  a, b          both run folders (summary.json + transcripts.jsonl), or both checkpoints (a folder with
                config.json, or a Hugging Face Hub model id)
  run_args      checkpoints only: harness overrides for both runs, as a Hydra list of quoted strings:
                "run_args=['data=local','data.root=/data/LibriSpeech','split=other','device=cuda']"
  out           where compare.md and compare.json go (and, for checkpoints, the runs a/ and b/)
  max_wer_delta the largest |WER_B - WER_A| allowed, a fraction (0.001 = 0.1 points; default 0: none)
  fail_on_transcript_diff  any differing transcript exceeds the thresholds (default true)

Exit status: 0 within thresholds, 4 thresholds exceeded, 1 error, 2 usage.

== Config ==
$CONFIG"""


@dataclass
class CompareConfig:
    """Command-line schema; Hydra writes nothing but `out`."""

    a: str = MISSING
    b: str = MISSING
    out: str = "results/compare/${now:%Y-%m-%d_%H-%M-%S}"
    run_args: list[str] = field(default_factory=list)
    max_wer_delta: float = 0.0
    fail_on_transcript_diff: bool = True
    bootstrap_samples: int = 10_000
    seed: int = 0
    defaults: list[Any] = quiet_defaults()
    hydra: Any = quiet_hydra(HELP, "compare")


def run(cfg: Any) -> int | None:
    missing = [key for key in ("a", "b") if OmegaConf.is_missing(cfg, key)]
    if missing:
        print(
            f"w2v2bench.compare: error: missing {', '.join(f'{k}=' for k in missing)}; usage: "
            "python -m w2v2bench.compare a=<run or checkpoint> b=<run or checkpoint>",
            file=sys.stderr,
        )
        sys.exit(Exit.USAGE)
    config = OmegaConf.to_container(cfg, resolve=True)
    try:
        comparison = compare(
            cfg.a,
            cfg.b,
            config["out"],
            run_args=list(cfg.run_args),
            max_wer_delta=cfg.max_wer_delta,
            fail_on_transcript_diff=cfg.fail_on_transcript_diff,
            bootstrap_samples=cfg.bootstrap_samples,
            seed=cfg.seed,
        )
        summary = write(comparison, config["out"], config)
    except (ValueError, OSError) as err:  # CompareError, ModelError, unreadable files
        print(f"w2v2bench.compare: error: {one_line(err)}", file=sys.stderr)
        sys.exit(Exit.FAILED)
    print(summary)
    print(f"report: {Path(config['out']) / 'compare.md'} (settings, every differing utterance); compare.json")
    sys.exit(Exit.THRESHOLDS if comparison.reasons else Exit.OK)


def main() -> None:
    tool_main("compare", CompareConfig, run)
