"""A model's name means its weights, and two runs' records differ exactly where the runs did (issue #27, items 1-3):
the shipped demo model and corpus, run in this process."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from tests.helpers import TESTS_CONF
from tests.helpers.harness import evaluate
from w2v2bench.cli.table import main as table
from w2v2bench.config import asset_path

DEMO = ["model=demo", "data=demo", "split=clean", "device=cpu", "progress=false"]


def run(out, *overrides) -> tuple[int, dict]:
    status = evaluate(*DEMO, f"output_dir={out}", *overrides)
    return status, json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """(a byte-identical copy of the demo checkpoint in another folder, a copy with one tensor changed)."""
    root = tmp_path_factory.mktemp("checkpoints")
    copy, changed = root / "copy", root / "changed"
    shutil.copytree(asset_path("demo-model"), copy)
    shutil.copytree(asset_path("demo-model"), changed)
    tensors = load_file(changed / "model.safetensors")
    name = sorted(tensors)[5]
    tensors[name] = tensors[name] * 1.001
    save_file(tensors, changed / "model.safetensors", metadata={"format": "pt"})
    return copy, changed


@pytest.mark.slow
def test_a_copy_of_the_demo_checkpoint_keeps_its_name_and_card(tmp_path, checkpoints):
    status, summary = run(tmp_path / "run", f"model.checkpoint={checkpoints[0]}")
    assert status == 0 and summary["config"]["model"]["name"] == "demo" and summary["reference"]["passed"]
    assert summary["measurement"]["fingerprints"]["pin"] == "matched"


def test_other_weights_under_a_pinned_name_are_named_after_themselves(tmp_path, checkpoints, capsys):
    status, summary = run(tmp_path / "run", f"model.checkpoint={checkpoints[1]}", "limit=3")
    name = summary["config"]["model"]["name"]
    assert status == 0 and name.startswith("local/changed-") and name == summary["measurement"]["series"]["model"]
    assert summary["reference"] is None and "card 'demo' is for other weights" in summary["reference_note"]
    assert (
        f"is not the weights 'demo' pins (model.pin in its conf/model/ file): filed as '{name}'"
        in capsys.readouterr().out
    )
    again = run(tmp_path / "again", f"model.checkpoint={checkpoints[1]}", "limit=3")[1]
    assert again["config"]["model"]["name"] == name  # the same folder, the same name
    # without output_dir, the derived name is the folder under results/ (never a path out of it)
    mine = run(tmp_path / "mine", f"model.checkpoint={checkpoints[1]}", "limit=3", "model.name=mine")[1]
    assert mine["config"]["model"]["name"] == "mine" and mine["measurement"]["fingerprints"]["pin"] == "renamed"
    assert mine["reference"] is None


def _flat(value, prefix=""):
    if isinstance(value, dict):
        return {k: v for key, inner in value.items() for k, v in _flat(inner, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "run"
    return out, run(out, "limit=3")[1]


VARIANTS = [
    ("checkpoint folder", "model.checkpoint={changed}", "model",
     {"series.model", "fingerprints.weights", "fingerprints.checkpoint", "fingerprints.pin"}),
    ("precision", "precision=bf16", "precision", {"series.protocol.precision"}),
    ("normaliser", "normalizer=basic", "normalizer", {"series.protocol.normalizer"}),
    ("limit", "limit=4", "coverage",
     {"series.data.n_utterances", "series.data.ids_sha256", "fingerprints.ids_sha256", "fingerprints.n_utterances"}),
    ("decoder", "decoder=toy", "decoder", {"series.protocol.decoder.name", "series.protocol.decoder.lowercase"}),
]  # fmt: skip


@pytest.mark.parametrize("what,override,column,differ", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_two_runs_differ_in_their_records_exactly_where_they_differ(tmp_path, base, checkpoints, what, override,
                                                                   column, differ, capsys):  # fmt: skip
    base_dir, first = base
    out = tmp_path / "runs" / "b"
    _, second = run(out, "limit=3", TESTS_CONF, override.format(changed=checkpoints[1]))
    a, b = _flat(first["measurement"]), _flat(second["measurement"])
    changed = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} - {"series_id"}
    assert changed == differ and first["measurement"]["series_id"] != second["measurement"]["series_id"]
    shutil.copytree(base_dir, tmp_path / "runs" / "a")
    capsys.readouterr()
    assert table([f"root={tmp_path / 'runs'}"]) == 0
    header, _, *rows = (tmp_path / "runs" / "table.md").read_text().splitlines()
    columns = [c.strip() for c in header.strip("|").split("|")]
    values = {[c.strip() for c in r.strip("|").split("|")][columns.index(column)] for r in rows}
    assert len(rows) == 2 and len(values) == 2, (columns, rows)
