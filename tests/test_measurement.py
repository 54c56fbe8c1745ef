"""The measurement record (issue #27): what a figure is of (series) and what it was measured with (fingerprints),
defined once (results.measurement); official splits by their ids."""

from __future__ import annotations

import json

import pytest

from tests.helpers import official_ids
from tests.helpers.fake_runs import edit_summary, row, write_run
from w2v2bench.nightly import nightly
from w2v2bench.results import OFFICIAL_SPLITS, ResultsFileError, ids_sha256, read_summary, remeasured
from w2v2bench.table import gather


@pytest.mark.parametrize("split", sorted(OFFICIAL_SPLITS))
def test_the_official_split_hashes_are_those_of_the_openslr_lists(split):
    count, digest = OFFICIAL_SPLITS[split]
    ids = official_ids(split)
    assert len(ids) == len(set(ids)) == count and ids_sha256(ids) == digest
    assert ids_sha256(reversed(ids)) == digest  # the order of a run's rows does not matter
    assert ids_sha256(ids[1:]) != digest


def _summary(folder) -> dict:
    return json.loads((folder / "summary.json").read_text())


def test_another_set_is_its_ids_and_naive_batches_are_their_padding(tmp_path):
    # (attack findings) a 3-utterance copy of a set is not the set; two naive runs that pad differently differ
    rows = [row(f"1-1-{i}", "A CAT", "A CAT") for i in range(4)]
    three, four = write_run(tmp_path / "three", rows[:3]), write_run(tmp_path / "four", rows)
    for run in (three, four):
        edit_summary(run, config={**_summary(run)["config"], "data": {"name": "mine", "partition": "test"}})
    a, b = _summary(three)["measurement"]["series"], _summary(four)["measurement"]["series"]
    assert a["data"]["coverage"] == b["data"]["coverage"] == "whole" and a != b
    naive = {**_summary(four)["config"], "batching": "naive", "batch_size": 8, "max_batch_s": 400.0}
    edit_summary(four, config=naive)
    first = _summary(four)["measurement"]["series_id"]
    edit_summary(four, config={**naive, "max_batch_s": 3.0})
    assert _summary(four)["measurement"]["series_id"] != first


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda s: s["config"].update(limit="3"), "field config.limit"),
        (lambda s: s.update(decoder=[1]), "field decoder"),
    ],
)
def test_a_summary_whose_record_cannot_be_made_is_one_line(tmp_path, edit, message):
    run = write_run(tmp_path / "run", [row("1-1-0", "A CAT", "A CAT")])
    summary = _summary(run)
    summary["schema_version"] = 1  # a version-1 summary: its record is derived from these fields
    del summary["measurement"]
    edit(summary)
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ResultsFileError, match=message):
        read_summary(run / "summary.json")
    frame, skipped = gather(tmp_path)  # the table skips it with one line
    assert frame.empty and len(skipped) == 1 and message in skipped[0]


def test_a_record_that_claims_other_ids_is_refused_by_the_table_and_the_nightly(tmp_path):
    run = write_run(tmp_path / "runs" / "run", [row("1-1-0", "A CAT", "A CAT")])
    summary = _summary(run)
    summary["measurement"]["fingerprints"]["ids_sha256"] = OFFICIAL_SPLITS["test-clean"][1]
    summary["measurement"] = remeasured(summary)  # the series made to match: whole and official
    assert summary["measurement"]["series"]["data"]["official"]
    (run / "summary.json").write_text(json.dumps(summary))
    frame, skipped = gather(tmp_path / "runs")
    assert frame.empty and "ids_sha256 is not the hash of transcripts.jsonl's ids" in skipped[0]
    report = nightly(tmp_path / "runs", tmp_path / "h.sqlite")
    assert report.exit_status == 6 and "ids_sha256 is not the hash" in report.problems[0]
    assert not report.judgements
