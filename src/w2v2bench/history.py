"""The run history: one SQLite row per run, safe with concurrent writers.

Writers take a file lock beside the database (`<db>.lock`) and then an immediate SQLite transaction, so
jobs of a parallel multirun, or two nightlies, can record at once; SQLite's busy timeout covers readers.
A run is identified by the SHA-256 of its summary.json, so recording the same run twice adds nothing.
The weights are identified by the SHA-256 of the weight files for a local checkpoint folder, and by the
revision (resolved to a commit through the local Hugging Face cache where possible) for a Hub checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .config import set_label
from .files import open_regular
from .provenance import weights_id
from .results import ResultsFileError, measurement, validate_summary, with_ids

__all__ = [
    "DEFAULT_PATH",
    "HistoryError",
    "SplitKey",
    "previous_good",
    "record",
    "row_from_summary",
    "rows",
    "set_verdict",
    "weights_id",
]

DEFAULT_PATH = Path("results/history.sqlite")
HISTORY_SCHEMA_VERSION = 4  # 2 added decoder, decoder_settings, backend; 3 series, measurement; 4 the intervals
# (older files are migrated in place: their rows' records derived from the columns they kept, as a version-1
# summary's are; their intervals NULL, shown as n/a)
LOCK_TIMEOUT_S = 300.0

# name -> SQLite type; the order is the table's column order
COLUMNS: dict[str, str] = {
    "run_id": "TEXT PRIMARY KEY",  # sha256 of summary.json, first 16 hex digits
    "run_dir": "TEXT NOT NULL",
    "recorded_at": "TEXT NOT NULL",
    "started": "TEXT",
    "finished": "TEXT NOT NULL",
    "date": "TEXT NOT NULL",  # the finished day, UTC
    "status": "TEXT NOT NULL",
    "model": "TEXT NOT NULL",
    "checkpoint": "TEXT",
    "revision": "TEXT",
    "weights": "TEXT",  # sha256:<hex> of a local folder's weight files, git:<commit> or revision:<name>
    "data": "TEXT NOT NULL",
    "partition": "TEXT NOT NULL",
    "split": "TEXT NOT NULL",
    "normalizer": "TEXT NOT NULL",
    "n_utterances": "INTEGER",
    "n_failed": "INTEGER",
    "ref_words": "INTEGER",
    "substitutions": "INTEGER",
    "deletions": "INTEGER",
    "insertions": "INTEGER",
    "errors": "INTEGER",
    "ref_chars": "INTEGER",
    "char_errors": "INTEGER",
    "wer": "REAL",
    "cer": "REAL",
    "audio_s": "REAL",
    "wall_s": "REAL",
    "rtfx": "REAL",
    "model_rtfx": "REAL",
    "device": "TEXT",
    "batch_size": "INTEGER",
    "precision": "TEXT",
    "reference_wer": "REAL",
    "reference_tolerance": "REAL",
    "reference_passed": "INTEGER",  # NULL: no check made
    "reference_note": "TEXT",
    "git_hash": "TEXT",
    "versions": "TEXT",  # JSON
    "config": "TEXT",  # JSON, the resolved Hydra config
    "command": "TEXT",
    "verdict": "TEXT",  # the nightly's: pass | fail; NULL when recorded outside a nightly
    "verdict_reasons": "TEXT",  # JSON list of strings
    "baseline_run_id": "TEXT",
    # schema 2: runs decoded otherwise are not compared with one another
    "decoder": "TEXT NOT NULL DEFAULT 'greedy'",  # greedy | lm
    "decoder_settings": "TEXT",  # JSON: summary.json's decoder (LM file, weights, beam ...)
    "backend": "TEXT NOT NULL DEFAULT 'torch'",  # torch | onnxruntime | openvino: speed is compared within one
    # schema 3: a run is compared only within its series (summary.json's measurement: results.measurement)
    "series": "TEXT NOT NULL DEFAULT ''",  # measurement.series_id
    "measurement": "TEXT",  # JSON: summary.json's measurement (derived for runs written before it)
    # schema 4: summary.json's 95 % intervals (metrics.significance.run_intervals); NULL for runs without them
    "wer_ci95_low": "REAL",
    "wer_ci95_high": "REAL",
    "cer_ci95_low": "REAL",
    "cer_ci95_high": "REAL",
    "interval": "TEXT",  # JSON: how they were made (method, unit, blocks, samples, seed)
}
ADDED_IN_2 = ("decoder", "decoder_settings", "backend")
ADDED_IN_3 = ("series", "measurement")
ADDED_IN_4 = ("wer_ci95_low", "wer_ci95_high", "cer_ci95_low", "cer_ci95_high", "interval")
JSON_COLUMNS = ("versions", "config", "verdict_reasons", "decoder_settings", "measurement", "interval")
KEY_COLUMNS = ("model", "data", "partition", "split", "series")


class SplitKey(tuple):
    """(model, data, partition, split, series): the runs compared with one another, those of one series
    (results.measurement); `str` names the series' protocol where it is not the card's."""

    def __new__(cls, row: dict) -> SplitKey:
        key = super().__new__(cls, tuple(row[c] for c in KEY_COLUMNS))
        key.label = series_label(row)
        return key

    def __str__(self) -> str:
        return self.label


def series_label(row: dict) -> str:
    """`<model> on <data> <partition>-<split>` and, in brackets, what the series measured otherwise than the card
    protocol (a subset, precision, backend, decoder, normaliser, batching, device, compile)."""
    series = (row.get("measurement") or {}).get("series") or {}
    data, protocol = series.get("data") or {}, series.get("protocol") or {}
    differs = []
    if data.get("coverage") == "subset":
        differs.append(f"subset of {data.get('n_utterances')}")
    for key, usual in (("normalizer", "none"), ("precision", "fp32"), ("batching", "exact")):
        if protocol.get(key, usual) != usual:
            differs.append(f"{key} {protocol[key]}")
    decoder = (protocol.get("decoder") or {}).get("name", row.get("decoder", "greedy"))
    if decoder != "greedy":
        differs.append(f"decoder {decoder}")
    backend = protocol.get("backend") or {"name": row.get("backend", "torch")}
    if backend.get("name", "torch") != "torch" or backend.get("precision", "fp32") not in (
        "fp32",
        protocol.get("precision"),
    ):
        differs.append(f"backend {backend.get('name')} {backend.get('precision', '')}".strip())
    for key, shown in (("merge_compounds", "merged compounds"), ("compile", "compiled")):
        if protocol.get(key):
            differs.append(shown)
    if protocol.get("recheck_margin") is not None:
        differs.append(f"recheck {protocol['recheck_margin']}")
    if protocol.get("device", "cpu") != "cpu":
        differs.append(str(protocol["device"]))
    suffix = f" ({', '.join(differs)})" if differs else ""
    label = set_label(row["data"], row["partition"], row["split"])
    where = row["data"] if label == row["data"] else f"{row['data']} {label}"
    return f"{row['model']} on {where}{suffix}"


def row_from_summary(run_dir: Path, summary_bytes: bytes) -> dict[str, Any]:
    """The history row of one run folder, from its summary.json."""
    try:
        summary = json.loads(summary_bytes)
    except (ValueError, RecursionError) as err:
        raise ResultsFileError(f"{run_dir}/summary.json: not a JSON summary ({type(err).__name__})") from None
    validate_summary(summary, Path(run_dir) / "summary.json")
    cfg, model, ref = summary["config"], summary.get("model") or {}, summary.get("reference") or {}
    record = with_ids(summary, Path(run_dir))
    errors = summary["word_errors"]
    checkpoint = model.get("checkpoint", cfg["model"]["checkpoint"])
    revision = model.get("revision", cfg["model"].get("revision"))
    local = bool(model.get("local", Path(checkpoint).is_dir()))
    finished = summary.get("finished") or summary.get("started") or ""
    return {
        "run_id": hashlib.sha256(summary_bytes).hexdigest()[:16],
        "run_dir": str(Path(run_dir).resolve()),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "started": summary.get("started"),
        "finished": finished,
        "date": finished[:10],
        "status": summary.get("status", "unknown"),
        "model": cfg["model"]["name"],
        "checkpoint": checkpoint,
        "revision": revision,
        "weights": model.get("weights")
        or (f"git:{model['commit']}" if model.get("commit") else weights_id(checkpoint, revision, local)),
        "data": cfg["data"]["name"],
        "partition": cfg["data"]["partition"] or "",  # "": a set without partitions (a manifest)
        "split": cfg["split"],
        "normalizer": summary.get("normalizer") or "none",
        "n_utterances": summary["n_utterances"],
        "n_failed": summary["n_failed"],
        "ref_words": summary["ref_words"],
        "substitutions": errors["substitutions"],
        "deletions": errors["deletions"],
        "insertions": errors["insertions"],
        "errors": errors["substitutions"] + errors["deletions"] + errors["insertions"],
        "ref_chars": summary.get("ref_chars"),
        "char_errors": summary.get("char_errors"),
        "wer": summary["wer"],
        "cer": summary.get("cer"),
        "audio_s": summary.get("audio_s"),
        "wall_s": summary.get("wall_s"),
        "rtfx": summary.get("rtfx"),
        "model_rtfx": summary.get("model_rtfx"),
        "device": summary.get("device"),
        "batch_size": cfg.get("batch_size"),
        "precision": summary.get("precision", cfg.get("precision")),
        "reference_wer": ref.get("wer"),
        "reference_tolerance": ref.get("tolerance"),
        "reference_passed": None if not ref else bool(ref["passed"]),
        "reference_note": summary.get("reference_note"),
        "git_hash": summary.get("git_hash"),
        "versions": summary.get("versions") or {},
        "config": cfg,
        "command": summary.get("command"),
        "verdict": None,
        "verdict_reasons": None,
        "baseline_run_id": None,
        "decoder": (summary.get("decoder") or {}).get("name", "greedy"),
        "decoder_settings": summary.get("decoder") or {"name": "greedy"},
        "backend": (summary.get("backend") or {}).get("name", "torch"),
        "series": record["series_id"],
        "measurement": record,
        **_bounds("wer", summary.get("wer_ci95")),
        **_bounds("cer", summary.get("cer_ci95")),
        "interval": summary.get("interval"),
    }


def _bounds(rate: str, bounds: list | None) -> dict:
    low, high = bounds if bounds else (None, None)
    return {f"{rate}_ci95_low": low, f"{rate}_ci95_high": high}


def _to_sql(row: dict) -> dict:
    return {k: json.dumps(v, sort_keys=True) if k in JSON_COLUMNS and v is not None else v for k, v in row.items()}


def _from_sql(row: sqlite3.Row, path: Path) -> dict:
    out = dict(row)
    for key in JSON_COLUMNS:
        if out.get(key) is not None:
            try:
                out[key] = json.loads(out[key])
            except (ValueError, RecursionError):
                raise _refuse(path, f"run {out.get('run_id')!r} has a damaged {key} column (not JSON)") from None
    if out.get("reference_passed") is not None:
        out["reference_passed"] = bool(out["reference_passed"])
    for rate in ("wer", "cer"):  # schema 4's interval: two numbers, low <= high, or both NULL
        low, high = out.get(f"{rate}_ci95_low"), out.get(f"{rate}_ci95_high")
        if low is None and high is None:
            continue
        if not all(_bound(v) for v in (low, high)) or low > high:
            raise _refuse(path, f"run {out.get('run_id')!r} has a damaged {rate} interval ({low!r}, {high!r})")
    return out


def _bound(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1e6


# ----------------------------------------------------------------------------------------------------------
# The store


class HistoryError(ValueError):
    """The history file cannot be used (not a database, another program's, damaged); it was not changed."""


SQLITE_MAGIC = b"SQLite format 3\x00"


def _refuse(path: Path, why: str) -> HistoryError:
    return HistoryError(
        f"history={str(path)!r}: {why}; it was left as it is: move it aside (or pass history=<another file>) "
        "and run again"
    )


def _connect(path: Path) -> sqlite3.Connection:
    """An open history, checked to be ours: a file that is not a SQLite database, a damaged one or another
    program's is refused before anything is written to it."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise _refuse(path, "is not a regular file")
        try:
            with open_regular(path) as handle:
                head = handle.read(len(SQLITE_MAGIC))
        except OSError as err:
            raise _refuse(path, f"cannot be read ({err.strerror or err})") from None
        if head and head != SQLITE_MAGIC:
            raise _refuse(path, "is not a SQLite database")
    try:
        db = sqlite3.connect(path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as err:
        raise _refuse(path, f"cannot be opened ({err})") from None
    db.row_factory = sqlite3.Row
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == 0 and tables:
            raise _refuse(path, f"holds another program's tables ({', '.join(sorted(tables))}), not a run history")
        if version not in (0, 1, 2, 3, HISTORY_SCHEMA_VERSION):
            raise _refuse(path, f"has history schema version {version}, expected {HISTORY_SCHEMA_VERSION}")
        if version in (1, 2, 3):
            _migrate(db, path)
            version = HISTORY_SCHEMA_VERSION
        if version:
            columns = [r[1] for r in db.execute("PRAGMA table_info(runs)")]
            if columns != list(COLUMNS):
                raise _refuse(path, "its runs table has other columns than this version of w2v2bench writes")
            problem = db.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise _refuse(path, f"is damaged ({problem})")
    except sqlite3.DatabaseError as err:
        db.close()
        raise _refuse(path, f"is not a readable SQLite database ({err})") from None
    except HistoryError:
        db.close()
        raise
    return db


def _derived_record(row: dict) -> dict:
    """The measurement record of a run recorded before schema 3, from the columns it kept (a version-1 summary's
    record, derived the same way: results.measurement)."""
    config = json.loads(row["config"]) if row.get("config") else {}
    decoder = json.loads(row["decoder_settings"]) if row.get("decoder_settings") else {"name": row["decoder"]}
    own = (config.get("backend") or {}).get("precision") if row["backend"] != "torch" else None
    summary = {
        "config": config,
        "n_utterances": row["n_utterances"],
        "normalizer": row["normalizer"],
        "decoder": decoder,
        "backend": {"name": row["backend"], "precision": own or config.get("precision", "fp32")},
        "model": {"checkpoint": row["checkpoint"], "revision": row["revision"], "weights": row["weights"]},
        "versions": json.loads(row["versions"]) if row.get("versions") else None,
        "git_hash": row["git_hash"],
    }
    summary["measurement"] = measurement(summary, derived=True)
    try:
        return with_ids(summary, Path(row["run_dir"]))
    except ResultsFileError:  # its folder's rows no longer read: the record from the columns alone
        return summary["measurement"]


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Schema 1 -> 2: the decoder columns (every run before them was greedy); 2 -> 3: each row's series and
    measurement record, derived; the key index with them; 3 -> 4: the interval columns (NULL: n/a). Several
    processes may open an old file at once: the first migrates, the others find it done."""
    with _transaction(db, path, "cannot be upgraded to history schema version 4 here ({err}); open it once where "
                      "it can be written"):  # fmt: skip
        version = db.execute("PRAGMA user_version").fetchone()[0]
        columns = [r[1] for r in db.execute("PRAGMA table_info(runs)")]
        if version == HISTORY_SCHEMA_VERSION:
            return
        written = {1: ADDED_IN_2 + ADDED_IN_3 + ADDED_IN_4, 2: ADDED_IN_3 + ADDED_IN_4, 3: ADDED_IN_4}.get(version)
        if written is None:
            raise _refuse(path, f"has history schema version {version}, expected {HISTORY_SCHEMA_VERSION}")
        if columns != [c for c in COLUMNS if c not in written]:
            raise _refuse(path, f"its runs table has other columns than history schema version {version}")
        for name in written:
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {COLUMNS[name]}")
        for row in list(db.execute("SELECT * FROM runs")) if version < 3 else []:  # 3 -> 4: columns only
            try:
                record = _derived_record(dict(row))
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
                raise _refuse(
                    path, f"run {row['run_id']!r} cannot be given a series ({type(err).__name__}: {err})"
                ) from None
            db.execute(
                "UPDATE runs SET series = ?, measurement = ? WHERE run_id = ?",
                (record["series_id"], json.dumps(record, sort_keys=True), row["run_id"]),
            )
        db.execute("DROP INDEX IF EXISTS runs_by_key")
        db.execute(f"CREATE INDEX runs_by_key ON runs ({', '.join(KEY_COLUMNS)}, finished)")
        db.execute(f"PRAGMA user_version = {HISTORY_SCHEMA_VERSION}")


@contextmanager
def _transaction(db: sqlite3.Connection, path: Path, failure: str):
    """BEGIN IMMEDIATE ... COMMIT; a database error rolls back and becomes one line, `failure` with its {err}."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.DatabaseError as err:
        raise _refuse(path, failure.format(err=err)) from None
    try:
        yield
        db.execute("COMMIT")
    except sqlite3.DatabaseError as err:
        db.execute("ROLLBACK")
        raise _refuse(path, failure.format(err=err)) from None
    except BaseException:
        db.execute("ROLLBACK")
        raise


@contextmanager
def _locked(path: Path):
    """The history's file lock; if another writer holds it, one line says so before waiting (up to
    LOCK_TIMEOUT_S), so a nightly that waits does not look hung."""
    lock = FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"history: {path} is being written by another process: waiting up to {LOCK_TIMEOUT_S:.0f} s", flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _writing(path: Path):
    """A write transaction under the file lock; creates the database and its table on first use."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        _locked(path),
        closing(_connect(path)) as db,
        _transaction(db, path, "could not be written ({err})"),
    ):
        if db.execute("PRAGMA user_version").fetchone()[0] == 0:  # a new file (_connect refuses others)
            columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
            db.execute(f"CREATE TABLE IF NOT EXISTS runs ({columns})")
            db.execute(f"CREATE INDEX IF NOT EXISTS runs_by_key ON runs ({', '.join(KEY_COLUMNS)}, finished)")
            db.execute(f"PRAGMA user_version = {HISTORY_SCHEMA_VERSION}")
        yield db


