"""Run outputs: transcripts.jsonl as results arrive, summary.json, wer.md/wer.csv, the reference check.

Every output describes itself (schema version, config, versions, git hash, device); nothing is parsed
back out of a path. `gather` re-reads summaries under a folder into one model x split table.
"""

from __future__ import annotations

import hashlib
import math
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .analysis import write_analysis
from .config import ReferenceConfig
from .errors import Exit
from .metrics import Totals, totals
from .metrics.significance import run_intervals
from .provenance import device_name, git_hash, versions
from .results import SCHEMA_VERSION, ids_sha256, measurement, official_split, write_summary
from .resume import Resume
from .table import write_tables

if TYPE_CHECKING:
    from .resume import RunFolder
    from .settings import Run


@dataclass(frozen=True)
class ReferenceCheck:
    wer: float
    tolerance: float
    source: str | None
    passed: bool
    measured_wer: float

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"reference check {verdict}: WER {self.measured_wer * 100:.2f} % vs {self.wer * 100:.2f} % "
            f"expected (tolerance {self.tolerance * 100:.2f} points; {self.source})"
        )


def check_reference(measured_wer: float, expected: float, tolerance: float, source: str | None) -> ReferenceCheck:
    passed = not math.isnan(measured_wer) and abs(measured_wer - expected) <= tolerance + 1e-12
    return ReferenceCheck(expected, tolerance, source, passed, measured_wer)


def reference_check(
    reference: ReferenceConfig | None,
    t: Totals,
    data: str,
    split: str,
    partition: str,
    limit: int | None,
    decoder: str = "greedy",
    normalizer: str | None = None,
    ids: str | None = None,
) -> tuple[ReferenceCheck | None, str]:
    """The check against published figures, or why there is none: only a run of the card's series (its weights:
    settings.name_the_weights; the whole split, its decoder, unnormalised text) is checked."""
    if reference is None or not reference.wer:
        return None, "no reference figures for this model"
    if str(reference.decoder) != decoder:
        return None, f"reference {reference.name!r} is for decoder={str(reference.decoder)}, this run used {decoder}"
    if normalizer not in (None, "none"):
        return None, f"not checked: normalizer={normalizer!r}, the reference figures are for the text as written"
    if reference.data != data:
        return None, f"reference {reference.name!r} is for data {reference.data!r}, not {data!r}"
    if split not in reference.wer:
        return None, f"reference {reference.name!r} has no figure for split={split!r}"
    if str(reference.partition) != partition:
        return None, f"reference {reference.name!r} is for data.partition={str(reference.partition)!r}"
    expected_n = reference.utterances.get(split)
    if limit is not None and (expected_n is None or limit < expected_n):  # a limit past the split's end is no limit
        return None, f"skipped: limit={limit} scores a subset, the reference is for the whole split"
    expected_n = t.n_utterances if expected_n is None else expected_n
    if expected_n != t.n_utterances:
        return None, (
            f"skipped: {t.n_utterances} utterances scored, the reference is for all {expected_n} of {partition}-{split}"
        )
    official = official_split(data, partition, split)
    if official is not None and ids is not None and ids != official[1]:
        return None, f"skipped: the utterance ids are not the official {partition}-{split} list (OpenSLR SLR12)"
    if t.n_failed:
        check = check_reference(float("nan"), reference.wer[split], reference.tolerance, reference.source)
        return check, f"failed: {t.n_failed} utterance(s) could not be transcribed"
    return check_reference(t.wer, reference.wer[split], reference.tolerance, reference.source), "checked"


def audio_sha256(results) -> str | None:
    """One hash of the audio a run scored: sha256 over each utterance's id and its audio's sha256, in id order
    (None when no row has one); a swapped file under the same id changes it."""
    pairs = sorted((r.id, r.audio_sha256) for r in results if r.audio_sha256)
    if not pairs:
        return None
    return hashlib.sha256("".join(f"{i} {a}\n" for i, a in pairs).encode()).hexdigest()


