import hashlib
import multiprocessing
import sqlite3

import pytest

from tests.helpers.fake_runs import edit_summary, make_run
from w2v2bench import history
from w2v2bench.history import SplitKey


def test_a_run_is_one_row_and_recording_it_again_adds_nothing(tmp_path):
    db = tmp_path / "history.sqlite"
    run = make_run(tmp_path / "run", reference={"wer": 0.1, "tolerance": 0.0005, "source": "card", "passed": False})
    row, added = history.record(db, run)
    assert added and history.record(db, run) == (row, False)
    assert len(history.rows(db)) == 1
    assert (row["model"], row["data"], row["partition"], row["split"], row["normalizer"]) == (
        "demo",
        "librispeech",
        "test",
        "clean",
        "none",
    )
    assert row["errors"] == row["substitutions"] + row["deletions"] + row["insertions"] > 0
    assert row["reference_passed"] is False and row["reference_wer"] == 0.1
    assert row["date"] == "2026-01-01" and row["rtfx"] == 100.0 and row["git_hash"] == "abc123"
    assert row["versions"]["torch"] == "2.13" and row["config"]["split"] == "clean"
    assert row["weights"] is None  # a Hub id, no revision, not in the Hugging Face cache
    assert str(SplitKey(row)) == "demo on librispeech test-clean (subset of 6)"


def test_local_weights_are_identified_by_their_hash(tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    (checkpoint / "config.json").write_text("{}")
    row, _ = history.record(tmp_path / "h.sqlite", make_run(tmp_path / "run", checkpoint=str(checkpoint)))
    expected = hashlib.sha256(b"model.safetensors\0" + hashlib.sha256(b"weights").digest()).hexdigest()
    assert row["weights"] == f"sha256:{expected}"
    (checkpoint / "model.safetensors").write_bytes(b"other weights")
    assert history.weights_id(str(checkpoint), None, local=True) != row["weights"]


def test_hub_weights_are_the_revision_resolved_in_the_local_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    refs = tmp_path / "models--org--demo" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("a" * 40)
    assert history.weights_id("org/demo", None, local=False) == "git:" + "a" * 40
    assert history.weights_id("org/demo", "b" * 40, local=False) == "git:" + "b" * 40
    assert history.weights_id("org/demo", "v2", local=False) == "revision:v2"
    assert history.weights_id("org/other", None, local=False) is None


def test_previous_good_skips_failed_runs_and_other_splits(tmp_path):
    db = tmp_path / "h.sqlite"
    day = "2026-01-0{}T03:00:00+00:00".format

    def rec(name, **kw):
        return history.record(db, make_run(tmp_path / name, **kw))[0]

    good = rec("good", finished=day(1))
    rec("ref-failed", finished=day(2), reference={"wer": 0.0, "tolerance": 0.0, "source": "x", "passed": False})
    rec("partly-failed", finished=day(3), failed={"121-121726-0000": "unreadable"})
    rec("other-split", finished=day(4), split="other")
    judged_bad = rec("judged-bad", finished=day(5))
    history.set_verdict(db, judged_bad["run_id"], "fail", ["WER rose"], good["run_id"])
    tonight = rec("tonight", finished=day(6))
    assert history.previous_good(db, tonight)["run_id"] == good["run_id"]
    assert history.previous_good(db, good) is None
    assert history.rows(db, SplitKey(tonight))[-1]["run_id"] == tonight["run_id"]
    assert history.rows(db)[4]["verdict_reasons"] == ["WER rose"]
    with pytest.raises(ValueError, match="verdict='maybe'"):
        history.set_verdict(db, good["run_id"], "maybe", [], None)


def _record_all(db, folders, barrier):
    barrier.wait()  # every process starts writing at the same moment
    for folder in folders:
        history.record(db, folder)


def test_concurrent_writers_lose_no_row(tmp_path):
    db = tmp_path / "results" / "history.sqlite"
    workers, per_worker = 6, 4
    folders = [
        [make_run(tmp_path / f"w{w}-{k}", finished=f"2026-01-01T03:{w:02d}:{k:02d}+00:00") for k in range(per_worker)]
        for w in range(workers)
    ]
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_record_all, args=(db, f, barrier)) for f in folders]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * workers
    assert len(history.rows(db)) == workers * per_worker
    assert len({r["run_dir"] for r in history.rows(db)}) == workers * per_worker


def test_a_history_of_another_schema_is_refused(tmp_path):
    db = tmp_path / "h.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA user_version = 99")
    with pytest.raises(ValueError, match="schema version 99"):
        history.record(db, make_run(tmp_path / "run"))


def _random_bytes(path):
    path.write_bytes(bytes(range(256)) * 40)


def _truncated(path):
    history.record(path, make_run(path.parent / "run"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])


