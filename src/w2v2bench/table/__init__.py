"""`python -m w2v2bench.table [root=results] [view=runs|leaderboard]`: completed runs under a folder as one table.

`view=runs` (default): one row per model x data x split with WER, CER, error counts, RTFx and the reference check.
`view=leaderboard`: one row per model x data x split x decoder (the latest run of each), our WER beside the
card's figure, the difference in percentage points, the check's verdict (or why there was none), RTFx, and the
class and feature-encoder norm each checkpoint was found to have.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import one_line
from ..files import write_text_atomic
from ..results import ResultsFileError, read_summary


def table_row(summary: dict) -> dict:
    cfg = summary["config"]
    ref = summary.get("reference") or {}
    return {
        "model": cfg["model"]["name"],
        "data": cfg["data"]["name"],
        "split": f"{cfg['data']['partition']}-{cfg['split']}",
        "wer_%": round(summary["wer"] * 100, 2),
        "cer_%": round(summary["cer"] * 100, 2),
        "errors": summary["word_errors"]["substitutions"]
        + summary["word_errors"]["deletions"]
        + summary["word_errors"]["insertions"],
        "substitutions": summary["word_errors"]["substitutions"],
        "deletions": summary["word_errors"]["deletions"],
        "insertions": summary["word_errors"]["insertions"],
        "ref_words": summary["ref_words"],
        "utterances": summary["n_utterances"],
        "failed": summary["n_failed"],
        "audio_s": round(summary["audio_s"], 1),
        "rtfx": round(summary["rtfx"], 1),
        "batch_size": 1 if summary.get("batching_fallback") else cfg["batch_size"],  # what ran
        "reference_%": None if not ref else round(ref["wer"] * 100, 2),
        "reference_passed": None if not ref else ref["passed"],
    }


def leaderboard_row(summary: dict) -> dict:
    """One model x split of `make leaderboard`: what ran, our WER beside the card's, and the check's verdict."""
    cfg, info = summary["config"], summary.get("model") or {}
    figure = summary.get("reference_figure") or {}
    ref = summary.get("reference")
    wer = round(summary["wer"] * 100, 2)
    card = None if not figure else round(figure["wer"] * 100, 2)
    if ref is not None:
        check = "pass" if ref["passed"] else "FAIL"
    else:
        check = f"not checked: {summary.get('reference_note') or 'no reference'}"
    return {
        "model": cfg["model"]["name"],
        "data": cfg["data"]["name"],
        "split": f"{cfg['data']['partition']}-{cfg['split']}",
        "class": info.get("architecture"),
        "norm": info.get("feat_extract_norm"),
        "decoder": (summary.get("decoder") or {}).get("name", "greedy"),
        "backend": (summary.get("backend") or {}).get("name", "torch"),
        "utterances": summary["n_utterances"],
        "wer_%": wer,
        "card_%": card,
        "diff_pts": None if card is None else round(wer - card, 2),
        "check": check,
        "rtfx": round(summary["rtfx"], 1),
        "batch_size": 1 if summary.get("batching_fallback") else cfg["batch_size"],
        "precision": cfg["precision"],
        "device": summary.get("device"),
    }


def write_tables(output_dir: Path, summary: dict) -> pd.DataFrame:
    frame = pd.DataFrame([table_row(summary)])
    write_text_atomic(output_dir / "wer.csv", frame.to_csv(index=False))
    write_text_atomic(output_dir / "wer.md", frame.to_markdown(index=False) + "\n")
    return frame


def gather(root: str | os.PathLike, row=None) -> tuple[pd.DataFrame, list[str]]:
    """Every completed run's summary.json under `root`, one row each (`row(summary)`: table_row by default),
    newest run of a model x split last; and one line for each summary.json that could not be read (skipped,
    the others still count)."""
    row = row or table_row
    rows, skipped = [], []
    for path in sorted(Path(root).rglob("summary.json")):
        try:
            summary = read_summary(path)
        except (ResultsFileError, OSError) as err:
            skipped.append(f"skipped {one_line(err)}")
            continue
        if summary["status"] != "complete":
            continue
        rows.append({**row(summary), "finished": summary.get("finished"), "run": str(path.parent)})
    frame = pd.DataFrame(rows)
    if not frame.empty:
        keys = [k for k in ("model", "data", "split", "decoder") if k in frame.columns]
        frame = frame.sort_values([*keys, "finished"]).reset_index(drop=True)
    return frame, skipped


VIEWS = {
    "runs": (table_row, ["model", "data", "split"]),
    "leaderboard": (leaderboard_row, ["model", "data", "split", "decoder", "backend"]),
}
