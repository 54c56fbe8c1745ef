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
    """(a byte-identical copy of the demo checkpoint in another folder, a copy with one tensor changed, a copy with
    the same weights and two letters of its vocabulary swapped)."""
    root = tmp_path_factory.mktemp("checkpoints")
    copy, changed, vocab = root / "copy", root / "changed", root / "vocab"
    for folder in (copy, changed, vocab):
        shutil.copytree(asset_path("demo-model"), folder)
    (copy / "training_args.bin").write_bytes(b"a Trainer's file beside the weights: not weights")
    tensors = load_file(changed / "model.safetensors")
    name = sorted(tensors)[5]
    tensors[name] = tensors[name] * 1.001
    save_file(tensors, changed / "model.safetensors", metadata={"format": "pt"})
    tokens = json.loads((vocab / "vocab.json").read_text())
    tokens["E"], tokens["T"] = tokens["T"], tokens["E"]
    (vocab / "vocab.json").write_text(json.dumps(tokens))
    return copy, changed, vocab


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
        f"is not the checkpoint 'demo' pins (model.pin in its conf/model/ file): filed as '{name}'"
        in capsys.readouterr().out
    )
    again = run(tmp_path / "again", f"model.checkpoint={checkpoints[1]}", "limit=3")[1]
    assert again["config"]["model"]["name"] == name  # the same folder, the same name
    # without output_dir, the derived name is the folder under results/ (never a path out of it)
    mine = run(tmp_path / "mine", f"model.checkpoint={checkpoints[1]}", "limit=3", "model.name=mine")[1]
    assert mine["config"]["model"]["name"] == "mine" and mine["measurement"]["fingerprints"]["pin"] == "renamed"
    assert mine["reference"] is None


def test_the_same_weights_with_another_vocabulary_are_not_the_pinned_checkpoint(tmp_path, checkpoints):
    # the pin covers what decides the transcripts: weights, config, vocabulary, tokenizer and preprocessor files
    status, summary = run(tmp_path / "run", f"model.checkpoint={checkpoints[2]}", "limit=3")
    assert status == 0 and summary["config"]["model"]["name"].startswith("local/vocab-")
    assert summary["reference"] is None and summary["measurement"]["fingerprints"]["pin"] == "other weights"


def test_a_pin_on_the_command_line_is_recorded(tmp_path, checkpoints):
    changed = run(tmp_path / "first", f"model.checkpoint={checkpoints[1]}", "limit=3")[1]["measurement"]
    digest = changed["fingerprints"]["checkpoint_sha256"]
    status, summary = run(tmp_path / "run", f"model.checkpoint={checkpoints[1]}", "limit=3",
                          f"model.pin.sha256=[{digest}]")  # fmt: skip
    record = summary["measurement"]["fingerprints"]
    assert status == 0 and summary["config"]["model"]["name"] == "demo" and record["pin"] == "matched"
    assert record["pinned"]["sha256"] == [digest]  # the pin it was held to, whoever gave it


def test_a_long_folder_name_still_makes_a_name_that_fits(tmp_path, checkpoints, monkeypatch):
    folder = tmp_path / ("L" * 250)
    shutil.copytree(checkpoints[1], folder)
    monkeypatch.chdir(tmp_path)  # output_dir's default: results/<model.name>/... here
    assert evaluate(*DEMO, f"model.checkpoint={folder}", "limit=1") == 0
    (summary,) = (tmp_path / "results").rglob("summary.json")
    name = json.loads(summary.read_text())["config"]["model"]["name"]
    assert name == f"local/{'L' * 64}-{name[-8:]}" and summary.is_relative_to(tmp_path / "results" / name)


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
     {"series.model", "fingerprints.weights", "fingerprints.checkpoint", "fingerprints.checkpoint_sha256",
      "fingerprints.pin"}),
    ("precision", "precision=bf16", "precision", {"series.protocol.precision"}),
    ("normaliser", "normalizer=basic", "normalizer", {"series.protocol.normalizer"}),
    ("limit", "limit=4", "coverage",
     {"series.data.n_utterances", "series.data.ids_sha256", "fingerprints.ids_sha256", "fingerprints.n_utterances",
      "fingerprints.audio_sha256"}),
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


