"""Survive faults: SIGKILL + resume, out-of-memory back-off, the bad-audio matrix, unwritable outputs."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from tests.helpers import LIBRISPEECH
from tests.helpers.forked import run_forked
from tests.helpers.harness import bench, local, read_run, untimed
from w2v2bench.data.audio import load_audio
from w2v2bench.data.local import local_utterances
from w2v2bench.model import load_model
from w2v2bench.pipeline import run
from w2v2bench.resume import JOURNAL

pytestmark = pytest.mark.slow  # whole harness processes: make test-slow


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
    assert untimed(rows) == untimed(whole_rows)  # same transcripts, same order, none lost or doubled
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


def cpu_out_of_memory() -> RuntimeError:
    """The CPU allocator's own error (a plain RuntimeError), from a real allocation that cannot succeed."""
    try:
        torch.empty(1 << 62, dtype=torch.uint8)
    except RuntimeError as err:
        return RuntimeError(f"{err} (injected)")
    raise AssertionError("an allocation of 4 EiB succeeded")


@pytest.mark.parametrize(
    "out_of_memory",
    [
        lambda: torch.OutOfMemoryError("CUDA out of memory (injected)"),
        cpu_out_of_memory,
        lambda: MemoryError("injected"),
    ],
    ids=["cuda", "cpu allocator", "MemoryError"],
)
def test_out_of_memory_splits_the_batch_down_to_one(tiny_checkpoint, monkeypatch, out_of_memory):
    transcriber = load_model(str(tiny_checkpoint))
    utts = local_utterances(LIBRISPEECH, "test", "other")[:12]
    reference = []
    run(utts, transcriber, reference.extend, batch_size=1, progress=False)
    longest = max(len(load_audio(u.path, u.id)[0]) for u in utts)
    real_forward = transcriber.forward

    def forward(inputs):  # a device that holds 3 utterances at most, and never the longest one
        if len(inputs) > 3 or any(len(x) == longest for x in inputs):
            raise out_of_memory()
        return real_forward(inputs)

    monkeypatch.setattr(transcriber, "forward", forward)
    results = []
    stats = run(utts, transcriber, results.extend, batch_size=12, progress=False)
    by_id = {r.id: r for r in results}
    assert stats.oom_splits >= 3
    failed = [r for r in results if r.error]
    assert len(failed) == 1 and "out of memory for" in failed[0].error and "injected" in failed[0].error
    assert failed[0].duration_s > 0  # its length is recorded
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
            assert row["pred_text"] == ""  # never null: other tools stop at a null
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
    from w2v2bench import resume as report

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


# ---- resume trusts only its own journal rows ---------------------------------------------------------------

RUN_ARGS = ["split=other", "limit=8", "batch_size=2"]


@pytest.fixture(scope="module")
def whole_run(tiny_checkpoint, tmp_path_factory):
    """A corpus copy (its audio may be changed by a test) and an uninterrupted run over it."""
    root = tmp_path_factory.mktemp("resume")
    shutil.copytree(LIBRISPEECH / "test-other", root / "tree" / "test-other")
    done = bench(*local(tiny_checkpoint, root / "whole", *RUN_ARGS), f"data.root={root / 'tree'}")
    assert done.returncode == 0, done.stderr
    return root


def interrupted(whole: Path, dest: Path, tamper) -> tuple[list[dict], dict]:
    """`whole` as a kill after its last batch leaves it (summary `running`, every row in the journal), with
    the journal lines changed by `tamper(lines, rows, summary)`."""
    from w2v2bench.results import parse_row
    from w2v2bench.resume import _journal_line, config_sha256

    rows, summary = read_run(whole)
    dest.mkdir()
    header = {"journal": 1, "run_id": summary["run_id"], "config_sha256": config_sha256(summary["config"])}
    lines = [json.dumps(header) + "\n"] + [_journal_line(summary["run_id"], parse_row(r)) for r in rows]
    lines = tamper(lines, rows, summary)
    (dest / JOURNAL).write_text("".join(lines))
    running = {k: summary[k] for k in ("schema_version", "run_id", "started", "config")}
    (dest / "summary.json").write_text(json.dumps({**running, "status": "running"}))
    return rows, summary


