"""Results files read back by every tool: a file that is not what the harness writes ends in one line naming
the file, the line and the field, through each public command."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from tests.helpers.fake_runs import UTTERANCES, make_run
from w2v2bench.cli import analysis, compare, nightly, table
from w2v2bench.cli import score as rescore
from w2v2bench.results import ResultsFileError, read_summary, read_transcripts, remeasured


def _edit_row(number: int, change):
    """transcripts.jsonl with row `number` (1-based) replaced by change(row)."""

    def edit(run: Path) -> None:
        path = run / "transcripts.jsonl"
        lines = path.read_text().splitlines()
        lines[number - 1] = json.dumps(change(json.loads(lines[number - 1])))
        path.write_text("\n".join(lines) + "\n")

    return edit


def _append_first_row(run: Path) -> None:
    path = run / "transcripts.jsonl"
    path.write_text(path.read_text() + path.read_text().splitlines()[0] + "\n")


def _summary(content: str):
    return lambda run: (run / "summary.json").write_text(content)


def _summary_edit(change):
    def edit(run: Path) -> None:
        path = run / "summary.json"
        path.write_text(json.dumps(change(json.loads(path.read_text()))))

    return edit


BROKEN = [
    # what, edit of a good run folder, fragment of the one-line error
    ("a row twice", _append_first_row, "transcripts.jsonl:7: field id: '1089-134686-0000' is also on line 1"),
    ("text and error both null", _edit_row(2, lambda r: {**r, "text": None}),
     "transcripts.jsonl:2: field text is null but error is null"),
    ("a negative count", _edit_row(3, lambda r: {**r, "substitutions": -5}),
     "transcripts.jsonl:3: field substitutions: input should be greater than or equal to 0"),
    ("a count written as a string", _edit_row(3, lambda r: {**r, "substitutions": "3"}),
     "transcripts.jsonl:3: field substitutions: input should be a valid integer"),
    ("an index written as a string", _edit_row(4, lambda r: {**r, "index": "3"}), "transcripts.jsonl:4: field index"),
    ("an index beyond the rows", _edit_row(4, lambda r: {**r, "index": 5000}), "5000 is beyond the file's 6 rows"),
    ("a row that is a JSON list", _edit_row(5, lambda r: [1, 2]), "transcripts.jsonl:5: expected a JSON object"),
    ("a row that is not JSON", lambda run: (run / "transcripts.jsonl").write_text("{oops\n"), "not a JSON line"),
    ("a summary that is a JSON list", _summary("[1, 2]"), "summary.json: expected a JSON object, found list"),
    ("a summary that is not JSON", _summary("{oops"), "summary.json: not a JSON summary"),
    ("a summary of another schema", _summary('{"schema_version": 9}'), "schema_version: 9, expected one of [1, 2]"),
    ("JSON nested 50,000 deep", lambda run: (run / "transcripts.jsonl").write_text("[" * 50_000 + "\n"),
     "transcripts.jsonl:1: not a JSON line"),
    ("a count of 2**63", _edit_row(1, lambda r: {**r, "substitutions": 2**63}), "field substitutions"),
]  # fmt: skip


def _remeasured(summary: dict) -> dict:
    return {**summary, "measurement": remeasured(summary)}


# what only a reader of the whole run sees (compare): the summary and the rows disagree
INCONSISTENT = [
    ("counts that are not those of the texts", _edit_row(1, lambda r: {**r, "substitutions": 30}),
     "transcripts.jsonl:1: the edit counts"),
    ("a summary that counts other rows", _summary_edit(lambda s: {**s, "n_utterances": 7}),
     "field measurement.series.data.n_utterances: 6, but the summary's own fields make 7"),
    ("... and its record made again", _summary_edit(lambda s: _remeasured({**s, "n_utterances": 7})),
     "says 7 utterances, 0 failed; transcripts.jsonl has 6"),
    ("a record that claims another id list", _summary_edit(lambda s: {**s, "measurement": {
        **s["measurement"], "fingerprints": {**s["measurement"]["fingerprints"], "ids_sha256": "0" * 64}}}),
     "field measurement.series.data.ids_sha256"),
    ("... and its series with it", _summary_edit(lambda s: _remeasured({**s, "measurement": {
        **s["measurement"], "fingerprints": {**s["measurement"]["fingerprints"], "ids_sha256": "0" * 64}}})),
     "field measurement.fingerprints.ids_sha256 is not the hash of transcripts.jsonl's ids"),
    ("a wer of Infinity", _summary_edit(lambda s: {**s, "wer": math.inf}), "field wer"),
]  # fmt: skip


def run_tool(module, argv, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", [module.__name__, *argv])
    try:
        status = module.main() if module is not table else table.main(argv)
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status or 0, captured.err


@pytest.mark.parametrize("what,edit,message", BROKEN, ids=[b[0] for b in BROKEN])
def test_every_tool_refuses_a_broken_results_file_in_one_line(tmp_path, monkeypatch, capsys, what, edit, message):
    good, broken = make_run(tmp_path / "good"), make_run(tmp_path / "broken")
    edit(broken)
    tools = [
        (rescore, ["run=" + str(broken)]),
        (analysis, ["run=" + str(broken)]),
        (compare, [f"a={good}", f"b={broken}", f"out={tmp_path / 'cmp'}"]),
    ]
    for module, argv in tools:
        status, err = run_tool(module, argv, monkeypatch, capsys)
        assert status == 1 and err.count("\n") == 1 and message in err, (module.__name__, err)
        assert str(broken) in err


@pytest.mark.parametrize("what,edit,message", INCONSISTENT, ids=[b[0] for b in INCONSISTENT])
def test_compare_refuses_a_run_whose_summary_and_rows_disagree(tmp_path, monkeypatch, capsys, what, edit, message):
    good, broken = make_run(tmp_path / "good"), make_run(tmp_path / "broken")
    edit(broken)
    status, err = run_tool(compare, [f"a={good}", f"b={broken}", f"out={tmp_path / 'cmp'}"], monkeypatch, capsys)
    assert status == 1 and err.count("\n") == 1 and message in err, err


def test_what_the_harness_writes_reads_back(tmp_path):
    # a run that scored nothing has a NaN WER; texts may hold characters str.splitlines() breaks lines on
    run = make_run(tmp_path / "run", failed={u[0]: "cannot decode audio" for u in UTTERANCES})
    assert math.isnan(read_summary(run / "summary.json", complete=True)["wer"])
    odd = make_run(tmp_path / "odd", hyps={"1089-134686-0000": "HE HOPED\u2028THERE\x85WOULD"})
    assert "\u2028" in read_transcripts(odd / "transcripts.jsonl")[0]["pred_text"]


def test_table_skips_an_unreadable_run_and_tabulates_the_others(tmp_path, monkeypatch, capsys):
    make_run(tmp_path / "root" / "a")
    make_run(tmp_path / "root" / "b", split="other")
    (tmp_path / "root" / "b" / "summary.json").write_text("{oops")
    status, err = run_tool(table, [f"root={tmp_path / 'root'}"], monkeypatch, capsys)
    assert status == 0 and "skipped" in err and "b/summary.json: not a JSON summary" in err
    assert (tmp_path / "root" / "table.md").read_text().count("| demo") == 1


@pytest.mark.parametrize("argv,message", [(["foo"], "'foo': expected root=<folder>"), (["root=/nowhere"], "no such")])
def test_table_says_what_is_wrong_with_its_arguments(monkeypatch, capsys, argv, message):
    status, err = run_tool(table, argv, monkeypatch, capsys)
    assert status == 1 and err.count("\n") == 1 and message in err


def test_score_names_an_unknown_normalizer(tmp_path, monkeypatch, capsys):
    status, err = run_tool(rescore, [f"run={make_run(tmp_path / 'run')}", "normalizer=foo"], monkeypatch, capsys)
    assert status == 1 and err.count("\n") == 1 and "normalizer='foo': expected one of" in err


def test_the_nightly_reports_an_unreadable_run_as_a_problem(tmp_path, monkeypatch, capsys):
    make_run(tmp_path / "tonight" / "a")
    make_run(tmp_path / "tonight" / "b", split="other")
    (tmp_path / "tonight" / "b" / "transcripts.jsonl").write_text("[1]\n")
    (tmp_path / "tonight" / "b" / "summary.json").write_text("[1]")
    monkeypatch.chdir(tmp_path)
    argv = [f"runs={tmp_path / 'tonight'}", f"history={tmp_path / 'h.sqlite'}"]
    status, err = run_tool(nightly, argv, monkeypatch, capsys)
    assert status == 6 and "Traceback" not in err  # not whole: an unreadable run
    report = json.loads((tmp_path / "tonight" / "nightly.json").read_text())
    assert any("unreadable run" in p and "expected a JSON object" in p for p in report["problems"])


def test_a_real_run_reads_back(tmp_path):
    run = make_run(tmp_path / "run")
    assert len(read_transcripts(run / "transcripts.jsonl")) == 6
    assert read_summary(run / "summary.json", complete=True)["n_utterances"] == 6
    with pytest.raises(ResultsFileError, match="not complete"):
        read_summary(make_run(tmp_path / "running", status="running") / "summary.json", complete=True)


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"wer_ci95": [0.3, 0.1]}, "its low bound above its high one"),
        ({"wer_ci95": [0.1, float("nan")]}, "wer_ci95"),
        ({"wer_ci95": ["0.1", 0.2]}, "wer_ci95"),
        ({"interval": None}, "how were they made"),
        (
            {
                "interval": {
                    "method": "bootstrap-percentile",
                    "level": 0.95,
                    "unit": "utterance",
                    "blocks": 6,
                    "samples": 0,
                    "seed": 0,
                }
            },
            "0 resamples of 6 blocks",
        ),  # fmt: skip
        (
            {
                "interval": {
                    "method": "bootstrap-percentile",
                    "level": 0.95,
                    "unit": "utterance",
                    "blocks": 99,
                    "samples": 1000,
                    "seed": 0,
                }
            },
            "for a run of 6 utterances",
        ),  # fmt: skip
        (
            {
                "interval": {
                    "method": "bootstrap-percentile",
                    "level": 0.95,
                    "unit": "utterance",
                    "blocks": 6,
                    "samples": 1000,
                    "seed": 0,
                    "extra": 1,
                }
            },
            "interval",
        ),  # fmt: skip
    ],
)
def test_a_summary_whose_interval_cannot_be_so_is_refused_in_one_line(tmp_path, fields, message):
    # issue #30: the intervals on read, as the counts are (what an attack found)
    run = make_run(tmp_path / "run")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["wer_ci95"] is not None and read_summary(run / "summary.json")  # 6 utterances: resampled
    summary.update(fields)
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ResultsFileError, match=message):
        read_summary(run / "summary.json")


@pytest.mark.slow  # the whole shipped test-other (10 speakers: the speaker unit), about 25 s
def test_a_runs_interval_is_the_same_on_every_computation_and_brackets_its_wer(tmp_path):
    # issue #30, done when: wer_ci95 of a fixed run is the same on two computations and brackets the WER
    from tests.helpers import LIBRISPEECH
    from tests.helpers.harness import evaluate
    from w2v2bench.metrics.significance import run_intervals
    from w2v2bench.results import read_run

    out = tmp_path / "run"
    assert evaluate("model=demo", "data=local", f"data.root={LIBRISPEECH}", "split=other", "device=cpu",
                    "progress=false", f"output_dir={out}") == 0  # fmt: skip
    summary, rows = read_run(out)
    low, high = summary["wer_ci95"]
    assert low <= summary["wer"] <= high and low < high
    again = run_intervals(rows)
    assert [again["wer_ci95"], again["cer_ci95"], again["interval"]] == [
        summary["wer_ci95"], summary["cer_ci95"], summary["interval"]
    ]  # fmt: skip
    assert summary["interval"]["unit"] == "speaker" and summary["interval"]["blocks"] >= 5