def test_a_runs_weight_files_are_read_once_for_both_of_its_ids(tmp_path, monkeypatch):
    # the weights' id and the checkpoint's id share the weight files: one read each (0.28 s per 360 MB here)
    from w2v2bench import provenance

    folder = tmp_path / "ckpt"
    shutil.copytree(asset_path("demo-model"), folder)
    monkeypatch.setattr(provenance, "RACY_S", 0.0)  # the copy is fresh: let it count as settled
    reads = []
    real = provenance.hashlib.file_digest
    monkeypatch.setattr(provenance.hashlib, "file_digest", lambda f, d: reads.append(f.name) or real(f, d))
    status, summary = run(tmp_path / "run", f"model.checkpoint={folder}", "model.name=copy", "limit=1")
    assert status == 0
    weights = [r for r in reads if r.endswith(".safetensors")]
    assert weights == [str(folder / "model.safetensors")], reads
    # and each id is the one a fresh read gives
    monkeypatch.setattr(provenance, "_DIGESTS", {})
    assert summary["model"]["weights"] == provenance.weights_id(str(folder), None, local=True)
    assert summary["measurement"]["fingerprints"]["checkpoint_sha256"] == provenance.checkpoint_id(folder)


def test_weights_rewritten_at_once_with_the_same_size_get_a_new_id(tmp_path, monkeypatch):
    # a file system whose times are whole seconds (as some are): a rewrite within the second keeps size, times
    # and inode; a file changed so recently is read again each time, never taken from what this process read
    import os

    from w2v2bench import provenance

    real_stat = os.stat

    def coarse(path, *a, **k):
        st = real_stat(path, *a, **k)
        extra = {f: getattr(st, f) for f in ("st_blksize", "st_blocks", "st_rdev")}
        for t in ("atime", "mtime", "ctime"):
            extra |= {f"st_{t}": float(int(getattr(st, f"st_{t}"))), f"st_{t}_ns": int(getattr(st, f"st_{t}")) * 10**9}
        return os.stat_result(tuple(st)[:10], extra)

    folder = tmp_path / "ckpt"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"a" * 64)
    monkeypatch.setattr(provenance.os, "stat", coarse)
    ids = []
    for content in (b"b" * 64, b"a" * 64):
        ids.append((provenance.weights_id(str(folder), None, local=True), provenance.checkpoint_id(folder)))
        with weights.open("r+b") as handle:  # the same inode, the same size
            handle.write(content)
    ids.append((provenance.weights_id(str(folder), None, local=True), provenance.checkpoint_id(folder)))
    assert ids[0] != ids[1] and ids[0] == ids[2], ids


def test_pinned_weights_that_change_while_they_load_are_one_line_not_a_run_under_the_pin(
    tmp_path, checkpoints, monkeypatch
):
    # judged the pinned weights before the load, other files after it: never filed under the pin with their hash
    from w2v2bench import harness
    from w2v2bench.harness import ONE_LINE_ERRORS
    from w2v2bench.model import ModelError

    folder = tmp_path / "copy"
    shutil.copytree(checkpoints[0], folder)
    real = harness.load_model

    def load_then_replace(*args, **kwargs):
        loaded = real(*args, **kwargs)
        shutil.copy(checkpoints[1] / "model.safetensors", folder / "model.safetensors")
        return loaded

    monkeypatch.setattr(harness, "load_model", load_then_replace)
    with pytest.raises(ModelError, match=r"its files changed while it loaded \(sha256:\w+ is not the 'demo' pin's\)"):
        evaluate(*DEMO, f"model.checkpoint={folder}", f"output_dir={tmp_path / 'run'}", "limit=1")
    assert ModelError in ONE_LINE_ERRORS  # the command line prints it as one line, exit 1
    failed = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert failed["status"] == "failed" and "wer" not in failed  # recorded as a failure, never as the pin's figure