def _keyed(run_id: str, row: dict) -> str:
    from w2v2bench.resume import _row_sha256

    return json.dumps({**row, "row_sha256": _row_sha256(run_id, row)}) + "\n"


def _replace(index: int, make):
    """Line of row `index` (line 0 is the header) replaced by make(row, run_id)."""

    def tamper(lines, rows, summary):
        lines[index + 1] = make(dict(rows[index]), summary["run_id"])
        return lines

    return tamper


TAMPERED = [
    # what, tamper, lines left out, fragment of the reason, utterances transcribed again
    ("nothing", lambda lines, rows, s: lines, 0, None, 0),
    ("a line from another run (its own checksum key)", _replace(3, lambda r, rid: _keyed("another-run", r)), 1,
     "copied from another run", 1),
    ("pred_text edited by hand", _replace(2, lambda r, rid: _keyed(rid, r).replace(r["pred_text"] or "", "EDITED")),
     1, "checksum does not match", 1),
    ("another utterance's row, checksum forged", _replace(4, lambda r, rid: _keyed(rid, {**r, "id": "1-2-3"})), 1,
     "the corpus has", 1),
    ("the reference text changed, checksum forged",
     _replace(4, lambda r, rid: _keyed(rid, {**r, "text": "SOMETHING ELSE"})), 1, "reference text differs", 1),
    ("index 5000", lambda lines, rows, s: [*lines, _keyed(s["run_id"], {**rows[0], "index": 5000})], 1,
     "no utterance there", 0),
    ("index written as a string, checksum forged", _replace(1, lambda r, rid: _keyed(rid, {**r, "index": "1"})), 1,
     "field index", 1),
    ("a negative count, checksum forged",
     _replace(1, lambda r, rid: _keyed(rid, {**r, "substitutions": -5})), 1, "field substitutions", 1),
    ("counts zeroed and pred_text made the reference, checksum forged",
     _replace(2, lambda r, rid: _keyed(rid, {**r, "pred_text": "WRONG " + r["text"], "substitutions": 0,
                                             "deletions": 0, "insertions": 0, "char_errors": 0})), 1,
     "edit counts are not those", 1),
    ("not JSON", _replace(5, lambda r, rid: "{this is not json\n"), 1, "not a JSON line", 1),
    ("JSON nested 100,000 deep", _replace(5, lambda r, rid: "[" * 100_000 + "\n"), 1, "nested too deeply", 1),
    ("a JSON list", _replace(5, lambda r, rid: "[1, 2]\n"), 1, "expected a JSON object", 1),
    ("a row twice", lambda lines, rows, s: [*lines, lines[3]], 0, None, 0),
    ("the header of another run", lambda lines, rows, s: [lines[0].replace(s["run_id"], "f" * 32), *lines[1:]], 1,
     "its header is not this run's", 8),
    ("no header (an older journal)", lambda lines, rows, s: lines[1:], 1, "its header is not this run's", 8),
]  # fmt: skip


@pytest.fixture(scope="module")
def tampered_resumes(tiny_checkpoint, whole_run):
    """Each TAMPERED journal resumed (one forked run each): {what: (run folder, result)}."""
    jobs, folders = [], {}
    for n, (what, tamper, *_) in enumerate(TAMPERED):
        folders[what] = whole_run / f"tampered-{n}"
        interrupted(whole_run / "whole", folders[what], tamper)
        jobs.append({"args": [*local(tiny_checkpoint, folders[what], *RUN_ARGS, "resume=true"),
                              f"data.root={whole_run / 'tree'}"]})  # fmt: skip
    results = run_forked(jobs, whole_run / "logs")
    return {what: (folders[what], result) for what, result in zip(folders, results, strict=True)}


