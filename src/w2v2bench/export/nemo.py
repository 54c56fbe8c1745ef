"""A NeMo manifest of a run (audio_filepath, duration, offset for a segment, text, pred_text): NeMo's
speech_to_text_eval.py reads it. Named `.nemo.json` (NeMo's own suffix for its JSON-lines manifests): the only
`*.jsonl` of an export is the leaderboard's, whose scorer reads every `*.jsonl` under the folder it is given."""

from __future__ import annotations

from .base import ExportRun, Files, Format, _jsonl


def files(run: ExportRun) -> tuple[Files, dict]:
    records = [
        {"audio_filepath": s.audio_filepath or s.id, "duration": s.duration,
         **({"offset": s.offset} if s.offset is not None else {}), "text": s.text, "pred_text": s.pred_text}
        for s in run.scored
    ]  # fmt: skip
    return {f"{run.stem}.nemo.json": _jsonl(records)}, {}


FORMAT = Format("nemo", files)
