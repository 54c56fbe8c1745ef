"""lhotse recordings and supervisions manifests for a run's audio files, as JSON (`.recordings.json`,
`.supervisions.json`: lhotse's `load_manifest` reads them; not `*.jsonl`, which the leaderboard's scorer would take
for its own results)."""

from __future__ import annotations

import hashlib
import json
import os
import stat

from .base import ExportRun, Files, Format, Scored


def lhotse_manifests(scored: list[Scored]) -> tuple[list[dict], list[dict], list[str]]:
    """(lhotse recordings, supervisions, ids left out): a recording per audio file, its header read with soundfile
    (a path that is not a regular file, gone or unreadable is left out: a FIFO would hang the reader); the
    supervision holds the scored reference as `text` and the transcript in `custom.pred_text`."""
    import soundfile as sf

    recordings, supervisions, left_out, seen = [], [], [], set()
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
        # one recording per audio file (segments of one file share it), one supervision per utterance
        stem = os.path.splitext(os.path.basename(path))[0]
        recording_id = s.id if s.offset is None else f"{stem}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"
        if recording_id not in seen:
            seen.add(recording_id)
            recordings.append(
                {"id": recording_id, "sources": [{"type": "file", "channels": list(range(info.channels)),
                 "source": path}], "sampling_rate": info.samplerate, "num_samples": info.frames,
                 "duration": duration, "channel_ids": list(range(info.channels))}
            )  # fmt: skip
        supervisions.append(
            {"id": s.id, "recording_id": recording_id, "start": s.offset or 0.0,
             "duration": duration if s.offset is None else s.duration, "channel": 0, "text": s.text,
             **({"speaker": s.speaker} if s.speaker else {}), "custom": {"pred_text": s.pred_text}}
        )  # fmt: skip
    return recordings, supervisions, left_out


def files(run: ExportRun) -> tuple[Files, dict]:
    recordings, supervisions, left_out = lhotse_manifests(run.scored)
    texts = {
        f"{run.stem}.recordings.json": json.dumps(recordings, ensure_ascii=False) + "\n",
        f"{run.stem}.supervisions.json": json.dumps(supervisions, ensure_ascii=False) + "\n",
    }
    return texts, {"lhotse_left_out": left_out}


FORMAT = Format("lhotse", files)
