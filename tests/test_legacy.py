"""Today's behaviour, pinned through the command line only.

tests/data/legacy/ holds what the code of one commit wrote (its README.md says which, make_legacy.sh how): a
complete run, an interrupted one with its journal, a re-score, an export, a compare and a nightly's
history.sqlite. Later code must resume, re-score, compare, export, table and record them as that code did.
Every check runs `python -m w2v2bench` or `python -m w2v2bench.<tool>` in a subprocess and imports no module
of the package, so these tests hold across moves of its modules.

The runs were made with relative paths (./model, ./corpus) from a work folder; each test rebuilds that layout
in its own folder (symlinks to the package's demo model and corpus, copies of the fixtures) and runs there, so
the config hashes match wherever the checkout lives. Nothing is written under tests/data.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import importlib.util
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # whole harness processes: make test-slow

LEGACY = Path(__file__).parent / "data" / "legacy"
# the runs' settings (make_legacy.sh); only output_dir and resume may differ in a resume of them
RUN_ARGS = [
    "model=demo",
    "model.checkpoint=./model",
    "data=demo",
    "data.root=./corpus",
    "split=other",
    "limit=6",
    "device=cpu",
]
RUN_FILES = {
    ".w2v2bench.lock",
    "analysis.json",
    "analysis.md",
    "hyp.trn",
    "ref.trn",
    "summary.json",
    "transcripts.jsonl",
    "wer.csv",
    "wer.md",
    "wer_by_length.png",
}
# files of a run folder written from its counts and texts only (no timing, path or plot): equal byte for byte
TEXT_FILES = ("analysis.md", "hyp.trn", "ref.trn")
# analysis.json: the same but for what issue #30 added (each length bucket's interval)
ADDED_ANALYSIS = ("length_buckets.*.wer_ci95",)
# summary.json keys that depend on the clock, the machine, the checkout or the command line
SUMMARY_VOLATILE = (
    "run_id",
    "started",
    "finished",
    "wall_s",
    "load_s",
    "rtfx",
    "model_s",
    "model_rtfx",
    "ranks.*.wall_s",
    "ranks.*.rtfx",
    "host",
    "device",
    "git_hash",
    "versions",
    "command",
    "config.output_dir",
)
# what the code writes since these files were made (issue #27: summary.json schema 2): the measurement record
# and the weights' hash; the legacy files are read with their record derived
ADDED_SUMMARY = ("measurement", "model.weights", *(INTERVALS := ("wer_ci95", "cer_ci95", "interval")),
                 "config.progress_every_s")  # fmt: skip
# (issue #30: the rates' 95 % intervals and how they were made, in summary.json and the tables; the progress
# lines' interval, a key of the config)
ADDED_COLUMNS = {"coverage", "backend", "precision", "decoder", "normalizer", "batching", "device", "compile",
                 "recheck_margin", "merge_compounds", "series", "record", "wer_ci95_%", "cer_ci95_%"}  # fmt: skip
# transcripts.jsonl: the model's time per utterance, and the absolute audio path (checked on its own)
ROW_VOLATILE = ("model_s", "audio_filepath")
IDS = [f"7418-14661-{n:04d}" for n in range(6)]
# the complete run's figures (tests/data/legacy/complete/summary.json)
WER, CER = 0.2682926829268293, 0.06779661016949153


# ----------------------------------------------------------------------------------------------------------
# Helpers


def package_assets() -> Path:
    """The installed package's assets folder, found without importing any of its modules."""
    spec = importlib.util.find_spec("w2v2bench")
    assert spec is not None and spec.submodule_search_locations, "w2v2bench is not importable"
    assets = Path(list(spec.submodule_search_locations)[0]) / "assets"
    assert (assets / "demo-model").is_dir() and (assets / "demo-corpus").is_dir(), f"no demo assets in {assets}"
    return assets


def layout(folder: Path, *fixtures: str, **renamed: str) -> Path:
    """`folder` as the fixtures' work folder was: ./model and ./corpus, and copies of the named fixtures
    (`renamed`: new name -> fixture)."""
    folder.mkdir(parents=True, exist_ok=True)
    assets = package_assets()
    for name, asset in (("model", "demo-model"), ("corpus", "demo-corpus")):
        if not (folder / name).exists():
            (folder / name).symlink_to(assets / asset, target_is_directory=True)
    for name, fixture in {**{f: f for f in fixtures}, **renamed}.items():
        source = LEGACY / fixture
        if source.is_dir():
            shutil.copytree(source, folder / name)
        else:
            shutil.copy2(source, folder / name)
    return folder


