"""Run outputs: transcripts.jsonl as results arrive, summary.json, wer.md/wer.csv, the reference check.

Every output describes itself (schema version, config, versions, git hash, device); nothing is parsed
back out of a path. `gather` re-reads summaries under a folder into one model x split table.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout

from .config import ConfigError, ReferenceConfig, one_line
from .data import Utterance, audio_sha256
from .files import open_regular
from .results import ResultsFileError, RowError, UtteranceResult, edit_counts, parse_row, read_summary
from .score import Totals

SCHEMA_VERSION = 1
PACKAGES = ("w2v2bench", "torch", "transformers", "datasets", "jiwer", "soundfile", "hydra-core", "numpy")


@dataclass(frozen=True)
class ReferenceCheck:
    wer: float
    tolerance: float
    source: str | None
    passed: bool
    measured_wer: float

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"reference check {verdict}: WER {self.measured_wer * 100:.2f} % vs {self.wer * 100:.2f} % "
            f"expected (tolerance {self.tolerance * 100:.2f} points; {self.source})"
        )


def check_reference(measured_wer: float, expected: float, tolerance: float, source: str | None) -> ReferenceCheck:
    passed = not math.isnan(measured_wer) and abs(measured_wer - expected) <= tolerance + 1e-12
    return ReferenceCheck(expected, tolerance, source, passed, measured_wer)


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_hash() -> str | None:
    """The harness's own commit (with `-dirty` for uncommitted changes), if it runs from a checkout."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{rev}-dirty" if dirty else rev


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for the team to read
    os.replace(tmp, path)


def write_json_atomic(path: Path, payload: Any) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, allow_nan=True) + "\n")


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


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
        write_jsonl_atomic(self.folder / "transcripts.jsonl", (r.to_json() for r in results))
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


def table_row(summary: dict) -> dict:
    cfg = summary["config"]
    ref = summary.get("reference") or {}
    return {
        "model": cfg["model"]["name"],
        "data": cfg["data"]["name"],
        "split": f"{cfg['data']['partition']}-{cfg['split']}",
        "wer_%": round(summary["wer"] * 100, 2),
        "cer_%": round(summary["cer"] * 100, 2),
        "errors": summary["word_errors"]["substitutions"]
        + summary["word_errors"]["deletions"]
        + summary["word_errors"]["insertions"],
        "substitutions": summary["word_errors"]["substitutions"],
        "deletions": summary["word_errors"]["deletions"],
        "insertions": summary["word_errors"]["insertions"],
        "ref_words": summary["ref_words"],
        "utterances": summary["n_utterances"],
        "failed": summary["n_failed"],
        "audio_s": round(summary["audio_s"], 1),
        "rtfx": round(summary["rtfx"], 1),
        "batch_size": 1 if summary.get("batching_fallback") else cfg["batch_size"],  # what ran
        "reference_%": None if not ref else round(ref["wer"] * 100, 2),
        "reference_passed": None if not ref else ref["passed"],
    }


def leaderboard_row(summary: dict) -> dict:
    """One model x split of `make leaderboard`: what ran, our WER beside the card's, and the check's verdict."""
    cfg, info = summary["config"], summary.get("model") or {}
    figure = summary.get("reference_figure") or {}
    ref = summary.get("reference")
    wer = round(summary["wer"] * 100, 2)
    card = None if not figure else round(figure["wer"] * 100, 2)
    if ref is not None:
        check = "pass" if ref["passed"] else "FAIL"
    else:
        check = f"not checked: {summary.get('reference_note') or 'no reference'}"
    return {
        "model": cfg["model"]["name"],
        "data": cfg["data"]["name"],
        "split": f"{cfg['data']['partition']}-{cfg['split']}",
        "class": info.get("architecture"),
        "norm": info.get("feat_extract_norm"),
        "decoder": (summary.get("decoder") or {}).get("name", "greedy"),
        "backend": (summary.get("backend") or {}).get("name", "torch"),
        "utterances": summary["n_utterances"],
        "wer_%": wer,
        "card_%": card,
        "diff_pts": None if card is None else round(wer - card, 2),
        "check": check,
        "rtfx": round(summary["rtfx"], 1),
        "batch_size": 1 if summary.get("batching_fallback") else cfg["batch_size"],
        "precision": cfg["precision"],
        "device": summary.get("device"),
    }


def write_tables(output_dir: Path, summary: dict) -> pd.DataFrame:
    frame = pd.DataFrame([table_row(summary)])
    write_text_atomic(output_dir / "wer.csv", frame.to_csv(index=False))
    write_text_atomic(output_dir / "wer.md", frame.to_markdown(index=False) + "\n")
    return frame


def gather(root: str | os.PathLike, row=None) -> tuple[pd.DataFrame, list[str]]:
    """Every completed run's summary.json under `root`, one row each (`row(summary)`: table_row by default),
    newest run of a model x split last; and one line for each summary.json that could not be read (skipped,
    the others still count)."""
    row = row or table_row
    rows, skipped = [], []
    for path in sorted(Path(root).rglob("summary.json")):
        try:
            summary = read_summary(path)
        except (ResultsFileError, OSError) as err:
            skipped.append(f"skipped {one_line(err)}")
            continue
        if summary["status"] != "complete":
            continue
        rows.append({**row(summary), "finished": summary.get("finished"), "run": str(path.parent)})
    frame = pd.DataFrame(rows)
    if not frame.empty:
        keys = [k for k in ("model", "data", "split", "decoder") if k in frame.columns]
        frame = frame.sort_values([*keys, "finished"]).reset_index(drop=True)
    return frame, skipped


