"""Compare two runs, or two checkpoints run on the same data: transcripts, WER and CER, a paired test.

Usage: python -m w2v2bench.compare a=<A> b=<B> [out=<folder>] [max_wer_delta=0.0] [fail_on_transcript_diff=true]

A and B are both run folders (summary.json + transcripts.jsonl) or both checkpoints (a folder with
config.json, or a Hub id). Runs are matched utterance by utterance, by id. Checkpoints are diffed (config,
preprocessor, vocabulary, per-tensor max-abs weight differences), then run by the harness on the same
data (`run_args`) and the two runs compared. Writes compare.md and compare.json to `out`.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tabulate import tabulate

from .align import aligned
from .files import write_json_atomic
from .metrics import Counts, pct, rate
from .metrics.normalizers import normalizer
from .metrics.significance import Bootstrap, Mapsswe, mapsswe, paired_bootstrap
from .provenance import git_hash, versions
from .results import read_run, read_summary
from .resume import prepare_output_dir

__all__ = [
    "Bootstrap",
    "CheckpointDiff",
    "CompareError",
    "Comparison",
    "Mapsswe",
    "Run",
    "RunComparison",
    "Target",
    "compare",
    "compare_runs",
    "diff_checkpoints",
    "load_run",
    "mapsswe",
    "paired_bootstrap",
    "render",
    "resolve_target",
    "setting_differences",
    "thresholds_exceeded",
    "write",
]

COMPARE_SCHEMA_VERSION = 1
ABSENT = "<absent>"  # a setting one side does not have
HARNESS_OK = (0, 3)  # exit 3 (reference check failed) still wrote a complete run
# keys of a run's summary whose differences are worth showing; output_dir always differs
SETTINGS = ("config", "model", "normalizer", "precision", "backend", "decoder", "device", "git_hash", "versions")


class CompareError(ValueError):
    """Inputs that cannot be compared; the message names the bad value. Printed as one line, exit 1."""


# ----------------------------------------------------------------------------------------------------------
# Paired significance tests


# ----------------------------------------------------------------------------------------------------------
# Runs


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
    paired_a, paired_b, paired_refs = [], [], []
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
        bootstrap=paired_bootstrap(paired_a, paired_b, paired_refs, bootstrap_samples, seed),
        settings=setting_differences(_settings(a.summary), _settings(b.summary)),
        notes=notes,
    )


# ----------------------------------------------------------------------------------------------------------
# Checkpoints


@dataclass(frozen=True)
class Target:
    spec: str  # as given on the command line
    kind: str  # "run", "folder" (a checkpoint folder) or "hub" (a Hub model id)
    path: str
    offline: str | None = None  # a Hub id while the Hub is unreachable: why (it loads from the cache)


def resolve_target(key: str, spec: str) -> Target:
    """What `key=spec` names: a run folder, a checkpoint folder, or a Hub id (failing fast if unusable offline)."""
    path = Path(spec).expanduser()
    if is_run(path):
        return Target(spec, "run", str(path))
    if (path / "config.json").is_file():
        return Target(spec, "folder", str(path))
    if path.is_dir():
        raise CompareError(
            f"{key}={spec!r}: a folder with neither summary.json + transcripts.jsonl (a run) nor config.json "
            "(a checkpoint)"
        )
    from huggingface_hub import try_to_load_from_cache

    from .hub import hub_unreachable_reason
    from .model import ModelError, resolve_checkpoint

    try:
        resolve_checkpoint(spec)
    except ModelError:
        raise CompareError(
            f"{key}={spec!r}: no such folder (expected a run folder, a checkpoint folder or a Hub model id)"
        ) from None
    reason = hub_unreachable_reason()
    if reason is None:
        return Target(spec, "hub", spec)
    try:
        cached = try_to_load_from_cache(spec, "config.json")
    except ValueError as err:  # huggingface_hub's HFValidationError: not a valid repo id
        raise CompareError(f"{key}={spec!r}: not a run folder, checkpoint folder or Hub model id ({err})") from None
    if not isinstance(cached, str):
        raise CompareError(
            f"cannot load {key}={spec!r}: the Hugging Face Hub is unreachable ({reason}) and it is not cached; "
            "compare local folders instead (a=<checkpoint folder or run folder> b=<...>)"
        )
    return Target(spec, "hub", spec, offline=reason)


@dataclass(frozen=True)
class TensorDiff:
    name: str
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    dtype_a: str
    dtype_b: str
    max_abs: float | None  # max |a - b| in float64; None when the shapes differ


@dataclass(frozen=True)
class CheckpointDiff:
    config: list[tuple[str, Any, Any]]  # config.json as transformers reads it (defaults filled in)
    preprocessor: list[tuple[str, Any, Any]]  # feature extractor settings: do_normalize, sampling_rate ...
    tokenizer: list[tuple[str, Any, Any]]  # special tokens and settings, and `vocab.<token>` ids
    tensors: list[TensorDiff]  # every tensor in both models, by name
    only_a: list[str]  # model tensors A has and B's model has not (different architectures)
    only_b: list[str]
    not_in_file_a: list[str]  # model tensors missing from A's files: transformers initialised them at random
    not_in_file_b: list[str]
    unused_a: list[str]  # tensors in A's files that the model does not use
    unused_b: list[str]

    @property
    def differing_tensors(self) -> list[TensorDiff]:
        return [t for t in self.tensors if t.max_abs is None or t.max_abs > 0 or t.dtype_a != t.dtype_b]

    @property
    def identical(self) -> bool:
        found = (self.config, self.preprocessor, self.tokenizer, self.differing_tensors, self.only_a, self.only_b)
        return not any(found) and not (self.not_in_file_a or self.not_in_file_b)


def _load_checkpoint(key: str, target: Target):
    from transformers import AutoFeatureExtractor, AutoModelForCTC, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs = {"local_files_only": True} if target.offline else {}
    try:
        model, info = AutoModelForCTC.from_pretrained(target.path, output_loading_info=True, **kwargs)
        extractor = AutoFeatureExtractor.from_pretrained(target.path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(target.path, **kwargs)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CompareError(f"{key}={target.spec!r}: cannot load the checkpoint ({first})") from None
    return model, info, extractor, tokenizer


def _tokenizer_settings(tokenizer) -> dict[str, Any]:
    return {
        "special_tokens": dict(tokenizer.special_tokens_map),
        "do_lower_case": getattr(tokenizer, "do_lower_case", ABSENT),
        "vocab": tokenizer.get_vocab(),
    }


def diff_checkpoints(a: Target, b: Target) -> CheckpointDiff:
    """Settings and weights of two checkpoints; tensors matched by name as transformers loads them."""
    import torch

    model_a, info_a, extractor_a, tokenizer_a = _load_checkpoint("a", a)
    model_b, info_b, extractor_b, tokenizer_b = _load_checkpoint("b", b)
    config_a, config_b = model_a.config.to_dict(), model_b.config.to_dict()
    for config in (config_a, config_b):
        config.pop("_name_or_path", None)
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    tensors = []
    with torch.no_grad():
        for name in [n for n in state_a if n in state_b]:
            ta, tb = state_a[name], state_b[name]
            max_abs = None
            if ta.shape == tb.shape:
                max_abs = (ta.double() - tb.double()).abs().max().item() if ta.numel() else 0.0
            tensors.append(
                TensorDiff(
                    name=name,
                    shape_a=tuple(ta.shape),
                    shape_b=tuple(tb.shape),
                    dtype_a=str(ta.dtype).removeprefix("torch."),
                    dtype_b=str(tb.dtype).removeprefix("torch."),
                    max_abs=max_abs,
                )
            )
    return CheckpointDiff(
        config=setting_differences(config_a, config_b),
        preprocessor=setting_differences(extractor_a.to_dict(), extractor_b.to_dict()),
        tokenizer=setting_differences(_tokenizer_settings(tokenizer_a), _tokenizer_settings(tokenizer_b)),
        tensors=tensors,
        only_a=[n for n in state_a if n not in state_b],
        only_b=[n for n in state_b if n not in state_a],
        not_in_file_a=sorted(info_a["missing_keys"]),
        not_in_file_b=sorted(info_b["missing_keys"]),
        unused_a=sorted(info_a["unexpected_keys"]),
        unused_b=sorted(info_b["unexpected_keys"]),
    )


def _hydra_value(value: str) -> str:
    """`value` quoted for a Hydra override where needed, so commas, spaces or brackets stay one string."""
    if re.fullmatch(r"[\w./@:+~-]+", value):
        return value
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise CompareError(f"{value!r}: a path with both kinds of quote cannot be passed to the harness")


def _check_run_args(run_args: Sequence[str]) -> None:
    for arg in run_args:
        key = arg.split("=", 1)[0].lstrip("+~")
        if key == "output_dir" or key == "model" or key.startswith("model."):
            raise CompareError(
                f"run_args: {arg!r} sets {key}: a= and b= choose the checkpoints and compare chooses output_dir; "
                "pass data, split, limit, device, batch_size ..."
            )


def run_harness(key: str, target: Target, output_dir: Path, run_args: Sequence[str]) -> Run:
    """`python -m w2v2bench` on one checkpoint (its output shown as it goes); the run it wrote."""
    command = [
        sys.executable, "-m", "w2v2bench", *run_args, f"model.checkpoint={_hydra_value(target.path)}",
        f"model.name={key}", "model.reference=null", f"output_dir={_hydra_value(str(output_dir))}",
    ]  # fmt: skip
    print(f"w2v2bench.compare: running {key}: {shlex.join(command)}", flush=True)
    done = subprocess.run(command)
    if done.returncode not in HARNESS_OK:
        raise CompareError(f"the harness run for {key}={target.spec!r} failed (exit status {done.returncode})")
    return load_run(output_dir)


# ----------------------------------------------------------------------------------------------------------
# Verdict, report


@dataclass(frozen=True)
class Comparison:
    kind: str  # "runs" or "checkpoints"
    a: Target
    b: Target
    runs: RunComparison
    checkpoints: CheckpointDiff | None
    max_wer_delta: float
    fail_on_transcript_diff: bool
    reasons: list[str]  # why the thresholds are exceeded; empty when within them


def thresholds_exceeded(runs: RunComparison, max_wer_delta: float, fail_on_transcript_diff: bool) -> list[str]:
    """Why the comparison fails its thresholds (|WER_B - WER_A| > max_wer_delta, any transcript differs)."""
    reasons = []
    if fail_on_transcript_diff and runs.differences:
        reasons.append(f"{len(runs.differences)} utterance(s) differ (fail_on_transcript_diff=true)")
    if runs.n_paired == 0:
        reasons.append("no utterance was scored in both runs, so the WER delta is unknown")
    elif abs(runs.wer_delta) > max_wer_delta + 1e-12:
        reasons.append(
            f"|WER delta| {abs(runs.wer_delta) * 100:.4g} points > max_wer_delta={max_wer_delta:g} "
            f"({max_wer_delta * 100:.4g} points)"
        )
    return reasons


def compare(
    a: str,
    b: str,
    out: str | Path,
    run_args: Sequence[str] = (),
    max_wer_delta: float = 0.0,
    fail_on_transcript_diff: bool = True,
    bootstrap_samples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Compare A and B: both runs, or both checkpoints, which are run on the same data into out/a and out/b.

    The report itself is written by `write`.
    """
    if not max_wer_delta >= 0:
        raise CompareError(f"max_wer_delta={max_wer_delta}: expected a fraction >= 0 (0.001 is 0.1 WER points)")
    if bootstrap_samples < 0:
        raise CompareError(f"bootstrap_samples={bootstrap_samples}: expected 0 (no bootstrap) or more")
    target_a, target_b = resolve_target("a", a), resolve_target("b", b)
    kinds = {target_a.kind == "run", target_b.kind == "run"}
    if len(kinds) == 2:
        run_key = "a" if target_a.kind == "run" else "b"
        raise CompareError(
            f"{run_key}= is a run folder and the other a checkpoint: compare two runs or two checkpoints"
        )
    checkpoints = None
    if target_a.kind == "run":
        if run_args:
            raise CompareError("run_args: only used with checkpoints; a= and b= are run folders")
        run_a, run_b = load_run(target_a.path), load_run(target_b.path)
    else:
        _check_run_args(run_args)
        taken = [str(Path(out) / key) for key in ("a", "b") if (Path(out) / key).exists()]
        if taken:
            raise CompareError(f"out={str(out)!r} already holds {taken}: choose another out for new runs")
        checkpoints = diff_checkpoints(target_a, target_b)
        out = prepare_output_dir(out)
        run_a = run_harness("a", target_a, Path(out) / "a", run_args)
        run_b = run_harness("b", target_b, Path(out) / "b", run_args)
    runs = compare_runs(run_a, run_b, bootstrap_samples, seed)
    return Comparison(
        kind="runs" if checkpoints is None else "checkpoints",
        a=target_a,
        b=target_b,
        runs=runs,
        checkpoints=checkpoints,
        max_wer_delta=max_wer_delta,
        fail_on_transcript_diff=fail_on_transcript_diff,
        reasons=thresholds_exceeded(runs, max_wer_delta, fail_on_transcript_diff),
    )


