"""A Hugging Face model card's `model-index` entry for a run (whole splits without failures only)."""

from __future__ import annotations

import math

import yaml

from .base import OFFICIAL_UTTERANCES, ExportError, ExportRun, Files, Format, _run_names

# the Hub's task and dataset names for LibriSpeech (model-index `dataset.type` is a Hub dataset id)
LIBRISPEECH_HUB_ID = "openslr/librispeech_asr"


def variant(summary: dict) -> list[str]:
    """What sets this run's figure apart from the card protocol (fp32 PyTorch, greedy, as written), for the
    metric's name: a variant's WER is never the model's plain "Test WER"."""
    cfg, backend = summary["config"], summary.get("backend") or {}
    parts = []
    if (summary.get("decoder") or {}).get("name", "greedy") != "greedy":
        parts.append("n-gram LM" if summary["decoder"]["name"] == "lm" else f"decoder {summary['decoder']['name']}")
    if backend.get("name", "torch") != "torch":
        parts.append(f"{backend['name']} {backend.get('precision', 'fp32')}")
    elif cfg.get("precision", "fp32") != "fp32":
        parts.append(str(cfg["precision"]))
    if summary.get("normalizer", "none") != "none":
        parts.append(f"{summary['normalizer']}-normalised")
    if summary.get("merge_compounds"):
        parts.append("compounds merged")
    return parts


def _model_index_result(summary: dict) -> tuple[dict | None, str | None]:
    """(one model-index `results` entry, or None and why a model card should not carry this run's figure)."""
    names = _run_names(summary)
    cfg = summary["config"]
    if summary["n_failed"]:
        return None, f"{summary['n_failed']} utterance(s) failed: a card's figure needs every utterance"
    librispeech = names["data_name"] == "librispeech" and bool(names["partition"])  # a manifest's set is its own
    official = OFFICIAL_UTTERANCES.get(f"{names['partition']}-{names['split']}")
    if librispeech and summary["n_utterances"] != official:  # the run's own count, whatever limit= said
        return None, (
            f"{summary['n_utterances']} utterances: a model card names {LIBRISPEECH_HUB_ID} "
            f"{names['partition']}-{names['split']} only for all {official} of it"
        )
    if librispeech and not summary["measurement"]["series"]["data"]["official"]:  # the ids, checked (read_run)
        return None, (
            f"the run's utterance ids are not the official {names['partition']}-{names['split']} list: a model card "
            f"names {LIBRISPEECH_HUB_ID} only for it"
        )
    if not librispeech and cfg.get("limit") is not None:
        return None, f"limit={cfg['limit']} scores a subset"
    if cfg.get("batching", "exact") == "naive":
        return None, "batching=naive: padded batches change the figure; a card's figure is batch size 1's"
    if not all(isinstance(summary.get(k), float) and math.isfinite(summary[k]) for k in ("wer", "cer")):
        return None, "no WER (no reference words)"
    if not names["partition"]:  # a set of its own (a manifest): its name, a test set, no config or split
        dataset = {"name": names["data_name"], "type": names["data_name"], "args": {"language": "en"}}
        kind = variant(summary)
        metric_name = "Test WER" + (f" ({', '.join(kind)})" if kind else "")
        return _entry(summary, dataset, metric_name), None
    hub_split = {"dev": "validation"}.get(names["partition"], names["partition"])
    kind = variant(summary)
    metric_name = f"{'Test' if names['partition'] == 'test' else 'Dev'} WER" + (f" ({', '.join(kind)})" if kind else "")
    dataset = {
        "name": f"LibriSpeech ({names['split']})" if librispeech else f"{names['data_name']} ({names['split']})",
        "type": LIBRISPEECH_HUB_ID if librispeech else names["data_name"],
        "config": names["split"],
        "split": hub_split,
        "args": {"language": "en"},
    }
    return _entry(summary, dataset, metric_name), None


def _entry(summary: dict, dataset: dict, metric_name: str) -> dict:
    return {
        "task": {"type": "automatic-speech-recognition", "name": "Automatic Speech Recognition"},
        "dataset": dataset,
        "metrics": [
            {"type": "wer", "value": round(summary["wer"] * 100, 2), "name": metric_name},
            {"type": "cer", "value": round(summary["cer"] * 100, 2), "name": metric_name.replace("WER", "CER")},
        ],
    }


def combined(runs: list[ExportRun]) -> tuple[Files, dict]:
    """One model-index block for all the runs (one model); a run a card should not carry is named and skipped."""
    models = sorted({(str(model.get("name")), str(model.get("checkpoint")))
                     for model in (r.summary["config"]["model"] for r in runs)})  # fmt: skip
    if len(models) > 1:
        shown = "; ".join(f"{name} ({checkpoint})" for name, checkpoint in models)
        raise ExportError(
            f"model_id={runs[0].model_id!r}: the runs are of {len(models)} different models ({shown}): a "
            "model-index is one model's; export them apart"
        )
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
