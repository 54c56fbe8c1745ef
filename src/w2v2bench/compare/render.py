"""A comparison as compare.md (settings, figures, differing utterances) and compare.json."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ..files import write_json_atomic
from ..metrics import pct
from ..metrics.significance import ALPHA
from ..provenance import git_hash, versions
from ..resume import prepare_output_dir
from . import Comparison
from .checkpoints import CheckpointDiff
from .runs import RunComparison, _cell

COMPARE_SCHEMA_VERSION = 1


def _pct_delta(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x * 100:+.2f}"


def _or_dash(count: int | None) -> str:
    return "-" if count is None else str(count)


def _settings_table(rows: list[tuple[str, Any, Any]], what: str) -> str:
    return tabulate([[_cell(k), _cell(a), _cell(b)] for k, a, b in rows], [what, "A", "B"], tablefmt="github")


def _significance(runs: RunComparison) -> list[str]:
    m, boot = runs.mapsswe, runs.bootstrap
    if math.isnan(m.p_value):
        lines = [f"- MAPSSWE: undefined with {m.n} utterance(s) scored in both runs"]
    else:
        verdict = "significant" if m.p_value < 0.05 else "not significant"
        lines = [
            f"- MAPSSWE (matched pairs, utterances as segments; Z = errors A - errors B): n = {m.n}, "
            f"mean Z = {m.mean:.4g}, W = {m.w:.4g}, p = {m.p_value:.4g} ({verdict} at 0.05)"
        ]
    if math.isnan(boot.p_value):
        lines.append(f"- paired bootstrap: n/a with {boot.blocks} {boot.unit}(s) to resample (it needs 5 or more)")
    elif boot.samples:
        lines.append(
            f"- paired bootstrap ({boot.samples} resamples of {boot.blocks} {boot.unit}s, seed {boot.seed}): WER B - A "
            f"95% interval [{_pct_delta(boot.delta_low)}, {_pct_delta(boot.delta_high)}] points, "
            f"p = {boot.p_value:.4g} ({boot.verdict} at {ALPHA}; the nightly's test)"
        )
    return lines


def _checkpoint_summary(ckpt: CheckpointDiff) -> str:
    differing = ckpt.differing_tensors
    worst = max((t for t in differing if t.max_abs is not None), key=lambda t: t.max_abs, default=None)
    parts = [
        f"config: {len(ckpt.config)} difference(s)",
        f"preprocessor: {len(ckpt.preprocessor)}",
        f"tokenizer and vocabulary: {len(ckpt.tokenizer)}",
        f"tensors: {len(ckpt.tensors)} matched by name, {len(differing)} differ"
        + (f" (largest max-abs {worst.max_abs:.3g} in {worst.name})" if worst else ""),
    ]
    if ckpt.only_a or ckpt.only_b:
        parts.append(f"{len(ckpt.only_a)} tensor(s) only in A, {len(ckpt.only_b)} only in B")
    if ckpt.not_in_file_a or ckpt.not_in_file_b:
        parts.append(
            f"not in the checkpoint files (randomly initialised on load): {len(ckpt.not_in_file_a)} in A, "
            f"{len(ckpt.not_in_file_b)} in B"
        )
    verdict = "**identical**" if ckpt.identical else "**different**"
    return f"Checkpoints {verdict}: " + "; ".join(parts) + "."


def _checkpoint_details(ckpt: CheckpointDiff) -> list[str]:
    out = ["## Checkpoints", ""]
    for title, rows in (
        ("config.json", ckpt.config),
        ("Preprocessor (feature extractor)", ckpt.preprocessor),
        ("Tokenizer and vocabulary", ckpt.tokenizer),
    ):
        out += [f"### {title}", ""]
        out += [_settings_table(rows, "setting"), ""] if rows else ["identical", ""]
    differing = sorted(ckpt.differing_tensors, key=lambda t: -math.inf if t.max_abs is None else -t.max_abs)
    out += [f"### Weights: {len(differing)} of {len(ckpt.tensors)} matched tensors differ", ""]
    if differing:
        rows = [
            [t.name, "shape differs" if t.max_abs is None else f"{t.max_abs:.6g}",
             f"{list(t.shape_a)} {t.dtype_a}", f"{list(t.shape_b)} {t.dtype_b}"]
            for t in differing
        ]  # fmt: skip
        out += [tabulate(rows, ["tensor", "max abs diff", "A", "B"], tablefmt="github"), ""]
    for title, names in (
        ("Tensors only in A", ckpt.only_a),
        ("Tensors only in B", ckpt.only_b),
        ("Not in A's checkpoint files (initialised at random when loaded)", ckpt.not_in_file_a),
        ("Not in B's checkpoint files (initialised at random when loaded)", ckpt.not_in_file_b),
        ("In A's checkpoint files, unused by the model", ckpt.unused_a),
        ("In B's checkpoint files, unused by the model", ckpt.unused_b),
    ):
        if names:
            out += [f"### {title} ({len(names)})", "", *[f"- `{n}`" for n in names], ""]
    return out


def render(comparison: Comparison) -> tuple[str, str]:
    """(summary, details) in markdown: compare.md is both; the summary is what is printed."""
    runs = comparison.runs
    head = ["# w2v2bench compare", ""]
    for key, target, run, described in (
        ("A", comparison.a, runs.a, runs.describe_a),
        ("B", comparison.b, runs.b, runs.describe_b),
    ):
        kind = {"folder": "checkpoint folder", "hub": "Hub model"}.get(target.kind)
        where = f"`{run}`" if kind is None else f"`{target.spec}` ({kind}), run as `{run}`"
        head.append(f"- {key}: {where}: {described}")
    head.append("")
    if runs.identical:
        head.append(f"**Identical**: all {runs.n_a} transcripts are the same.")
    else:
        n = len(runs.differences)
        head.append(f"**Different**: {n} utterance(s) differ ({runs.n_a} in A, {runs.n_b} in B).")
    if comparison.reasons:
        head.append("**Thresholds exceeded**: " + "; ".join(comparison.reasons) + ".")
    else:
        head.append(
            f"**Within thresholds** (max_wer_delta={comparison.max_wer_delta:g}, "
            f"fail_on_transcript_diff={str(comparison.fail_on_transcript_diff).lower()})."
        )
    if comparison.checkpoints is not None:
        head += ["", _checkpoint_summary(comparison.checkpoints)]
    wa, wb = runs.words_a, runs.words_b
    table = [
        ["WER %", pct(runs.wer_a), pct(runs.wer_b), _pct_delta(runs.wer_delta)],
        ["CER %", pct(runs.cer_a), pct(runs.cer_b), _pct_delta(runs.cer_delta)],
        ["word errors", wa.errors, wb.errors, f"{wb.errors - wa.errors:+d}"],
        ["substitutions", wa.substitutions, wb.substitutions, f"{wb.substitutions - wa.substitutions:+d}"],
        ["deletions", wa.deletions, wb.deletions, f"{wb.deletions - wa.deletions:+d}"],
        ["insertions", wa.insertions, wb.insertions, f"{wb.insertions - wa.insertions:+d}"],
        ["reference words", wa.ref_words, wb.ref_words, f"{wb.ref_words - wa.ref_words:+d}"],
    ]
    head += [
        "",
        f"Scored in both runs: {runs.n_paired} utterances; B has fewer word errors on {runs.better}, more on "
        f"{runs.worse}, as many on {runs.same}.",
        "",
        tabulate(table, ["", "A", "B", "B - A"], tablefmt="github", disable_numparse=True),
        "",
        "Paired significance tests (two-sided; H0: A and B are equally accurate):",
        "",
        *_significance(runs),
    ]
    if runs.notes:
        head += ["", "Notes:", "", *[f"- {note}" for note in runs.notes]]

    details = ["## Run settings that differ", ""]
    details += [_settings_table(runs.settings, "setting"), ""] if runs.settings else ["none", ""]
    if comparison.checkpoints is not None:
        details += _checkpoint_details(comparison.checkpoints)
    details += [f"## Differing utterances ({len(runs.differences)})", ""]
    for diff in runs.differences:
        errors = f"word errors A {_or_dash(diff.errors_a)}, B {_or_dash(diff.errors_b)}"
        details += [f"### {diff.id}: {errors}" + (f" ({diff.note})" if diff.note else ""), ""]
        details += ["```", diff.alignment, "```", ""]
    return "\n".join(head) + "\n", "\n".join(details)


def _json(comparison: Comparison, config: Mapping[str, Any] | None) -> dict[str, Any]:
    runs = comparison.runs
    return {
        "schema_version": COMPARE_SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": comparison.kind,
        "a": asdict(comparison.a),
        "b": asdict(comparison.b),
        "identical": runs.identical,
        "within_thresholds": not comparison.reasons,
        "reasons": comparison.reasons,
        "thresholds": {
            "max_wer_delta": comparison.max_wer_delta,
            "fail_on_transcript_diff": comparison.fail_on_transcript_diff,
        },
        "wer_a": runs.wer_a,
        "wer_b": runs.wer_b,
        "wer_delta": runs.wer_delta,
        "cer_a": runs.cer_a,
        "cer_b": runs.cer_b,
        "cer_delta": runs.cer_delta,
        "runs": asdict(runs),
        "checkpoints": None if comparison.checkpoints is None else asdict(comparison.checkpoints),
        "git_hash": git_hash(),
        "versions": versions(),
        "command": " ".join(sys.argv),
        "config": dict(config) if config is not None else None,
    }


def write(comparison: Comparison, out: str | Path, config: Mapping[str, Any] | None = None) -> str:
    """compare.md and compare.json in `out`; returns the markdown summary."""
    folder = prepare_output_dir(out)
    summary, details = render(comparison)
    (folder / "compare.md").write_text(summary + "\n" + details, encoding="utf-8")
    write_json_atomic(folder / "compare.json", _json(comparison, config))
    return summary