# settings a resumed run may change: they do not touch the transcripts
# (data.commit may be unknown when resuming offline; each journal row's audio and text are checked instead)
RESUMABLE_KEYS = {
    "resume",
    "progress",
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


def reference_check(
    reference: ReferenceConfig | None,
    t: Totals,
    data: str,
    split: str,
    partition: str,
    limit: int | None,
    decoder: str = "greedy",
) -> tuple[ReferenceCheck | None, str]:
    """The check against published figures, or why there is none."""
    if reference is None or not reference.wer:
        return None, "no reference figures for this model"
    if reference.decoder.value != decoder:
        return None, f"reference {reference.name!r} is for decoder={reference.decoder.value}, this run used {decoder}"
    if reference.data != data:
        return None, f"reference {reference.name!r} is for data {reference.data!r}, not {data!r}"
    if split not in reference.wer:
        return None, f"reference {reference.name!r} has no figure for split={split!r}"
    if reference.partition.value != partition:
        return None, f"reference {reference.name!r} is for data.partition={reference.partition.value!r}"
    if limit is not None:
        return None, f"skipped: limit={limit} scores a subset, the reference is for the whole split"
    expected_n = reference.utterances.get(split, t.n_utterances)
    if expected_n != t.n_utterances:
        return None, (
            f"skipped: {t.n_utterances} utterances scored, the reference is for all {expected_n} of {partition}-{split}"
        )
    if t.n_failed:
        check = check_reference(float("nan"), reference.wer[split], reference.tolerance, reference.source)
        return check, f"failed: {t.n_failed} utterance(s) could not be transcribed"
    return check_reference(t.wer, reference.wer[split], reference.tolerance, reference.source), "checked"


def precision_check(ranks: list, config: dict) -> dict | None:
    """What checking the run's precision or runtime against PyTorch fp32 found, over every rank; None: not asked."""
    checks = [s.precision_check for s in ranks if s.precision_check is not None]
    if not checks:
        return None
    compared = sum(c.compared_utterances for c in checks)
    margin = config.get("recheck_margin")
    return {
        "reference": "PyTorch fp32 (the model's own forward, exact batching)",
        "recheck_margin": margin,
        "rechecked_utterances": sum(c.rechecked_utterances for c in checks),
        "close_frames": sum(c.close_frames for c in checks) if margin is not None else None,
        "compared_utterances": compared,
        "max_abs_logit_diff": max(c.max_abs_logit_diff for c in checks) if compared else None,
        "bound_violations": sum(c.bound_violations for c in checks) if compared and margin is not None else None,
        "non_finite_frames": sum(c.non_finite_frames for c in checks) if compared else None,
    }


def build_summary(
    config: dict,
    started: str,
    t: Totals,
    ranks: list,
    load_s: float,
    model: dict,
    device: str,
    run_id: str,
    resume: Resume | None,
) -> dict:
    """summary.json: the figures from the results, timing from each rank's stats, and what ran where."""
    wall_s = max(s.wall_s for s in ranks)  # ranks run side by side: the slowest one is the run's wall
    timed_audio_s = sum(s.audio_s for s in ranks)
    model_s, model_audio_s = sum(s.model_s for s in ranks), sum(s.model_audio_s for s in ranks)
    padded, valid = sum(s.padded_samples for s in ranks), sum(s.valid_samples for s in ranks)
    differs = [s.precision_differs for s in ranks if s.precision_differs is not None]
    timed_utterances = sum(s.n_utterances for s in ranks)
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "complete",
        "run_id": run_id,
        "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "wer": t.wer,
        "cer": t.cer,
        "n_utterances": t.n_utterances,
        "n_failed": t.n_failed,
        "failed_excluded_from_wer": True,
        "ref_words": t.words.ref_words,
        "word_errors": {
            "substitutions": t.words.substitutions,
            "deletions": t.words.deletions,
            "insertions": t.words.insertions,
        },
        "ref_chars": t.chars.ref_words,
        "char_errors": t.chars.errors,
        "normalizer": config["normalizer"] or "none",
        "audio_s": t.audio_s,
        # timing covers what this run's processes transcribed (all of it unless resumed)
        "timed_utterances": timed_utterances,
        "timed_audio_s": timed_audio_s,
        "resumed_from": None if resume is None else len(resume.kept),
        "resume_dropped": None if resume is None else len(resume.dropped),
        "resume_dropped_reasons": None if resume is None else resume.dropped[:20],
        "wall_s": wall_s,
        "load_s": load_s,
        "rtfx": timed_audio_s / wall_s if wall_s else 0.0,
        "model_s": model_s,
        "model_rtfx": model_audio_s / model_s if model_s else 0.0,
        "warmup_batches": sum(s.warmup_batches for s in ranks),
        "n_batches": sum(s.n_batches for s in ranks),
        "oom_splits": sum(s.oom_splits for s in ranks),
        "padding_fraction": 1 - valid / padded if padded else 0.0,
        "precision": config["precision"],
        # null: batches of batch_size ran; else why the model ran at batch size 1 (its batches cannot be made exact)
        "batching_fallback": model.get("batching_fallback"),
        "precision_differs_from_fp32": sum(differs) if differs else None,
        "precision_check": precision_check(ranks, config),
        "world_size": len(ranks),
        "ranks": [
            {
                "rank": r,
                "utterances": s.n_utterances,
                "audio_s": s.audio_s,
                "wall_s": s.wall_s,
                "rtfx": s.audio_s / s.wall_s if s.wall_s else 0.0,
            }
            for r, s in enumerate(ranks)
        ],
        "model": model,
        "device": device,
        "host": socket.gethostname(),
        "git_hash": git_hash(),
        "versions": versions(),
        "command": " ".join(sys.argv),
        "config": config,
    }
