"""`python -m w2v2bench nightly key=value ...`: the command-line shell of w2v2bench.nightly."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf

from .. import history
from ..errors import Exit, one_line
from ..history import SplitKey
from ..metrics import pct
from ..nightly import _signed, nightly
from ._tool import quiet_defaults, quiet_hydra, tool_main

HELP = """w2v2bench.nightly: record a night's runs, compare each with its baseline, report; exit 1 on a regression

Usage: python -m w2v2bench.nightly runs=<folder> [history=results/history.sqlite] [max_wer_increase=0.001]
         [on_transcript_change=warn|fail] [baseline=<run folder> | baseline=[<run folder>,...]] [out=<folder>]
         [harness_status=<n>]

  runs              a folder holding tonight's run folders (any depth), e.g. one multirun's output_dir root
  history           the SQLite history (created on first use; safe with concurrent writers)
  max_wer_increase  WER rise (a fraction: 0.001 = 0.1 points) over the baseline that fails the night
  on_transcript_change  warn (default): changed transcripts within that rise are an alarm line; fail: a regression
  mlflow_uri        also log each run to this MLflow tracking store (sqlite:///mlflow.db, http://...; pip install
                    'w2v2bench[mlflow]'): params, metrics with their intervals, the run folder (sqlite: in
                    mlruns/ beside the database file); once per run
  mlflow_experiment the MLflow experiment (default w2v2bench)
  baseline          run folder(s) to compare with instead of the previous good run of the same series
  out               where nightly.md, nightly.json and trend.png go (default: runs)
  harness_status    the matrix run's exit status; non-zero fails the night (a run that wrote nothing)
  show_changed      changed utterances shown per run in nightly.md (all are in nightly.json)

Exit status: 0 pass; 1 a regression (WER rose beyond max_wer_increase, a reference check failed, transcripts
changed under on_transcript_change=fail); 2 bad arguments; 6 no regression, but the night is not whole (a run did
not complete, utterances could not be transcribed, the benchmark exited non-zero, the history cannot be used).

== Config ==
$CONFIG"""


@dataclass
class NightlyConfig:
    runs: str = MISSING
    history: str = str(history.DEFAULT_PATH)
    max_wer_increase: float = 0.001
    baseline: Any = None  # a run folder or a list of them
    out: str | None = None
    harness_status: int = 0
    show_changed: int = 20
    on_transcript_change: str = "warn"
    mlflow_uri: str | None = None
    mlflow_experiment: str = "w2v2bench"
    defaults: list[Any] = quiet_defaults()
    hydra: Any = quiet_hydra(HELP, "nightly")


def _baselines(value: Any) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, str):
        return [Path(value)]
    return [Path(v) for v in OmegaConf.to_container(value)]


def run(cfg: Any) -> int | None:
    if OmegaConf.is_missing(cfg, "runs"):
        print(
            "w2v2bench.nightly: error: missing runs=; usage: python -m w2v2bench.nightly runs=<folder>", file=sys.stderr
        )
        sys.exit(Exit.USAGE)
    try:
        report = nightly(
            Path(cfg.runs),
            Path(cfg.history),
            max_wer_increase=cfg.max_wer_increase,
            baselines=_baselines(cfg.baseline),
            out=Path(cfg.out) if cfg.out else None,
            harness_status=cfg.harness_status,
            show_changed=cfg.show_changed,
            on_transcript_change=cfg.on_transcript_change,
            mlflow_uri=cfg.mlflow_uri,
            mlflow_experiment=cfg.mlflow_experiment,
        )
    except history.HistoryError as err:  # the history cannot be used: the night is not recorded
        print(f"w2v2bench.nightly: error: {one_line(err)}", file=sys.stderr)
        sys.exit(Exit.INCOMPLETE)
    except (ValueError, FileNotFoundError) as err:  # a bad setting, a runs or baseline folder that is not there
        print(f"w2v2bench.nightly: error: {one_line(err)}", file=sys.stderr)
        sys.exit(Exit.USAGE)
    except OSError as err:
        print(f"w2v2bench.nightly: error: {one_line(err)}", file=sys.stderr)
        sys.exit(Exit.INCOMPLETE)
    out = Path(cfg.out or cfg.runs)
    for j in report.judgements:
        if j.baseline is None:
            against = "no baseline"
        else:
            changed = "transcripts not compared" if j.n_changed is None else f"{j.n_changed} changed transcripts"
            against = f"{_signed(j.delta('wer'), 100)} points, vs noise: {j.noise}), {changed}"
        print(
            f"{j.verdict.upper()} {SplitKey(j.run)}: WER {pct(j.run['wer'])} % ({against}"
            + (")" if j.baseline is None else "")
            + "".join(f"; {r}" for r in j.reasons + j.failures)
        )
        for alarm in j.alarms:
            print(f"  alarm: {alarm}")
    for problem in report.problems:
        print(f"FAIL {problem}")
    for line in report.mlflow:
        print(line)
    print(f"nightly {'PASS' if report.passed else 'FAIL'}: {out / 'nightly.md'}, {out / 'trend.png'}")
    if report.exit_status == Exit.INCOMPLETE:
        print("nightly: no regression found, but the night is not whole (exit 6)")
    sys.exit(report.exit_status)


def main() -> None:
    tool_main("nightly", NightlyConfig, run, config_error=Exit.USAGE)  # its 1 means a regression
