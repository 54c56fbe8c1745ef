"""Compare two runs, or two checkpoints run on the same data: transcripts, WER and CER, a paired test.

Usage: python -m w2v2bench.compare a=<A> b=<B> [out=<folder>] [max_wer_delta=0.0] [fail_on_transcript_diff=true]

A and B are both run folders (summary.json + transcripts.jsonl) or both checkpoints (a folder with
config.json, or a Hub id). Runs are matched utterance by utterance, by id. Checkpoints are diffed (config,
preprocessor, vocabulary, per-tensor max-abs weight differences), then run by the harness on the same
data (`run_args`) and the two runs compared. Writes compare.md and compare.json to `out`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..metrics.significance import Bootstrap, Mapsswe, mapsswe, paired_bootstrap
from ..resume import prepare_output_dir
from .checkpoints import CheckpointDiff, Target, _check_run_args, diff_checkpoints, resolve_target, run_harness
from .runs import CompareError, RunComparison, compare_runs, load_run

__all__ = [
    "Bootstrap",
    "CheckpointDiff",
    "CompareError",
    "Comparison",
    "Mapsswe",
    "Run",
    "RunComparison",
    "Target",
    "compare",
    "compare_runs",
    "diff_checkpoints",
    "load_run",
    "mapsswe",
    "paired_bootstrap",
    "render",
    "resolve_target",
    "setting_differences",
    "thresholds_exceeded",
    "write",
]


# ----------------------------------------------------------------------------------------------------------
# Paired significance tests


# ----------------------------------------------------------------------------------------------------------
# Runs


# ----------------------------------------------------------------------------------------------------------
# Checkpoints


# ----------------------------------------------------------------------------------------------------------
# Verdict, report


@dataclass(frozen=True)
class Comparison:
    kind: str  # "runs" or "checkpoints"
    a: Target
    b: Target
    runs: RunComparison
    checkpoints: CheckpointDiff | None
    max_wer_delta: float
    fail_on_transcript_diff: bool
    reasons: list[str]  # why the thresholds are exceeded; empty when within them


def thresholds_exceeded(runs: RunComparison, max_wer_delta: float, fail_on_transcript_diff: bool) -> list[str]:
    """Why the comparison fails its thresholds (|WER_B - WER_A| > max_wer_delta, any transcript differs)."""
    reasons = []
    if fail_on_transcript_diff and runs.differences:
        reasons.append(f"{len(runs.differences)} utterance(s) differ (fail_on_transcript_diff=true)")
    if runs.n_paired == 0:
        reasons.append("no utterance was scored in both runs, so the WER delta is unknown")
    elif abs(runs.wer_delta) > max_wer_delta + 1e-12:
        reasons.append(
            f"|WER delta| {abs(runs.wer_delta) * 100:.4g} points > max_wer_delta={max_wer_delta:g} "
            f"({max_wer_delta * 100:.4g} points)"
        )
    return reasons


def compare(
    a: str,
    b: str,
    out: str | Path,
    run_args: Sequence[str] = (),
    max_wer_delta: float = 0.0,
    fail_on_transcript_diff: bool = True,
    bootstrap_samples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Compare A and B: both runs, or both checkpoints, which are run on the same data into out/a and out/b.

    The report itself is written by `write`.
    """
    if not max_wer_delta >= 0:
        raise CompareError(f"max_wer_delta={max_wer_delta}: expected a fraction >= 0 (0.001 is 0.1 WER points)")
    if bootstrap_samples < 0:
        raise CompareError(f"bootstrap_samples={bootstrap_samples}: expected 0 (no bootstrap) or more")
    target_a, target_b = resolve_target("a", a), resolve_target("b", b)
    kinds = {target_a.kind == "run", target_b.kind == "run"}
    if len(kinds) == 2:
        run_key = "a" if target_a.kind == "run" else "b"
        raise CompareError(
            f"{run_key}= is a run folder and the other a checkpoint: compare two runs or two checkpoints"
        )
    checkpoints = None
    if target_a.kind == "run":
        if run_args:
            raise CompareError("run_args: only used with checkpoints; a= and b= are run folders")
        run_a, run_b = load_run(target_a.path), load_run(target_b.path)
    else:
        _check_run_args(run_args)
        taken = [str(Path(out) / key) for key in ("a", "b") if (Path(out) / key).exists()]
        if taken:
            raise CompareError(f"out={str(out)!r} already holds {taken}: choose another out for new runs")
        checkpoints = diff_checkpoints(target_a, target_b)
        out = prepare_output_dir(out)
        run_a = run_harness("a", target_a, Path(out) / "a", run_args)
        run_b = run_harness("b", target_b, Path(out) / "b", run_args)
    runs = compare_runs(run_a, run_b, bootstrap_samples, seed)
    return Comparison(
        kind="runs" if checkpoints is None else "checkpoints",
        a=target_a,
        b=target_b,
        runs=runs,
        checkpoints=checkpoints,
        max_wer_delta=max_wer_delta,
        fail_on_transcript_diff=fail_on_transcript_diff,
        reasons=thresholds_exceeded(runs, max_wer_delta, fail_on_transcript_diff),
    )


# ----------------------------------------------------------------------------------------------------------
# Command line
