"""lhotse recordings and supervisions manifests for a run's audio files."""

from __future__ import annotations

import os
import stat

from .base import ExportRun, Files, Format, Scored, _jsonl


def lhotse_manifests(scored: list[Scored]) -> tuple[list[dict], list[dict], list[str]]:
    """(lhotse recordings, supervisions, ids left out): a recording per audio file, its header read with soundfile
    (a path that is not a regular file, gone or unreadable is left out: a FIFO would hang the reader); the
    supervision holds the scored reference as `text` and the transcript in `custom.pred_text`."""
    import soundfile as sf

    recordings, supervisions, left_out = [], [], []
    for s in scored:
        path = s.audio_filepath
        try:
            if path is None or not stat.S_ISREG(os.stat(path).st_mode):
                raise OSError("not a regular file")
            info = sf.info(path)
        except (OSError, RuntimeError, sf.LibsndfileError):
            left_out.append(s.id)
            continue
        duration = info.frames / info.samplerate
        recordings.append(
            {"id": s.id, "sources": [{"type": "file", "channels": list(range(info.channels)), "source": path}],
             "sampling_rate": info.samplerate, "num_samples": info.frames, "duration": duration,
             "channel_ids": list(range(info.channels))}
        )  # fmt: skip
        supervisions.append(
            {"id": s.id, "recording_id": s.id, "start": 0.0, "duration": duration, "channel": 0, "text": s.text,
             "custom": {"pred_text": s.pred_text}}
        )  # fmt: skip
    return recordings, supervisions, left_out


def files(run: ExportRun) -> tuple[Files, dict]:
    recordings, supervisions, left_out = lhotse_manifests(run.scored)
    texts = {f"{run.stem}.recordings.jsonl": _jsonl(recordings), f"{run.stem}.supervisions.jsonl": _jsonl(supervisions)}
    return texts, {"lhotse_left_out": left_out}


FORMAT = Format("lhotse", files)
