"""An output folder's life: claimed and locked, journaled batch by batch, resumed after a kill.

The journal's first line names the run (id and config hash) and every row carries a checksum keyed by the run
id, so a resumed run keeps only its own rows, each checked against the corpus's utterance at its index.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .data import Utterance
from .data.audio import audio_sha256
from .errors import ConfigError, Exit, one_line
from .files import open_regular, write_text_atomic
from .results import (
    SCHEMA_VERSION,
    ResultsFileError,
    RowError,
    UtteranceResult,
    edit_counts,
    parse_row,
    read_summary,
    write_summary,
    write_transcripts,
)

JOURNAL = "transcripts.partial.jsonl"


JOURNAL_VERSION = 1


JOURNALS = "transcripts.partial*.jsonl"


# keys added to the config after runs were written, at their default: left out of the hash, so that a run
# interrupted under the version before still resumes (a set value is part of it, as any setting)
LATER_KEYS_DEFAULTS = {"recheck_margin": None}


def config_sha256(config: dict) -> str:
    """What identifies a run's settings: the resolved config, less the keys a resumed run may change."""
    kept = {
        k: v
        for k, v in flatten(config).items()
        if k not in RESUMABLE_KEYS and not (k in LATER_KEYS_DEFAULTS and v == LATER_KEYS_DEFAULTS[k])
    }
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def _row_sha256(run_id: str, row: dict) -> str:
    payload = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{run_id}\n{payload}".encode()).hexdigest()


def _journal_line(run_id: str, result: UtteranceResult) -> str:
    row = result.to_json()
    return json.dumps({**row, "row_sha256": _row_sha256(run_id, row)}, ensure_ascii=False) + "\n"


@dataclass
class Recovered:
    """What the journals of an interrupted run hold: rows whose header and checksum prove them this run's
    (the last one of an index wins), and why every other line was left out."""

    rows: dict[int, UtteranceResult]
    dropped: list[str]  # a line cut short by the kill itself is not among them: it is expected, and redone


def recover_journals(folder: Path, run_id: str, config_hash: str) -> Recovered:
    """Read every journal in `folder`; a line is kept only if its file's header names this run and config,
    its checksum (keyed by the run id) matches, and it is a valid result row."""
    found = Recovered({}, [])
    expected = {"journal": JOURNAL_VERSION, "run_id": run_id, "config_sha256": config_hash}
    for path in sorted(folder.glob(JOURNALS)):
        with open_regular(path) as handle:
            lines = handle.read().split(b"\n")
        complete = lines[:-1]  # the last piece has no newline: empty, or torn by the kill
        if not complete:
            continue
        try:
            header = json.loads(complete[0])
        except (ValueError, RecursionError):
            header = None
        if header != expected:
            n = sum(1 for line in complete[1:] if line.strip())
            found.dropped.append(f"{path.name}: its header is not this run's ({_shown(header)}); {n} line(s) left out")
            continue
        for number, line in enumerate(complete[1:], start=2):
            if not line.strip():
                continue
            try:
                result = _journal_row(line, run_id)
            except (ValueError, RowError) as err:
                found.dropped.append(f"{path.name}:{number}: {err}")
                continue
            found.rows[result.index] = result
    return found


