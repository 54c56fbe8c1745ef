import json
import subprocess
import sys

import pytest

from tests.helpers.fake_runs import UTTERANCES, make_run
from w2v2bench.rescore import rescore
from w2v2bench.table import gather

CARD = {"wer": 0.2, "tolerance": 0.5, "source": "model card", "passed": True}


def test_rescoring_with_the_runs_normaliser_reproduces_every_figure(tmp_path):
    run = make_run(tmp_path / "run", failed={"121-121726-0002": "unreadable"}, reference=CARD)
    new, out = rescore(run)
    old = json.loads((run / "summary.json").read_text())
    assert out == run / "rescore" / "none"
    for key in (
        "wer",
        "cer",
        "n_utterances",
        "n_failed",
        "ref_words",
        "word_errors",
        "ref_chars",
        "char_errors",
        "reference",
    ):
        assert new[key] == old[key], key
    assert new["status"] == "rescored" and new["rescore"]["source_normalizer"] == "none"
    assert [json.loads(line) for line in (out / "transcripts.jsonl").read_text().splitlines()] == [
        json.loads(line) for line in (run / "transcripts.jsonl").read_text().splitlines()
    ]
    for name in ("summary.json", "wer.md", "wer.csv", "analysis.md", "analysis.json", "ref.trn", "hyp.trn"):
        assert (out / name).is_file(), name


@pytest.mark.parametrize(
    "ref,hyp,norm,errors",
    [
        ("MISTER SMITH", "MR SMITH", "none", 1),
        ("MISTER SMITH", "MR SMITH", "whisper", 0),
        ("HE'S TWENTY FIVE", "he's 25", "whisper", 0),
        ("COLOUR", "COLOR", "whisper", 0),
        ("HELLO, WORLD", "hello world", "basic", 0),
        ("HELLO, WORLD", "hello world", "none", 2),
    ],
)
def test_normalisers(tmp_path, ref, hyp, norm, errors):
    if norm == "whisper":
        pytest.importorskip("whisper_normalizer", reason="optional: pip install whisper-normalizer")
    new, out = rescore(make_run(tmp_path / "run", [("1-2-3", ref, hyp, 2.0)]), norm)
    assert sum(new["word_errors"].values()) == errors
    assert new["normalizer"] == norm and out.name == norm
    assert json.loads((out / "analysis.json").read_text())["normalizer"] == norm


def test_the_reference_is_not_checked_under_another_normaliser(tmp_path):
    new, _ = rescore(make_run(tmp_path / "run", reference=CARD), "basic")
    assert new["reference"] is None
    assert (
        new["reference_note"] == "not checked: re-scored with normalizer='basic', the reference figures are for 'none'"
    )


def test_a_rescore_is_not_taken_for_a_run(tmp_path):
    rescore(make_run(tmp_path / "results" / "run"), "basic")
    table, _ = gather(tmp_path / "results")
    assert len(table) == 1 and table["run"][0] == str(tmp_path / "results" / "run")


def bench_score(*args):
    return subprocess.run([sys.executable, "-m", "w2v2bench.score", *args], capture_output=True, text=True)


def test_cli(tmp_path):
    run = make_run(tmp_path / "run", hyps={UTTERANCES[0][0]: "he hoped there would be stew for dinner"})
    done = bench_score(f"run={run}", "normalizer=basic", f"out={tmp_path / 'basic'}")
    assert done.returncode == 0, done.stderr
    assert "re-scored" in done.stdout and "basic" in done.stdout
    summary = json.loads((tmp_path / "basic" / "summary.json").read_text())
    assert summary["wer"] < json.loads((run / "summary.json").read_text())["wer"]
    assert "normalizer" in bench_score("--help").stdout
    done = bench_score(f"run={run}", "normalizer=shouty")
    assert done.returncode == 1 and "normalizer='shouty': expected one of ['basic', 'none', 'whisper']" in done.stderr
    assert bench_score().returncode == 2


# ---- nothing overwritten (issue #27, item 5) ----------------------------------------------------------------


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_rescore_never_lands_on_a_run_or_a_users_files(tmp_path):
    from w2v2bench.files import OutputFolderError

    run, other = make_run(tmp_path / "run"), make_run(tmp_path / "other", model="other")
    before = {f: snapshot(f) for f in (run, other)}
    for out in (run, other):  # its own folder, another run
        with pytest.raises(OutputFolderError, match=r"is a run folder: a re-score never replaces a run; .*e\.g\. out="):
            rescore(run, "basic", out)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    with pytest.raises(OutputFolderError, match=r"holds notes\.txt, which score did not write: nothing there is"):
        rescore(run, "basic", mine)
    assert {f: snapshot(f) for f in (run, other)} == before and (mine / "notes.txt").read_text() == "my notes"


def test_a_second_rescore_into_the_same_folder_needs_overwrite(tmp_path):
    from w2v2bench.files import OutputFolderError

    run = make_run(tmp_path / "run")
    _, out = rescore(run, "basic")
    with pytest.raises(OutputFolderError, match=r"holds a re-score already: overwrite=true replaces it"):
        rescore(run, "basic")
    new, again = rescore(run, "basic", overwrite=True)
    assert again == out and new["status"] == "rescored"


def test_the_command_line_refuses_out_as_the_run_in_one_line(tmp_path):
    run = make_run(tmp_path / "run")
    before = snapshot(run)
    done = bench_score(f"run={run}", "normalizer=basic", f"out={run}")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1 and "is a run folder" in lines[0], done.stderr
    assert snapshot(run) == before
