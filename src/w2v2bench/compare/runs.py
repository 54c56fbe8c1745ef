"""Two finished runs of the same utterances side by side: settings, figures, differing transcripts, significance."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..align import aligned
from ..metrics import Counts, rate
from ..metrics.normalizers import normalizer
from ..metrics.significance import Bootstrap, Mapsswe, mapsswe, paired_bootstrap
from ..results import read_run, read_summary

ABSENT = "<absent>"  # a setting one side does not have


# keys of a run's summary whose differences are worth showing; output_dir always differs
SETTINGS = ("config", "model", "normalizer", "precision", "backend", "decoder", "device", "git_hash", "versions")


class CompareError(ValueError):
    """Inputs that cannot be compared; the message names the bad value. Printed as one line, exit 1."""


@dataclass(frozen=True)
class Run:
    path: str
    summary: dict[str, Any]
    rows: dict[str, dict[str, Any]]  # id -> transcripts.jsonl row, in corpus order

    def describe(self) -> str:
        cfg = self.summary.get("config", {})
        data = cfg.get("data", {})
        limit = f", limit={cfg['limit']}" if cfg.get("limit") is not None else ""
        backend = self.summary.get("backend")
        runtime = ""
        if isinstance(backend, Mapping) and backend.get("name") not in (None, "torch"):
            runtime = f"; backend {backend.get('name')} {backend.get('version')} {backend.get('precision')}"
        return (
            f"model {cfg.get('model', {}).get('name')} ({self.summary.get('model', {}).get('checkpoint')}); "
            f"{data.get('name')} {data.get('partition')}-{cfg.get('split')}{limit}; {len(self.rows)} utterances"
            f"{runtime}"
        )

    def precision_note(self, key: str) -> str | None:
        """What the run's own check against PyTorch fp32 found (check_precision, recheck_margin), if it ran one."""
        check = self.summary.get("precision_check")
        if not isinstance(check, Mapping):
            return None
        parts = []
        if check.get("compared_utterances"):
            parts.append(
                f"checked against PyTorch fp32 on {check['compared_utterances']} utterances: max |logit difference| "
                f"{_cell(check.get('max_abs_logit_diff'))}, "
                f"{_cell(self.summary.get('precision_differs_from_fp32'))} transcript(s) differ"
            )
        if check.get("recheck_margin") is not None:
            violations = check.get("bound_violations")
            parts.append(
                f"{_cell(check.get('rechecked_utterances'))} utterance(s) re-run in fp32 (recheck_margin "
                f"{_cell(check['recheck_margin'])})"
                + ("" if violations is None else f", {violations} frame(s) broke the bound")
            )
        return f"{key}: " + "; ".join(parts) if parts else None


def is_run(folder: str | Path) -> bool:
    """A harness output folder: summary.json from the start, transcripts.jsonl once it completes."""
    return (Path(folder) / "summary.json").is_file()


def load_run(folder: str | Path) -> Run:
    """A complete run folder's summary and per-utterance rows, validated (`results`); a malformed, foreign
    or unfinished run fails with the file, line and field."""
    path = Path(folder)
    if not is_run(path):
        raise CompareError(f"{str(folder)!r}: not a run folder (expected summary.json and transcripts.jsonl)")
    summary = read_summary(path / "summary.json")
    transcripts = path / "transcripts.jsonl"
    if summary["status"] != "complete" or not transcripts.is_file():
        raise CompareError(
            f"{str(folder)!r}: the run is not complete (status {summary['status']!r}"
            f"{'' if transcripts.is_file() else ', no transcripts.jsonl'}); finish it with the harness's resume=true"
        )
    summary, rows = read_run(path)
    return Run(str(path), summary, {row["id"]: row for row in rows})


def _word_errors(row: Mapping[str, Any]) -> int:
    return row["substitutions"] + row["deletions"] + row["insertions"]


def _scored_errors(row: Mapping[str, Any] | None) -> int | None:
    return None if row is None or row["error"] else _word_errors(row)