def _shown(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _journal_row(line: bytes, run_id: str) -> UtteranceResult:
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        raise ValueError("not a JSON line (or nested too deeply)") from None
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, found {type(row).__name__}")
    checksum = row.pop("row_sha256", None)
    if checksum != _row_sha256(run_id, row):
        raise ValueError("checksum does not match (edited, or copied from another run)")
    return parse_row(row)


def mismatch(result: UtteranceResult, utterance: Utterance, normalize: Callable[[str], str]) -> str | None:
    """Why a journal row is not the result of the corpus's utterance at its index (None: it is): another
    id, reference or audio, or edit counts that are not those of its own reference and transcript."""
    if result.id != utterance.id:
        return f"row for {result.id}, but the corpus has {utterance.id} at index {utterance.index}"
    if result.text != utterance.text:
        return f"{utterance.id}: the reference text differs from the corpus's"
    if result.audio_sha256 != audio_sha256(utterance):
        return f"{utterance.id}: the audio differs from the corpus's (SHA-256)"
    stored, counted = edit_counts(result, normalize)
    if counted != stored:
        return f"{utterance.id}: its edit counts are not those of its reference and transcript"
    return None


class Resume:
    """The interrupted run's rows, each kept only once the corpus's utterance at its index matches it."""

    def __init__(self, recovered: Recovered, normalize: Callable[[str], str]):
        self.normalize = normalize
        self.candidates = dict(recovered.rows)
        self.kept: dict[int, UtteranceResult] = {}
        self.dropped = list(recovered.dropped)

    def pending(self, utterances: Iterable[Utterance]) -> Iterator[Utterance]:
        """The utterances still to transcribe, in order: those without a row, or whose row does not match."""
        for utterance in utterances:
            result = self.candidates.pop(utterance.index, None)
            why = None if result is None else mismatch(result, utterance, self.normalize)
            if result is not None and why is None:
                self.kept[utterance.index] = result
                continue
            if why is not None:
                self.dropped.append(why)
            yield utterance
        for index, result in sorted(self.candidates.items()):
            self.dropped.append(f"row for {result.id} at index {index}: the corpus has no utterance there")
        self.candidates.clear()


class Journal:
    """Results appended and flushed batch by batch while a run goes (one file per rank when distributed).

    The first line names the run (its id and config hash) and every row carries a checksum keyed by the
    run id, so a resumed run can tell its own rows from edited, foreign or torn ones. A resumed run starts
    the file afresh with the rows it keeps (written atomically), then appends."""

    def __init__(
        self,
        folder: Path,
        run_id: str,
        config_hash: str,
        rank: int | None = None,
        kept: Iterable[UtteranceResult] = (),
    ):
        self.folder, self.run_id = folder, run_id
        self.path = folder / (JOURNAL if rank is None else f"transcripts.partial.rank{rank}.jsonl")
        header = {"journal": JOURNAL_VERSION, "run_id": run_id, "config_sha256": config_hash}
        write_text_atomic(self.path, json.dumps(header) + "\n" + "".join(_journal_line(run_id, r) for r in kept))
        for other in folder.glob(JOURNALS):  # what other journals held is in this one now
            if other != self.path and rank in (None, 0):
                other.unlink()
        self.new: list[UtteranceResult] = []
        self._handle = self.path.open("a", encoding="utf-8")

    def write(self, results: list[UtteranceResult]) -> None:
        self._handle.write("".join(_journal_line(self.run_id, r) for r in results))
        self.new.extend(results)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def finish(self, kept: dict[int, UtteranceResult], others: Iterable[UtteranceResult] = ()) -> list[UtteranceResult]:
        """All results (kept from an interrupted run, this process's and `others`) in utterance-id order,
        written to transcripts.jsonl atomically. The journals stay until the run is complete (`remove_journals`)."""
        self.close()
        merged = {**kept, **{r.index: r for r in self.new}, **{r.index: r for r in others}}
        # utterance-id order whatever the source's row order (a Hub parquet need not be sorted), so runs of one
        # split from different sources compare line by line; `index` keeps each one's position in its source
        results = sorted(merged.values(), key=lambda r: (r.id, r.index))
        write_transcripts(self.folder, (r.to_json() for r in results))
        return results


def remove_journals(folder: Path) -> None:
    """After `complete` is on disk: the journals, and temporary files a kill left behind."""
    for path in [*folder.glob(JOURNALS), *folder.glob(".*.tmp")]:
        path.unlink(missing_ok=True)


def prepare_output_dir(output_dir: str | os.PathLike) -> Path:
    """Create the output folder and prove it is writable now, not after an hour of inference."""
    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        # a fresh, exclusively created probe: a planted `.write-test` symlink is never followed
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OSError(f"output_dir={str(output_dir)!r} is not writable: {err.strerror or err}") from err
    return path


LOCK = ".w2v2bench.lock"


@dataclass
class Claim:
    """An output folder held by this run for its whole life (an exclusive lock the OS drops if it dies)."""

    path: Path
    run_id: str
    stored: dict | None  # the interrupted run's summary.json, when resuming
    lock: FileLock

    def release(self) -> None:
        self.lock.release()


def claim_output_dir(output_dir: str | os.PathLike, config: dict, resume: bool) -> Claim:
    """Make, lock and check `output_dir`: a second run in it fails at once, nothing already in it is
    overwritten (a fresh run needs an empty folder), and a resumed run must match the interrupted one's config."""
    path = prepare_output_dir(output_dir)
    lock = FileLock(path / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(
            f"output_dir={str(output_dir)!r} is in use by another run (it holds {path / LOCK}); "
            "wait for that run or choose another output_dir"
        ) from None
    try:
        if resume:
            stored = check_resumable(path, config)
            return Claim(path, stored.get("run_id") or uuid.uuid4().hex, stored, lock)
        found = sorted(p.name for p in path.iterdir() if p.name != LOCK)
        if found:
            shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
            what = "a run's outputs" if "summary.json" in found else "other files"
            raise ConfigError(
                f"output_dir={str(output_dir)!r} already holds {what} ({shown}): a run needs a new or empty "
                "folder; pass resume=true to continue an interrupted run there, or choose another output_dir"
            )
        return Claim(path, uuid.uuid4().hex, None, lock)
    except BaseException:
        lock.release()
        raise


# settings a resumed run may change: they do not touch the transcripts
# (data.commit may be unknown when resuming offline; each journal row's audio and text are checked instead)
RESUMABLE_KEYS = {
    "resume",
    "progress",
    "progress_every_s",
    "num_workers",
    "decoder.workers",
    "backend.cache",  # where exports are kept: each is checked against its own record, wherever it lives
    "output_dir",
    "verbose",
    "data.commit",
}


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resumable(output_dir: Path, config: dict) -> dict:
    """The interrupted run's summary, if it was started with the same config (keys that change nothing
    excepted); a complete run is returned as it is, for the caller to report."""
    path = output_dir / "summary.json"
    if not path.exists():
        raise ConfigError(f"resume=true: {path} does not exist: nothing to resume in output_dir={str(output_dir)!r}")
    try:
        stored = read_summary(path)
    except (ResultsFileError, OSError) as err:
        raise ConfigError(f"resume=true: {one_line(err)}") from None
    old, new = flatten(stored["config"]), flatten(config)
    differing = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in RESUMABLE_KEYS)
    if differing:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differing)
        raise ConfigError(f"resume=true: the config differs from the interrupted run's in {shown}")
    return stored