def record(path: Path, run_dir: Path) -> tuple[dict, bool]:
    """Add one run folder's summary to the history: (its row, whether it was new)."""
    summary_bytes = (Path(run_dir) / "summary.json").read_bytes()
    row = row_from_summary(Path(run_dir), summary_bytes)
    with _writing(path) as db:
        names = list(COLUMNS)
        cursor = db.execute(
            f"INSERT OR IGNORE INTO runs ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
            [_to_sql(row)[n] for n in names],
        )
        added = cursor.rowcount == 1
        stored = _from_sql(db.execute("SELECT * FROM runs WHERE run_id = ?", (row["run_id"],)).fetchone(), path)
        known = (stored["measurement"] or {}).get("fingerprints", {}).get("ids_sha256")
        if not added and known is None and row["measurement"]["fingerprints"].get("ids_sha256") is not None:
            # a run recorded before its record (migrated: its folder was gone then) and found again: its ids now
            # decide its series, as they do for a run recorded today
            db.execute(
                "UPDATE runs SET series = ?, measurement = ? WHERE run_id = ?",
                (row["series"], json.dumps(row["measurement"], sort_keys=True), row["run_id"]),
            )
            stored = {**stored, "series": row["series"], "measurement": row["measurement"]}
    return stored, added


def set_verdict(path: Path, run_id: str, verdict: str, reasons: list[str], baseline_run_id: str | None) -> None:
    if verdict not in ("pass", "fail"):
        raise ValueError(f"verdict={verdict!r}: expected 'pass' or 'fail'")
    with _writing(path) as db:
        db.execute(
            "UPDATE runs SET verdict = ?, verdict_reasons = ?, baseline_run_id = ? WHERE run_id = ?",
            (verdict, json.dumps(reasons), baseline_run_id, run_id),
        )


