"""Error analysis of one run, re-aggregated from transcripts.jsonl; and sclite's trn files.

`write_analysis(run_dir)` writes analysis.md, analysis.json, wer_by_length.png, ref.trn and hyp.trn next to
transcripts.jsonl: the most frequent substitutions, deletions and insertions (from jiwer's word alignments),
WER per speaker and per utterance-length bucket, and the utterances with the most errors, aligned.
Usage for an old run: python -m w2v2bench.analysis run=<run folder>
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jiwer

from ..config import set_label
from ..files import write_json_atomic, write_text_atomic
from ..metrics import Counts, pct
from ..metrics.edits import scored_text
from ..metrics.normalizers import normalizer
from ..metrics.significance import interval
from ..results import is_scored, load_rows, load_summary, scored

__all__ = [
    "Analysis",
    "LENGTH_EDGES_S",
    "analyse",
    "resolve_normalizer",
    "write_analysis",
    "write_trn",
]

ANALYSIS_SCHEMA_VERSION = 1
LENGTH_EDGES_S = (0.0, 2.0, 5.0, 10.0, 15.0, 20.0, math.inf)  # LibriSpeech test utterances run 1.3 to 35 s
TOP_ERRORS = 20
WORST = 10


def resolve_normalizer(name: str | None) -> Callable[[str], str]:
    return normalizer(name)


@dataclass
class Analysis:
    normalizer: str
    words: Counts
    n_utterances: int
    failed: list[dict]
    substitutions: Counter = field(default_factory=Counter)  # (ref word, hyp word) -> count
    deletions: Counter = field(default_factory=Counter)
    insertions: Counter = field(default_factory=Counter)
    speakers: list[dict] = field(default_factory=list)
    lengths: list[dict] = field(default_factory=list)
    worst: list[dict] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": ANALYSIS_SCHEMA_VERSION,
            "normalizer": self.normalizer,
            "wer": _wer(self.words),
            "n_utterances": self.n_utterances,
            "n_failed": len(self.failed),
            "ref_words": self.words.ref_words,
            "word_errors": _error_dict(self.words),
            "substitutions": [{"ref": r, "hyp": h, "count": n} for (r, h), n in _top(self.substitutions)],
            "deletions": [{"word": w, "count": n} for w, n in _top(self.deletions)],
            "insertions": [{"word": w, "count": n} for w, n in _top(self.insertions)],
            "speakers": self.speakers,
            "length_buckets": self.lengths,
            "worst": self.worst,
            "failed": self.failed,
        }


def _wer(counts: Counts) -> float | None:
    """WER as a fraction; None (null in JSON) where there are no reference words."""
    return counts.errors / counts.ref_words if counts.ref_words else None


def _error_dict(counts: Counts) -> dict[str, int]:
    return {
        "substitutions": counts.substitutions,
        "deletions": counts.deletions,
        "insertions": counts.insertions,
    }


def _top(counter: Counter) -> list:
    # ties broken by the word itself, so the files are stable from run to run
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:TOP_ERRORS]


def alignment_text(ref: str, hyp: str, labels: tuple[str, str] = ("REF", "HYP"), line_width: int = 100) -> str:
    """jiwer's REF/HYP/edit-marks view of one pair, wrapped, without its sentence header.

    `labels` renames the two rows (three letters each, so the columns stay aligned), e.g. ("OLD", "NEW").
    """
    if not ref.split() and not hyp.split():
        return f"{labels[0]}:\n{labels[1]}:"
    out = jiwer.process_words(ref, hyp)
    text = jiwer.visualize_alignment(out, show_measures=False, skip_correct=False, line_width=line_width)
    rename = {"REF:": f"{labels[0]}:", "HYP:": f"{labels[1]}:"}
    lines = [
        (rename.get(line[:4], line[:4]) + line[4:]).rstrip()
        for line in text.splitlines()
        if not line.startswith("=== SENTENCE")
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _bucket(duration_s: float) -> int:
    for i in range(len(LENGTH_EDGES_S) - 1):
        if duration_s < LENGTH_EDGES_S[i + 1]:
            return i
    return len(LENGTH_EDGES_S) - 2


def bucket_label(i: int) -> str:
    low, high = LENGTH_EDGES_S[i], LENGTH_EDGES_S[i + 1]
    return f"{low:g}+ s" if math.isinf(high) else f"{low:g}-{high:g} s"


def _group_rows(groups: dict[Any, list[Counts]]) -> list[dict]:
    rows = []
    for key, counts in groups.items():
        total = sum(counts, Counts())
        rows.append(
            {
                "key": key,
                "n_utterances": len(counts),
                "ref_words": total.ref_words,
                "errors": total.errors,
                **_error_dict(total),
                "wer": _wer(total),
            }
        )
    return rows


COUNTED = ("substitutions", "deletions", "insertions", "ref_words")


def analyse(
    rows: list[dict], normalize: Callable[[str], str], normalizer_name: str, counts_from_rows: bool = False
) -> Analysis:
    """Every figure of the analysis from the rows: one jiwer alignment per scored utterance. `counts_from_rows`:
    the per-speaker and per-length tables re-aggregate the rows' own counts (a re-score with merge_compounds,
    which counts fewer errors than the alignment shows)."""
    good = scored(rows)
    refs = [scored_text(r["text"], normalize) for r in good]
    hyps = [scored_text(r["pred_text"], normalize) for r in good]
    out = jiwer.process_words(refs, hyps) if good else None
    subs, dels, ins = Counter(), Counter(), Counter()
    per_utt: list[Counts] = []
    for k in range(len(good)):
        ref_words, hyp_words, chunks = out.references[k], out.hypotheses[k], out.alignments[k]
        s = d = i = 0
        for c in chunks:
            if c.type == "substitute":
                refs_k = ref_words[c.ref_start_idx : c.ref_end_idx]
                subs.update(zip(refs_k, hyp_words[c.hyp_start_idx : c.hyp_end_idx], strict=True))
                s += c.ref_end_idx - c.ref_start_idx
            elif c.type == "delete":
                dels.update(ref_words[c.ref_start_idx : c.ref_end_idx])
                d += c.ref_end_idx - c.ref_start_idx
            elif c.type == "insert":
                ins.update(hyp_words[c.hyp_start_idx : c.hyp_end_idx])
                i += c.hyp_end_idx - c.hyp_start_idx
        stored = [good[k].get(f) for f in COUNTED] if counts_from_rows else [None]
        per_utt.append(Counts(*stored) if None not in stored else Counts(s, d, i, len(ref_words)))

    by_speaker: dict[str, list[Counts]] = {}
    by_length: dict[int, list[Counts]] = {b: [] for b in range(len(LENGTH_EDGES_S) - 1)}
    length_speakers: dict[int, list] = {b: [] for b in by_length}
    for row, counts in zip(good, per_utt, strict=True):
        by_speaker.setdefault(str(row.get("speaker")), []).append(counts)
        bucket = _bucket(float(row.get("duration_s") or 0.0))
        by_length[bucket].append(counts)
        length_speakers[bucket].append(row.get("speaker"))
    speakers = [{"speaker": g.pop("key"), **g} for g in _group_rows(by_speaker)]
    speakers.sort(key=lambda g: (-(g["wer"] if g["wer"] is not None else -1.0), g["speaker"]))
    lengths = []
    for g in _group_rows(by_length):
        b = g.pop("key")
        # the bucket's WER interval, by the run's bootstrap (metrics.significance: speakers, else utterances)
        ci = interval([c.errors for c in by_length[b]], [c.ref_words for c in by_length[b]], length_speakers[b])
        lengths.append(
            {
                "bucket": bucket_label(b),
                "min_s": LENGTH_EDGES_S[b],
                "max_s": None if math.isinf(LENGTH_EDGES_S[b + 1]) else LENGTH_EDGES_S[b + 1],
                **g,
                "wer_ci95": None if ci is None else [ci.low, ci.high],
            }
        )

    # most errors first; among equals, the shorter reference (higher WER) first
    order = sorted(range(len(good)), key=lambda k: (-per_utt[k].errors, per_utt[k].ref_words, k))
    worst = []
    for k in order[:WORST]:
        if per_utt[k].errors == 0:
            break
        worst.append(
            {
                "id": good[k]["id"],
                "speaker": good[k].get("speaker"),
                "duration_s": good[k].get("duration_s"),
                "errors": per_utt[k].errors,
                "ref_words": per_utt[k].ref_words,
                "wer": _wer(per_utt[k]),
                **_error_dict(per_utt[k]),
                "ref": refs[k],
                "hyp": hyps[k],
                "alignment": alignment_text(refs[k], hyps[k]),
            }
        )
    failed = [
        {"id": r["id"], "error": r.get("error") or "no reference or hypothesis"} for r in rows if not is_scored(r)
    ]
    return Analysis(
        normalizer_name, sum(per_utt, Counts()), len(rows), failed, subs, dels, ins, speakers, lengths, worst
    )


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


SPEAKER_COLUMNS = ("speaker", "n_utterances", "ref_words", "substitutions", "deletions", "insertions")


def markdown(analysis: Analysis, title: str) -> str:
    a = analysis.to_json()
    errors = a["word_errors"]
    parts = [
        f"# Error analysis: {title}",
        "",
        f"WER {pct(a['wer'])} % over {a['ref_words']} reference words in "
        f"{a['n_utterances'] - a['n_failed']} utterances ({errors['substitutions']} substitutions, "
        f"{errors['deletions']} deletions, {errors['insertions']} insertions); "
        f"normaliser: {a['normalizer']}; failed utterances: {a['n_failed']}.",
        "",
        "## Most frequent substitutions",
        "",
        _table(
            ["reference", "hypothesis", "count"],
            [[s["ref"], s["hyp"], s["count"]] for s in a["substitutions"]],
        ),
        "",
        "## Most frequent deletions",
        "",
        _table(["word", "count"], [[d["word"], d["count"]] for d in a["deletions"]]),
        "",
        "## Most frequent insertions",
        "",
        _table(["word", "count"], [[d["word"], d["count"]] for d in a["insertions"]]),
        "",
        "## WER by utterance length",
        "",
        "![WER by utterance length](wer_by_length.png)",
        "",
        _table(
            ["length", "utterances", "ref words", "errors", "WER %"],
            [[g["bucket"], g["n_utterances"], g["ref_words"], g["errors"], pct(g["wer"])] for g in a["length_buckets"]],
        ),
        "",
        "## WER by speaker (worst first)",
        "",
        _table(
            ["speaker", "utterances", "ref words", "S", "D", "I", "WER %"],
            [[g[k] for k in SPEAKER_COLUMNS] + [pct(g["wer"])] for g in a["speakers"]],
        ),
        "",
        f"## The {len(a['worst'])} utterances with the most word errors",
    ]
    for w in a["worst"]:
        parts += [
            "",
            f"**{w['id']}** ({w['duration_s']} s): {w['errors']} errors in {w['ref_words']} words "
            f"(WER {pct(w['wer'])} %)",
            "```",
            w["alignment"],
            "```",
        ]
    if a["failed"]:
        parts += [
            "",
            "## Failed utterances (not in the WER)",
            "",
            _table(["id", "error"], [[f["id"], f["error"]] for f in a["failed"]]),
        ]
    return "\n".join(parts) + "\n"


def plot_wer_by_length(analysis: Analysis, path: Path, title: str):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display backend

    buckets = [g for g in analysis.lengths if g["ref_words"]]
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    wer = [g["wer"] * 100 for g in buckets]
    names = [f"{g['bucket']}\n(n={g['n_utterances']})" for g in buckets]
    ax.bar(names, wer, color="#4c72b0")
    known = [k for k, g in enumerate(buckets) if g.get("wer_ci95")]
    if known:  # the 95 % interval of each bucket's WER (the run's bootstrap)
        low = [wer[k] - buckets[k]["wer_ci95"][0] * 100 for k in known]
        high = [buckets[k]["wer_ci95"][1] * 100 - wer[k] for k in known]
        ax.errorbar([names[k] for k in known], [wer[k] for k in known], yerr=[low, high], fmt="none",
                    ecolor="black", capsize=4, linewidth=1,
                    label="95 % interval (bootstrap within each bucket)")  # fmt: skip
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel("utterance length in seconds (n: utterances in the bucket)")
    ax.set_ylabel("WER (%)")
    ax.set_title(f"WER by utterance length: {title}", fontsize=10)
    ax.margins(y=0.1)
    fig.savefig(path, dpi=100)
    return fig


def write_trn(rows: list[dict], normalize: Callable[[str], str], ref_path: Path, hyp_path: Path) -> None:
    """sclite trn files (`TEXT (utterance-id)`) of the scored utterances, in the text that was scored."""
    good = scored(rows)
    for path, key in ((ref_path, "text"), (hyp_path, "pred_text")):
        lines = (" ".join([*scored_text(r[key], normalize).split(), f"({r['id']})"]) for r in good)
        write_text_atomic(path, "".join(line + "\n" for line in lines))


def _title(summary: dict | None, run_dir: Path) -> str:
    if summary is None or "config" not in summary:
        return str(run_dir)
    cfg = summary["config"]
    label = set_label(cfg["data"]["name"], cfg["data"].get("partition"), cfg["split"])
    return f"{cfg['model']['name']} on {cfg['data']['name']}" + ("" if label == cfg["data"]["name"] else f" {label}")


def write_analysis(
    run_dir: Path,
    normalizer_name: str | None = None,
    plot: bool = True,
    summary: dict | None = None,
    normalize: Callable[[str], str] | None = None,
) -> Analysis:
    """Write the analysis files and trn files next to the run's transcripts.jsonl.

    The normaliser is the one the run was scored with (`summary`, or summary.json), unless `normalizer_name`
    is given.
    """
    run_dir = Path(run_dir)
    rows = load_rows(run_dir)
    summary = summary if summary is not None else load_summary(run_dir)
    name = normalizer_name or (summary or {}).get("normalizer") or "none"
    normalize = normalize or resolve_normalizer(name)
    merged = bool((summary or {}).get("merge_compounds")) and name == (summary or {}).get("normalizer")
    if merged:  # the rows' own counts are used: each must be its merge_compounds count
        from ..results import edit_counts, parse_row

        for r in rows:
            stored, counted = edit_counts(parse_row(r), normalize, merge_compounds=True)
            if stored != counted:
                raise ValueError(
                    f"{run_dir / 'transcripts.jsonl'}: {r.get('id')}: the edit counts {stored} are not its "
                    f"merge_compounds counts {counted}"
                )
    analysis = analyse(rows, normalize, name, counts_from_rows=merged)
    title = _title(summary, run_dir)
    write_json_atomic(run_dir / "analysis.json", {"title": title, **analysis.to_json()})
    write_text_atomic(run_dir / "analysis.md", markdown(analysis, title))
    write_trn(rows, normalize, run_dir / "ref.trn", run_dir / "hyp.trn")
    if plot:
        plot_wer_by_length(analysis, run_dir / "wer_by_length.png", title)
    return analysis


# ----------------------------------------------------------------------------------------------------------
# Command line
