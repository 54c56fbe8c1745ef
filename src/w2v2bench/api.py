"""`w2v2bench.evaluate(...)`: the benchmark from Python, the same code path as `python -m w2v2bench`.

The arguments become the command line's overrides (Hydra composes the same conf/, settings.validate checks them,
harness.bench runs them), so every key is reachable and every figure is the CLI's; the result is read back from
the run folder as every tool reads it (results.read_run).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import group_options

__all__ = ["Result", "evaluate"]

MANIFEST_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv")
LHOTSE_SUFFIXES = (".jsonl.gz", ".json.gz")


@dataclass(frozen=True)
class Result:
    """What one evaluation measured: the rates, the rows and the summary (summary.json's, record included)."""

    wer: float
    cer: float
    rows: list[dict[str, Any]]  # transcripts.jsonl's rows, in corpus order
    summary: dict[str, Any]  # summary.json, `measurement` included
    status: int  # the command line's exit status (0; 3: the reference check failed; 5: not exact)
    output_dir: str | None  # where the files are (None: output_dir=None, nothing kept)

    @property
    def measurement(self) -> dict[str, Any]:
        return self.summary["measurement"]


def _quoted(value: object) -> str:
    """A value as Hydra's override grammar reads it back exactly (a path with spaces, commas or quotes)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    # a backslash, a quote and an interpolation (`${...}`: a path is a path, never a value looked up) escaped
    text = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("${", "\\${")
    return f"'{text}'"


def _flat(overrides: Mapping | Sequence[str] | None, prefix: str = "") -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        out = []
        for key, value in overrides.items():
            if isinstance(value, Mapping):
                out += _flat(value, f"{prefix}{key}.")
            else:
                out.append(f"{prefix}{key}={_quoted(value)}")
        return out
    if isinstance(overrides, str):
        raise TypeError("overrides: expected key=value strings in a list, or a mapping; got one string")
    return [str(o) for o in overrides]


def _model(model: str) -> list[str]:
    """`model=<option>` for a shipped config's name, else a checkpoint (a Hub id or a folder)."""
    if model in group_options("model"):
        return [f"model={model}"]
    return [f"model.checkpoint={_quoted(model)}"]


def _data(data: str) -> list[str]:
    """`data=<option>` for a shipped config's name; a manifest (NeMo JSONL, CSV, TSV) or lhotse file by its
    suffix; an OpenSLR tree (a folder holding test-clean/ ...); else any Hugging Face dataset."""
    if data in group_options("data"):
        return [f"data={data}"]
    path = Path(data).expanduser()
    if str(data).endswith(LHOTSE_SUFFIXES):
        return ["data=lhotse", f"data.path={_quoted(data)}"]
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        return ["data=manifest", f"data.path={_quoted(data)}"]
    if path.is_dir() and any((path / s).is_dir() or (path / "LibriSpeech" / s).is_dir()
                             for s in ("test-clean", "test-other", "dev-clean", "dev-other")):  # fmt: skip
        return ["data=local", f"data.root={_quoted(data)}"]
    return ["data=hf", f"data.dataset={_quoted(data)}"]


def _saved_model(model: Any, processor: Any, folder: Path, name: str | None) -> list[str]:
    """A model object in memory saved (with its processor) into `folder` for the harness to load as every
    checkpoint is loaded: the caller's object is only read (its modules, hooks, training flag, device and dtype
    stay as they were). A wrapped model (DDP, torch.compile) is unwrapped; one that is not a transformers CTC
    model, a PEFT model, or half-precision weights are refused in one line."""
    from .provenance import checkpoint_id

    inner = getattr(model, "module", model)  # DistributedDataParallel, DataParallel
    inner = getattr(inner, "_orig_mod", inner)  # torch.compile
    if hasattr(inner, "peft_config") or hasattr(inner, "merge_and_unload"):
        raise TypeError("model: a PEFT model; merge its adapters first (model.merge_and_unload()) and pass that")
    if not hasattr(inner, "save_pretrained") or not hasattr(inner, "config"):
        raise TypeError(
            f"model: a {type(model).__name__}; expected a transformers CTC model, a checkpoint id or folder"
        )
    dtypes = {p.dtype for p in inner.parameters()}
    if any(str(d) != "torch.float32" for d in dtypes):
        raise TypeError(
            f"model: weights in {sorted(map(str, dtypes))}; pass the float32 model (precision=bf16|fp16 runs it in "
            "half precision, checked against fp32)"
        )
    if processor is None or not hasattr(processor, "save_pretrained"):
        raise TypeError("processor: a model in memory needs its processor (feature extractor and tokenizer) to run")
    inner.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    digest = (checkpoint_id(folder) or "sha256:unknown").removeprefix("sha256:")
    name = name or f"{type(inner).__name__}-{digest[:8]}"  # its class and what its files hash to
    # a series of its own: no pinned name, no card
    return [f"model.checkpoint={_quoted(str(folder))}", f"model.name={_quoted(name)}", "model.reference=null",
            "model.pin.name=null", "model.pin.hub=null", "model.pin.sha256=[]"]  # fmt: skip


def evaluate(
    model: Any,
    data: Any = "demo",
    *,
    processor: Any = None,
    model_name: str | None = None,
    overrides: Mapping | Sequence[str] | None = None,
    **keys: Any,
) -> Result:
    """Run `model` on `data` as `python -m w2v2bench` would, and return what it measured.

    `model`: a conf/model name (`"demo"`, `"wav2vec2-base-960h"`), a Hub id, a checkpoint folder, or a model
    object in memory (a transformers CTC model, with its `processor`; named `model_name` or by its class and
    files' hash; saved for the run and left as it was). `data`: a conf/data name (`"demo"`, `"hub"` ...), a NeMo
    manifest / CSV / TSV, a lhotse manifest (`.jsonl.gz`), an OpenSLR LibriSpeech folder, a Hugging Face dataset
    (Hub id, `save_to_disk` folder, parquet files), or a `datasets.Dataset` object (`data.*_column` in overrides).
    `**keys`: the command line's top-level keys (`split="other"`, `batch_size=32`, `device="cpu"`, `limit=10`,
    `normalizer="basic"`); `output_dir=None` keeps no files (the run writes into a temporary folder, read back
    and removed). `overrides`: dotted keys, as `["decoder=lm", "decoder.beam_width=100"]` or a nested mapping
    `{"data": {"text_column": "sentence"}}`. Errors are the command line's one-line errors, raised."""
    from hydra import compose, initialize_config_module

    from .config import register
    from .harness import bench
    from .results import read_run
    from .settings import validate

    keep = "output_dir" not in keys or keys["output_dir"] is not None
    scratch = None if keep else tempfile.mkdtemp(prefix="w2v2bench-")
    if scratch is not None:
        keys = {**keys, "output_dir": scratch}
    staged = tempfile.mkdtemp(prefix="w2v2bench-in-memory-")  # a model or dataset object, saved for the run
    try:
        if isinstance(model, str):
            model_args = _model(model) + ([f"model.name={_quoted(model_name)}"] if model_name else [])
        else:
            model_args = _saved_model(model, processor, Path(staged) / "model", model_name)
        if isinstance(data, str):
            data_args = _data(data)
        elif hasattr(data, "save_to_disk"):  # a datasets.Dataset: saved, then read as data=hf reads a saved one
            data.save_to_disk(str(Path(staged) / "data"))
            data_args = ["data=hf", f"data.dataset={_quoted(str(Path(staged) / 'data'))}", "data.name=dataset"]
        else:
            raise TypeError(f"data: a {type(data).__name__}; expected a name, a path or a datasets.Dataset")
        args = [*model_args, *data_args, *(f"{k}={_quoted(v)}" for k, v in keys.items()), *_flat(overrides)]
        register()
        with initialize_config_module(config_module="w2v2bench.conf", version_base=None):
            cfg = compose(config_name="config", overrides=args)
        run = validate(cfg)
        status = bench(run, datetime.now(UTC).isoformat(timespec="milliseconds"))
        summary, rows = read_run(run.output_dir)
    finally:
        for folder in (scratch, staged):
            if folder is not None:
                with contextlib.suppress(OSError):
                    shutil.rmtree(folder)
    return Result(summary["wer"], summary["cer"], rows, summary, int(status), run.output_dir if keep else None)