def already_complete(claim: Claim) -> int:
    """resume=true on a run that finished: nothing to transcribe; leftovers of a kill after the finish go."""
    remove_journals(claim.path)
    passed = (claim.stored.get("reference") or {}).get("passed")
    print(f"the run in {claim.path} is already complete: nothing to resume")
    if passed is False:
        return Exit.REFERENCE_FAILED
    check = claim.stored.get("precision_check") or {}
    differ = claim.stored.get("precision_differs_from_fp32") or check.get("bound_violations")
    return Exit.NOT_EXACT if check.get("recheck_margin") is not None and differ else Exit.OK


def _kept(resume: Resume | None) -> list:
    return [] if resume is None else sorted(resume.candidates.values(), key=lambda r: r.index)


def check_same_decoder(before: object, now: dict, has_rows: bool) -> None:
    """A resumed run decodes with the interrupted run's decoder: same settings, same LM and lexicon contents.
    `before` is what the interrupted run's summary.json recorded (absent when it died before its decoder was
    built, or was written before decoders were recorded: then only greedy rows can be taken on)."""
    if before is None and (not has_rows or now.get("name") == "greedy"):
        return
    if not isinstance(before, dict):
        raise ConfigError(
            f"resume: the interrupted run's summary.json records its decoder as {str(before)[:60]!r}, not as an "
            "object: its journal rows cannot be checked against this decoder; start a new run in another output_dir"
        )
    if before == now:
        return
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    raise ConfigError(
        f"resume: the decoder differs from the interrupted run's ({', '.join(changed)[:200]} changed): its journal "
        "rows were decoded otherwise; put the old files back, or start a new run in another output_dir"
    )


