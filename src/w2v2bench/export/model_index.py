"""A Hugging Face model card's `model-index` entry for a run (whole splits without failures only)."""

from __future__ import annotations

import math

import yaml

from .base import ExportRun, Files, Format, _run_names

# the Hub's task and dataset names for LibriSpeech (model-index `dataset.type` is a Hub dataset id)
LIBRISPEECH_HUB_ID = "openslr/librispeech_asr"


def _model_index_result(summary: dict) -> tuple[dict | None, str | None]:
    """(one model-index `results` entry, or None and why a model card should not carry this run's figure)."""
    names = _run_names(summary)
    cfg = summary["config"]
    if summary["n_failed"]:
        return None, f"{summary['n_failed']} utterance(s) failed: a card's figure needs every utterance"
    if cfg.get("limit") is not None:
        return None, f"limit={cfg['limit']} scores a subset"
    if not all(isinstance(summary.get(k), float) and math.isfinite(summary[k]) for k in ("wer", "cer")):
        return None, "no WER (no reference words)"
    librispeech = names["data_name"] == "librispeech"
    hub_split = {"dev": "validation"}.get(names["partition"], names["partition"])
    decoder = (summary.get("decoder") or {}).get("name", "greedy")
    metric_name = f"{'Test' if names['partition'] == 'test' else 'Dev'} WER" + (
        " (n-gram LM)" if decoder == "lm" else ""
    )
    entry = {
        "task": {"type": "automatic-speech-recognition", "name": "Automatic Speech Recognition"},
        "dataset": {
            "name": f"LibriSpeech ({names['split']})" if librispeech else f"{names['data_name']} ({names['split']})",
            "type": LIBRISPEECH_HUB_ID if librispeech else names["data_name"],
            "config": names["split"],
            "split": hub_split,
            "args": {"language": "en"},
        },
        "metrics": [
            {"type": "wer", "value": round(summary["wer"] * 100, 2), "name": metric_name},
            {"type": "cer", "value": round(summary["cer"] * 100, 2), "name": metric_name.replace("WER", "CER")},
        ],
    }
    return entry, None


def combined(runs: list[ExportRun]) -> tuple[Files, dict]:
    """One model-index block for all the runs (one model); a run a card should not carry is named and skipped."""
    entries, skipped = [], []
    for run in runs:
        entry, why = _model_index_result(run.summary)
        if entry is None:
            skipped.append(f"{run.folder}: {why}")
        else:
            entries.append(entry)
    if not entries:
        return {}, {"model_index_skipped": skipped}
    block = {"model-index": [{"name": runs[0].model_id, "results": entries}]}
    return {"model-index.yaml": yaml.safe_dump(block, sort_keys=False, allow_unicode=True)}, {
        "model_index_skipped": skipped
    }


FORMAT = Format("model-index", lambda run: ({}, {}), combined)