def precision_check(ranks: list, config: dict) -> dict | None:
    """What checking the run's precision or runtime against PyTorch fp32 found, over every rank; None: not asked."""
    checks = [s.precision_check for s in ranks if s.precision_check is not None]
    if not checks:
        return None
    compared = sum(c.compared_utterances for c in checks)
    margin = config.get("recheck_margin")
    return {
        "reference": "PyTorch fp32 (the model's own forward, exact batching)",
        "recheck_margin": margin,
        "rechecked_utterances": sum(c.rechecked_utterances for c in checks),
        "close_frames": sum(c.close_frames for c in checks) if margin is not None else None,
        "compared_utterances": compared,
        "max_abs_logit_diff": max(c.max_abs_logit_diff for c in checks) if compared else None,
        "bound_violations": sum(c.bound_violations for c in checks) if compared and margin is not None else None,
        "non_finite_frames": sum(c.non_finite_frames for c in checks) if compared else None,
    }


def precision_line(summary: dict) -> tuple[str | None, bool]:
    """(the line a run prints about its check against PyTorch fp32, whether it broke the exactness it asked
    for): with recheck_margin the run asked for fp32's transcripts, so any that still differ, or any frame whose
    logit error broke the bound, fails it (exit 5); check_precision alone measures a variant (exit 0)."""
    check = summary.get("precision_check")
    if not isinstance(check, dict):
        return None, False
    differ, compared = summary.get("precision_differs_from_fp32"), check.get("compared_utterances") or 0
    violations, margin = check.get("bound_violations"), check.get("recheck_margin")
    parts = []
    if compared:
        parts.append(f"{differ or 0} of {compared} transcripts differ from PyTorch fp32")
    if margin is not None:
        parts.append(f"{check.get('rechecked_utterances', 0)} re-run in fp32 (recheck_margin {margin})")
        if violations:
            parts.append(f"{violations} frame(s) broke the bound")
    not_exact = margin is not None and bool(differ or violations)
    if not_exact:
        parts.append("NOT EXACT: the transcripts are not all fp32's (exit 5; summary.json: precision_check)")
    return ("precision check: " + "; ".join(parts)) if parts else None, not_exact


def build_summary(
    config: dict,
    started: str,
    t: Totals,
    ranks: list,
    load_s: float,
    model: dict,
    device: str,
    run_id: str,
    resume: Resume | None,
    intervals: dict | None = None,
) -> dict:
    """summary.json: the figures from the results, timing from each rank's stats, and what ran where."""
    wall_s = max(s.wall_s for s in ranks)  # ranks run side by side: the slowest one is the run's wall
    timed_audio_s = sum(s.audio_s for s in ranks)
    model_s, model_audio_s = sum(s.model_s for s in ranks), sum(s.model_audio_s for s in ranks)
    padded, valid = sum(s.padded_samples for s in ranks), sum(s.valid_samples for s in ranks)
    differs = [s.precision_differs for s in ranks if s.precision_differs is not None]
    timed_utterances = sum(s.n_utterances for s in ranks)
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "complete",
        "run_id": run_id,
        "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "wer": t.wer,
        "cer": t.cer,
        **(intervals or {}),  # wer_ci95, cer_ci95 and how they were made (metrics.significance.run_intervals)
        "n_utterances": t.n_utterances,
        "n_failed": t.n_failed,
        "failed_excluded_from_wer": True,
        "ref_words": t.words.ref_words,
        "word_errors": {
            "substitutions": t.words.substitutions,
            "deletions": t.words.deletions,
            "insertions": t.words.insertions,
        },
        "ref_chars": t.chars.ref_words,
        "char_errors": t.chars.errors,
        "normalizer": config["normalizer"] or "none",
        "audio_s": t.audio_s,
        # timing covers what this run's processes transcribed (all of it unless resumed)
        "timed_utterances": timed_utterances,
        "timed_audio_s": timed_audio_s,
        "resumed_from": None if resume is None else len(resume.kept),
        "resume_dropped": None if resume is None else len(resume.dropped),
        "resume_dropped_reasons": None if resume is None else resume.dropped[:20],
        "wall_s": wall_s,
        "load_s": load_s,
        "rtfx": timed_audio_s / wall_s if wall_s else 0.0,
        "model_s": model_s,
        "model_rtfx": model_audio_s / model_s if model_s else 0.0,
        "warmup_batches": sum(s.warmup_batches for s in ranks),
        "n_batches": sum(s.n_batches for s in ranks),
        "oom_splits": sum(s.oom_splits for s in ranks),
        "padding_fraction": 1 - valid / padded if padded else 0.0,
        "precision": config["precision"],
        # null: batches of batch_size ran; else why the model ran at batch size 1 (its batches cannot be made exact)
        "batching_fallback": model.get("batching_fallback"),
        "precision_differs_from_fp32": sum(differs) if differs else None,
        "precision_check": precision_check(ranks, config),
        "world_size": len(ranks),
        "ranks": [
            {
                "rank": r,
                "utterances": s.n_utterances,
                "audio_s": s.audio_s,
                "wall_s": s.wall_s,
                "rtfx": s.audio_s / s.wall_s if s.wall_s else 0.0,
            }
            for r, s in enumerate(ranks)
        ],
        "model": model,
        "device": device,
        "host": socket.gethostname(),
        "git_hash": git_hash(),
        "versions": versions(),
        "command": " ".join(sys.argv),
        "config": config,
    }