def _pct_delta(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x * 100:+.2f}"


def _or_dash(count: int | None) -> str:
    return "-" if count is None else str(count)


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("|", "\\|").replace("\n", " ")


def _settings_table(rows: list[tuple[str, Any, Any]], what: str) -> str:
    return tabulate([[_cell(k), _cell(a), _cell(b)] for k, a, b in rows], [what, "A", "B"], tablefmt="github")


def _significance(runs: RunComparison) -> list[str]:
    m, boot = runs.mapsswe, runs.bootstrap
    if math.isnan(m.p_value):
        lines = [f"- MAPSSWE: undefined with {m.n} utterance(s) scored in both runs"]
    else:
        verdict = "significant" if m.p_value < 0.05 else "not significant"
        lines = [
            f"- MAPSSWE (matched pairs, utterances as segments; Z = errors A - errors B): n = {m.n}, "
            f"mean Z = {m.mean:.4g}, W = {m.w:.4g}, p = {m.p_value:.4g} ({verdict} at 0.05)"
        ]
    if boot.samples and not math.isnan(boot.p_value):
        lines.append(
            f"- paired bootstrap ({boot.samples} resamples, seed {boot.seed}): WER B - A 95% interval "
            f"[{_pct_delta(boot.delta_low)}, {_pct_delta(boot.delta_high)}] points, p = {boot.p_value:.4g}"
        )
    return lines


