"""Run outputs: transcripts.jsonl as results arrive, summary.json, wer.md/wer.csv, the reference check.

Every output describes itself (schema version, config, versions, git hash, device); nothing is parsed
back out of a path. `gather` re-reads summaries under a folder into one model x split table.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from .config import ConfigError, ReferenceConfig
from .score import Totals

SCHEMA_VERSION = 1
PACKAGES = ("w2v2bench", "torch", "transformers", "datasets", "jiwer", "soundfile", "hydra-core", "numpy")


@dataclass(frozen=True)
class UtteranceResult:
    index: int  # position in corpus order
    id: str
    speaker: str
    chapter: str
    duration_s: float
    text: str | None
    pred_text: str | None
    substitutions: int
    deletions: int
    insertions: int
    ref_words: int
    char_errors: int
    ref_chars: int
    error: str | None
    notes: list[str]


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


def recover_journals(folder: Path) -> dict[int, UtteranceResult]:
    """Every complete line of the journals in `folder`; a line torn by a kill (and anything after it)
    is cut off the file, so it is transcribed again."""
    done: dict[int, UtteranceResult] = {}
    for path in sorted(folder.glob("transcripts.partial*.jsonl")):
        good_bytes = 0
        with path.open("rb") as handle:
            for line in handle:
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("torn line")
                    row = UtteranceResult(**json.loads(line))
                except (ValueError, TypeError):
                    break
                done[row.index] = row
                good_bytes += len(line)
        with path.open("r+b") as handle:
            handle.truncate(good_bytes)
    return done


class Journal:
    """Results appended and flushed batch by batch while a run goes (one file per rank when
    distributed); `finish` writes `transcripts.jsonl` in corpus order and removes the journals."""

    def __init__(self, folder: Path, resume: bool = False, rank: int | None = None):
        self.folder = folder
        self.path = folder / (JOURNAL if rank is None else f"transcripts.partial.rank{rank}.jsonl")
        # in a distributed run rank 0 recovers every rank's journal and shares what is done
        self.done: dict[int, UtteranceResult] = recover_journals(folder) if resume and not rank else {}
        self.new: list[UtteranceResult] = []
        self._handle = self.path.open("a" if resume else "w", encoding="utf-8")

    def write(self, results: list[UtteranceResult]) -> None:
        for result in results:
            self._handle.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
        self.new.extend(results)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def finish(self, others: Iterable[UtteranceResult] = ()) -> list[UtteranceResult]:
        """All results (recovered, this process's and `others`) in corpus order, written to
        transcripts.jsonl atomically; the journals go."""
        self.close()
        merged = {**self.done, **{r.index: r for r in self.new}, **{r.index: r for r in others}}
        results = [merged[i] for i in sorted(merged)]
        write_jsonl_atomic(self.folder / "transcripts.jsonl", (asdict(r) for r in results))
        for path in self.folder.glob("transcripts.partial*.jsonl"):
            path.unlink()
        return results


def prepare_output_dir(output_dir: str | os.PathLike) -> Path:
    """Create the output folder and prove it is writable now, not after an hour of inference."""
    path = Path(output_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise OSError(f"output_dir={str(output_dir)!r} is not writable: {err.strerror or err}") from err
    return path


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
        "batch_size": cfg["batch_size"],
        "reference_%": None if not ref else round(ref["wer"] * 100, 2),
        "reference_passed": None if not ref else ref["passed"],
    }


def write_tables(output_dir: Path, summary: dict) -> pd.DataFrame:
    frame = pd.DataFrame([table_row(summary)])
    frame.to_csv(output_dir / "wer.csv", index=False)
    (output_dir / "wer.md").write_text(frame.to_markdown(index=False) + "\n", encoding="utf-8")
    return frame


def gather(root: str | os.PathLike) -> pd.DataFrame:
    """Every completed run's summary.json under `root`, one row each, newest run of a model x split last."""
    rows = []
    for path in sorted(Path(root).rglob("summary.json")):
        summary = json.loads(path.read_text(encoding="utf-8"))
        if summary.get("schema_version") != SCHEMA_VERSION or summary.get("status") != "complete":
            continue
        rows.append({**table_row(summary), "finished": summary.get("finished"), "run": str(path.parent)})
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["model", "data", "split", "finished"]).reset_index(drop=True)
    return frame


# settings a resumed run may change: they do not touch the transcripts
RESUMABLE_KEYS = {"resume", "progress", "num_workers", "output_dir"}


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resumable(output_dir: Path, config: dict) -> None:
    """A resumed run must have been started with the same config (keys that change nothing excepted)."""
    path = output_dir / "summary.json"
    if not path.exists():
        raise ConfigError(f"resume=true: {path} does not exist: nothing to resume in output_dir={str(output_dir)!r}")
    stored = json.loads(path.read_text(encoding="utf-8"))
    if stored.get("status") == "complete":
        raise ConfigError(f"resume=true: the run in {output_dir} is already complete")
    old, new = flatten(stored.get("config", {})), flatten(config)
    differing = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in RESUMABLE_KEYS)
    if differing:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differing)
        raise ConfigError(f"resume=true: the config differs from the interrupted run's in {shown}")


def reference_check(
    reference: ReferenceConfig | None, t: Totals, data: str, split: str, partition: str, limit: int | None
) -> tuple[ReferenceCheck | None, str]:
    """The check against published figures, or why there is none."""
    if reference is None or not reference.wer:
        return None, "no reference figures for this model"
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


def build_summary(config: dict, started: str, t: Totals, ranks: list, load_s: float, model: dict, device: str) -> dict:
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
        "resumed_from": t.n_utterances - timed_utterances if config["resume"] else None,
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
        "precision_differs_from_fp32": sum(differs) if differs else None,
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