@pytest.mark.slow
@pytest.mark.parametrize("what,tamper,dropped,reason,again", TAMPERED, ids=[t[0] for t in TAMPERED])
def test_resume_keeps_only_rows_that_prove_they_are_this_runs(
    whole_run, tampered_resumes, what, tamper, dropped, reason, again
):
    whole_rows, whole = read_run(whole_run / "whole")
    folder, resumed = tampered_resumes[what]
    assert resumed["code"] == 0, resumed["output"]
    rows, summary = read_run(folder)
    assert untimed(rows) == untimed(whole_rows)  # nothing foreign merged, nothing lost or doubled
    assert (summary["wer"], summary["n_utterances"]) == (whole["wer"], 8)
    assert summary["resume_dropped"] == dropped and summary["timed_utterances"] == again
    if reason:
        assert reason in resumed["output"] and reason in " ".join(summary["resume_dropped_reasons"])
    else:
        assert "left out" not in resumed["output"]


@pytest.mark.slow
def test_resume_transcribes_again_an_utterance_whose_audio_changed(tiny_checkpoint, whole_run, tmp_path):
    tree = whole_run / "tree"
    whole_rows, _ = read_run(whole_run / "whole")
    interrupted(whole_run / "whole", tmp_path / "run", lambda lines, rows, s: lines)
    changed = whole_rows[6]
    flac = tree / "test-other" / changed["speaker"] / changed["chapter"] / f"{changed['id']}.flac"
    original = flac.read_bytes()
    try:
        shutil.copy(LIBRISPEECH / "test-clean/1089/134686/1089-134686-0000.flac", flac)
        resumed = bench(*local(tiny_checkpoint, tmp_path / "run", *RUN_ARGS, "resume=true"), f"data.root={tree}")
    finally:
        flac.write_bytes(original)
    assert resumed.returncode == 0, resumed.stderr
    rows, summary = read_run(tmp_path / "run")
    assert f"{changed['id']}: the audio differs" in resumed.stdout
    assert summary["resume_dropped"] == 1 and summary["timed_utterances"] == 1
    assert rows[6]["audio_sha256"] != changed["audio_sha256"]
    assert [r for i, r in enumerate(rows) if i != 6] == [r for i, r in enumerate(whole_rows) if i != 6]


# ---- a finish that can be killed anywhere ------------------------------------------------------------------

COMPARED = ("wer", "cer", "n_utterances", "n_failed", "ref_words", "word_errors", "status", "reference", "run_id")


def outputs(folder: Path) -> dict[str, object]:
    """What a finished run folder holds, less what differs between two runs of the same work (timings)."""
    found: dict[str, object] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix == ".png":
            found[path.name] = "present"
        elif path.name == "summary.json":
            summary = json.loads(path.read_text())
            found[path.name] = {k: summary[k] for k in COMPARED if k != "run_id"}
        elif path.name in ("wer.csv", "wer.md"):
            found[path.name] = path.read_text().count("\n")
        elif path.name == "transcripts.jsonl":
            found[path.name] = untimed([json.loads(line) for line in path.read_text().splitlines()])
        else:
            found[path.name] = path.read_text()
    return found


