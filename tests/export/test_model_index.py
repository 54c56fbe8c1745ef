"""A model-index entry claims only what the run measured (issue #27, item 4 in part): the official LibriSpeech
split only for all of it (the run's own count, not limit=), a variant in the metric's name, one model per index."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers import official_ids
from tests.helpers.fake_runs import row, write_run
from w2v2bench.export import ExportError, export
from w2v2bench.results import remeasured

WHOLE_TEST_CLEAN = 2620


def run_of(folder, n: int, name: str = "m", ids: list[str] | None = None, **summary_changes):
    """A test-clean run of n utterances: the official ids when n is the split's size (unless `ids` says)."""
    ids = ids or (official_ids("test-clean") if n == WHOLE_TEST_CLEAN else [f"1-1-{i:04d}" for i in range(n)])
    rows = [row(uid, "A CAT", "A CAT" if i % 10 else "A HAT") for i, uid in enumerate(ids)]
    run = write_run(folder, rows, name=name)
    summary = json.loads((run / "summary.json").read_text())
    for key, value in summary_changes.items():
        if key.startswith("config__"):
            summary["config"][key.removeprefix("config__")] = value
        else:
            summary[key] = value
    summary["measurement"] = remeasured(summary)
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def model_index(record: dict, out) -> list[dict] | None:
    path = out / "model-index.yaml"
    return yaml.safe_load(path.read_text())["model-index"][0]["results"] if path.exists() else None


def test_a_subset_never_claims_the_official_split(tmp_path):
    # 30 utterances with no limit= set: the count the run reported decides, not the config
    run = run_of(tmp_path / "run", 30)
    record = export([run], tmp_path / "out", formats=["model-index"])
    assert model_index(record, tmp_path / "out") is None
    (why,) = record["model_index_skipped"]
    assert "30 utterances: a model card names openslr/librispeech_asr test-clean only for all 2620 of it" in why


def test_the_whole_split_is_the_plain_test_wer(tmp_path):
    run = run_of(tmp_path / "run", WHOLE_TEST_CLEAN)
    export([run], tmp_path / "out", formats=["model-index"])
    (result,) = model_index({}, tmp_path / "out")
    assert result["dataset"]["type"] == "openslr/librispeech_asr" and result["metrics"][0]["name"] == "Test WER"


def test_the_official_count_of_other_ids_is_no_official_split(tmp_path):
    # 2620 utterances that are not test-clean's 2620 (another set's, or a tree with files swapped): the ids decide
    other = [f"9-9-{i:04d}" for i in range(WHOLE_TEST_CLEAN)]
    run = run_of(tmp_path / "run", WHOLE_TEST_CLEAN, ids=other)
    record = export([run], tmp_path / "out", formats=["model-index", "leaderboard"], model_id="org/m")
    assert model_index(record, tmp_path / "out") is None
    assert "ids are not the official test-clean list" in record["model_index_skipped"][0]
    (name,) = [p.name for p in (tmp_path / "out").glob("*.jsonl")]
    assert "librispeech_test.clean" not in name and "subset2620" in name
    summary = json.loads((run / "summary.json").read_text())["measurement"]["series"]["data"]
    assert summary["coverage"] == "subset" and not summary["official"]


@pytest.mark.parametrize(
    "changes,name",
    [
        ({"backend": {"name": "onnxruntime", "precision": "int8"}}, "Test WER (onnxruntime int8)"),
        ({"config__precision": "bf16"}, "Test WER (bf16)"),
        ({"normalizer": "whisper"}, "Test WER (whisper-normalised)"),
        ({"decoder": {"name": "lm"}}, "Test WER (n-gram LM)"),
    ],
)
def test_a_variant_says_so_in_the_metric_name(tmp_path, changes, name):
    run = run_of(tmp_path / "run", WHOLE_TEST_CLEAN, **changes)
    export([run], tmp_path / "out", formats=["model-index"])
    (result,) = model_index({}, tmp_path / "out")
    assert [m["name"] for m in result["metrics"]] == [name, name.replace("WER", "CER")]


def test_naive_batching_is_no_cards_figure(tmp_path):
    run = run_of(tmp_path / "run", WHOLE_TEST_CLEAN, config__batching="naive")
    record = export([run], tmp_path / "out", formats=["model-index"])
    assert model_index(record, tmp_path / "out") is None and "batching=naive" in record["model_index_skipped"][0]


def test_model_id_cannot_merge_two_models(tmp_path):
    a = run_of(tmp_path / "a", WHOLE_TEST_CLEAN, name="official")
    b = run_of(tmp_path / "b", WHOLE_TEST_CLEAN, name="converted")
    with pytest.raises(ExportError, match=r"model_id='org/m': the runs are of 2 different models .* export them apart"):
        export([a, b], tmp_path / "out", model_id="org/m", formats=["model-index"])
    assert not (tmp_path / "out").exists()


def test_a_subsets_leaderboard_file_is_outside_the_leaderboards_columns(tmp_path):
    # its scorer picks LS Clean by the substring librispeech_test.clean: a subset's name must not carry it
    small, whole = run_of(tmp_path / "small", 30), run_of(tmp_path / "whole", WHOLE_TEST_CLEAN)
    record = export([small], tmp_path / "a", model_id="org/m", formats=["leaderboard"])
    (name,) = [p.name for p in (tmp_path / "a").glob("*.jsonl")]
    assert "librispeech_test.clean" not in name and "librispeech-subset30_test.clean" in name
    assert "30 utterances, not the official 2620" in record["runs"][0]["leaderboard_subset"]
    record = export([whole], tmp_path / "b", model_id="org/m", formats=["leaderboard"])
    (name,) = [p.name for p in (tmp_path / "b").glob("*.jsonl")]
    assert name.endswith("_librispeech_test.clean.jsonl") and "leaderboard_subset" not in record["runs"][0]


def test_a_derived_local_name_is_not_prefixed_twice(tmp_path):
    # a checkpoint filed under a name of its own (local/<folder>-<hash>: docs/models.md) keeps it as its model id
    run = run_of(tmp_path / "run", 30, name="local/mine-1234abcd")
    record = export([run], tmp_path / "out", formats=["leaderboard"])
    assert record["model_id"] == "local/mine-1234abcd"
    (name,) = [p.name for p in (tmp_path / "out").glob("*.jsonl")]
    assert name.startswith("MODEL_local-mine-1234abcd_")
