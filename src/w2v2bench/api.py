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
from importlib import resources
from pathlib import Path
from typing import Any

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


def _options(group: str) -> set[str]:
    folder = resources.files("w2v2bench.conf") / group
    return {p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")}


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
    if model in _options("model"):
        return [f"model={model}"]
    return [f"model.checkpoint={_quoted(model)}"]


def _data(data: str) -> list[str]:
    """`data=<option>` for a shipped config's name; a manifest (NeMo JSONL, CSV, TSV) or lhotse file by its
    suffix; an OpenSLR tree (a folder holding test-clean/ ...); else any Hugging Face dataset."""
    if data in _options("data"):
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


def evaluate(
    model: str,
    data: str = "demo",
    *,
    overrides: Mapping | Sequence[str] | None = None,
    **keys: Any,
) -> Result:
    """Run `model` on `data` as `python -m w2v2bench` would, and return what it measured.

    `model`: a conf/model name (`"demo"`, `"wav2vec2-base-960h"`), a Hub id or a checkpoint folder. `data`: a
    conf/data name (`"demo"`, `"hub"` ...), a NeMo manifest / CSV / TSV, a lhotse manifest (`.jsonl.gz`), an
    OpenSLR LibriSpeech folder, or a Hugging Face dataset (Hub id, `save_to_disk` folder, parquet files).
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
    args = [*_model(model), *_data(data), *(f"{k}={_quoted(v)}" for k, v in keys.items()), *_flat(overrides)]
    try:
        register()
        with initialize_config_module(config_module="w2v2bench.conf", version_base=None):
            cfg = compose(config_name="config", overrides=args)
        run = validate(cfg)
        status = bench(run, datetime.now(UTC).isoformat(timespec="milliseconds"))
        summary, rows = read_run(run.output_dir)
    finally:
        if scratch is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(scratch)
    return Result(summary["wer"], summary["cer"], rows, summary, int(status), run.output_dir if keep else None)