@pytest.mark.slow
def test_a_kill_at_any_step_of_the_finish_is_resumed_without_transcribing_again(tiny_checkpoint, tmp_path):
    args = ["split=other", "limit=4", "batch_size=2"]
    (counted,) = run_forked([{"args": local(tiny_checkpoint, tmp_path / "whole", *args)}], tmp_path / "logs")
    assert counted["code"] == 0, counted["output"]
    steps = counted["finish_steps"]
    assert steps >= 8  # transcripts, tables, analysis, trn files, summary, journal
    jobs = []
    for kill_at in range(1, steps + 1):  # a SIGKILL just before each file-system step of the finish
        out = tmp_path / f"killed-{kill_at}"
        jobs += [{"args": local(tiny_checkpoint, out, *args), "kill_at": kill_at},
                 {"args": local(tiny_checkpoint, out, *args, "resume=true")}]  # fmt: skip
    results = run_forked(jobs, tmp_path / "logs")
    whole = outputs(tmp_path / "whole")
    for kill_at, (killed, resumed) in enumerate(zip(results[::2], results[1::2], strict=True), start=1):
        out = tmp_path / f"killed-{kill_at}"
        assert killed["signal"] == signal.SIGKILL, (kill_at, killed)
        assert resumed["code"] == 0, (kill_at, resumed["output"])
        assert outputs(out) == whole, kill_at
        summary = json.loads((out / "summary.json").read_text())
        assert summary["timed_utterances"] == 0 or "already complete" in resumed["output"], kill_at
        assert not list(out.glob("transcripts.partial*")) and not list(out.glob(".*.tmp")), kill_at


# ---- the output folder's life cycle ------------------------------------------------------------------------


def test_a_model_that_fails_to_load_marks_the_run_failed_in_one_line(tmp_path):
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text('{"model_type": "no-such-architecture"}')
    for checkpoint in (tmp_path / "empty", not_a_model):
        checkpoint.mkdir(exist_ok=True)
        done = bench(*local(checkpoint, tmp_path / f"run-{checkpoint.name}", "limit=2"))
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert str(checkpoint) in done.stderr
        summary = json.loads((tmp_path / f"run-{checkpoint.name}" / "summary.json").read_text())
        assert summary["status"] == "failed" and summary["error"]


def test_a_second_run_in_a_folder_in_use_fails_at_once(tiny_checkpoint, tmp_path):
    out = tmp_path / "run"
    first = start(local(tiny_checkpoint, out, "split=other", "batch_size=1"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / JOURNAL).exists():
        time.sleep(0.05)
    try:
        t0 = time.monotonic()
        second = bench(*local(tiny_checkpoint, out, "split=other", "limit=2"))
        assert second.returncode == 1 and "is in use by another run" in second.stderr, second.stderr
        assert time.monotonic() - t0 < 30
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()
        first.wait()


@pytest.mark.parametrize(
    "leftover", ["wer.md", "analysis.md", "transcripts.jsonl", "hyp.trn", "transcripts.partial.jsonl", "notes.txt"]
)
def test_a_folder_holding_other_files_is_not_written_into(tiny_checkpoint, tmp_path, leftover):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / leftover).write_text("someone's notes\n")
    done = bench(*local(tiny_checkpoint, tmp_path / "run", "limit=2"))
    assert done.returncode == 1 and f"already holds other files ({leftover})" in done.stderr, done.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.name != ".w2v2bench.lock") == [leftover]
    assert (tmp_path / "run" / leftover).read_text() == "someone's notes\n"


def test_a_planted_write_test_symlink_is_not_followed(tiny_checkpoint, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".write-test").symlink_to(victim)
    bench(*local(tiny_checkpoint, tmp_path / "run", "limit=2"))
    assert victim.read_text() == "keep me\n"


