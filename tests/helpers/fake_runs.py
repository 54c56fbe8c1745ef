"""Run folders written directly (transcripts.jsonl + summary.json as the harness writes them), no model."""

from __future__ import annotations

import json
from pathlib import Path

from w2v2bench.files import write_json_atomic
from w2v2bench.metrics import Counts, rate, totals
from w2v2bench.metrics.edits import char_counts, word_counts
from w2v2bench.metrics.normalizers import normalizer
from w2v2bench.metrics.significance import run_intervals
from w2v2bench.results import SCHEMA_VERSION, UtteranceResult, ids_sha256, measurement, parse_row, remeasured

# (id, reference, hypothesis, duration_s): ids carry the speaker first, as LibriSpeech ids do
UTTERANCES = [
    ("1089-134686-0000", "HE HOPED THERE WOULD BE STEW FOR DINNER", "HE HOPED THERE WOULD BE STEW FOR DINNER", 4.1),
    (
        "1089-134686-0001",
        "STUFF IT INTO YOU HIS BELLY COUNSELLED HIM",
        "STUFF IT IN TO YOU HIS BELLY COUNSELED HIM",
        3.2,
    ),
    ("1089-134686-0002", "AFTER EARLY NIGHTFALL THE YELLOW LAMPS", "AFTER EARLY NIGHT FALL THE YELLOW LAMPS", 1.5),
    ("121-121726-0000", "ALSO A POPULAR CONTRIVANCE", "ALSO POPULAR CONTRIVANCE", 12.0),
    ("121-121726-0001", "HARANGUE THE TIRESOME PRODUCT OF A TIRELESS TONGUE", "HARANGUE THE TIRESOME PRODUCT", 6.5),
    ("121-121726-0002", "ANGOR PAIN PAINFUL TO HEAR", "ANGOR PAIN PAINFUL TO HEAR", 22.0),
]


def make_run(
    folder: Path,
    utterances=UTTERANCES,
    *,
    model: str = "demo",
    split: str = "clean",
    checkpoint: str = "org/demo",
    finished: str = "2026-01-01T03:00:00+00:00",
    rtfx: float = 100.0,
    reference: dict | None = None,
    status: str = "complete",
    failed: dict[str, str] | None = None,
    norm: str = "none",
    hyps: dict[str, str] | None = None,
) -> Path:
    """A complete run folder; `hyps` replaces some hypotheses, `failed` marks utterances as failed."""
    folder.mkdir(parents=True, exist_ok=True)
    normalize, failed, hyps = normalizer(norm), failed or {}, hyps or {}
    rows, words, chars = [], Counts(), Counts()
    for index, (uid, ref, hyp, duration_s) in enumerate(utterances):
        hyp = hyps.get(uid, hyp)
        error = failed.get(uid)
        w = c = Counts()
        if error is None:
            w, c = word_counts(normalize(ref), normalize(hyp)), char_counts(normalize(ref), normalize(hyp))
            words, chars = words + w, chars + c
        speaker, chapter = uid.split("-")[:2]
        rows.append(
            UtteranceResult(
                index,
                uid,
                speaker,
                chapter,
                duration_s,
                ref,
                None if error else hyp,
                w.substitutions,
                w.deletions,
                w.insertions,
                w.ref_words,
                c.errors,
                c.ref_words,
                error,
                [],
            ).to_json()
        )
    (folder / "transcripts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    audio_s = sum(u[3] for u in utterances)
    summary = {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "started": finished,
        "finished": finished,
        "wer": rate([words]),
        "cer": rate([chars]),
        **run_intervals(rows),  # as the harness writes them
        "n_utterances": len(rows),
        "n_failed": len(failed),
        "ref_words": words.ref_words,
        "word_errors": {
            "substitutions": words.substitutions,
            "deletions": words.deletions,
            "insertions": words.insertions,
        },
        "ref_chars": chars.ref_words,
        "char_errors": chars.errors,
        "normalizer": norm,
        "audio_s": audio_s,
        "wall_s": audio_s / rtfx,
        "rtfx": rtfx,
        "model_rtfx": rtfx * 1.5,
        "precision": "fp32",
        "reference": reference,
        "reference_note": None if reference else "no reference figures for this model",
        "model": {"checkpoint": checkpoint, "revision": None, "local": Path(checkpoint).is_dir()},
        "device": "cpu",
        "git_hash": "abc123",
        "versions": {"python": "3.11", "torch": "2.13"},
        "command": "python -m w2v2bench",
        "config": {
            "model": {"name": model, "checkpoint": checkpoint, "revision": None},
            "data": {"name": "librispeech", "partition": "test"},
            "split": split,
            "batch_size": 1,
            "precision": "fp32",
            "normalizer": None if norm == "none" else norm,
        },
    }
    summary["measurement"] = measurement(summary, ids_hash=ids_sha256(r["id"] for r in rows))
    write_json_atomic(folder / "summary.json", summary)
    return folder


def row(uid: str, ref: str, hyp: str | None, error: str | None = None) -> dict:
    words = word_counts(ref, hyp) if hyp is not None and error is None else None
    chars = char_counts(ref, hyp) if words else None
    return {
        "id": uid, "speaker": uid.split("-")[0], "chapter": "1", "duration_s": 1.0, "text": ref, "pred_text": hyp,
        "substitutions": words.substitutions if words else 0, "deletions": words.deletions if words else 0,
        "insertions": words.insertions if words else 0, "ref_words": words.ref_words if words else 0,
        "char_errors": chars.errors if chars else 0, "ref_chars": chars.ref_words if chars else 0,
        "error": error, "notes": [],
    }  # fmt: skip


def write_run(folder: Path, rows: list[dict], name: str = "m", normalizer: str = "none") -> Path:
    """A complete run folder as the harness writes it (rows get their corpus index; figures from the rows)."""
    folder.mkdir(parents=True)
    rows = [{"index": i, **r} for i, r in enumerate(rows)]
    (folder / "transcripts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = totals(parse_row(r) for r in rows)
    summary = {
        "schema_version": SCHEMA_VERSION,
        "status": "complete",
        "wer": t.wer,
        "cer": t.cer,
        "n_utterances": t.n_utterances,
        "n_failed": t.n_failed,
        "ref_words": t.words.ref_words,
        "word_errors": {"substitutions": t.words.substitutions, "deletions": t.words.deletions,
                        "insertions": t.words.insertions},
        "audio_s": t.audio_s,
        "rtfx": 100.0,
        "reference": None,
        "normalizer": normalizer,
        "model": {"checkpoint": f"/models/{name}", "do_normalize": True},
        "config": {
            "model": {"name": name, "checkpoint": f"/models/{name}"},
            "data": {"name": "librispeech", "partition": "test"},
            "split": "clean",
            "batch_size": 1,
            "limit": None,
            "output_dir": str(folder),
        },
    }  # fmt: skip
    summary["measurement"] = measurement(summary, ids_hash=ids_sha256(r["id"] for r in rows))
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def edit_summary(run: Path, **fields) -> Path:
    """A run folder's summary.json with `fields` replaced and its measurement record made again from them (as
    the harness would have written it)."""
    summary = json.loads((run / "summary.json").read_text())
    summary.update(fields)
    summary["measurement"] = remeasured(summary)
    (run / "summary.json").write_text(json.dumps(summary))
    return run
