import json
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import LIBRISPEECH
from tests.helpers.fake_runs import UTTERANCES, make_run
from w2v2bench.analysis import alignment_text, analyse, bucket_label, write_analysis
from w2v2bench.metrics import Counts
from w2v2bench.metrics.edits import word_counts
from w2v2bench.metrics.normalizers import normalizer
from w2v2bench.results import load_rows


def rows_of(pairs, durations=None, speakers=None):
    return [
        {
            "id": f"s{k}",
            "speaker": (speakers or {}).get(k, "spk"),
            "duration_s": (durations or {}).get(k, 3.0),
            "text": ref,
            "pred_text": hyp,
            "error": None,
        }
        for k, (ref, hyp) in enumerate(pairs)
    ]


def test_error_counts_are_per_word_from_the_alignment():
    rows = rows_of([("A B C", "A X C"), ("A B C D", "A C D"), ("THE CAT SAT", "THE BAT SAT ON"), ("B", "X")])
    a = analyse(rows, normalizer("none"), "none")
    assert a.substitutions == {("B", "X"): 2, ("CAT", "BAT"): 1}
    assert a.deletions == {"B": 1}
    assert a.insertions == {"ON": 1}
    total = sum((word_counts(r["text"], r["pred_text"]) for r in rows), Counts())
    assert a.words == total
    assert a.to_json()["substitutions"][0] == {"ref": "B", "hyp": "X", "count": 2}


@pytest.mark.parametrize(
    "duration_s,bucket",
    [(0.5, "0-2 s"), (1.99, "0-2 s"), (2.0, "2-5 s"), (9.9, "5-10 s"), (14.0, "10-15 s"), (35.0, "20+ s")],
)
def test_length_buckets(duration_s, bucket):
    a = analyse(rows_of([("A B", "A")], durations={0: duration_s}), normalizer("none"), "none")
    filled = [g for g in a.lengths if g["n_utterances"]]
    assert [(g["bucket"], g["wer"]) for g in filled] == [(bucket, 0.5)]
    assert bucket_label(len(a.lengths) - 1) == "20+ s"


def test_speaker_and_length_tables_re_aggregate_the_counts():
    pairs = [("A B C D", "A B C D"), ("A B", "A"), ("A B C", "X Y Z W")]
    a = analyse(
        rows_of(pairs, durations={0: 1, 1: 1, 2: 7}, speakers={0: "x", 1: "y", 2: "y"}), normalizer("none"), "none"
    )
    assert [(s["speaker"], s["errors"], s["ref_words"], s["wer"]) for s in a.speakers] == [
        ("y", 5, 5, 1.0),
        ("x", 0, 4, 0.0),
    ]
    assert sum(g["errors"] for g in a.lengths) == a.words.errors == 5
    assert [g["wer"] for g in a.lengths if g["n_utterances"]] == [1 / 6, 4 / 3]
    assert [g["wer"] for g in a.lengths if not g["n_utterances"]] == [None] * (len(a.lengths) - 2)


def test_worst_utterances_come_first_with_their_alignment():
    a = analyse(rows_of([("A B C", "A B C"), ("A B", "A"), ("A B C", "X B C D")]), normalizer("none"), "none")
    assert [w["id"] for w in a.worst] == ["s2", "s1"]  # the error-free utterance is not listed
    assert a.worst[0]["alignment"] == "REF: A B C *\nHYP: X B C D\n     S     I"


def test_alignment_labels_and_empty_sides():
    assert alignment_text("A B", "A C", ("OLD", "NEW")) == "OLD: A B\nNEW: A C\n       S"
    assert alignment_text("A", "") == "REF: A\nHYP: *\n     D"
    assert alignment_text("", "") == "REF:\nHYP:"


def test_write_analysis_writes_every_file_next_to_the_transcripts(tmp_path):
    run = make_run(tmp_path / "run", failed={"121-121726-0002": "decode error: corrupt file"})
    write_analysis(run)
    for name in ("analysis.md", "analysis.json", "wer_by_length.png", "ref.trn", "hyp.trn"):
        assert (run / name).stat().st_size > 0, name
    summary = json.loads((run / "summary.json").read_text())
    analysis = json.loads((run / "analysis.json").read_text())
    assert analysis["wer"] == pytest.approx(summary["wer"])
    assert analysis["word_errors"] == summary["word_errors"] and analysis["ref_words"] == summary["ref_words"]
    assert analysis["failed"] == [{"id": "121-121726-0002", "error": "decode error: corrupt file"}]
    assert analysis["title"] == "demo on librispeech test-clean"
    md = (run / "analysis.md").read_text()
    assert "| COUNSELLED | COUNSELED | 1 |" in md and "![WER by utterance length](wer_by_length.png)" in md
    assert "## Failed utterances" in md
    ref = (run / "ref.trn").read_text().splitlines()
    hyp = (run / "hyp.trn").read_text().splitlines()
    assert len(ref) == len(hyp) == len(UTTERANCES) - 1  # the failed utterance is not scored
    assert ref[0] == "HE HOPED THERE WOULD BE STEW FOR DINNER (1089-134686-0000)"
    assert hyp[3] == "ALSO POPULAR CONTRIVANCE (121-121726-0000)"


