"""The Open ASR Leaderboard's result file name (its scorer reads model and dataset from it)."""

from __future__ import annotations

from .base import OFFICIAL_UTTERANCES, SAFE, ExportError, ExportRun, Files, Format, _jsonl, _run_names


def leaderboard_name(model_id: str, summary: dict, subset: int | None = None) -> str:
    """The Open ASR Leaderboard's result file name, `MODEL_<org>-<model>_DATASET_<path>_<name>_<split>.jsonl`:
    its scorer takes model and dataset from this name (the first `-` of the model part back to `/`), and labels
    `librispeech_test.clean` / `librispeech_test.other` as its LS Clean / LS Other columns: a `subset` of N
    utterances is named `<name>-subsetN`, which no column of it matches."""
    names = _run_names(summary)
    if "/" not in model_id:
        raise ExportError(f"model_id={model_id!r}: expected <org>/<name> (the leaderboard reads the org from it)")
    dataset_path = names["dataset"] if names["data_source"] == "hub" else names["data_source"]
    parts = {
        "model": model_id.replace("/", "-"),
        "path": dataset_path.replace("/", "-"),
        "name": names["data_name"] + (f"-subset{subset}" if subset is not None else ""),
        # a set without LibriSpeech partitions (a manifest) is a test set, named by its name
        "split": f"{names['partition']}.{names['split']}" if names["partition"] else "test",
    }
    for key, value in parts.items():
        parts[key] = cleaned = SAFE.sub("_", value)
        if "MODEL_" in cleaned or "DATASET_" in cleaned:
            raise ExportError(
                f"{key} {value!r} holds MODEL_ or DATASET_ (once cleaned), which the leaderboard's file name parser "
                "splits on"
            )
    return f"MODEL_{parts['model']}_DATASET_{parts['path']}_{parts['name']}_{parts['split']}.jsonl"


def files(run: ExportRun) -> tuple[Files, dict]:
    names, n = _run_names(run.summary), run.summary["n_utterances"]
    official = OFFICIAL_UTTERANCES.get(f"{names['partition']}-{names['split']}")
    whole = run.summary["measurement"]["series"]["data"]["official"]  # all of the split's ids (read_run checked)
    subset = n if names["data_name"] == "librispeech" and official is not None and not whole else None
    about = {} if subset is None else {
        "leaderboard_subset": f"{n} utterances, not the official {official}: named {names['data_name']}-subset{n}, "
                              "outside the leaderboard's LibriSpeech columns"}  # fmt: skip
    records = [
        {"audio_filepath": s.audio_filepath or s.id, "duration": s.duration, "time": s.time, "text": s.text,
         "pred_text": s.pred_text, "id": s.id}
        for s in run.scored
    ]  # fmt: skip
    return {leaderboard_name(run.model_id, run.summary, subset): _jsonl(records)}, about


FORMAT = Format("leaderboard", files)