def _checkpoint_summary(ckpt: CheckpointDiff) -> str:
    differing = ckpt.differing_tensors
    worst = max((t for t in differing if t.max_abs is not None), key=lambda t: t.max_abs, default=None)
    parts = [
        f"config: {len(ckpt.config)} difference(s)",
        f"preprocessor: {len(ckpt.preprocessor)}",
        f"tokenizer and vocabulary: {len(ckpt.tokenizer)}",
        f"tensors: {len(ckpt.tensors)} matched by name, {len(differing)} differ"
        + (f" (largest max-abs {worst.max_abs:.3g} in {worst.name})" if worst else ""),
    ]
    if ckpt.only_a or ckpt.only_b:
        parts.append(f"{len(ckpt.only_a)} tensor(s) only in A, {len(ckpt.only_b)} only in B")
    if ckpt.not_in_file_a or ckpt.not_in_file_b:
        parts.append(
            f"not in the checkpoint files (randomly initialised on load): {len(ckpt.not_in_file_a)} in A, "
            f"{len(ckpt.not_in_file_b)} in B"
        )
    verdict = "**identical**" if ckpt.identical else "**different**"
    return f"Checkpoints {verdict}: " + "; ".join(parts) + "."


def _checkpoint_details(ckpt: CheckpointDiff) -> list[str]:
    out = ["## Checkpoints", ""]
    for title, rows in (
        ("config.json", ckpt.config),
        ("Preprocessor (feature extractor)", ckpt.preprocessor),
        ("Tokenizer and vocabulary", ckpt.tokenizer),
    ):
        out += [f"### {title}", ""]
        out += [_settings_table(rows, "setting"), ""] if rows else ["identical", ""]
    differing = sorted(ckpt.differing_tensors, key=lambda t: -math.inf if t.max_abs is None else -t.max_abs)
    out += [f"### Weights: {len(differing)} of {len(ckpt.tensors)} matched tensors differ", ""]
    if differing:
        rows = [
            [t.name, "shape differs" if t.max_abs is None else f"{t.max_abs:.6g}",
             f"{list(t.shape_a)} {t.dtype_a}", f"{list(t.shape_b)} {t.dtype_b}"]
            for t in differing
        ]  # fmt: skip
        out += [tabulate(rows, ["tensor", "max abs diff", "A", "B"], tablefmt="github"), ""]
    for title, names in (
        ("Tensors only in A", ckpt.only_a),
        ("Tensors only in B", ckpt.only_b),
        ("Not in A's checkpoint files (initialised at random when loaded)", ckpt.not_in_file_a),
        ("Not in B's checkpoint files (initialised at random when loaded)", ckpt.not_in_file_b),
        ("In A's checkpoint files, unused by the model", ckpt.unused_a),
        ("In B's checkpoint files, unused by the model", ckpt.unused_b),
    ):
        if names:
            out += [f"### {title} ({len(names)})", "", *[f"- `{n}`" for n in names], ""]
    return out


