"""A NeMo manifest of a run (audio_filepath, duration, text, pred_text): NeMo's speech_to_text_eval.py reads it."""

from __future__ import annotations

from .base import ExportRun, Files, Format, _jsonl


def files(run: ExportRun) -> tuple[Files, dict]:
    records = [
        {"audio_filepath": s.audio_filepath or s.id, "duration": s.duration, "text": s.text, "pred_text": s.pred_text}
        for s in run.scored
    ]
    return {f"{run.stem}.nemo.jsonl": _jsonl(records)}, {}


FORMAT = Format("nemo", files)