def rows(path: Path, key: SplitKey | None = None) -> list[dict]:
    """Every recorded run (of one model x split if `key` is given), oldest first."""
    if not Path(path).exists():
        return []
    where, args = ("", ()) if key is None else (" WHERE " + " AND ".join(f"{c} = ?" for c in KEY_COLUMNS), tuple(key))
    with closing(_connect(Path(path))) as db:
        return [_from_sql(r, path) for r in db.execute(f"SELECT * FROM runs{where} ORDER BY finished, rowid", args)]


def is_good(row: dict) -> bool:
    """A run fit to be a baseline: complete, nothing failed, reference not failed, not failed by a nightly."""
    return (
        row["status"] == "complete"
        and not row["n_failed"]
        and row["reference_passed"] is not False
        and row["verdict"] != "fail"
    )


def previous_good(path: Path, row: dict) -> dict | None:
    """The latest good run of the same model x split that finished before `row`."""
    earlier = [r for r in rows(path, SplitKey(row)) if r["finished"] < row["finished"] and r["run_id"] != row["run_id"]]
    good = [r for r in earlier if is_good(r)]
    return good[-1] if good else None


def history_size(path: Path) -> int:
    if not Path(path).exists():
        return 0
    with closing(_connect(Path(path))) as db:
        return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