def _transcript(row: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """What a row says happened: its transcript, or why it failed (a failed row's pred_text is "" in runs since
    issue #17, null before: the same failure either way)."""
    return (None, row["error"]) if row["error"] is not None else (row["pred_text"], None)


def _hyp(row: Mapping[str, Any] | None, side: str) -> tuple[str | None, str]:
    """(transcript or None, why there is none) for the alignment view."""
    if row is None:
        return None, f"not in run {side}"
    if row["error"] is not None:  # a failed row's pred_text is "" (null in older runs)
        return None, f"failed: {row['error']}"
    return row["pred_text"], ""


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def setting_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every nested key whose values differ; ABSENT where missing."""
    fa, fb = _flatten(a), _flatten(b)
    keys = sorted(fa.keys() | fb.keys())
    return [(k, fa.get(k, ABSENT), fb.get(k, ABSENT)) for k in keys if fa.get(k, ABSENT) != fb.get(k, ABSENT)]


def _settings(summary: Mapping[str, Any]) -> dict[str, Any]:
    picked = {key: summary.get(key, ABSENT) for key in SETTINGS}
    if isinstance(picked["config"], Mapping):
        picked["config"] = {k: v for k, v in picked["config"].items() if k != "output_dir"}
    return picked


@dataclass(frozen=True)
class UtteranceDiff:
    id: str
    text: str | None  # the reference, as A has it
    a: str | None  # A's transcript; None where A failed or lacks the utterance
    b: str | None
    errors_a: int | None  # word errors; None where not scored
    errors_b: int | None
    ref_words: int | None
    note: str | None  # why it is not an ordinary difference (missing, failed, reference differs)
    alignment: str  # reference, A and B in aligned columns (normalised as each run scored them)


@dataclass(frozen=True)
class RunComparison:
    a: str  # the run folders
    b: str
    describe_a: str  # model, data and size of each run, for people
    describe_b: str
    n_a: int
    n_b: int
    n_paired: int  # utterances in both runs and transcribed by both: what WER, CER and the tests use
    only_a: list[str]
    only_b: list[str]
    failed: list[str]  # in both runs, failed in one or both (excluded from the rates)
    reference_differs: list[str]
    words_a: Counts
    words_b: Counts
    chars_a: Counts  # character errors counted as substitutions, as run.py sums them
    chars_b: Counts
    better: int  # paired utterances where B makes fewer word errors than A
    worse: int
    same: int
    differences: list[UtteranceDiff]  # every utterance whose transcript differs or is in one run only
    mapsswe: Mapsswe
    bootstrap: Bootstrap
    settings: list[tuple[str, Any, Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def wer_a(self) -> float:
        return rate([self.words_a])

    @property
    def wer_b(self) -> float:
        return rate([self.words_b])

    @property
    def wer_delta(self) -> float:
        return self.wer_b - self.wer_a

    @property
    def cer_a(self) -> float:
        return rate([self.chars_a])

    @property
    def cer_b(self) -> float:
        return rate([self.chars_b])

    @property
    def cer_delta(self) -> float:
        return self.cer_b - self.cer_a

    @property
    def identical(self) -> bool:
        return not self.differences


def _alignment(text: str | None, hyps: Mapping[str, tuple[str | None, Any]], norms: Mapping[str, Any]) -> str:
    """Reference vs the transcripts that exist, normalised as scored; failed or missing ones named below."""
    ref_norm = norms["A"](text or "")
    present = {k: norms[k](hyp) for k, (hyp, _) in hyps.items() if hyp is not None}
    lines = [aligned(ref_norm, present)] if present else [f"REF: {ref_norm}"]
    pad = max(len(k) for k in ["REF", *hyps]) + 2
    lines += [f"{k + ':':<{pad}}({why})" for k, (hyp, why) in hyps.items() if hyp is None]
    return "\n".join(lines)


def compare_runs(a: Run, b: Run, bootstrap_samples: int = 10_000, seed: int = 0) -> RunComparison:
    """Match utterances by id; every differing transcript with its alignment; rates, counts and tests."""
    norm_a, norm_b = a.summary.get("normalizer"), b.summary.get("normalizer")
    norms = {
        "A": normalizer(None if norm_a == "none" else norm_a),
        "B": normalizer(None if norm_b == "none" else norm_b),
    }
    notes = [note for note in (a.precision_note("A"), b.precision_note("B")) if note]
    if (norm_a or "none") != (norm_b or "none"):
        notes.append(
            f"the runs scored with different normalizers (A {norm_a!r}, B {norm_b!r}): rates differ by that too"
        )
    only_a = [i for i in a.rows if i not in b.rows]
    only_b = [i for i in b.rows if i not in a.rows]
    failed, reference_differs, differences = [], [], []
    words_a = words_b = chars_a = chars_b = Counts()
    paired_a, paired_b, paired_refs, paired_speakers = [], [], [], []
    better = worse = same = 0
    for uid in [*a.rows, *only_b]:
        ra, rb = a.rows.get(uid), b.rows.get(uid)
        note = f"only in run {'A' if rb is None else 'B'}" if ra is None or rb is None else None
        if ra is not None and rb is not None:
            if ra["text"] != rb["text"]:
                reference_differs.append(uid)
                note = f"reference differs: B has {rb['text']!r}"
            if ra["error"] or rb["error"]:
                failed.append(uid)
                why = "; ".join(f"failed in {k}: {r['error']}" for k, r in (("A", ra), ("B", rb)) if r["error"])
                note = f"{note}; {why}" if note else why
            else:
                ea, eb = _word_errors(ra), _word_errors(rb)
                words_a += Counts(ra["substitutions"], ra["deletions"], ra["insertions"], ra["ref_words"])
                words_b += Counts(rb["substitutions"], rb["deletions"], rb["insertions"], rb["ref_words"])
                chars_a += Counts(ra.get("char_errors", 0), 0, 0, ra.get("ref_chars", 0))
                chars_b += Counts(rb.get("char_errors", 0), 0, 0, rb.get("ref_chars", 0))
                paired_a.append(ea)
                paired_b.append(eb)
                paired_refs.append(ra["ref_words"])
                paired_speakers.append(ra.get("speaker"))
                better += eb < ea
                worse += eb > ea
                same += eb == ea
        if ra is None or rb is None or _transcript(ra) != _transcript(rb):
            row = ra or rb
            differences.append(
                UtteranceDiff(
                    id=uid,
                    text=row["text"],
                    a=ra and ra["pred_text"],
                    b=rb and rb["pred_text"],
                    errors_a=_scored_errors(ra),
                    errors_b=_scored_errors(rb),
                    ref_words=row["ref_words"],
                    note=note,
                    alignment=_alignment(row["text"], {"A": _hyp(ra, "A"), "B": _hyp(rb, "B")}, norms),
                )
            )
    if only_a or only_b:
        notes.append(f"utterances in one run only: {len(only_a)} in A, {len(only_b)} in B (listed as differences)")
    if failed:
        notes.append(f"{len(failed)} utterance(s) failed in A or B and are left out of the rates and tests")
    if reference_differs:
        notes.append(f"{len(reference_differs)} utterance(s) have a different reference text in A and B")
    if not paired_a:
        notes.append("no utterance was scored in both runs: there are no rates or tests to compare")
    return RunComparison(
        a=a.path,
        b=b.path,
        describe_a=a.describe(),
        describe_b=b.describe(),
        n_a=len(a.rows),
        n_b=len(b.rows),
        n_paired=len(paired_a),
        only_a=only_a,
        only_b=only_b,
        failed=failed,
        reference_differs=reference_differs,
        words_a=words_a,
        words_b=words_b,
        chars_a=chars_a,
        chars_b=chars_b,
        better=better,
        worse=worse,
        same=same,
        differences=differences,
        mapsswe=mapsswe(paired_a, paired_b),
        # the nightly's test on the runs' intervals' unit: speakers (utterances where they are unknown or few)
        bootstrap=paired_bootstrap(paired_a, paired_b, paired_refs, bootstrap_samples, seed, paired_speakers),
        settings=setting_differences(_settings(a.summary), _settings(b.summary)),
        notes=notes,
    )


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("|", "\\|").replace("\n", " ")
