"""Results other tools read as they are: each export checked with the real reader where it installs (kaldialign,
the jiwer CLI, PyYAML for model-index), and the leaderboard's file against the name and fields its scorer reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kaldialign
import pytest
import yaml

from tests.helpers.fake_runs import row, write_run
from tests.helpers.harness import evaluate, local, read_run
from w2v2bench.export.base import ExportError
from w2v2bench.export.leaderboard import leaderboard_name
from w2v2bench.metrics.normalizers import normalizer
from w2v2bench.results import remeasured


def export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "w2v2bench.export", *args], capture_output=True, text=True, timeout=120
    )


def rescore(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "w2v2bench.score", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def jiwer_cli(ref: Path, hyp: Path, *flags: str) -> float:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "jiwer"), "-r", str(ref), "-h", str(hyp), *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return float(done.stdout.strip())


def leaderboard_read(folder: Path) -> dict[tuple[str, str], dict]:
    """What the Open ASR Leaderboard's score_results (normalizer/eval_utils.py) takes from the folder it is given,
    written here from what it does (not its code): every `**/*.jsonl` under it, recursively, read as a result file
    (none skipped), model and dataset from the file name (`MODEL_<org>-<name>_DATASET_<id>`, the first '-' back to
    '/'), and per row text, pred_text, time and duration (a row without them is its KeyError)."""
    out = {}
    for path in sorted(folder.glob("**/*.jsonl")):
        name = str(path)
        model_part = name[name.find("MODEL_") :]
        model_id = model_part[: model_part.find("DATASET_")].removeprefix("MODEL_").rstrip("_")
        org_end = model_id.find("-")
        model_id = model_id[:org_end] + "/" + model_id[org_end + 1 :]
        dataset_id = model_part[model_part.find("DATASET_") :].removeprefix("DATASET_").removesuffix(".jsonl")
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        out[(model_id, dataset_id)] = {
            "refs": [r["text"] for r in rows],
            "preds": [r["pred_text"] for r in rows],
            "time": [r["time"] for r in rows],
            "duration": [r["duration"] for r in rows],
            "audio_filepath": [r["audio_filepath"] for r in rows],
        }
    return out


def test_a_run_exports_files_each_tool_scores_as_the_run_did(tmp_path):
    run = tmp_path / "run"
    assert evaluate("model=demo", "data=demo", "split=other", f"output_dir={run}") == 0
    rows, summary = read_run(run)
    assert all(r["audio_filepath"] and Path(r["audio_filepath"]).is_file() for r in rows)
    assert all(r["duration"] == r["duration_s"] and r["model_s"] > 0 for r in rows)
    assert sum(r["model_s"] for r in rows) <= summary["wall_s"]

    done = export(f"run={run}")
    assert done.returncode == 0, done.stderr
    out = run / "export"
    # the leaderboard's scorer: its file name, its fields
    (((model_id, dataset_id), board),) = leaderboard_read(out).items()
    assert (model_id, dataset_id) == ("local/demo", "local_demo_test.other")
    assert board["audio_filepath"] == [r["audio_filepath"] for r in rows] and all(board["time"])
    assert board["duration"] == [r["duration_s"] for r in rows]
    assert sum(board["duration"]) / sum(board["time"]) > 1  # the RTFx it would report
    # kaldialign (the leaderboard's aligner), without merging: the run's WER exactly
    pairs = [(tuple(r.split()), tuple(p.split())) for r, p in zip(board["refs"], board["preds"], strict=True)]
    assert kaldialign.batch_error_rate(*zip(*pairs, strict=True))["err_rate"] == pytest.approx(
        summary["wer"], abs=1e-12
    )
    # the jiwer CLI: WER and CER exactly
    ref, hyp = out / "demo-test-other.ref.txt", out / "demo-test-other.hyp.txt"
    assert jiwer_cli(ref, hyp) == pytest.approx(summary["wer"], abs=1e-12)
    assert jiwer_cli(ref, hyp, "--cer") == pytest.approx(summary["cer"], abs=1e-12)
    # NeMo's manifest fields; its scorer compares text with pred_text (jiwer here: the same WER)
    nemo = [json.loads(line) for line in (out / "demo-test-other.nemo.json").read_text().splitlines()]
    assert [set(n) for n in nemo] == [{"audio_filepath", "duration", "text", "pred_text"}] * len(rows)
    # model-index for a model card
    index = yaml.safe_load((out / "model-index.yaml").read_text())["model-index"]
    (result,) = index[0]["results"]
    assert index[0]["name"] == "local/demo" and result["task"]["type"] == "automatic-speech-recognition"
    assert result["metrics"][0] == {"type": "wer", "value": round(summary["wer"] * 100, 2), "name": "Test WER"}
    assert result["dataset"]["config"] == "other" and result["dataset"]["split"] == "test"
    record = json.loads((out / "export.json").read_text())
    assert record["runs"][0]["jiwer"] == {"left_out": [], "wer": summary["wer"], "cer": summary["cer"]}
    # sclite's trn files hold the same text
    trn = [line.rsplit(" (", 1)[0] for line in (run / "hyp.trn").read_text().splitlines()]
    assert trn == hyp.read_text().splitlines()

    # score as the leaderboard does: merge_compounds (and a normaliser from the command line)
    merged = rescore(f"run={run}", "merge_compounds=true", "normalizer=whisper")
    assert merged.returncode == 0, merged.stderr
    scored = json.loads((run / "rescore" / "whisper+merge_compounds" / "summary.json").read_text())
    whisper = normalizer("whisper")
    refs = [tuple(whisper(r["text"]).split()) for r in rows]
    preds = [tuple(whisper(r["pred_text"]).split()) for r in rows]
    assert scored["wer"] == pytest.approx(kaldialign.batch_error_rate(refs, preds, merge_compounds=True)["err_rate"])
    assert scored["merge_compounds"] is True and scored["reference"] is None
    # its analysis re-aggregates the merged counts (the alignment alone would count the split words)
    analysis = json.loads((run / "rescore" / "whisper+merge_compounds" / "analysis.json").read_text())
    assert analysis["wer"] == pytest.approx(scored["wer"])
    assert sum(s["errors"] for s in analysis["speakers"]) == sum(scored["word_errors"].values())


def test_failed_utterances_never_break_a_reader_and_are_left_out(tiny_checkpoint, broken_tree, tmp_path):
    run = tmp_path / "run"
    assert evaluate(*local(tiny_checkpoint, run, "batch_size=4"), f"data.root={broken_tree}") == 0
    rows, summary = read_run(run)
    failed = [r for r in rows if r["error"]]
    assert len(failed) == 5 and all(r["pred_text"] == "" for r in failed)  # never null
    done = export(f"run={run}")
    assert done.returncode == 0, done.stderr
    assert "5 failed left out" in done.stdout and "no model-index entry" in done.stdout
    ((_, board),) = leaderboard_read(run / "export").items()
    assert len(board["refs"]) == 2 and not (run / "export" / "model-index.yaml").exists()


def test_lines_the_jiwer_cli_would_skip_are_left_out_and_said(tmp_path):
    rows = [
        row("1-1", "A CAT SAT", "A CAT SAT"),
        row("1-2", "ON  THE MAT", "ON THE  MAT"),  # doubled spaces: one text everywhere
        row("1-3", "NOTHING HEARD", ""),  # the CLI drops an empty line
        row("1-4", "I", "I"),  # and a one-character one
        row("1-5", "BIRD SONG", "BIR D SONG"),
    ]
    run = write_run(tmp_path / "run", rows)
    done = export(f"run={run}", "formats=[jiwer,leaderboard]", "model_id=org/m")
    assert done.returncode == 0, done.stderr
    record = json.loads((run / "export" / "export.json").read_text())
    jiwer_record = record["runs"][0]["jiwer"]
    assert jiwer_record["left_out"] == ["1-3", "1-4"]
    out = run / "export"
    assert jiwer_cli(out / "librispeech-test-clean.ref.txt", out / "librispeech-test-clean.hyp.txt") == pytest.approx(
        jiwer_record["wer"]
    )
    assert "ON THE MAT" in (out / "librispeech-test-clean.ref.txt").read_text()
    assert sorted(p.name for p in out.iterdir()) == [  # 5 utterances: never the leaderboard's LS Clean (#27)
        "MODEL_org-m_DATASET_None_librispeech-subset5_test.clean.jsonl",
        "export.json",
        "librispeech-test-clean.hyp.txt",
        "librispeech-test-clean.ref.txt",
    ]


@pytest.mark.parametrize(
    "source,dataset,model_id,expected",
    [
        ("hub", "openslr/librispeech_asr", "facebook/wav2vec2-base-960h",
         "MODEL_facebook-wav2vec2-base-960h_DATASET_openslr-librispeech_asr_librispeech_test.clean.jsonl"),
        ("local", None, "local/base", "MODEL_local-base_DATASET_local_librispeech_test.clean.jsonl"),
        ("hub", "../../etc/x y", "a/b c", "MODEL_a-b_c_DATASET_..-..-etc-x_y_librispeech_test.clean.jsonl"),
    ],
)  # fmt: skip
def test_the_leaderboard_file_name(source, dataset, model_id, expected):
    summary = {
        "config": {"model": {"name": "m"}, "data": {"source": source, "dataset": dataset, "name": "librispeech",
                   "partition": "test"}, "split": "clean"}
    }  # fmt: skip
    assert leaderboard_name(model_id, summary) == expected
    assert "/" not in expected


@pytest.mark.parametrize(
    "model_id,message",
    [("nameonly", "expected <org>/<name>"), ("org/x_DATASET_y", "holds MODEL_ or DATASET_")],
)
def test_a_model_id_the_leaderboard_would_misread_is_refused(model_id, message):
    summary = {"config": {"model": {}, "data": {"source": "local", "name": "l", "partition": "test"}, "split": "c"}}
    with pytest.raises(ExportError, match=message):
        leaderboard_name(model_id, summary)


def test_export_errors_are_one_line(tmp_path):
    good = write_run(tmp_path / "good", [row("1-1", "A B", "A B")])
    other = write_run(tmp_path / "other", [row("1-1", "A B", "A B")], name="other")
    (tmp_path / "junk").mkdir()
    for args, message in (
        ([f"run={tmp_path / 'junk'}"], "summary.json"),
        ([f"run={good}", "formats=[csv]"], "formats=['csv']: expected a non-empty list"),
        ([f"run=[{good},{other}]"], "different models"),
        ([f"run=[{good},{good}]"], "would both write"),
    ):
        done = export(*args)
        errors = [line for line in done.stderr.splitlines() if line.startswith("w2v2bench.export: error:")]
        assert done.returncode == 1 and len(errors) == 1 and message in errors[0], (args, done.stderr)


# ---- normalisers given as module:function --------------------------------------------------------------


@pytest.fixture
def modules(tmp_path) -> Path:
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / "mynorm.py").write_text(
        "def shout(text):\n    return text.upper()\n"
        "def number(text):\n    return 42\n"
        "def boom(text):\n    raise RuntimeError('no')\n"
        "NOT_A_FUNCTION = 3\n"
    )
    (folder / "exits.py").write_text("import sys\nsys.exit(3)\n")
    marker = tmp_path / "executed"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef f(text):\n    return text\n")
    return folder


@pytest.mark.slow  # a whole harness process: make test-slow
def test_a_normaliser_from_the_command_line_scores_and_one_from_a_file_never_runs(modules, tmp_path):
    run = write_run(tmp_path / "run", [row("1-1", "the cat", "THE CAT"), row("1-2", "a dog", "A DOG")])
    allow = tmp_path / "normalizers.txt"  # the user's own allow-list (#27: naming one is not enough to run it)
    allow.write_text(
        "mynorm:shout\nmynorm:missing\nmynorm:NOT_A_FUNCTION\nmynorm:number\nmynorm:boom\nexits:f\nnosuch:f\n"
    )
    env = {"PYTHONPATH": str(modules), "W2V2BENCH_NORMALIZERS": str(allow)}
    done = rescore(f"run={run}", "normalizer=mynorm:shout", env=env)
    assert done.returncode == 0, done.stderr
    scored = json.loads((run / "rescore" / "mynorm-shout" / "summary.json").read_text())
    assert scored["wer"] == 0 and scored["normalizer"] == "mynorm:shout"
    for spec, message in (
        ("nosuch:f", "cannot import nosuch"),
        ("mynorm:missing", "mynorm has no attribute missing"),
        ("mynorm:NOT_A_FUNCTION", "is a int, not a function"),
        ("mynorm:number", "returned a int"),
        ("mynorm:boom", "1-1: normalizer='mynorm:boom' failed on 'the cat': RuntimeError: no"),
        ("exits:f", "cannot import exits (SystemExit: 3)"),
        ("1mod:f", "expected one of"),
    ):
        done = rescore(f"run={run}", f"normalizer={spec}", env=env)
        errors = [line for line in done.stderr.splitlines() if line.startswith("w2v2bench.score: error:")]
        assert done.returncode == 1 and len(errors) == 1 and message in errors[0], (spec, done.stderr)

    # a results file that names code: read by export, compare, the analysis and score itself, never imported
    hostile = tmp_path / "hostile"
    shutil.copytree(run, hostile, ignore=shutil.ignore_patterns("rescore"))
    summary = json.loads((hostile / "summary.json").read_text())
    summary = {**summary, "normalizer": "evil:f"}
    (hostile / "summary.json").write_text(json.dumps({**summary, "measurement": remeasured(summary)}))
    for command in (
        ["w2v2bench.export", f"run={hostile}"],
        ["w2v2bench.compare", f"a={run}", f"b={hostile}"],
        ["w2v2bench.analysis", f"run={hostile}"],
        ["w2v2bench.score", f"run={hostile}"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", *command],
            capture_output=True,
            text=True,
            timeout=120,
            env={**__import__("os").environ, **env},
        )
        assert done.returncode != 0 and "is code (module:function)" in done.stderr, (command, done.stderr)
    assert not (tmp_path / "executed").exists()


def _edited(run: Path, folder: Path, **changes) -> Path:
    shutil.copytree(run, folder)
    summary = json.loads((folder / "summary.json").read_text())
    for dotted, value in changes.items():
        target = summary
        *path, last = dotted.split("__")
        for key in path:
            target = target[key]
        target[last] = value
    summary["measurement"] = remeasured(summary)  # as a careful forger would: the record matches the edit
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


NUL_NAME = "de\u0000mo"


def test_hostile_run_folders_are_refused_or_kept_inside_out(tmp_path):
    run = write_run(tmp_path / "run", [row("1-1", "A CAT", "A CAT"), row("1-2", "THE DOG", "THE DOG RAN")])
    victim = tmp_path / "victim"
    traversal = _edited(run, tmp_path / "traversal", config__data__name=str(victim / "PWNED"), config__split="../x")
    done = export(f"run={traversal}", f"out={tmp_path / 'out'}", "model_id=org/m")
    assert done.returncode == 0, done.stderr
    assert not victim.exists() and all(p.parent == tmp_path / "out" for p in (tmp_path / "out").rglob("*"))
    link = _edited(run, tmp_path / "link")
    (link / "export").symlink_to(victim, target_is_directory=True)
    victim.mkdir()
    cases = {
        "the default out is a link": ([f"run={link}"], "is a link or not a folder"),
        "a WER its rows do not give": (
            [f"run={_edited(run, tmp_path / 'wer', wer=0.0001)}"], "field wer: 0.0001, but its own counts give 1/4"),
        "no WER at all": (
            [f"run={_edited(run, tmp_path / 'null', wer=None)}"], "field wer: None, but its own counts give 1/4"),
        "a re-score's flag on a run": (
            [f"run={_edited(run, tmp_path / 'merge', merge_compounds=True)}"], "merge_compounds is a re-score's"),
        "DATASET_ once cleaned": ([f"run={run}", "model_id='org/DATASET x'"], "holds MODEL_ or DATASET_"),
    }  # fmt: skip
    for name, (args, message) in cases.items():
        done = export(*args)
        errors = [line for line in done.stderr.splitlines() if line.startswith("w2v2bench.export: error:")]
        assert done.returncode == 1 and len(errors) == 1 and message in errors[0], (name, done.stderr)
    assert list(victim.iterdir()) == []
    nul = _edited(run, tmp_path / "nul", config__data__name=NUL_NAME)  # cleaned like any other character
    assert (
        export(f"run={nul}", "model_id=org/m").returncode == 0
        and (nul / "export" / "de_mo-test-clean.ref.txt").exists()
    )


def test_an_older_failed_row_and_a_new_one_are_the_same_failure(tmp_path):
    from w2v2bench.compare.runs import compare_runs, load_run

    old = write_run(tmp_path / "old", [row("1-1", "A B", "A B"), row("1-2", "C D", None, error="cannot decode")])
    new = write_run(tmp_path / "new", [row("1-1", "A B", "A B"), row("1-2", "C D", "", error="cannot decode")])
    assert compare_runs(load_run(old), load_run(new), bootstrap_samples=0).identical


def test_a_merge_compounds_re_score_with_tampered_counts_is_refused_by_the_analysis(tmp_path):
    run = write_run(tmp_path / "run", [row("1-1", "THE BIRD SANG", "THE BIR D SANG")])
    done = rescore(f"run={run}", "merge_compounds=true")
    assert done.returncode == 0, done.stderr
    out = run / "rescore" / "none+merge_compounds"
    rows = [json.loads(line) for line in (out / "transcripts.jsonl").read_text().splitlines()]
    assert [r["substitutions"] + r["insertions"] + r["deletions"] for r in rows] == [0]
    rows[0]["ref_words"] = 99
    (out / "transcripts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = subprocess.run(
        [sys.executable, "-m", "w2v2bench.analysis", f"run={out}"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "are not its merge_compounds counts" in done.stderr, done.stderr


@pytest.mark.parametrize(
    "spec",
    ["os:system", "sys:exit", "builtins:exit", "subprocess:run", "posixpath:os.system", "tempfile:_os.system",
     "timeit:timeit", "pdb:run", "w2v2bench.files:os.system", "sysmod:system"],
)  # fmt: skip
def test_a_normaliser_that_could_run_its_text_is_refused(spec, tmp_path):
    # found by attacking it: a deny-list of modules was walked around (posixpath:os.system ran each reference text
    # as a shell command, timeit:timeit as Python); now nothing of the standard library, reached in any way
    marker = tmp_path / "PWNED"
    (tmp_path / "sysmod.py").write_text("from os import system\n")
    (tmp_path / "normalizers.txt").write_text(f"{spec}\n")  # even on the allow-list: the second guard holds
    run = write_run(tmp_path / "run", [row("1-1", f"touch {marker}", "A")])
    env = {"PYTHONPATH": str(tmp_path), "W2V2BENCH_NORMALIZERS": str(tmp_path / "normalizers.txt")}
    done = rescore(f"run={run}", f"normalizer={spec}", env=env)
    errors = [line for line in done.stderr.splitlines() if line.startswith("w2v2bench.score: error:")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr
    assert "standard library" in errors[0] or "is a module" in errors[0], errors[0]
    assert not marker.exists()


def test_export_names_that_would_not_fit_or_look_like_options(tmp_path):
    run = write_run(tmp_path / "run", [row("1-1", "A CAT", "A CAT")])
    long = _edited(run, tmp_path / "long", config__data__name="a" * 300)
    for args, message in (
        ([f"run=[{run},{long}]", f"out={tmp_path / 'multi'}"], "over 200: shorten the run's names"),
        ([f"run={run}", "out=''"], "out='': give a folder"),
    ):
        done = export(*args)
        errors = [line for line in done.stderr.splitlines() if line.startswith("w2v2bench.export: error:")]
        assert done.returncode == 1 and len(errors) == 1 and message in errors[0], (args, done.stderr)
    assert not (tmp_path / "multi").exists()  # nothing half-written
    dash = _edited(run, tmp_path / "dash", config__data__name="-r")
    assert export(f"run={dash}", "model_id=org/m", "formats=[jiwer]").returncode == 0
    assert sorted(p.name for p in (dash / "export").iterdir()) == [
        "_-r-test-clean.hyp.txt",
        "_-r-test-clean.ref.txt",
        "export.json",
    ]


def test_a_summary_whose_rates_are_not_its_own_counts_is_refused_by_the_table(tmp_path):
    run = write_run(tmp_path / "root" / "run", [row("1-1", "A CAT SAT", "A CAT")])
    _edited(run, tmp_path / "root" / "tampered", wer=0.01)
    done = subprocess.run(
        [sys.executable, "-m", "w2v2bench.table", f"root={tmp_path / 'root'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "but its own counts give 1/3" in done.stdout + done.stderr, (
        done.stdout + done.stderr
    )
    assert "1.00" not in (tmp_path / "root" / "table.md").read_text()


def test_lhotse_reads_the_manifests_and_a_fifo_is_left_out(tmp_path):
    lhotse = pytest.importorskip("lhotse")
    run = tmp_path / "run"
    assert evaluate("model=demo", "data=demo", "split=clean", "limit=6", f"output_dir={run}") == 0
    rows, _ = read_run(run)
    # a hostile transcripts.jsonl could name a FIFO (a reader would wait on it forever): left out, and said
    fifo = tmp_path / "fifo.flac"
    os.mkfifo(fifo)
    rows[0]["audio_filepath"] = str(fifo)
    (run / "transcripts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = export(f"run={run}", "formats=[lhotse]")
    assert done.returncode == 0, done.stderr
    out = run / "export"
    recordings = lhotse.load_manifest(out / "demo-test-clean.recordings.json")
    supervisions = lhotse.load_manifest(out / "demo-test-clean.supervisions.json")
    lhotse.validate_recordings_and_supervisions(recordings, supervisions)
    assert [s.id for s in supervisions] == [r["id"] for r in rows[1:]]
    assert [s.custom["pred_text"] for s in supervisions] == [r["pred_text"] for r in rows[1:]]
    assert [s.speaker for s in supervisions] == [r["speaker"] for r in rows[1:]]  # kept (issue #28)
    assert recordings[rows[1]["id"]].load_audio().shape[1] == recordings[rows[1]["id"]].num_samples
    assert json.loads((out / "export.json").read_text())["runs"][0]["lhotse_left_out"] == [rows[0]["id"]]