def test_trn_and_analysis_use_the_runs_normaliser(tmp_path):
    run = make_run(
        tmp_path / "run", [("u-1-1", "HELLO, WORLD", "hello world", 2.0), ("u-1-2", "OK", "", 1.0)], norm="basic"
    )
    analysis = write_analysis(run, plot=False)
    assert analysis.normalizer == "basic" and analysis.words.errors == 1  # the empty hypothesis
    assert (run / "hyp.trn").read_text() == "HELLO WORLD (u-1-1)\n(u-1-2)\n"
    assert write_analysis(run, "none", plot=False).words.errors == 3


def test_cli_on_an_old_run(tmp_path):
    run = make_run(tmp_path / "run")
    done = subprocess.run([sys.executable, "-m", "w2v2bench.analysis", f"run={run}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "wrote analysis.md" in done.stdout and (run / "analysis.md").exists()
    with pytest.raises(FileNotFoundError, match="no transcripts.jsonl"):
        write_analysis(tmp_path)


def test_fast_enough_to_run_after_every_run(tmp_path):
    utterances = [(f"1-2-{k:04d}", *UTTERANCES[k % len(UTTERANCES)][1:]) for k in range(3000)]
    run = make_run(tmp_path / "run", utterances)
    start = time.perf_counter()
    write_analysis(run, plot=False)
    assert time.perf_counter() - start < 2.0  # about 0.15 s on one core; the budget leaves room for a busy CI
    assert len(load_rows(run)) == 3000


# ----------------------------------------------------------------------------------------------------------
# sclite

SCLITE = shutil.which("sclite") or next(
    (p for p in ("/usr/lib/sctk/bin/sclite", "/usr/bin/sclite") if Path(p).is_file()), None
)
needs_sclite = pytest.mark.skipif(
    SCLITE is None, reason="sclite (NIST SCTK) is not installed: apt-get install sctk (.ci/run installs it)"
)


def sclite_totals(folder: Path) -> tuple[int, int]:
    """(total errors, reference words) from sclite's detailed report on folder/ref.trn and folder/hyp.trn."""
    done = subprocess.run(
        [
            SCLITE,
            "-r",
            str(folder / "ref.trn"),
            "trn",
            "-h",
            str(folder / "hyp.trn"),
            "trn",
            "-i",
            "rm",
            "-s",
            "-o",
            "dtl",
            "stdout",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    errors = re.search(r"Percent Total Error\s*=.*\(\s*(\d+)\)", done.stdout)
    words = re.search(r"Ref\. words\s*=\s*\(\s*(\d+)\)", done.stdout)
    assert errors and words, done.stdout
    return int(errors.group(1)), int(words.group(1))


def realistic_errors(seed: int = 0) -> list[tuple[str, str, str, float]]:
    """The shipped LibriSpeech transcripts with substitutions, deletions and insertions (about 15 % WER)."""
    lines = sorted(
        line.split(" ", 1) for path in LIBRISPEECH.rglob("*.trans.txt") for line in path.read_text().splitlines()
    )
    vocab = sorted({w for _, text in lines for w in text.split()})
    rng, out = random.Random(seed), []
    for uid, text in lines:
        hyp = []
        for word in text.split():
            r = rng.random()
            hyp += [rng.choice(vocab)] if r < 0.08 else [] if r < 0.12 else [word]
            hyp += [rng.choice(vocab)] if rng.random() < 0.04 else []
        out.append((uid, text, " ".join(hyp), 5.0))
    return out


@needs_sclite
def test_sclite_counts_the_same_errors_and_reference_words(tmp_path):
    utterances = realistic_errors()
    run = make_run(tmp_path / "run", utterances, failed={utterances[5][0]: "unreadable"})
    write_analysis(run, plot=False)
    summary = json.loads((run / "summary.json").read_text())
    errors = summary["word_errors"]
    ours = errors["substitutions"] + errors["deletions"] + errors["insertions"]
    assert ours > 100 and sclite_totals(run) == (ours, summary["ref_words"])


@needs_sclite
def test_sclite_weighs_edits_4_3_3_so_it_can_count_more_errors(tmp_path):
    # unit-cost Levenshtein (jiwer): 5 substitutions; sclite (sub 4, del 3, ins 3) prefers 3 D + 2 C + 3 I
    run = make_run(tmp_path / "run", [("1-1-1", "A B C D E", "D E F G H", 1.0)])
    write_analysis(run, plot=False)
    assert json.loads((run / "summary.json").read_text())["word_errors"]["substitutions"] == 5
    assert sclite_totals(run) == (6, 5)