def _foreign(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
        db.execute("INSERT INTO invoices VALUES (1, 9.5)")


def _other_columns(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (run_id TEXT, wer REAL)")
        db.execute("PRAGMA user_version = 1")


def _newer_schema(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (run_id TEXT)")
        db.execute("PRAGMA user_version = 7")


def _folder(path):
    path.mkdir()


def _damaged_row(path):
    history.record(path, make_run(path.parent / "run"))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET versions = '{not json'")


CORRUPT = [
    ("random bytes", _random_bytes, "is not a SQLite database"),
    ("truncated", _truncated, "history="),
    ("another program's database", _foreign, "holds another program's tables (invoices)"),
    ("a runs table of other columns", _other_columns, "other columns"),
    ("a newer schema", _newer_schema, f"schema version 7, expected {history.HISTORY_SCHEMA_VERSION}"),
    ("a folder", _folder, "is not a regular file"),
    ("a row whose JSON column is damaged", _damaged_row, "has a damaged versions column"),
]


@pytest.mark.parametrize("what,make,message", CORRUPT, ids=[c[0] for c in CORRUPT])
def test_a_history_it_cannot_read_is_refused_and_left_as_it_is(tmp_path, what, make, message):
    db = tmp_path / "history.sqlite"
    make(db)
    before = db.read_bytes() if db.is_file() else None
    run = make_run(tmp_path / "tonight")
    calls = [lambda: history.rows(db), lambda: history.record(db, run)]
    if what != "a row whose JSON column is damaged":  # the count does not read the rows
        calls.append(lambda: history.history_size(db))
    for call in calls:
        with pytest.raises(history.HistoryError) as err:
            call()
        assert message in str(err.value) and "move it aside" in str(err.value) and "\n" not in str(err.value)
    assert (db.read_bytes() if db.is_file() else None) == before


@pytest.mark.parametrize("make,message", [(_random_bytes, "is not a SQLite database"), (_damaged_row, "damaged")])
def test_the_nightly_says_so_in_one_line_fails_and_adds_nothing(tmp_path, make, message):
    import subprocess
    import sys

    db = tmp_path / "history.sqlite"
    make(db)
    before = db.read_bytes()
    make_run(tmp_path / "tonight" / "run", finished="2026-02-01T03:00:00+00:00")
    done = subprocess.run(
        [sys.executable, "-m", "w2v2bench.nightly", f"runs={tmp_path / 'tonight'}", f"history={db}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 6  # the history cannot be used: the night is not whole
    assert done.stderr.count("\n") == 1 and message in done.stderr and str(db) in done.stderr, done.stderr
    assert db.read_bytes() == before


def test_an_empty_file_becomes_a_new_history(tmp_path):
    db = tmp_path / "history.sqlite"
    db.write_bytes(b"")
    history.record(db, make_run(tmp_path / "run"))
    assert history.history_size(db) == 1


def test_the_hub_commit_a_run_loaded_is_its_weights_id(tmp_path):
    import json

    run = make_run(tmp_path / "run")
    summary = json.loads((run / "summary.json").read_text())
    summary["model"]["commit"] = "c" * 40
    (run / "summary.json").write_text(json.dumps(summary))
    row, _ = history.record(tmp_path / "h.sqlite", run)
    assert row["weights"] == "git:" + "c" * 40


def _with_decoder(run, settings: dict):
    return edit_summary(run, decoder=settings)


def test_runs_with_another_decoder_are_not_compared(tmp_path):
    db = tmp_path / "h.sqlite"
    greedy = history.record(db, make_run(tmp_path / "greedy", finished="2026-01-01T03:00:00+00:00"))[0]
    lm_run = _with_decoder(
        make_run(tmp_path / "lm", finished="2026-01-02T03:00:00+00:00"), {"name": "lm", "beam_width": 50}
    )
    lm = history.record(db, lm_run)[0]
    assert (greedy["decoder"], lm["decoder"]) == ("greedy", "lm") and lm["decoder_settings"]["beam_width"] == 50
    assert history.previous_good(db, lm) is None  # the greedy run is not its baseline
    assert [r["run_id"] for r in history.rows(db, SplitKey(lm))] == [lm["run_id"]]
    assert str(SplitKey(lm)) == "demo on librispeech test-clean (subset of 6, decoder lm)"


def version_1_history(db, run, version: int = 1):
    """A history file as schema 1 wrote it (no decoder columns, user_version 1), or schema 2 (no series), holding
    `run`; its row."""
    row = history.record(db, run)[0]
    added = (
        history.ADDED_IN_4 + (history.ADDED_IN_3 if version < 3 else ()) + (history.ADDED_IN_2 if version == 1 else ())
    )
    with sqlite3.connect(db) as con:
        old = [c for c in history.COLUMNS if c not in added]
        con.execute(f"CREATE TABLE v1 AS SELECT {', '.join(old)} FROM runs")
        con.execute("DROP TABLE runs")
        con.execute("ALTER TABLE v1 RENAME TO runs")
        con.execute(f"PRAGMA user_version = {version}")
    return row


def _read_rows(db, barrier, out):
    barrier.wait()
    out.put(len(history.rows(db)))


def test_a_version_1_history_opened_by_several_processes_at_once_is_migrated_once(tmp_path):
    run = make_run(tmp_path / "old")
    ctx = multiprocessing.get_context("fork")
    for attempt in range(8):  # the race (a reader seeing the columns half way) was rare: several tries
        db = tmp_path / f"h{attempt}.sqlite"
        version_1_history(db, run)
        barrier, out = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_read_rows, args=(db, barrier, out)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0] * 4 and [out.get(timeout=5) for _ in procs] == [1] * 4


def test_a_version_1_history_is_migrated_and_keeps_its_runs(tmp_path):
    db = tmp_path / "h.sqlite"
    row = version_1_history(db, make_run(tmp_path / "old"))
    (kept,) = history.rows(db)
    assert kept["run_id"] == row["run_id"] and kept["decoder"] == "greedy"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == history.HISTORY_SCHEMA_VERSION
    assert history.record(db, make_run(tmp_path / "new", finished="2026-01-03T03:00:00+00:00"))[1]


def test_a_version_2_history_gets_each_runs_series_and_its_baseline_stays(tmp_path):
    # schema 3 keys runs by series: a row recorded before is given its series (derived from its columns, its id
    # list read from its run folder), so the next run of the same series still finds it as its baseline
    db = tmp_path / "h.sqlite"
    old = version_1_history(db, make_run(tmp_path / "old"), version=2)
    new = history.record(db, make_run(tmp_path / "new", finished="2026-01-03T03:00:00+00:00"))[0]
    (kept,) = [r for r in history.rows(db) if r["run_id"] == old["run_id"]]
    assert kept["measurement"]["derived"] and kept["series"] == new["series"] == old["series"]
    assert history.previous_good(db, new)["run_id"] == old["run_id"]
    other = history.record(db, make_run(tmp_path / "bf16", finished="2026-01-04T03:00:00+00:00"))[0]
    assert other["series"] == new["series"]  # the same protocol: same series
    int8 = edit_summary(make_run(tmp_path / "int8", finished="2026-01-05T03:00:00+00:00"),
                        backend={"name": "onnxruntime", "precision": "int8"})  # fmt: skip
    int8_row = history.record(db, int8)[0]
    assert int8_row["series"] != new["series"] and history.previous_good(db, int8_row) is None
    assert str(SplitKey(int8_row)) == "demo on librispeech test-clean (subset of 6, backend onnxruntime int8)"


@pytest.mark.parametrize("column,value", [("config", "[]"), ("decoder_settings", "[1]")])
def test_an_old_history_with_a_damaged_row_is_refused_in_one_line_and_left_as_it_is(tmp_path, column, value):
    db = tmp_path / "h.sqlite"
    version_1_history(db, make_run(tmp_path / "old"), version=2)
    with sqlite3.connect(db) as con:
        con.execute(f"UPDATE runs SET {column} = ?", (value,))
    con.close()
    before = db.read_bytes()
    with pytest.raises(history.HistoryError, match="cannot be given a series"):
        history.rows(db)
    assert db.read_bytes() == before


def test_a_baseline_whose_summary_is_damaged_is_one_line(tmp_path):
    import json
    import subprocess
    import sys

    make_run(tmp_path / "tonight" / "run", finished="2026-02-01T03:00:00+00:00")
    baseline = make_run(tmp_path / "baseline")
    summary = json.loads((baseline / "summary.json").read_text())
    (baseline / "summary.json").write_text(json.dumps({**summary, "decoder": "lm"}))
    done = subprocess.run(
        [sys.executable, "-m", "w2v2bench.nightly", f"runs={tmp_path / 'tonight'}", f"history={tmp_path / 'h.sqlite'}",
         f"baseline={baseline}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "field decoder" in done.stderr, (
        done.stderr
    )  # as a bad argument


def test_a_locked_history_says_it_is_waiting(tmp_path, capsys, monkeypatch):
    # a nightly that waits on another writer prints one line first instead of looking hung (#27 item 8)
    import threading

    from filelock import FileLock

    monkeypatch.setattr(history, "LOCK_TIMEOUT_S", 30.0)
    db = tmp_path / "h.sqlite"
    lock = FileLock(f"{db}.lock", thread_local=False)  # released by the timer's thread
    lock.acquire()
    released = threading.Timer(1.0, lock.release)
    released.start()
    row, _ = history.record(db, make_run(tmp_path / "run"))
    released.join()
    assert f"history: {db} is being written by another process: waiting up to" in capsys.readouterr().out
    assert history.rows(db) and row["run_id"]
