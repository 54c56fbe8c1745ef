"""Reference and hypothesis text files for the jiwer command line (`jiwer -r ref.txt -h hyp.txt`), a line each."""

from __future__ import annotations

from ..metrics import rate
from .base import ExportRun, Files, Format


def files(run: ExportRun) -> tuple[Files, dict]:
    # the jiwer CLI skips every line of fewer than 2 characters (an empty transcript, "I"), which would pair
    # the wrong lines: those utterances are left out, and the rates over the rest are what it must print
    kept = [s for s in run.scored if len(s.text) > 1 and len(s.pred_text) > 1]
    record = {
        "left_out": [s.id for s in run.scored if not (len(s.text) > 1 and len(s.pred_text) > 1)],
        "wer": rate(s.words for s in kept),
        "cer": rate(s.chars for s in kept),
    }
    texts = {
        f"{run.stem}.ref.txt": "".join(s.text + "\n" for s in kept),
        f"{run.stem}.hyp.txt": "".join(s.pred_text + "\n" for s in kept),
    }
    return texts, {"jiwer": record}


FORMAT = Format("jiwer", files)
