"""Re-score a finished run from its transcripts.jsonl, without the model, optionally with another normaliser.

Usage: python -m w2v2bench.score run=<run folder> [normalizer=none|basic|whisper|module:function]
       [merge_compounds=true] [out=<folder>]

Every figure (WER, CER, counts, the reference check, the error analysis, the trn files) is recomputed from
the raw reference and hypothesis of each utterance. The results go to `<run>/rescore/<normalizer>/` (or
`out`), with status "rescored", so tables and the nightly never take them for a new run of the model.
Besides score's normalisers it offers `whisper`, Whisper's English normaliser (package `whisper-normalizer`), and
any `module:function` on the Python path (given here on the command line; a file naming one is never imported).
`merge_compounds=true` counts words the model split or joined (`bir d` for `bird`) as no error, as the Open ASR
Leaderboard's scorer does (kaldialign's `merge_compounds`).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from ..analysis import write_analysis
from ..files import OutputFolderError, check_output_folder, free_folder
from ..metrics import Counts, rate
from ..metrics.edits import utterance_counts
from ..metrics.normalizers import normalizer
from ..metrics.significance import run_intervals
from ..provenance import git_hash, versions
from ..results import (
    SCHEMA_VERSION,
    is_scored,
    load_rows,
    load_summary,
    remeasured,
    with_ids,
    write_summary,
    write_transcripts,
)
from ..summary import check_reference
from ..table import write_tables

__all__ = ["rescore"]


# what a re-score writes into its folder (and may rewrite with overwrite=true)
RESCORE_FILES = ("summary.json", "transcripts.jsonl", "wer.md", "wer.csv", "analysis.md", "analysis.json",
                 "wer_by_length.png", "ref.trn", "hyp.trn")  # fmt: skip


def check_rescore_folder(out: Path, overwrite: bool) -> None:
    """A re-score never lands on a run (its own or another) or on a user's files; on an earlier re-score only
    with overwrite=true."""
    summary = out / "summary.json"
    if summary.is_file() or (out / "transcripts.jsonl").is_file():
        status = (load_summary(out) or {}).get("status") if summary.is_file() else None
        if status != "rescored":
            raise OutputFolderError(
                f"out={str(out)!r} is a run folder: a re-score never replaces a run; give a new folder, e.g. "
                f"out={free_folder(out / 'rescore')}"
            )
        if not overwrite:
            raise OutputFolderError(
                f"out={str(out)!r} holds a re-score already: overwrite=true replaces it, or give a new folder, e.g. "
                f"out={free_folder(out)}"
            )
    check_output_folder(out, RESCORE_FILES, "score")


def rescore(
    run_dir: Path,
    normalizer_name: str | None = None,
    out: Path | None = None,
    merge_compounds: bool = False,
    overwrite: bool = False,
) -> tuple[dict, Path]:
    """Recompute a run's figures into `out`; returns (the new summary, out). `normalizer_name` may be code
    (module:function): the caller's own value, never the run's file's."""
    run_dir = Path(run_dir)
    summary = load_summary(run_dir)
    if summary is None:
        raise FileNotFoundError(f"run={str(run_dir)!r}: no summary.json in that folder")
    rows = load_rows(run_dir)
    summary["measurement"] = with_ids(summary, run_dir)  # a run written before the record: its ids from its rows
    original = summary.get("normalizer") or "none"
    name = normalizer_name or original
    normalize = normalizer(None if name == "none" else name, allow_code=name == normalizer_name)
    folder = name.replace(":", "-") + ("+merge_compounds" if merge_compounds else "")
    out = Path(out) if out is not None else run_dir / "rescore" / folder
    check_rescore_folder(out, overwrite)

    words = chars = Counts()
    rescored = []
    for row in rows:
        w = c = Counts()
        if is_scored(row):
            try:
                w, c = utterance_counts(row["text"], row["pred_text"], normalize, merge_compounds)
            except ValueError as err:  # a code normaliser that failed on this text
                raise ValueError(f"{row.get('id')}: {err}") from None
            words, chars = words + w, chars + c
        rescored.append(
            {
                **row,
                "substitutions": w.substitutions,
                "deletions": w.deletions,
                "insertions": w.insertions,
                "ref_words": w.ref_words,
                "char_errors": c.errors,
                "ref_chars": c.ref_words,
            }
        )
    wer, cer = rate([words]), rate([chars])

    reference, note = None, summary.get("reference_note")
    old = summary.get("reference")
    if old and name != original:
        note = f"not checked: re-scored with normalizer={name!r}, the reference figures are for {original!r}"
    elif old and merge_compounds:
        note = "not checked: re-scored with merge_compounds=true, the reference figures count every word"
    elif old:
        check = check_reference(wer, old["wer"], old["tolerance"], old.get("source"))
        reference = {"wer": check.wer, "tolerance": check.tolerance, "source": check.source, "passed": check.passed}

    new = {
        **summary,
        "status": "rescored",
        "wer": wer,
        "cer": cer,
        **run_intervals(rescored),  # of the re-scored counts
        "n_utterances": len(rows),
        "n_failed": sum(1 for r in rows if r.get("error") is not None),
        "ref_words": words.ref_words,
        "word_errors": {
            "substitutions": words.substitutions,
            "deletions": words.deletions,
            "insertions": words.insertions,
        },
        "ref_chars": chars.ref_words,
        "char_errors": chars.errors,
        "normalizer": name,
        "merge_compounds": merge_compounds,
        "reference": reference,
        "reference_note": note,
        "rescore": {
            "source_run": str(run_dir.resolve()),
            "source_normalizer": original,
            "source_wer": summary.get("wer"),
            "source_cer": summary.get("cer"),
            "rescored_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_hash": git_hash(),
            "versions": {**versions(), "whisper-normalizer": _version("whisper-normalizer")},
            "command": " ".join(sys.argv),
        },
    }
    new["schema_version"] = SCHEMA_VERSION
    new["measurement"] = remeasured(new)  # another normaliser or merged compounds: another series
    out.mkdir(parents=True, exist_ok=True)
    write_transcripts(out, rescored)
    write_summary(out, new)
    write_tables(out, new)
    write_analysis(out, normalize=normalize)
    return new, out


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# ----------------------------------------------------------------------------------------------------------
# Command line