def test_a_failure_after_the_run_is_complete_does_not_undo_it(tiny_checkpoint, tmp_path):
    # stdout closed before the run prints its table: the outputs are complete on disk by then
    proc = subprocess.Popen(
        [sys.executable, "-m", "w2v2bench", *local(tiny_checkpoint, tmp_path / "run", "limit=2")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    proc.stdout.close()
    proc.wait(timeout=300)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "complete"
    again = bench(*local(tiny_checkpoint, tmp_path / "run", "limit=2", "resume=true"))
    assert again.returncode == 0 and "already complete" in again.stdout


@pytest.mark.parametrize(
    "content,message",
    [
        ("{not json", "not a JSON summary"),
        ("[1, 2]", "expected a JSON object, found list"),
        ("{}", "field schema_version"),
    ],
)
def test_resume_with_a_summary_it_cannot_read_says_so_in_one_line(tiny_checkpoint, tmp_path, content, message):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text(content)
    done = bench(*local(tiny_checkpoint, tmp_path / "run", "limit=2", "resume=true"))
    assert done.returncode == 1 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_resume_of_a_complete_run_changes_nothing(tiny_checkpoint, tmp_path):
    assert bench(*local(tiny_checkpoint, tmp_path / "run", "limit=2")).returncode == 0
    before = outputs(tmp_path / "run")
    again = bench(*local(tiny_checkpoint, tmp_path / "run", "limit=2", "resume=true"))
    assert again.returncode == 0 and "already complete" in again.stdout
    assert outputs(tmp_path / "run") == before


def test_two_runs_started_at_once_get_their_own_default_folders(tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "w2v2bench", "model=demo", "data=demo", "limit=2"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]  # fmt: skip
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    runs = sorted((tmp_path / "results" / "demo" / "test-clean").iterdir())
    assert len(runs) == 2 and all((run / "summary.json").exists() for run in runs)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _pickled_weights(folder: Path, marker: Path) -> None:
    (folder / "model.safetensors").unlink()
    torch.save({"wav2vec2.masked_spec_embed": _Payload(marker)}, folder / "pytorch_model.bin")


def _truncated_weights(folder: Path, marker: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])


def _remote_code(folder: Path, marker: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCTC": "evil.Model", "AutoConfig": "evil.Config"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")


@pytest.mark.parametrize(
    "make,status",
    # transformers loads .bin weights with torch's weights-only unpickler, and never runs a folder's own code
    # (trust_remote_code is never passed): the built-in class of its model_type is used instead
    [(_pickled_weights, "failed"), (_truncated_weights, "failed"), (_remote_code, "complete")],
    ids=["pickled weights", "truncated safetensors", "remote code"],
)
def test_a_hostile_model_folder_runs_nothing(tiny_checkpoint, tmp_path, make, status):
    folder, marker = tmp_path / "model", tmp_path / "pwned"
    shutil.copytree(tiny_checkpoint, folder)
    make(folder, marker)
    done = bench(*local(folder, tmp_path / "run", "limit=2"))
    assert not marker.exists()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == status
    if status == "failed":
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr


def test_transcripts_are_in_utterance_id_order_whatever_the_source_order(tmp_path):
    from w2v2bench import resume as report
    from w2v2bench.results import UtteranceResult

    def result(index: int, utt_id: str) -> UtteranceResult:
        return UtteranceResult(index, utt_id, "1", "2", 1.0, "A", "A", 0, 0, 0, 1, 0, 1, None, [])

    journal = report.Journal(tmp_path, "run-id", "config-hash")
    journal.write([result(0, "1-2-0003"), result(1, "1-2-0001")])  # a Hub parquet's row order
    rows = journal.finish({}, [result(2, "1-2-0002")])
    assert [(r.id, r.index) for r in rows] == [("1-2-0001", 1), ("1-2-0002", 2), ("1-2-0003", 0)]
    assert [json.loads(line)["id"] for line in (tmp_path / "transcripts.jsonl").read_text().splitlines()] == [
        "1-2-0001",
        "1-2-0002",
        "1-2-0003",
    ]


def _without(folder: Path, key: str) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    state.pop(key)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize(
    "key,status,message",
    [
        ("wav2vec2.masked_spec_embed", 0, "note: wav2vec2.masked_spec_embed not in the checkpoint: used in training"),
        (
            "lm_head.weight",
            1,
            "1 weight(s) missing or of another shape, which would be left random: ['lm_head.weight']",
        ),
    ],
)
def test_missing_weights_a_training_only_one_is_a_note_any_other_fails(tiny_checkpoint, tmp_path, key, status, message):
    folder = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, folder)
    _without(folder, key)
    done = bench(*local(folder, tmp_path / "run", "limit=1"))
    assert done.returncode == status, done.stderr
    assert message in done.stdout + done.stderr
    assert "LOAD REPORT" not in done.stdout + done.stderr  # transformers' table only with verbose=true
