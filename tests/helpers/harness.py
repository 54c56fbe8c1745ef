"""Whole-process helpers: run the harness, read a run folder, compose a config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_module

from w2v2bench.config import register
from w2v2bench.data.local import local_utterances

from . import LIBRISPEECH


def bench(*overrides, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "w2v2bench", *overrides],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def evaluate(*overrides) -> int:
    """The harness in this process (what `python -m w2v2bench` runs after parsing): no interpreter start, no
    second torch import; its exit status."""
    from w2v2bench.harness import evaluate as run

    return run(compose_with(list(overrides)))


def read_run(folder):
    rows = [json.loads(line) for line in (folder / "transcripts.jsonl").read_text().splitlines()]
    return rows, json.loads((folder / "summary.json").read_text())


def untimed(rows: list[dict]) -> list[dict]:
    """Rows less what differs between two runs of the same work: each row's share of the model's time."""
    return [{k: v for k, v in r.items() if k != "model_s"} for r in rows]


def local(checkpoint, out, *extra):
    return [
        "data=local",
        f"data.root={LIBRISPEECH}",
        f"model.checkpoint={checkpoint}",
        "model.name=tiny",
        f"output_dir={out}",
        *extra,
    ]


def compose_with(overrides: list[str]):
    register()  # the config schema, as the harness stores it before composing
    with initialize_config_module(config_module="w2v2bench.conf", version_base=None):
        return compose(config_name="config", overrides=overrides)


def mirror_repo(folder: Path, with_dev: bool = False) -> Path:
    """The openslr/librispeech_asr repo's files as a cluster mirror holds them: <config>/<split>/*.parquet with
    its columns (file, audio{bytes, path}, text, speaker_id, chapter_id, id), built from the shipped audio."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    subsets = [("test-clean", "clean", "test"), ("test-other", "other", "test")]
    for subset, config, split in subsets + ([("dev-clean", "clean", "validation")] if with_dev else []):
        rows = []
        for u in local_utterances(LIBRISPEECH, *subset.split("-")):
            flac = Path(u.path)
            rows.append({"file": flac.name, "audio": {"bytes": flac.read_bytes(), "path": flac.name}, "text": u.text,
                         "speaker_id": int(u.speaker), "chapter_id": int(u.chapter), "id": u.id})  # fmt: skip
        (folder / config / split).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), folder / config / split / "0000.parquet")
    return folder


def open_source(overrides: list[str]):
    """(utterances, count) of the data source `overrides` configure, as the harness opens it (settings checked)."""
    from w2v2bench.settings import validate

    run = validate(compose_with(overrides))
    return run.data.create().utterances(run.split, run.limit)