def cli(folder: Path, tool: str | None, *args: str) -> subprocess.CompletedProcess:
    """`python -m w2v2bench[.tool] args...` run in `folder`, offline."""
    module = "w2v2bench" if tool is None else f"w2v2bench.{tool}"
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def ok(done: subprocess.CompletedProcess, status: int = 0) -> subprocess.CompletedProcess:
    assert done.returncode == status, f"exit {done.returncode}, expected {status}\n{done.stdout}\n{done.stderr}"
    return done


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def without(tree: dict, keys: tuple[str, ...]) -> dict:
    """A copy of `tree` less the dotted `keys` (`*` stands for every item of a list); each key must exist,
    so that a renamed field is noticed."""
    out = copy.deepcopy(tree)
    for key in keys:
        _drop(out, key.split("."), key)
    return out


def _drop(node: object, parts: list[str], key: str) -> None:
    head, rest = parts[0], parts[1:]
    if head == "*":
        assert isinstance(node, list), f"{key}: not a list"
        for item in node:
            _drop(item, rest, key)
        return
    assert isinstance(node, dict) and head in node, f"{key}: missing"
    if rest:
        _drop(node[head], rest, key)
    else:
        del node[head]


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def audio_path(folder: Path, utt_id: str) -> str:
    """The absolute audio path a run started in `folder` records for one utterance."""
    speaker, chapter, _ = utt_id.split("-")
    return os.path.join(os.path.realpath(folder), "corpus", "test-other", speaker, chapter, f"{utt_id}.flac")


IDS_SHA256 = hashlib.sha256("".join(f"{i}\n" for i in sorted(IDS)).encode()).hexdigest()
# the series these runs measure: the demo model, 6 of the demo corpus's test-other, the card protocol on a CPU
SERIES = {
    "model": "demo",
    "data": {"name": "demo", "partition": "test", "split": "other", "coverage": "subset", "official": False,
             "n_utterances": 6, "ids_sha256": IDS_SHA256},
    "protocol": {"decoder": {"name": "greedy"}, "backend": {"name": "torch"}, "precision": "fp32", "batching": "exact",
                 "normalizer": "none", "merge_compounds": False, "recheck_margin": None, "device": "cpu",
                 "compile": False},
}  # fmt: skip


def assert_same_summary(new: dict, old: dict, volatile: tuple[str, ...], added=ADDED_SUMMARY) -> None:
    """`new` (schema 2) holds what the legacy summary `old` (schema 1) holds, and the record."""
    assert (new["schema_version"], old["schema_version"]) == (2, 1)
    volatile = (*volatile, "schema_version")
    assert without(new, volatile + added) == without(old, volatile)


def csv_rows(path: Path, dropped: tuple[str, ...] = ()) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in dropped} for r in csv.DictReader(io.StringIO(path.read_text()))]


def assert_same_run(run: Path, reference: Path, kept_paths: dict[str, str]) -> None:
    """`run` gave the same transcripts and figures as the committed run `reference`; an utterance in
    `kept_paths` keeps that audio path (a resumed run's journal row), the others were read from run/../corpus."""
    new, old = rows(run / "transcripts.jsonl"), rows(reference / "transcripts.jsonl")
    assert [r["id"] for r in new] == IDS
    assert [without(r, ROW_VOLATILE) for r in new] == [without(r, ROW_VOLATILE) for r in old]
    for row in new:
        assert isinstance(row["model_s"], float) and row["model_s"] > 0
        assert row["audio_filepath"] == kept_paths.get(row["id"], audio_path(run.parent, row["id"]))
    for name in TEXT_FILES:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    assert without(load(run / "analysis.json"), ADDED_ANALYSIS) == load(reference / "analysis.json")
    new_csv, old_csv = csv_rows(run / "wer.csv", ("rtfx",)), csv_rows(reference / "wer.csv", ("rtfx",))
    assert [set(r) - set(o) for r, o in zip(new_csv, old_csv, strict=True)] == [ADDED_COLUMNS]
    assert [{k: r[k] for k in o} for r, o in zip(new_csv, old_csv, strict=True)] == old_csv
    summary = load(run / "summary.json")
    assert summary["measurement"]["series"] == SERIES and summary["model"]["weights"] == WEIGHTS


