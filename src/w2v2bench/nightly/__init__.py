"""The nightly check: record a night's runs in the history, compare each with its baseline, report.

Usage: python -m w2v2bench.nightly runs=<folder of tonight's run folders> [history=results/history.sqlite]
       [max_wer_increase=0.001] [baseline=<run folder> | baseline=[<run folder>,...]] [out=<folder>]
       [harness_status=<exit status of the matrix run>]

Each run is compared with the previous good run of the same series (model x split x coverage x protocol:
summary.json's measurement; a smoke, bf16 or LM run has its own), or with a pinned baseline of the same series
(one of another series is refused): WER, CER and RTFx deltas, and the utterances whose transcript changed,
aligned old against new. Writes nightly.md, nightly.json and trend.png into `out` (default: `runs`).
Exit status: 0 every run passed; 1 a regression (WER rose more than max_wer_increase, a reference check failed,
transcripts changed under on_transcript_change=fail); 2 bad arguments; 6 no regression, but the night is not whole
(a run did not complete, utterances failed, the harness exited non-zero, transcripts could not be compared under
on_transcript_change=fail, the history cannot be used, the MLflow export failed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .. import history
from ..analysis import alignment_text, write_analysis
from ..errors import Exit, one_line
from ..files import write_json_atomic
from ..history import SplitKey
from ..metrics import ci95, pct
from ..metrics.significance import ALPHA, Bootstrap, holm, paired_bootstrap
from ..results import ResultsFileError, load_rows, read_summary, with_ids
from . import tracking

__all__ = ["Judgement", "NightlyReport", "changed_utterances", "find_runs", "nightly", "plot_trend"]

NIGHTLY_SCHEMA_VERSION = 2  # 2: failures, alarms, intervals, significance, on_transcript_change
# history columns repeated in nightly.json for each run
REPORTED = (
    "run_id run_dir model data partition split normalizer checkpoint revision weights finished wer cer rtfx "
    "model_rtfx n_utterances n_failed ref_words substitutions deletions insertions reference_wer "
    "reference_tolerance reference_passed reference_note git_hash device"
).split()
BASELINE = "run_id run_dir finished checkpoint weights wer cer rtfx git_hash".split()


def _outcome(row: dict) -> tuple[str | None, str | None]:
    return (None, row.get("error")) if row.get("error") else (row.get("pred_text"), None)


def _data_commit(row: dict) -> str | None:
    return ((row.get("config") or {}).get("data") or {}).get("commit")


def find_runs(root: Path) -> tuple[list[Path], list[str]]:
    """(folders of completed runs under `root`, one line for each run folder that did not complete)."""
    complete, problems = [], []
    marks = ("summary.json", "transcripts.jsonl", "transcripts.partial*.jsonl")  # partial: one per rank
    for folder in sorted({p.parent for name in marks for p in root.rglob(name)}):
        summary_path = folder / "summary.json"
        if not summary_path.is_file():
            problems.append(f"incomplete run {folder}: transcripts but no summary.json")
            continue
        try:
            summary = read_summary(summary_path)
            if summary.get("status") == "complete":
                with_ids(summary, folder)  # a record whose id list is not its rows' is no run to judge
        except (ResultsFileError, OSError) as err:
            problems.append(f"unreadable run {folder}: {one_line(err)}")
            continue
        status = summary.get("status")
        if status == "complete":
            complete.append(folder)
        elif status != "rescored":  # a re-score of a run (w2v2bench.score) is not a run
            error = f": {summary['error']}" if summary.get("error") else ""
            problems.append(f"incomplete run {folder}: status {status!r}{error}")
    return complete, problems


def changed_utterances(new_dir: Path, base_dir: Path) -> tuple[list[dict], dict[str, int]]:
    """Utterances whose transcript differs between two runs, most new errors first; and the set sizes."""
    changed, sizes, _ = compared(new_dir, base_dir)
    return changed, sizes


def compared(new_dir: Path, base_dir: Path) -> tuple[list[dict], dict[str, int], Bootstrap | None]:
    """(the changed utterances, the set sizes, the paired test of WER new - baseline over the utterances both
    scored, on the runs' resampling unit: metrics.significance.paired_bootstrap)."""
    new = {r["id"]: r for r in load_rows(new_dir)}
    base = {r["id"]: r for r in load_rows(base_dir)}
    common = [i for i in new if i in base]
    changed = []
    for uid in common:
        before, after = base[uid], new[uid]
        # a failed row's pred_text is "" since issue #17, null before: the same failure either way
        if _outcome(before) == _outcome(after):
            continue
        errors = [
            None if r.get("error") else r["substitutions"] + r["deletions"] + r["insertions"] for r in (before, after)
        ]
        changed.append(
            {
                "id": uid,
                "reference": after.get("text"),
                "before": before.get("pred_text"),
                "after": after.get("pred_text"),
                "errors_before": errors[0],
                "errors_after": errors[1],
                "error_before": before.get("error"),
                "error_after": after.get("error"),
                "alignment": alignment_text(
                    before.get("pred_text") or "", after.get("pred_text") or "", ("OLD", "NEW")
                ),
            }
        )
    changed.sort(key=lambda c: (-((c["errors_after"] or 0) - (c["errors_before"] or 0)), c["id"]))
    sizes = {"common": len(common), "only_new": len(new) - len(common), "only_baseline": len(base) - len(common)}
    both = [(base[i], new[i]) for i in common if not base[i].get("error") and not new[i].get("error")]
    test = None
    if both:
        test = paired_bootstrap(
            [_word_errors(b) for b, _ in both], [_word_errors(n) for _, n in both], [n["ref_words"] for _, n in both],
            speakers=[n.get("speaker") for _, n in both],
        )  # fmt: skip
    return changed, sizes, test


def _word_errors(row: dict) -> int:
    return row["substitutions"] + row["deletions"] + row["insertions"]


# measurement.fingerprints -> what its change is called in a night's report
FINGERPRINTS = {
    "weights": "weights changed",
    "checkpoint_sha256": "checkpoint changed (weights, config, vocabulary or processor files)",
    "data_location": "data location changed",
    "data_revision": "data changed (revision, or the manifest's sha256)",
    "ids_sha256": "utterance ids changed",
    "audio_sha256": "audio changed",
    "decoder": "decoder files changed (LM, lexicon)",
    "backend": "export changed (runtime or its exported graph)",
    "git_hash": "harness commit changed",
}


def fingerprint_changes(before: dict, after: dict) -> list[str]:
    """What the run was measured with that differs from its baseline (measurement.fingerprints: weights, checkpoint
    files, data, id list, LM, export, library versions, harness commit), one named line each: within one series,
    these are what a night reports as a change."""
    old = ((before.get("measurement") or {}).get("fingerprints")) or {}
    new = ((after.get("measurement") or {}).get("fingerprints")) or {}
    changes = []
    for key, name in FINGERPRINTS.items():
        if old.get(key) != new.get(key) and old.get(key) not in (None, {}):  # a derived record knows less
            changes.append(f"{name}: {_short(old[key])} -> {_short(new.get(key))}")
    versions_old, versions_new = old.get("versions"), new.get("versions")
    if not (isinstance(versions_old, dict) and isinstance(versions_new, dict)):  # a record that knows none
        return changes
    moved = [
        f"{package} {versions_old[package]} -> {versions_new[package]}"
        for package in sorted(set(versions_old) & set(versions_new))
        if versions_old[package] != versions_new[package]
    ]
    if moved:
        changes.append("library versions changed: " + ", ".join(moved))
    return changes


def _short(value: object) -> str:
    text = "unknown" if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 24 else text[:21] + "..."


TRANSCRIPT_CHANGE = ("warn", "fail")  # on_transcript_change: what changed transcripts within the WER tolerance do


@dataclass
class Judgement:
    """One run of the night against its baseline."""

    run: dict
    baseline: dict | None = None
    baseline_source: str | None = None  # "previous good run" | "pinned"
    reasons: list[str] = field(default_factory=list)  # regressions: why it fails (exit 1)
    failures: list[str] = field(default_factory=list)  # why it cannot be judged whole (exit 6)
    alarms: list[str] = field(default_factory=list)  # what changed since the baseline, one named line each
    notes: list[str] = field(default_factory=list)
    changed: list[dict] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    test: Bootstrap | None = None  # the paired test against the baseline
    significant: bool | None = None  # after Holm's correction over the night's tests; None: no test
    compared: bool = False  # whether the transcripts were compared with the baseline's (both folders' rows read)

    @property
    def verdict(self) -> str:
        return "fail" if self.reasons or self.failures else "pass"

    @property
    def n_changed(self) -> int | None:
        """How many transcripts changed since the baseline; None: not compared (no baseline, or its rows gone)."""
        return len(self.changed) if self.compared else None

    @property
    def noise(self) -> str:
        """ "significant", "within noise" or "n/a" (no baseline, or no utterance both scored)."""
        return "n/a" if self.significant is None else "significant" if self.significant else "within noise"

    def delta(self, column: str) -> float | None:
        if self.baseline is None or self.run[column] is None or self.baseline[column] is None:
            return None
        return self.run[column] - self.baseline[column]

    def to_json(self) -> dict[str, Any]:
        run, base, test = self.run, self.baseline, self.test
        return {
            "key": str(SplitKey(run)),
            **{k: run[k] for k in REPORTED},
            "wer_ci95": _bounds(run, "wer"),
            "cer_ci95": _bounds(run, "cer"),
            "interval": run.get("interval"),
            "verdict": self.verdict,
            "reasons": self.reasons,
            "failures": self.failures,
            "alarms": self.alarms,
            "notes": self.notes,
            "baseline": None if base is None else {"source": self.baseline_source, **{k: base[k] for k in BASELINE}},
            "wer_delta": self.delta("wer"),
            "cer_delta": self.delta("cer"),
            "rtfx_delta": self.delta("rtfx"),
            "significance": None
            if test is None
            else {
                "test": "paired bootstrap of WER (run - baseline)",
                "unit": test.unit,
                "blocks": test.blocks,
                "samples": test.samples,
                "seed": test.seed,
                "delta_ci95": [test.delta_low, test.delta_high],
                "p_value": test.p_value,
                "verdict": self.noise,
            },
            "utterances": self.sizes,
            "n_changed": self.n_changed,
            "changed": self.changed,
        }


def _bounds(row: dict, rate: str) -> list[float] | None:
    low, high = row.get(f"{rate}_ci95_low"), row.get(f"{rate}_ci95_high")
    return None if low is None or high is None else [low, high]


def judge(
    run: dict, baseline: dict | None, source: str | None, max_wer_increase: float, on_transcript_change: str = "warn"
) -> Judgement:
    j = Judgement(run, baseline, source)
    if run["n_failed"]:
        j.failures.append(f"{run['n_failed']} of {run['n_utterances']} utterances could not be transcribed")
    if run["reference_passed"] is False:
        j.reasons.append(
            f"reference check failed: WER {pct(run['wer'])} % vs {pct(run['reference_wer'])} % expected "
            f"(tolerance {pct(run['reference_tolerance'])} points)"
        )
    if run["wer"] is None or (isinstance(run["wer"], float) and math.isnan(run["wer"])):
        j.failures.append("no WER: no reference words were scored")
    if baseline is None:
        j.notes.append("no baseline: this is the first good run of this series")
        return j
    j.alarms += fingerprint_changes(baseline, run)
    wer_delta = j.delta("wer")
    if wer_delta is not None and wer_delta > max_wer_increase + 1e-12:
        j.reasons.append(
            f"WER rose {wer_delta * 100:.2f} points ({pct(baseline['wer'])} % -> {pct(run['wer'])} %), more than "
            f"the {max_wer_increase * 100:.2f} allowed"
        )
    try:
        j.changed, j.sizes, j.test = compared(Path(run["run_dir"]), Path(baseline["run_dir"]))
        j.compared = True
    except (OSError, ResultsFileError) as err:  # a folder moved or removed since it was recorded
        why = f"transcripts not compared with the baseline's: {one_line(err)}"
        if on_transcript_change == "fail":  # what it asks for cannot be answered: the night is not whole
            j.failures.append(f"{why} (on_transcript_change=fail)")
        else:
            j.notes.append(why)
    if j.changed:
        worse = sum(1 for c in j.changed if (c["errors_after"] or 0) > (c["errors_before"] or 0))
        better = sum(1 for c in j.changed if (c["errors_after"] or 0) < (c["errors_before"] or 0))
        line = (
            f"{len(j.changed)} transcripts changed ({worse} with more errors, {better} with fewer, "
            f"{len(j.changed) - worse - better} as many) of {j.sizes['common']}"
        )
        j.alarms.append(line)
        if on_transcript_change == "fail":
            j.reasons.append(f"{line} (on_transcript_change=fail)")
    elif j.alarms and j.sizes:
        j.alarms.append(f"no transcript changed: the change above left all {j.sizes['common']} as they were")
    if j.sizes and (j.sizes["only_new"] or j.sizes["only_baseline"]):
        j.notes.append(
            f"not like for like: {j.sizes['common']} utterances in both runs, {j.sizes['only_new']} only in this "
            f"run, {j.sizes['only_baseline']} only in the baseline"
        )
    return j


@dataclass
class NightlyReport:
    runs_root: str
    history: str
    max_wer_increase: float
    harness_status: int
    judgements: list[Judgement]
    problems: list[str]  # failures that belong to no single run
    history_runs: int = 0
    generated: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    on_transcript_change: str = "warn"
    mlflow: list[str] = field(default_factory=list)  # one line per run logged to MLflow (mlflow_uri)

    @property
    def passed(self) -> bool:
        return not self.problems and all(j.verdict == "pass" for j in self.judgements)

    @property
    def exit_status(self) -> int:
        """0 pass; 1 a regression (WER beyond the tolerance, a failed reference check, changed transcripts under
        on_transcript_change=fail), whatever else went wrong; 6 no regression, but the night is not whole."""
        if any(j.reasons for j in self.judgements):
            return Exit.FAILED
        return Exit.OK if self.passed else Exit.INCOMPLETE

    @property
    def tested(self) -> int:
        return sum(1 for j in self.judgements if j.test is not None and not math.isnan(j.test.p_value))

    def to_json(self) -> dict[str, Any]:
        fields = asdict(self)
        fields.pop("judgements")
        return {
            "schema_version": NIGHTLY_SCHEMA_VERSION,
            "verdict": "pass" if self.passed else "fail",
            "exit_status": self.exit_status,
            **fields,
            "significance": {
                "test": "paired bootstrap of each run's WER against its baseline's, over the utterances both scored",
                "alpha": ALPHA,
                "correction": f"Holm over the {self.tested} series tested tonight",
            },
            "trend_plot": "trend.png",
            "runs": [j.to_json() for j in self.judgements],
        }


def _signed(x: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x * scale:+.{digits}f}"


def _errors(n: int) -> str:
    return f"{n} error" if n == 1 else f"{n} errors"


def _shown(path: str) -> str:
    """A path as a reader types it: relative to the working folder when it lies inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _reference(run: dict) -> str:
    if run["reference_passed"] is None:
        return "none"
    verdict = "PASS" if run["reference_passed"] else "FAIL"
    return f"{verdict} ({pct(run['reference_wer'])} ± {pct(run['reference_tolerance'])})"


def markdown(report: NightlyReport, show_changed: int) -> str:
    # the night of the runs, not of the report: re-running the nightly over the same runs gives the same title
    day = max((j.run["finished"] for j in report.judgements), default=report.generated)[:10]
    lines = [
        f"# Nightly {day}: {'PASS' if report.passed else 'FAIL'}",
        "",
        f"{len(report.judgements)} run(s) under `{report.runs_root}`; history `{report.history}` "
        f"({report.history_runs} runs); WER may rise at most {report.max_wer_increase * 100:.2f} points over "
        f"the baseline; changed transcripts within it {'fail' if report.on_transcript_change == 'fail' else 'warn'} "
        f"(on_transcript_change={report.on_transcript_change}).",
        "",
        f"Intervals: 95 % percentile bootstrap of each run's WER, resampling speakers (utterances where speakers are "
        f"unknown or fewer than 5). Δ WER: a paired bootstrap over the utterances both runs scored, on the same "
        f'unit; "significant" at p < {ALPHA} with Holm\'s correction over the {report.tested} series tested '
        'tonight, else "within noise".',
        "",
        "| model x split | WER % | WER 95 % CI | Δ WER (points) | Δ vs noise | CER % | RTFx | Δ RTFx | reference | "
        "baseline | changed | alarms | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for j in report.judgements:
        run, base = j.run, j.baseline
        base_text = "none" if base is None else f"{base['finished'][:16]} ({j.baseline_source})"
        lines.append(
            f"| {SplitKey(run)} | {pct(run['wer'])} | {ci95(_bounds(run, 'wer'))} | {_signed(j.delta('wer'), 100)} | "
            f"{j.noise} | {pct(run['cer'])} | {run['rtfx']:.1f} | {_signed(j.delta('rtfx'), digits=1)} | "
            f"{_reference(run)} | {base_text} | {'n/a' if j.n_changed is None else j.n_changed} | {len(j.alarms)} | "
            f"{j.verdict.upper()} |"
        )
    lines += ["", "![WER and RTFx over time](trend.png)", ""]
    failures = [f"{SplitKey(j.run)}: {r}" for j in report.judgements for r in j.reasons + j.failures]
    failures += report.problems
    if failures:
        lines += ["## Failures", "", *[f"- {f}" for f in failures], ""]
    for j in report.judgements:
        run, base = j.run, j.baseline
        lines += [f"## {SplitKey(run)}: {j.verdict.upper()}", ""]
        lines.append(f"- run: `{_shown(run['run_dir'])}` (finished {run['finished']}; git {run['git_hash']})")
        lines.append(f"- checkpoint: `{run['checkpoint']}` ({run['weights'] or 'weights not identified'})")
        data_commit = _data_commit(run)
        if data_commit or (base is not None and _data_commit(base)):
            changed = (
                base is not None and None not in (_data_commit(base), data_commit) and _data_commit(base) != data_commit
            )
            was = f"; it was {_data_commit(base)} for the baseline: the data changed" if changed else ""
            lines.append(f"- data: `{run['data']}` at commit {data_commit or 'unknown'}{was}")
        analysis = Path(run["run_dir"]) / "analysis.md"
        if analysis.is_file():
            lines.append(f"- error analysis: `{_shown(str(analysis))}`")
        if base is not None:
            lines.append(
                f"- baseline ({j.baseline_source}): `{_shown(base['run_dir'])}` (finished {base['finished']}; "
                f"{base['weights'] or 'weights not identified'})"
            )
            rtfx_ratio = run["rtfx"] / base["rtfx"] - 1 if base["rtfx"] else float("nan")
            lines.append(
                f"- WER {pct(base['wer'])} % -> {pct(run['wer'])} % ({_signed(j.delta('wer'), 100)} points); "
                f"CER {pct(base['cer'])} % -> {pct(run['cer'])} %; RTFx {base['rtfx']:.1f} -> {run['rtfx']:.1f} "
                f"({_signed(rtfx_ratio, 100, 1)} %)"
            )
        if j.test is not None and not math.isnan(j.test.p_value):
            lines.append(
                f"- Δ WER 95 % CI {_signed(j.test.delta_low, 100)} to {_signed(j.test.delta_high, 100)} points "
                f"(paired bootstrap over {j.test.blocks} {j.test.unit}s, p = {j.test.p_value:.3g}): {j.noise}"
            )
        lines += [f"- fails: {r}" for r in j.reasons] + [f"- cannot judge: {r}" for r in j.failures]
        lines += [f"- alarm: {a}" for a in j.alarms] + [f"- note: {n}" for n in j.notes]
        if base is not None and j.sizes:
            shown = f" (the {show_changed} with the most new errors shown; all in nightly.json)"
            more = shown if len(j.changed) > show_changed else ""
            lines += ["", f"### Changed transcripts: {len(j.changed)} of {j.sizes['common']} utterances{more}"]
            for c in j.changed[:show_changed]:
                before, after = (c[f"error_{w}"] or _errors(c[f"errors_{w}"]) for w in ("before", "after"))
                head = f"**{c['id']}**: {before} -> {after}; reference: {c['reference']}"
                lines += ["", head, "```", c["alignment"], "```"]
        lines.append("")
    return "\n".join(lines)


def plot_trend(rows: list[dict], keys: list[SplitKey], path: Path):
    """WER (with its 95 % interval as a band) and RTFx of every recorded run of the given series, over time, dates on
    the x-axis (and times when the runs share a day); failed runs are markers of their own, outside the line.
    Returns the figure (a test reads its objects)."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, DateFormatter
    from matplotlib.figure import Figure  # no pyplot: no global state, no display backend

    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax_wer, ax_rtfx = fig.subplots(2, 1, sharex=True)
    every = []
    for key in keys:
        series = [r for r in rows if SplitKey(r) == key and r["status"] == "complete"]
        when = [datetime.fromisoformat(r["finished"]) for r in series]
        every += when
        good = [k for k, r in enumerate(series) if history.is_good(r)]
        bad = [k for k, r in enumerate(series) if not history.is_good(r)]
        wer = [float("nan") if r["wer"] is None else r["wer"] * 100 for r in series]
        (line,) = ax_wer.plot([when[k] for k in good], [wer[k] for k in good], marker="o", label=str(key))
        color = line.get_color()
        has = [k for k in good if series[k].get("wer_ci95_low") is not None]
        if has:  # each run's interval as a bar, and as a band over consecutive runs that have one
            low = [wer[k] - series[k]["wer_ci95_low"] * 100 for k in has]
            high = [series[k]["wer_ci95_high"] * 100 - wer[k] for k in has]
            ax_wer.errorbar([when[k] for k in has], [wer[k] for k in has], yerr=[low, high], fmt="none",
                            ecolor=color, alpha=0.6, capsize=3)  # fmt: skip
        runs_of = [[]]  # consecutive good runs with an interval (a run without one breaks the band)
        for k in good:
            if series[k].get("wer_ci95_low") is not None:
                runs_of[-1].append(k)
            elif runs_of[-1]:
                runs_of.append([])
        for n, stretch in enumerate(s for s in runs_of if len(s) > 1):
            ax_wer.fill_between(
                [when[k] for k in stretch], [series[k]["wer_ci95_low"] * 100 for k in stretch],
                [series[k]["wer_ci95_high"] * 100 for k in stretch], color=color, alpha=0.2, linewidth=0,
                label=f"{key}: 95 % interval" if n == 0 else None,
            )  # fmt: skip
        rtfx = [float("nan") if r.get("rtfx") is None else r["rtfx"] for r in series]
        ax_rtfx.plot([when[k] for k in good], [rtfx[k] for k in good], marker="o", color=color)
        if bad:  # in the series' colour, outside its line
            ax_wer.scatter([when[k] for k in bad], [wer[k] for k in bad], marker="x", s=80, color=color, zorder=3)
            ax_rtfx.scatter([when[k] for k in bad], [rtfx[k] for k in bad], marker="x", s=80, color=color)
    ax_wer.scatter([], [], marker="x", color="black", label="failed night (x in its series' colour; not in the line)")
    ax_wer.set_ylabel("WER (%)")
    ax_rtfx.set_ylabel("RTFx (audio s / wall s)")
    ax_wer.set_title("Nightly WER (95 % interval: bars, shaded between runs) and speed per series", fontsize=10)
    fig.legend(*ax_wer.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=7)
    if every and max(every) - min(every) < timedelta(days=1):  # one day: its date and the runs' times
        pad = timedelta(hours=1)
        ax_rtfx.set_xlim(min(every) - pad, max(every) + pad)
        ax_rtfx.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d %H:%M"))
        for label in ax_rtfx.get_xticklabels():
            label.set_rotation(20)
    else:
        locator = AutoDateLocator(minticks=3, maxticks=8)
        ax_rtfx.xaxis.set_major_locator(locator)
        ax_rtfx.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    for ax in (ax_wer, ax_rtfx):
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    return fig


def _pinned(folders: list[Path]) -> dict[SplitKey, dict]:
    pinned = {}
    for folder in folders:
        summary = folder / "summary.json"
        if not summary.is_file():
            raise FileNotFoundError(f"baseline={str(folder)!r}: no summary.json in that folder")
        status = read_summary(summary).get("status")
        if status != "complete":
            raise ValueError(f"baseline={str(folder)!r}: the run is not complete (status {status!r})")
        row = history.row_from_summary(folder, summary.read_bytes())
        pinned[SplitKey(row)] = row
    return pinned


def _check_pinned(pinned: dict[SplitKey, dict], folders: list[Path]) -> None:
    """A pinned baseline measures what tonight's run of its model x split measures (the same series: coverage,
    precision, decoder, normaliser ...); one of another series is refused before anything is recorded."""
    tonight = [SplitKey(history.row_from_summary(f, (f / "summary.json").read_bytes())) for f in folders]
    for key, row in pinned.items():
        if key in tonight:
            continue
        same_split = [k for k in tonight if k[:4] == key[:4]]
        measures = f"tonight's run measures {same_split[0]}" if same_split else "no run tonight measures it"
        raise ValueError(
            f"baseline={row['run_dir']!r} measured {key}, {measures}: a baseline must be of the same series "
            "(measurement.series in summary.json); pin one that is, or none"
        )


def nightly(
    runs: Path,
    history_path: Path,
    *,
    max_wer_increase: float = 0.001,
    baselines: Sequence[Path] = (),
    out: Path | None = None,
    harness_status: int = 0,
    show_changed: int = 20,
    on_transcript_change: str = "warn",
    mlflow_uri: str | None = None,
    mlflow_experiment: str = "w2v2bench",
) -> NightlyReport:
    """Record, judge and report the runs under `runs`; writes nightly.md, nightly.json and trend.png (and logs each
    run to MLflow with `mlflow_uri`)."""
    if on_transcript_change not in TRANSCRIPT_CHANGE:
        raise ValueError(f"on_transcript_change={on_transcript_change!r}: expected one of {list(TRANSCRIPT_CHANGE)}")
    if mlflow_uri:
        tracking.check(mlflow_uri)  # MLflow not installed, a SQLite URL it cannot read: one line, nothing recorded
    if not runs.is_dir():
        raise FileNotFoundError(f"runs={str(runs)!r}: no such folder")
    if not math.isfinite(max_wer_increase) or max_wer_increase < 0:
        raise ValueError(f"max_wer_increase={max_wer_increase}: expected a fraction >= 0 (0.001 = 0.1 points)")
    pinned = _pinned(list(baselines))
    folders, problems = find_runs(runs)
    if harness_status:
        problems.append(
            f"the benchmark exited with status {harness_status} (1: a run failed; 3: a reference check failed)"
        )
    if not folders:
        problems.append(f"no completed runs under {runs}")
    _check_pinned(pinned, folders)
    history.rows(history_path)  # the whole history must read before tonight is added to it
    recorded = []
    for folder in folders:
        if not (folder / "analysis.json").is_file():
            write_analysis(folder)  # runs from before the harness wrote it themselves
        row, _ = history.record(history_path, folder)
        recorded.append(row)
    # grouped by model x split for the report; within one, oldest first, so each is judged after the one before
    recorded.sort(key=lambda r: (str(SplitKey(r)), r["finished"], r["run_id"]))
    judgements = []
    for row in recorded:
        key = SplitKey(row)
        if key in pinned:
            baseline, source = pinned[key], "pinned"
        else:
            baseline, source = history.previous_good(history_path, row), "previous good run"
        j = judge(row, baseline, source if baseline else None, max_wer_increase, on_transcript_change)
        history.set_verdict(history_path, row["run_id"], j.verdict, j.reasons, baseline and baseline["run_id"])
        j.run = {**row, "verdict": j.verdict}
        judgements.append(j)

    # several series tested in one night: Holm's correction holds the chance of any false "significant" at ALPHA
    tests = [j for j in judgements if j.test is not None and not math.isnan(j.test.p_value)]
    for j, significant in zip(tests, holm([j.test.p_value for j in tests]), strict=True):
        j.significant = significant

    logged = []
    if mlflow_uri:
        try:
            logged = tracking.export(mlflow_uri, judgements, mlflow_experiment)
        except tracking.TrackingError as err:  # recorded and judged: the export's failure is the night's problem
            problems.append(f"not logged to MLflow: {one_line(err)}")

    out = out or runs
    out.mkdir(parents=True, exist_ok=True)
    report = NightlyReport(
        str(runs),
        str(history_path),
        max_wer_increase,
        harness_status,
        judgements,
        problems,
        history.history_size(history_path),
        on_transcript_change=on_transcript_change,
        mlflow=logged,
    )
    keys = list(dict.fromkeys(SplitKey(j.run) for j in judgements))
    if keys:
        plot_trend(history.rows(history_path), keys, out / "trend.png")
    write_json_atomic(out / "nightly.json", report.to_json())
    (out / "nightly.md").write_text(markdown(report, show_changed), encoding="utf-8")
    return report


# ----------------------------------------------------------------------------------------------------------
# Command line
