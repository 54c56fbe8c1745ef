"""Survive faults: SIGKILL + resume, out-of-memory back-off, the bad-audio matrix, unwritable outputs."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from w2v2bench.data import load_audio, local_utterances
from w2v2bench.model import load_model
from w2v2bench.report import JOURNAL
from w2v2bench.run import run

from .conftest import LIBRISPEECH
from .test_cli import bench, local, read_run


def start(overrides: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "w2v2bench", *overrides], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def test_a_killed_run_resumes_to_the_same_outputs(tiny_checkpoint, tmp_path):
    args = ["split=other", "limit=30", "batch_size=2", "sort_window=6"]
    assert bench(*local(tiny_checkpoint, tmp_path / "whole", *args)).returncode == 0
    killed = tmp_path / "killed"
    proc = start(local(tiny_checkpoint, killed, *args))
    journal = killed / JOURNAL
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 8:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((killed / "summary.json").read_text())["status"] == "running"  # marked unfinished
    assert not (killed / "transcripts.jsonl").exists()
    n_done = len(journal.read_text().splitlines()) - 1
    assert 8 <= n_done < 30
    with journal.open("a") as handle:  # as if the kill had landed mid-write of a line
        handle.write('{"index": 29, "id": "torn')

    resumed = bench(*local(tiny_checkpoint, killed, *args, "resume=true"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {n_done} journal rows of the interrupted run" in resumed.stdout
    assert "left out" not in resumed.stdout  # the torn line is the kill's, not a foreign one
    whole_rows, whole = read_run(tmp_path / "whole")
    rows, summary = read_run(killed)
    assert rows == whole_rows  # same transcripts, same order, none lost or doubled
    assert (summary["wer"], summary["n_utterances"]) == (whole["wer"], 30)
    assert summary["resumed_from"] == n_done and summary["timed_utterances"] == 30 - n_done
    assert summary["resume_dropped"] == 0
    assert not journal.exists()


def test_resume_refuses_a_different_config(tiny_checkpoint, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    done = bench(*local(tiny_checkpoint, out, "split=other", "limit=2"))
    assert done.returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    again = bench(*local(tiny_checkpoint, out, "split=clean", "limit=3", "resume=true"))
    assert again.returncode == 1
    assert "config differs from the interrupted run's in limit: 2 -> 3, split: 'other' -> 'clean'" in again.stderr


def test_resume_needs_an_interrupted_run(tiny_checkpoint, tmp_path):
    done = bench(*local(tiny_checkpoint, tmp_path / "run", "resume=true"))
    assert done.returncode == 1 and "nothing to resume" in done.stderr


def test_out_of_memory_splits_the_batch_down_to_one(tiny_checkpoint, monkeypatch):
    transcriber = load_model(str(tiny_checkpoint))
    utts = local_utterances(LIBRISPEECH, "test", "other")[:12]
    reference = []
    run(utts, transcriber, reference.extend, batch_size=1, progress=False)
    longest = max(len(load_audio(u.path, u.id)[0]) for u in utts)
    real_forward = transcriber.forward

    def forward(inputs):  # a device that holds 3 utterances at most, and never the longest one
        if len(inputs) > 3 or any(len(x) == longest for x in inputs):
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_forward(inputs)

    monkeypatch.setattr(transcriber, "forward", forward)
    results = []
    stats = run(utts, transcriber, results.extend, batch_size=12, progress=False)
    by_id = {r.id: r for r in results}
    assert stats.oom_splits >= 3
    failed = [r for r in results if r.error]
    assert len(failed) == 1 and "out of memory for" in failed[0].error and "injected" in failed[0].error
    for r in reference:
        if r.id != failed[0].id:
            assert by_id[r.id].pred_text == r.pred_text


def write_variant(folder, utt_id, kind, source_wave):
    """One utterance file of the bad-audio matrix, from a real 16 kHz utterance."""
    flac = folder / f"{utt_id}.flac"
    if kind == "corrupt bytes":
        data = bytearray((LIBRISPEECH / "test-clean/1089/134686/1089-134686-0000.flac").read_bytes())
        data[100:4000] = os.urandom(3900)
        flac.write_bytes(bytes(data))
    elif kind == "truncated flac":
        flac.write_bytes((LIBRISPEECH / "test-clean/1089/134686/1089-134686-0000.flac").read_bytes()[:60_000])
    elif kind == "zero-length file":
        flac.write_bytes(b"")
    elif kind == "not audio":
        flac.write_text("HE HOPED THERE WOULD BE STEW\n")
    elif kind == "stereo":
        sf.write(flac, np.stack([source_wave, source_wave], axis=1), 16000)
    elif kind.endswith("Hz"):
        rate = int(kind.split()[0])
        sf.write(flac, soxr.resample(source_wave, 16000, rate), rate)
    elif kind == "nan samples":
        wave = source_wave.copy()
        wave[1000] = np.nan
        sf.write(folder / f"{utt_id}.wav", wave, 16000, subtype="FLOAT")
    elif kind == "35 s long":
        sf.write(flac, np.tile(source_wave, int(np.ceil(35 * 16000 / len(source_wave))))[: 35 * 16000], 16000)
    else:
        sf.write(flac, source_wave, 16000)


# kind -> (expected error fragment or None, expected note fragment or None)
MATRIX = {
    "corrupt bytes": ("cannot decode audio", None),
    "truncated flac": ("cannot decode audio", None),
    "zero-length file": ("cannot decode audio", None),
    "not audio": ("cannot decode audio", None),
    "stereo": (None, "downmixed 2 channels"),
    "8000 Hz": (None, "resampled 8000 Hz -> 16000 Hz"),
    "22050 Hz": (None, "resampled 22050 Hz -> 16000 Hz"),
    "44100 Hz": (None, "resampled 44100 Hz -> 16000 Hz"),
    "nan samples": ("NaN or infinite", None),
    "35 s long": (None, None),
    "lowercase, extra spaces": (None, "reference upper-cased"),
}


def test_bad_audio_matrix(tiny_checkpoint, tmp_path):
    source, _ = load_audio(str(LIBRISPEECH / "test-clean/1089/134686/1089-134686-0001.flac"), "")
    chapter = tmp_path / "tree" / "test-clean" / "7" / "1"
    chapter.mkdir(parents=True)
    shutil.copy(LIBRISPEECH / "test-clean/1089/134686/1089-134686-0001.flac", chapter / "7-1-0000.flac")
    lines = ["7-1-0000 STUFF IT INTO YOU HIS BELLY COUNSELLED HIM"]
    ids = {}
    for n, kind in enumerate(MATRIX, 1):
        ids[kind] = f"7-1-{n:04d}"
        write_variant(chapter, ids[kind], kind, source)
        text = "stuff  it into you his   belly counselled him" if kind.startswith("lowercase") else "STUFF IT"
        lines.append(f"{ids[kind]} {text}")
    lines.append("7-1-0099 A LINE WITH NO AUDIO")
    shutil.copy(chapter / "7-1-0000.flac", chapter / "7-1-0098.flac")  # audio with no transcript line
    (chapter / "7-1.trans.txt").write_text("\n".join(lines) + "\n")

    done = bench(*local(tiny_checkpoint, tmp_path / "run", "batch_size=4"), f"data.root={tmp_path / 'tree'}")
    assert done.returncode == 0, done.stderr
    rows, summary = read_run(tmp_path / "run")
    by_id = {r["id"]: r for r in rows}
    assert len(rows) == len(MATRIX) + 3
    for kind, (error, note) in MATRIX.items():
        row = by_id[ids[kind]]
        if error:
            assert error in row["error"] and ids[kind] in row["error"], (kind, row["error"])
            assert row["pred_text"] is None
        else:
            assert row["error"] is None and row["pred_text"] is not None, kind
        if note:
            assert any(note in n for n in row["notes"]), (kind, row["notes"])
    assert by_id[ids["stereo"]]["pred_text"] == by_id["7-1-0000"]["pred_text"]
    assert by_id[ids["lowercase, extra spaces"]]["text"] == "STUFF IT INTO YOU HIS BELLY COUNSELLED HIM"
    assert by_id[ids["lowercase, extra spaces"]]["pred_text"] == by_id["7-1-0000"]["pred_text"]
    assert by_id[ids["35 s long"]]["duration_s"] == 35.0
    assert "no 7-1-0099.flac" in by_id["7-1-0099"]["error"]
    assert "no transcript line" in by_id["7-1-0098"]["error"]
    n_failed = sum(1 for e, _ in MATRIX.values() if e) + 2
    assert summary["n_failed"] == n_failed == sum(1 for r in rows if r["error"])


def test_unwritable_output_dir_fails_before_any_work(tiny_checkpoint, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    t0 = time.monotonic()
    done = bench(*local(tiny_checkpoint, blocker / "run"))
    assert done.returncode == 1 and "is not writable" in done.stderr and str(blocker) in done.stderr
    assert time.monotonic() - t0 < 30


def test_a_write_failure_mid_run_keeps_what_was_done(tiny_checkpoint, tmp_path, monkeypatch):
    # a full disk at the N-th write: the run fails with the cause, the journal keeps earlier batches
    from w2v2bench import report

    transcriber = load_model(str(tiny_checkpoint))
    journal = report.Journal(tmp_path, "run-id", "config-hash")
    calls = {"n": 0}
    real_write = journal.write

    def write(results):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real_write(results)

    with pytest.raises(OSError, match="No space left"):
        run(local_utterances(LIBRISPEECH, "test", "clean"), transcriber, write, batch_size=1, progress=False)
    journal.close()
    assert len((tmp_path / JOURNAL).read_text().splitlines()) == 1 + 2  # the header and two batches