def render(comparison: Comparison) -> tuple[str, str]:
    """(summary, details) in markdown: compare.md is both; the summary is what is printed."""
    runs = comparison.runs
    head = ["# w2v2bench compare", ""]
    for key, target, run, described in (
        ("A", comparison.a, runs.a, runs.describe_a),
        ("B", comparison.b, runs.b, runs.describe_b),
    ):
        kind = {"folder": "checkpoint folder", "hub": "Hub model"}.get(target.kind)
        where = f"`{run}`" if kind is None else f"`{target.spec}` ({kind}), run as `{run}`"
        head.append(f"- {key}: {where}: {described}")
    head.append("")
    if runs.identical:
        head.append(f"**Identical**: all {runs.n_a} transcripts are the same.")
    else:
        n = len(runs.differences)
        head.append(f"**Different**: {n} utterance(s) differ ({runs.n_a} in A, {runs.n_b} in B).")
    if comparison.reasons:
        head.append("**Thresholds exceeded**: " + "; ".join(comparison.reasons) + ".")
    else:
        head.append(
            f"**Within thresholds** (max_wer_delta={comparison.max_wer_delta:g}, "
            f"fail_on_transcript_diff={str(comparison.fail_on_transcript_diff).lower()})."
        )
    if comparison.checkpoints is not None:
        head += ["", _checkpoint_summary(comparison.checkpoints)]
    wa, wb = runs.words_a, runs.words_b
    table = [
        ["WER %", pct(runs.wer_a), pct(runs.wer_b), _pct_delta(runs.wer_delta)],
        ["CER %", pct(runs.cer_a), pct(runs.cer_b), _pct_delta(runs.cer_delta)],
        ["word errors", wa.errors, wb.errors, f"{wb.errors - wa.errors:+d}"],
        ["substitutions", wa.substitutions, wb.substitutions, f"{wb.substitutions - wa.substitutions:+d}"],
        ["deletions", wa.deletions, wb.deletions, f"{wb.deletions - wa.deletions:+d}"],
        ["insertions", wa.insertions, wb.insertions, f"{wb.insertions - wa.insertions:+d}"],
        ["reference words", wa.ref_words, wb.ref_words, f"{wb.ref_words - wa.ref_words:+d}"],
    ]
    head += [
        "",
        f"Scored in both runs: {runs.n_paired} utterances; B has fewer word errors on {runs.better}, more on "
        f"{runs.worse}, as many on {runs.same}.",
        "",
        tabulate(table, ["", "A", "B", "B - A"], tablefmt="github", disable_numparse=True),
        "",
        "Paired significance tests (two-sided; H0: A and B are equally accurate):",
        "",
        *_significance(runs),
    ]
    if runs.notes:
        head += ["", "Notes:", "", *[f"- {note}" for note in runs.notes]]

    details = ["## Run settings that differ", ""]
    details += [_settings_table(runs.settings, "setting"), ""] if runs.settings else ["none", ""]
    if comparison.checkpoints is not None:
        details += _checkpoint_details(comparison.checkpoints)
    details += [f"## Differing utterances ({len(runs.differences)})", ""]
    for diff in runs.differences:
        errors = f"word errors A {_or_dash(diff.errors_a)}, B {_or_dash(diff.errors_b)}"
        details += [f"### {diff.id}: {errors}" + (f" ({diff.note})" if diff.note else ""), ""]
        details += ["```", diff.alignment, "```", ""]
    return "\n".join(head) + "\n", "\n".join(details)