# ----------------------------------------------------------------------------------------------------------
# Resume


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A copy of the interrupted run, named resumed/, completed with resume=true: (its folder, the process)."""
    folder = layout(tmp_path_factory.mktemp("resume"), resumed="interrupted")
    done = cli(folder, None, *RUN_ARGS, "output_dir=./resumed", "resume=true")
    return folder / "resumed", done


def test_resume_completes_the_interrupted_run(resumed):
    run, done = resumed
    ok(done)  # as the complete run: limit=6 skips the reference check
    assert "resuming: 2 journal rows of the interrupted run in resumed" in done.stdout
    assert "reference check: none (skipped: limit=6 scores a subset, the reference is for the whole split)" in (
        done.stdout
    )
    assert files(run) == RUN_FILES  # the journal is gone, the lock file stays
    journal = rows(LEGACY / "interrupted/transcripts.partial.jsonl")
    kept = {r["id"]: r["audio_filepath"] for r in journal[1:]}
    assert sorted(kept) == ["7418-14661-0000", "7418-14661-0002"]  # two batches of one, longest first
    assert_same_run(run, LEGACY / "complete", kept)

    summary, complete = load(run / "summary.json"), load(LEGACY / "complete/summary.json")
    assert summary["status"] == "complete"
    assert summary["run_id"] == load(LEGACY / "interrupted/summary.json")["run_id"] == journal[0]["run_id"]
    expected = copy.deepcopy(complete)
    expected.update(
        timed_utterances=4,  # only what this process transcribed is timed
        timed_audio_s=5.2564,
        resumed_from=2,
        resume_dropped=0,
        resume_dropped_reasons=[],
        n_batches=4,
    )
    expected["ranks"][0].update(utterances=4, audio_s=5.2564)
    expected["config"]["resume"] = True
    assert_same_summary(summary, expected, SUMMARY_VOLATILE)
    assert summary["config"]["output_dir"] == "./resumed"


def test_rerun_gives_the_complete_run_and_resuming_it_does_nothing(tmp_path):
    layout(tmp_path, "complete")
    ok(cli(tmp_path, None, *RUN_ARGS, "output_dir=./rerun"))
    assert files(tmp_path / "rerun") == RUN_FILES
    assert_same_run(tmp_path / "rerun", LEGACY / "complete", {})
    summary, complete = load(tmp_path / "rerun/summary.json"), load(LEGACY / "complete/summary.json")
    assert_same_summary(summary, complete, SUMMARY_VOLATILE)

    done = ok(cli(tmp_path, None, *RUN_ARGS, "output_dir=./complete", "resume=true"))
    assert "the run in complete is already complete: nothing to resume" in done.stdout
    for path in (LEGACY / "complete").iterdir():
        assert (tmp_path / "complete" / path.name).read_bytes() == path.read_bytes(), path.name
    assert files(tmp_path / "complete") == files(LEGACY / "complete")


# ----------------------------------------------------------------------------------------------------------
# Re-score, compare, export, table


RESCORE_VOLATILE = (
    "rescore.source_run",
    "rescore.rescored_at",
    "rescore.git_hash",
    "rescore.versions",
    "rescore.command",
)


def test_rescore_reproduces_the_committed_rescore(tmp_path):
    layout(tmp_path, "complete")
    done = ok(cli(tmp_path, "score", "run=./complete", "out=./rescore", "normalizer=basic"))
    assert "9 substitutions, 2 deletions, 0 insertions in 41 reference words; outputs: rescore" in done.stdout
    out, committed = tmp_path / "rescore", LEGACY / "rescore"
    assert files(out) == files(committed) == RUN_FILES - {".w2v2bench.lock"}
    summary = load(out / "summary.json")
    assert_same_summary(summary, load(committed / "summary.json"), RESCORE_VOLATILE, added=("measurement", *INTERVALS))
    # the record of a run written before it: derived, its ids from its rows, its protocol the re-score's
    expected = {**SERIES, "protocol": {**SERIES["protocol"], "normalizer": "basic"}}
    assert summary["measurement"]["derived"] and summary["measurement"]["series"] == expected
    assert summary["rescore"]["source_run"] == os.path.realpath(tmp_path / "complete")
    assert (summary["status"], summary["normalizer"], summary["wer"], summary["cer"]) == ("rescored", "basic", WER, CER)
    for name in files(committed) - {"summary.json", "wer_by_length.png", "wer.csv", "wer.md", "analysis.json"}:
        assert (out / name).read_bytes() == (committed / name).read_bytes(), name
    assert without(load(out / "analysis.json"), ADDED_ANALYSIS) == load(committed / "analysis.json")
    new_csv, old_csv = csv_rows(out / "wer.csv"), csv_rows(committed / "wer.csv")  # the series' columns added
    assert [{k: r[k] for k in o} for r, o in zip(new_csv, old_csv, strict=True)] == old_csv
    assert [(r["coverage"], r["normalizer"], r["record"]) for r in new_csv] == [("subset of 6", "basic", "derived")]
    # the source run is left as it was
    for path in (LEGACY / "complete").iterdir():
        assert (tmp_path / "complete" / path.name).read_bytes() == path.read_bytes(), path.name


COMPARE_VOLATILE = ("created", "git_hash", "versions", "command", "runs.settings")


def machine_setting(name: str) -> bool:
    """A run setting compare lists that differs with the machine or checkout, not with the code's behaviour:
    the resumed run is made now, the complete one was made by make_legacy.sh."""
    return name in ("git_hash", "device") or name.startswith("versions.")


def markdown_sections(text: str) -> dict[str, list[str]]:
    """compare.md by `## ` heading ("" for what comes before the first)."""
    sections, name = {"": []}, ""
    for line in text.splitlines():
        if line.startswith("## "):
            name = line
            sections[name] = []
        else:
            sections[name].append(line)
    return sections


def test_compare(resumed, tmp_path):
    layout(tmp_path, "complete", "rescore", "interrupted")
    shutil.copytree(resumed[0], tmp_path / "resumed")
    done = ok(cli(tmp_path, "compare", "a=./complete", "b=./resumed", "out=./compare"))
    assert "**Identical**: all 6 transcripts are the same." in done.stdout
    report, committed = load(tmp_path / "compare/compare.json"), load(LEGACY / "compare/compare.json")
    # issue #30: the paired bootstrap says what it resampled
    assert report["runs"]["bootstrap"]["unit"] == "utterance" and report["runs"]["bootstrap"]["blocks"] == 6
    added = ("runs.bootstrap.unit", "runs.bootstrap.blocks")
    assert without(report, COMPARE_VOLATILE + added) == without(committed, COMPARE_VOLATILE)
    added_keys = ("config.progress_every_s",)  # issue #30's key: absent in the committed run
    settings = [s for s in report["runs"]["settings"] if not machine_setting(s[0]) and s[0] not in added_keys]
    assert settings[:1] == [s for s in committed["runs"]["settings"] if not machine_setting(s[0])]
    assert settings == [["config.resume", False, True], ["model.weights", "<absent>", WEIGHTS]]
    key = {k: report[k] for k in ("identical", "within_thresholds", "reasons", "wer_a", "wer_b", "wer_delta")}
    assert key == {
        "identical": True,
        "within_thresholds": True,
        "reasons": [],
        "wer_a": WER,
        "wer_b": WER,
        "wer_delta": 0.0,
    }
    runs = report["runs"]
    assert (runs["n_paired"], runs["better"], runs["worse"], runs["same"], runs["differences"]) == (6, 0, 0, 6, [])
    assert runs["bootstrap"] == {"samples": 10000, "seed": 0, "delta_low": 0.0, "delta_high": 0.0, "p_value": 1.0,
                                 "unit": "utterance", "blocks": 6}  # fmt: skip
    # compare.md as committed, but for the settings table's rows of machine settings (and its column widths)
    md = markdown_sections((tmp_path / "compare/compare.md").read_text())
    md_committed = markdown_sections((LEGACY / "compare/compare.md").read_text())
    table = md.pop("## Run settings that differ")

    def bootstrap_line(lines: list[str]) -> list[str]:  # issue #30: the test's line says its unit and verdict
        return [line for line in lines if line.startswith("- paired bootstrap")]

    (line,) = [x for v in md.values() for x in bootstrap_line(v)]
    assert line.startswith("- paired bootstrap (10000 resamples of 6 utterances, seed 0): ") and (
        "(within noise at 0.05; the nightly's test)" in line
    )
    assert {k: [x for x in v if x not in bootstrap_line(v)] for k, v in md.items()} == {
        k: [x for x in v if x not in bootstrap_line(v)] for k, v in md_committed.items()
        if k != "## Run settings that differ"
    }  # fmt: skip
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table if line.startswith("|")]
    assert cells[0] == ["setting", "A", "B"]
    assert [c for c in cells[2:] if not machine_setting(c[0]) and c[0] not in added_keys] == [
        ["config.resume", "false", "true"],
        ["model.weights", "<absent>", WEIGHTS],  # recorded since (issue #27)
    ]

    # a re-score and an interrupted run are not runs to compare: exit 1, one line, nothing written
    for other, status in (("rescore", "'rescored'"), ("interrupted", "'running', no transcripts.jsonl")):
        done = ok(cli(tmp_path, "compare", "a=./complete", f"b=./{other}", f"out=./with-{other}"), 1)
        assert f"'{other}': the run is not complete (status {status}); finish it with the harness's resume=true" in (
            done.stderr
        )
        assert not (tmp_path / f"with-{other}").exists()


def test_export_reproduces_the_committed_export(tmp_path):
    layout(tmp_path, "complete")
    done = ok(cli(tmp_path, "export", "run=./complete", "out=./export"))
    assert "note: no model-index entry for complete: limit=6 scores a subset" in done.stdout
    out, committed = tmp_path / "export", LEGACY / "export"
    # issue #28: the NeMo and lhotse files are named .json since, so that the leaderboard file is the export's
    # only *.jsonl (its scorer reads every *.jsonl under a folder); the lhotse ones are JSON lists now
    renamed = {"demo-test-other.nemo.jsonl": "demo-test-other.nemo.json",
               "demo-test-other.recordings.jsonl": "demo-test-other.recordings.json",
               "demo-test-other.supervisions.jsonl": "demo-test-other.supervisions.json"}  # fmt: skip
    assert files(out) == {renamed.get(name, name) for name in files(committed)}
    for name in files(committed) - {"export.json"}:
        new, old = (out / renamed.get(name, name)).read_bytes(), (committed / name).read_bytes()
        if ".recordings." in name or ".supervisions." in name:  # every row left out (below): empty either way
            assert json.loads(new) == [json.loads(line) for line in old.decode().splitlines()] == [], name
        else:
            assert new == old, name
    report = load(out / "export.json")
    assert without(report, ("git_hash", "files")) == without(load(committed / "export.json"), ("git_hash", "files"))
    assert report["files"] == [renamed.get(n, n) for n in load(committed / "export.json")["files"]]
    # the recorded audio paths lie in make_legacy.sh's deleted work folder: lhotse's manifests leave every row out
    assert report["runs"][0]["lhotse_left_out"] == IDS
    assert (report["runs"][0]["wer"], report["runs"][0]["jiwer"]["wer"]) == (WER, WER)


SERIES_ID = "4e1a8901a346c3e3"  # the re-run writes it; the legacy run's derived record (ids from its rows) has it too
TABLE_CSV = (
    "model,data,split,coverage,backend,precision,decoder,normalizer,batching,device,compile,recheck_margin,"
    "merge_compounds,series,record,wer_%,wer_ci95_%,cer_%,cer_ci95_%,errors,substitutions,deletions,insertions,"
    "ref_words,utterances,failed,audio_s,rtfx,batch_size,reference_%,reference_passed,finished,run\n"
    "demo,demo,test-other,subset of 6,torch,fp32,greedy,none,exact,cpu,False,,False,{series},derived,26.83,n/a,6.78,"
    "n/a,11,9,2,0,41,6,0,10.0,{rtfx},1,,,{finished},root/complete\n"
)
LEADERBOARD_CSV = (
    "model,data,split,class,norm,coverage,backend,precision,decoder,normalizer,batching,device,compile,"
    "recheck_margin,merge_compounds,series,record,utterances,wer_%,wer_ci95_%,card_%,diff_pts,check,rtfx,batch_size,"
    "device_name,finished,run\n"
    "demo,demo,test-other,Wav2Vec2ForCTC,group,subset of 6,torch,fp32,greedy,none,exact,cpu,False,,False,{series},"
    'derived,6,26.83,n/a,19.87,6.96,"not checked: skipped: limit=6 scores a subset, the reference is for the whole '
    'split",{rtfx},1,"{device}",{finished},root/complete\n'
)


def test_table(tmp_path):
    # the re-score and the interrupted run are left out: one row, the complete run's
    layout(tmp_path / "root", "complete", "rescore", "interrupted")
    summary = load(LEGACY / "complete/summary.json")
    figures = {"rtfx": round(summary["rtfx"], 1), "finished": summary["finished"], "device": summary["device"],
               "series": SERIES_ID}  # fmt: skip
    done = ok(cli(tmp_path, "table", "root=./root"))
    # the protocol columns in which every row is the card's are left out of the markdown; the record is derived
    # (a record written before issue #30 has no interval: n/a)
    row = f"| demo    | demo   | test-other | subset of 6 | {SERIES_ID} | derived  |   26.83 | n/a          |    6.78 |"
    assert row in done.stdout
    assert (tmp_path / "root/table.csv").read_text() == TABLE_CSV.format(**figures)
    md = (tmp_path / "root/table.md").read_text().splitlines()
    assert len(md) == 3 and md[2].startswith(row) and "root/complete" in md[2]

    ok(cli(tmp_path, "table", "root=./root", "view=leaderboard"))
    assert (tmp_path / "root/leaderboard.csv").read_text() == LEADERBOARD_CSV.format(**figures)

    done = ok(cli(tmp_path, "table", "root=./root/interrupted"), 1)
    assert "no completed runs (summary.json) under root/interrupted" in done.stdout + done.stderr


# ----------------------------------------------------------------------------------------------------------
# Record: the nightly, with the committed history


HISTORY_COLUMNS = (
    "run_id run_dir recorded_at started finished date status model checkpoint revision weights data partition "
    "split normalizer n_utterances n_failed ref_words substitutions deletions insertions errors ref_chars "
    "char_errors wer cer audio_s wall_s rtfx model_rtfx device batch_size precision reference_wer "
    "reference_tolerance reference_passed reference_note git_hash versions config command verdict "
    "verdict_reasons baseline_run_id decoder decoder_settings backend"
).split()
WEIGHTS = "sha256:6410523b4be9c063ee346c7a2a45deac0cb34691d143174d1220a5e8414d099e"  # demo-model's safetensors
# what every history row of these runs holds, the nightly's verdict included
RECORDED = {
    "status": "complete",
    "model": "demo",
    "checkpoint": "./model",
    "revision": None,
    "weights": WEIGHTS,
    "data": "demo",
    "partition": "test",
    "split": "other",
    "normalizer": "none",
    "n_utterances": 6,
    "n_failed": 0,
    "ref_words": 41,
    "substitutions": 9,
    "deletions": 2,
    "insertions": 0,
    "errors": 11,
    "ref_chars": 236,
    "char_errors": 16,
    "wer": WER,
    "cer": CER,
    "audio_s": 10.0453,
    "batch_size": 1,
    "precision": "fp32",
    "reference_wer": None,
    "reference_tolerance": None,
    "reference_passed": None,
    "reference_note": "skipped: limit=6 scores a subset, the reference is for the whole split",
    "verdict": "pass",
    "verdict_reasons": "[]",
    "decoder": "greedy",
    "decoder_settings": '{"name": "greedy"}',
    "backend": "torch",
}


def history(path: Path) -> tuple[int, list[str], list[dict]]:
    """(user_version, the runs table's columns, its rows oldest first), read with the standard library."""
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        version = db.execute("PRAGMA user_version").fetchone()[0]
        columns = [r[1] for r in db.execute("PRAGMA table_info(runs)")]
        found = [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY rowid")]
    db.close()
    return version, columns, found


def run_id(summary: Path) -> str:
    return hashlib.sha256(summary.read_bytes()).hexdigest()[:16]


def test_record(resumed, tmp_path):
    # the committed history: the complete run, recorded by the nightly that made it (read from a copy)
    layout(tmp_path, "history.sqlite")
    version, columns, before = history(tmp_path / "history.sqlite")
    assert (version, columns, len(before)) == (2, HISTORY_COLUMNS, 1)
    committed = before[0]
    assert {k: committed[k] for k in RECORDED} == RECORDED
    assert committed["run_id"] == run_id(LEGACY / "complete/summary.json")
    assert committed["baseline_run_id"] is None
    assert committed["run_dir"].endswith("/complete")

    # tonight: a copy of the complete run (the same summary: nothing added) and the resumed one (judged
    # against the complete run as the previous good one)
    layout(tmp_path / "runs", "complete")
    shutil.copytree(resumed[0], tmp_path / "runs/resumed")
    done = ok(cli(tmp_path, "nightly", "runs=./runs", "history=./history.sqlite", "out=./report"))
    # the baseline's run_dir is make_legacy.sh's work folder, long gone: its transcripts cannot be compared; the
    # harness's commit differs from make_legacy.sh's: a fingerprint of the series, an alarm line
    lines = done.stdout.splitlines()
    assert lines[:2] == [
        "PASS demo on demo test-other (subset of 6): WER 26.83 % (no baseline)",
        "PASS demo on demo test-other (subset of 6): WER 26.83 % (+0.00 points, vs noise: n/a), transcripts not "
        "compared",
    ]
    assert lines[2].startswith("  alarm: harness commit changed: ")
    assert lines[-1] == "nightly PASS: report/nightly.md, report/trend.png"
    version, columns, after = history(tmp_path / "history.sqlite")
    # schema 3 (issue #27): each row's series and measurement record, added to the committed row in place;
    # schema 4 (issue #30): the interval columns, NULL for it (its summary has none)
    intervals = ["wer_ci95_low", "wer_ci95_high", "cer_ci95_low", "cer_ci95_high", "interval"]
    assert (version, columns, len(after)) == (4, [*HISTORY_COLUMNS, "series", "measurement", *intervals], 2)
    assert [after[0][c] for c in intervals] == [None] * 5
    assert {k: after[0][k] for k in committed} == committed  # recorded again: the row is kept (its run_dir too)
    assert after[0]["series"] == after[1]["series"] == SERIES_ID  # its ids, read when its copy was recorded
    assert json.loads(after[0]["measurement"])["derived"] and not json.loads(after[1]["measurement"])["derived"]
    new = after[1]
    assert {k: new[k] for k in RECORDED} == RECORDED
    assert new["run_id"] == run_id(tmp_path / "runs/resumed/summary.json")
    assert new["baseline_run_id"] == committed["run_id"]
    assert new["run_dir"] == os.path.realpath(tmp_path / "runs/resumed")
    assert new["git_hash"] == load(tmp_path / "runs/resumed/summary.json")["git_hash"]

    report = load(tmp_path / "report/nightly.json")
    assert (report["verdict"], report["exit_status"], report["history_runs"], report["problems"]) == ("pass", 0, 2, [])
    assert [(r["verdict"], r["wer_delta"], r["n_changed"]) for r in report["runs"]] == [
        ("pass", None, None),
        ("pass", 0.0, None),
    ]
    assert report["runs"][0]["notes"] == ["no baseline: this is the first good run of this series"]
    assert report["runs"][1]["baseline"]["run_id"] == committed["run_id"]
    notes = [n.split(":")[0] for n in report["runs"][1]["notes"]]
    assert notes == ["transcripts not compared with the baseline's"], notes
    assert [a.split(":")[0] for a in report["runs"][1]["alarms"]] == ["harness commit changed"]
    assert files(tmp_path / "report") == {"nightly.json", "nightly.md", "trend.png"}


# ----------------------------------------------------------------------------------------------------------
# Every reader takes the committed files as they are; an interrupted run is refused with one line


def test_readers_accept_the_committed_runs(tmp_path):
    layout(tmp_path, "complete", "rescore", "interrupted")
    for run, normalizer in (("complete", "none"), ("rescore", "basic")):
        for name in (*TEXT_FILES, "wer_by_length.png"):
            (tmp_path / run / name).unlink()  # written again below
        done = ok(cli(tmp_path, "analysis", f"run=./{run}"))
        assert done.stdout.startswith(f"WER 26.83 % ({normalizer}); wrote analysis.md, analysis.json")
        for name in TEXT_FILES:
            assert (tmp_path / run / name).read_bytes() == (LEGACY / run / name).read_bytes(), f"{run}/{name}"
        assert (tmp_path / run / "wer_by_length.png").stat().st_size > 0

    for tool, args, message in (
        ("analysis", ["run=./interrupted"], "run='interrupted': no transcripts.jsonl in that folder"),
        ("score", ["run=./interrupted", "out=./x"], "run='interrupted': no transcripts.jsonl in that folder"),
        ("export", ["run=./interrupted", "out=./y"], "interrupted/summary.json: the run is not complete (status "),
    ):
        done = ok(cli(tmp_path, tool, *args), 1)
        assert f"w2v2bench.{tool}: error: {message}" in done.stderr
    assert files(tmp_path / "interrupted") == files(LEGACY / "interrupted")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