def finish(run: Run, folder: RunFolder, per_rank, load_s, transcriber, decoder: dict) -> tuple[int, list[str]]:
    """Every output, then `complete` as the last step; the caller then commits the folder (the journals go) and
    prints (status, lines). A kill anywhere in between is resumed."""
    import torch  # only a run that loaded a model gets here: the tools that re-read results never load torch

    config, started, journal, resume, run_id = (
        folder.config,
        folder.started,
        folder.journal,
        folder.resume,
        folder.run_id,
    )

    output_dir = Path(config["output_dir"])
    if resume is not None and resume.dropped:
        shown = "; ".join(resume.dropped[:3]) + ("; ..." if len(resume.dropped) > 3 else "")
        print(f"resume: {len(resume.dropped)} journal line(s) left out and transcribed again: {shown}")
    results = journal.finish(resume.kept if resume is not None else {}, (r for new, _ in per_rank for r in new))
    t = totals(results)
    ids = ids_sha256(r.id for r in results)
    reference = run.reference
    check, reference_note = reference_check(
        reference, t, run.data_name, run.split, run.partition, run.limit, run.decoder.name, run.normalizer, ids
    )
    if reference is None and run.reference_note:
        reference_note = run.reference_note
    summary = build_summary(
        config,
        started,
        t,
        [s for _, s in per_rank],
        load_s,
        vars(transcriber.info),
        device_name(transcriber.device),
        run_id,
        resume,
        run_intervals(results),
    )
    summary["reference"] = (
        None
        if check is None
        else {"wer": check.wer, "tolerance": check.tolerance, "source": check.source, "passed": check.passed}
    )
    summary["reference_note"] = reference_note
    # the card's figure for this split even where it was not checked (a leaderboard shows it beside ours)
    figure = None if reference is None else reference.wer.get(run.split)
    summary["reference_figure"] = None if figure is None else {"wer": figure, "decoder": str(reference.decoder)}
    summary["decoder"] = decoder
    backend = transcriber.backend
    summary["backend"] = (
        backend.settings()
        if backend is not None
        else {"name": "torch", "version": torch.__version__, "precision": run.precision}
    )
    commit = summary["model"].get("commit")  # a Hub load: the commit its files came from, known after the load
    summary["model"]["weights"] = f"git:{commit}" if commit else run.naming.weights
    fingerprints = {
        "checkpoint_sha256": run.naming.checkpoint_sha256,
        "pin": run.naming.pin,
        "pinned": run.naming.pinned,
        "audio_sha256": audio_sha256(results),
    }
    summary["measurement"] = measurement(summary, ids_hash=ids, fingerprints=fingerprints)
    table = write_tables(output_dir, summary)
    write_analysis(output_dir, summary=summary)
    status = Exit.OK if check is None or check.passed else Exit.REFERENCE_FAILED
    exactness, not_exact = precision_line(summary)
    if not_exact and status == Exit.OK:
        status = Exit.NOT_EXACT
    lines = [
        table.to_markdown(index=False),
        f"outputs: {output_dir}",
        check.line() if check is not None else f"reference check: none ({reference_note})",
        *([exactness] if exactness else []),
    ]
    write_summary(output_dir, summary)  # the commit point, and this function's last step
    return status, lines