class RunFolder:
    """One run's output folder across its ranks, around the walk: the main rank claims (and locks) it, writes the
    summary header and its journal first (taking in what an interrupted run's journals held), then the other
    ranks open theirs; a failure before `commit` marks the summary failed; the lock goes on exit."""

    def __init__(self, config: dict, resume: bool, ranks, started: str):
        self.config, self.resume_asked, self.ranks, self.started = config, resume, ranks, started
        self.claim = claim_output_dir(config["output_dir"], config, resume) if ranks.is_main else None
        stored = self.claim.stored if self.claim is not None else None
        self.complete = stored is not None and stored.get("status") == "complete"
        self.header: dict | None = None
        self.resume: Resume | None = None
        self.journal: Journal | None = None
        self.committed = False

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, kind, err, traceback) -> None:
        try:
            if err is not None and self.header is not None and self.ranks.is_main and not self.committed:
                failed = {**self.header, "status": "failed", "error": f"{type(err).__name__}: {one_line(err)}"}
                with contextlib.suppress(OSError):
                    write_summary(self.path, failed)
        finally:
            if self.claim is not None:
                self.claim.release()

    def open(self, normalize: Callable[[str], str]) -> None:
        """The header and the journals (one output folder and run id for all ranks)."""
        ranks, claim = self.ranks, self.claim
        self.config["output_dir"], self.run_id = ranks.broadcast((self.config["output_dir"], claim and claim.run_id))
        self.path = Path(self.config["output_dir"])
        config_hash = config_sha256(self.config)
        self.header = {
            "schema_version": SCHEMA_VERSION,
            "status": "running",
            "run_id": self.run_id,
            "started": self.started,
            "config": self.config,
        }
        if self.resume_asked and claim is not None and claim.stored is not None and "decoder" in claim.stored:
            self.header["decoder"] = claim.stored["decoder"]  # the interrupted run's LM, checked in `decoding`
        if ranks.is_main:
            if self.resume_asked:
                self.resume = Resume(recover_journals(self.path, self.run_id, config_hash), normalize)
                print(
                    f"resuming: {len(self.resume.candidates)} journal rows of the interrupted run in {self.path}; "
                    "each is kept only if it matches the corpus's utterance at its index"
                )
            write_summary(self.path, self.header)
            # first: it takes in what every rank's journal held
            self.journal = Journal(self.path, self.run_id, config_hash, rank=ranks.journal, kept=_kept(self.resume))
        ranks.broadcast(None)
        if self.journal is None:
            self.journal = Journal(self.path, self.run_id, config_hash, rank=ranks.journal)

    def pending(self, utterances: Iterable[Utterance], total: int | None) -> tuple[Iterable[Utterance], int | None]:
        """The utterances still to transcribe (all of them, unless a resumed run kept rows), and their count."""
        if self.resume is None:
            return utterances, total
        left = None if total is None else total - len(self.resume.candidates)
        return self.resume.pending(utterances), left

    def decoding(self, settings: dict) -> None:
        """Record the decoder in the header (a resumed run's must be the interrupted one's)."""
        if self.ranks.is_main:
            resumed_rows = bool(self.resume and self.resume.candidates)
            check_same_decoder(self.header.get("decoder"), settings, resumed_rows)
            self.header["decoder"] = settings
            write_summary(self.path, self.header)

    def commit(self, status: int) -> None:
        """After summary.finish wrote the complete summary: the journals go, and the other ranks hear the status."""
        self.committed = True
        with contextlib.suppress(OSError):  # leftovers are harmless: a later resume removes them
            remove_journals(self.path)
        self.ranks.broadcast(status)

    def follow(self) -> int:
        """A rank other than the main one, done: its journal closed, the main rank's status."""
        self.journal.close()
        return self.ranks.broadcast(None)