def _json(comparison: Comparison, config: Mapping[str, Any] | None) -> dict[str, Any]:
    runs = comparison.runs
    return {
        "schema_version": COMPARE_SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": comparison.kind,
        "a": asdict(comparison.a),
        "b": asdict(comparison.b),
        "identical": runs.identical,
        "within_thresholds": not comparison.reasons,
        "reasons": comparison.reasons,
        "thresholds": {
            "max_wer_delta": comparison.max_wer_delta,
            "fail_on_transcript_diff": comparison.fail_on_transcript_diff,
        },
        "wer_a": runs.wer_a,
        "wer_b": runs.wer_b,
        "wer_delta": runs.wer_delta,
        "cer_a": runs.cer_a,
        "cer_b": runs.cer_b,
        "cer_delta": runs.cer_delta,
        "runs": asdict(runs),
        "checkpoints": None if comparison.checkpoints is None else asdict(comparison.checkpoints),
        "git_hash": git_hash(),
        "versions": versions(),
        "command": " ".join(sys.argv),
        "config": dict(config) if config is not None else None,
    }


def write(comparison: Comparison, out: str | Path, config: Mapping[str, Any] | None = None) -> str:
    """compare.md and compare.json in `out`; returns the markdown summary."""
    folder = prepare_output_dir(out)
    summary, details = render(comparison)
    (folder / "compare.md").write_text(summary + "\n" + details, encoding="utf-8")
    write_json_atomic(folder / "compare.json", _json(comparison, config))
    return summary


# ----------------------------------------------------------------------------------------------------------
# Command line


if __name__ == "__main__":  # the old spelling of `python -m w2v2bench compare`
    from .cli.compare import main

    raise SystemExit(main())
