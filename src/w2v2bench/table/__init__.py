"""`python -m w2v2bench.table [root=results] [view=runs|leaderboard]`: completed runs under a folder as one table.

`view=runs` (default): one row per series (model x data x split x coverage x protocol: summary.json's
measurement) with WER, CER, error counts, RTFx and the reference check; the protocol columns shown are those in
which some row differs from the card protocol (backend, precision, decoder, normalizer, batching, device ...).
`view=leaderboard`: one row per series (the latest run of each), our WER beside the
card's figure, the difference in percentage points, the check's verdict (or why there was none), RTFx, and the
class and feature-encoder norm each checkpoint was found to have.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..config import set_label
from ..errors import one_line
from ..files import write_text_atomic
from ..metrics import ci95
from ..results import ResultsFileError, read_summary, with_ids

# the series' protocol as columns, with the card protocol's value: a column whose every row has that value is
# left out of a table (`shown`); coverage and the series id are always there
PROTOCOL_COLUMNS = {
    "backend": "torch",
    "precision": "fp32",
    "decoder": "greedy",
    "normalizer": "none",
    "batching": "exact",
    "device": "cpu",
    "compile": False,
    "recheck_margin": None,
    "merge_compounds": False,
}


def series_columns(summary: dict) -> dict:
    """What a row's figure is of (summary.json's measurement.series): its coverage, its protocol, its series id."""
    record = summary["measurement"]
    data, protocol = record["series"]["data"], record["series"]["protocol"]
    backend = protocol.get("backend") or {}
    if data.get("coverage") == "whole":
        coverage = "whole (official)" if data.get("official") else "whole"
    else:
        coverage = f"subset of {data.get('n_utterances')}"
    precision = protocol.get("precision", "fp32")
    if backend.get("name", "torch") != "torch":
        precision = backend.get("precision", precision)  # the runtime's own precision (int8, bf16)
    return {
        "coverage": coverage,
        "backend": backend.get("name", "torch"),
        "precision": precision,
        "decoder": (protocol.get("decoder") or {}).get("name", "greedy"),
        "normalizer": protocol.get("normalizer", "none"),
        "batching": protocol.get("batching", "exact"),
        "device": protocol.get("device", "cpu"),
        "compile": protocol.get("compile", False),
        "recheck_margin": protocol.get("recheck_margin"),
        "merge_compounds": protocol.get("merge_compounds", False),
        "series": record["series_id"],
        "record": "derived" if record.get("derived") else "written",
    }


def shown(frame: pd.DataFrame, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """The table without the protocol columns in which every row has the card protocol's value (and without
    `record` where no row's record was derived): the columns left are those that say how rows differ."""
    drop = [
        c
        for c, usual in PROTOCOL_COLUMNS.items()
        if c in frame.columns and c not in keep and all(_same(v, usual) for v in frame[c])
    ]
    if "record" in frame.columns and all(v == "written" for v in frame["record"]):
        drop.append("record")
    return frame.drop(columns=drop)


def _same(value, usual) -> bool:
    return (value is None or value != value) if usual is None else value == usual  # NaN: a missing value


def table_row(summary: dict) -> dict:
    cfg = summary["config"]
    ref = summary.get("reference") or {}
    return {
        "model": cfg["model"]["name"],
        "data": cfg["data"]["name"],
        "split": set_label(cfg["data"]["name"], cfg["data"]["partition"], cfg["split"]),
        **series_columns(summary),
        "wer_%": round(summary["wer"] * 100, 2),
        "wer_ci95_%": ci95(summary.get("wer_ci95")),
        "cer_%": round(summary["cer"] * 100, 2),
        "cer_ci95_%": ci95(summary.get("cer_ci95")),
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
        "split": set_label(cfg["data"]["name"], cfg["data"]["partition"], cfg["split"]),
        "class": info.get("architecture"),
        "norm": info.get("feat_extract_norm"),
        **series_columns(summary),
        "utterances": summary["n_utterances"],
        "wer_%": wer,
        "wer_ci95_%": ci95(summary.get("wer_ci95")),
        "card_%": card,
        "diff_pts": None if card is None else round(wer - card, 2),
        "check": check,
        "rtfx": round(summary["rtfx"], 1),
        "batch_size": 1 if summary.get("batching_fallback") else cfg["batch_size"],
        "device_name": summary.get("device"),
    }


def write_tables(output_dir: Path, summary: dict) -> pd.DataFrame:
    """wer.csv (every column) and wer.md (the run's backend, precision and coverage always, and what else differs
    from the card protocol); returns the wer.md table."""
    frame = pd.DataFrame([table_row(summary)])
    write_text_atomic(output_dir / "wer.csv", frame.to_csv(index=False))
    frame = shown(frame, keep=("backend", "precision"))
    write_text_atomic(output_dir / "wer.md", frame.to_markdown(index=False) + "\n")
    return frame


def gather(root: str | os.PathLike, row=None, rescores: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """Every completed run's summary.json under `root` (with `rescores`, every re-score's too: a series of its
    own, `scoring` "re-score"), one row each (`row(summary)`: table_row by default), newest run of a model x
    split last; and one line for each summary.json that could not be read (skipped, the others still count)."""
    row = row or table_row
    rows, skipped = [], []
    for path in sorted(Path(root).rglob("summary.json")):
        try:
            summary = read_summary(path)
            if summary["status"] not in (("complete", "rescored") if rescores else ("complete",)):
                continue
            summary["measurement"] = with_ids(summary, path.parent)  # its ids are its rows' (derived: from them)
        except (ResultsFileError, OSError) as err:
            skipped.append(f"skipped {one_line(err)}")
            continue
        scoring = {"scoring": "re-score" if summary["status"] == "rescored" else "run"} if rescores else {}
        rows.append({**row(summary), **scoring, "finished": summary.get("finished"), "run": str(path.parent)})
    frame = pd.DataFrame(rows)
    if not frame.empty:
        keys = [k for k in ("model", "data", "split", "series") if k in frame.columns]
        frame = frame.sort_values([*keys, "finished"]).reset_index(drop=True)
    return frame, skipped


VIEWS = {  # one row per series (the latest run of each): a bf16, int8, LM, normalised or smoke run is its own row
    "runs": (table_row, ["model", "data", "split", "series"]),
    "leaderboard": (leaderboard_row, ["model", "data", "split", "series"]),
}
