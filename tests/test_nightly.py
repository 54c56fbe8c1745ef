import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import LIBRISPEECH
from tests.helpers.fake_runs import UTTERANCES, edit_summary, make_run
from w2v2bench import history
from w2v2bench.nightly import judge, nightly

NIGHT = "2026-01-0{}T03:00:00+00:00".format
WORSE = {UTTERANCES[0][0]: "HE HOPED THEIR WOOD BE STEW FOR DINNER", UTTERANCES[2][0]: "AFTER NIGHTFALL"}


def night(tmp_path, n, **kw):
    """Night n: the demo model on both splits (kw changes the clean run), then the nightly over them."""
    runs = tmp_path / f"night{n}"
    make_run(runs / "clean", finished=NIGHT(n), **kw)
    make_run(runs / "other", split="other", finished=NIGHT(n))
    return nightly(runs, tmp_path / "history.sqlite")


def base_row(**kw):
    row = {
        "wer": 0.10,
        "cer": 0.05,
        "rtfx": 100.0,
        "n_failed": 0,
        "n_utterances": 6,
        "reference_passed": None,
        "reference_wer": None,
        "reference_tolerance": None,
        "run_dir": "/nowhere",
    }
    return {**row, **kw}


@pytest.mark.parametrize(
    "new_wer,threshold,verdict",
    [
        (0.10, 0.001, "pass"),
        (0.1009, 0.001, "pass"),
        (0.1010, 0.001, "pass"),
        (0.1011, 0.001, "fail"),
        (0.05, 0.0, "pass"),
        (0.1001, 0.0, "fail"),
    ],
)
def test_wer_threshold(new_wer, threshold, verdict):
    assert judge(base_row(wer=new_wer), base_row(), "previous good run", threshold).verdict == verdict


def test_two_good_nights_make_two_history_entries_a_report_and_a_trend(tmp_path):
    for n in (1, 2):
        report = night(tmp_path, n)
        assert report.exit_status == 0, report.to_json()
    rows = history.rows(tmp_path / "history.sqlite")
    assert len(rows) == 4 and [r["verdict"] for r in rows] == ["pass"] * 4
    second = json.loads((tmp_path / "night2" / "nightly.json").read_text())
    assert second["verdict"] == "pass" and second["history_runs"] == 4
    clean = second["runs"][0]
    assert clean["key"] == "demo on librispeech test-clean (subset of 6)" and clean["wer_delta"] == 0.0
    assert clean["baseline"]["source"] == "previous good run" and clean["baseline"]["finished"] == NIGHT(1)
    assert clean["n_changed"] == 0 and clean["utterances"] == {"common": 6, "only_new": 0, "only_baseline": 0}
    md = (tmp_path / "night2" / "nightly.md").read_text()
    assert md.startswith("# Nightly") and ": PASS" in md.splitlines()[0]
    assert "![WER and RTFx over time](trend.png)" in md
    assert (tmp_path / "night2" / "trend.png").stat().st_size > 10_000
    assert (tmp_path / "night2" / "clean" / "analysis.md").is_file()  # written for runs that lack one
    assert "first good run" in (tmp_path / "night1" / "nightly.md").read_text()


def test_a_worse_run_fails_the_night_and_lists_the_changed_utterances(tmp_path):
    night(tmp_path, 1)
    report = night(tmp_path, 2, hyps=WORSE, rtfx=80.0)
    assert report.exit_status == 1
    clean = report.to_json()["runs"][0]
    assert clean["verdict"] == "fail" and "WER rose" in clean["reasons"][0]
    assert clean["rtfx_delta"] == -20.0
    assert [c["id"] for c in clean["changed"]] == [UTTERANCES[0][0], UTTERANCES[2][0]]
    assert clean["changed"][0]["errors_before"] == 0 and clean["changed"][0]["errors_after"] == 2
    md = (tmp_path / "night2" / "nightly.md").read_text()
    assert "### Changed transcripts: 2 of 6 utterances" in md
    assert "OLD: HE HOPED THERE WOULD BE STEW FOR DINNER\nNEW: HE HOPED THEIR  WOOD BE STEW FOR DINNER" in md
    assert report.to_json()["runs"][1]["verdict"] == "pass"  # the other split did not change
    # the failed run is no baseline: the next night is compared with night 1 again
    report = night(tmp_path, 3)
    assert report.exit_status == 0 and report.judgements[0].baseline["finished"] == NIGHT(1)


def test_a_pinned_baseline_replaces_the_previous_good_run(tmp_path):
    pinned = make_run(tmp_path / "pinned", hyps=WORSE, finished=NIGHT(0))
    night(tmp_path, 1)
    runs = tmp_path / "night2"
    make_run(runs / "clean", finished=NIGHT(2), hyps=WORSE)
    report = nightly(runs, tmp_path / "history.sqlite", baselines=[pinned])
    assert report.exit_status == 0
    assert report.judgements[0].baseline_source == "pinned" and report.judgements[0].delta("wer") == 0.0


def test_a_smoke_run_or_a_bf16_run_has_its_own_history_never_the_full_runs(tmp_path):
    # issue #27: a 5-utterance smoke run with a lower WER, or a bf16 run, is not judged against the full fp32 run
    # (nor does it become the full run's next baseline)
    night(tmp_path, 1)
    runs = tmp_path / "night2"
    make_run(runs / "smoke", UTTERANCES[:5], finished=NIGHT(2))
    edit_summary(make_run(runs / "bf16", finished=NIGHT(2)), config={**_config(runs / "bf16"), "precision": "bf16"})
    report = nightly(runs, tmp_path / "history.sqlite")
    assert [j.baseline for j in report.judgements] == [None, None] and report.exit_status == 0
    keys = sorted(str(history.SplitKey(j.run)) for j in report.judgements)
    assert keys == [
        "demo on librispeech test-clean (subset of 5)",
        "demo on librispeech test-clean (subset of 6, precision bf16)",
    ]
    assert all("first good run of this series" in j.notes[0] for j in report.judgements)
    third = night(tmp_path, 3)  # the full fp32 run's baseline is still night 1's
    assert third.judgements[0].baseline["finished"] == NIGHT(1)


def _config(run) -> dict:
    return json.loads((run / "summary.json").read_text())["config"]


def test_a_pinned_baseline_of_another_series_is_refused_in_one_line(tmp_path):
    pinned = make_run(tmp_path / "pinned", UTTERANCES[:5], finished=NIGHT(0))  # a smoke run
    runs = tmp_path / "night1"
    make_run(runs / "clean", finished=NIGHT(1))
    done = subprocess.run(
        [sys.executable, "-m", "w2v2bench.nightly", f"runs={runs}", f"history={tmp_path / 'h.sqlite'}",
         f"baseline={pinned}"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert (
        "measured demo on librispeech test-clean (subset of 5), tonight's run measures demo on librispeech "
        "test-clean (subset of 6): a baseline must be of the same series" in done.stderr
    )
    assert not (tmp_path / "h.sqlite").exists()  # nothing recorded


@pytest.mark.parametrize(
    "baseline,message",
    [
        ("another model", "no run tonight measures it: a baseline must be of the same series"),
        ("failed", "the run is not complete (status 'failed')"),
    ],
)
def test_a_pinned_baseline_that_cannot_be_one_is_refused_before_anything_is_recorded(tmp_path, baseline, message):
    pinned = make_run(tmp_path / "pinned", model="other", finished=NIGHT(0))
    if baseline == "failed":
        (pinned / "summary.json").write_text(json.dumps({**json.loads((pinned / "summary.json").read_text()),
                                                         "status": "failed", "model": {}}))  # fmt: skip
    runs = tmp_path / "night1"
    make_run(runs / "clean", finished=NIGHT(1))
    with pytest.raises(ValueError, match=re.escape(message)):
        nightly(runs, tmp_path / "h.sqlite", baselines=[pinned])
    assert not (tmp_path / "h.sqlite").exists()


def test_what_a_run_was_measured_with_that_changed_is_noted(tmp_path):
    night(tmp_path, 1)
    runs = tmp_path / "night2"
    make_run(runs / "clean", finished=NIGHT(2))
    summary = json.loads((runs / "clean" / "summary.json").read_text())
    summary["measurement"]["fingerprints"]["versions"]["torch"] = "2.14"
    summary["measurement"]["fingerprints"]["data_revision"] = "c" * 40
    (runs / "clean" / "summary.json").write_text(json.dumps(summary))
    (judgement,) = nightly(runs, tmp_path / "history.sqlite").judgements
    assert judgement.baseline is not None and judgement.verdict == "pass"
    # one named line each (issue #30, item 3); unknown before is not a change; no transcript changed: said so
    assert judgement.alarms == [
        "library versions changed: torch 2.13 -> 2.14",
        "no transcript changed: the change above left all 6 as they were",
    ]


@pytest.mark.parametrize(
    "kind,message,status",
    [
        ("reference", "reference check failed", 1),  # a regression
        ("failed utterance", "1 of 6 utterances could not be transcribed", 6),  # the night is not whole
        ("killed", "incomplete run", 6),
        ("harness", "the benchmark exited with status 1", 6),
        ("nothing", "no completed runs", 6),
    ],
)
def test_a_night_fails_when_a_run_fails(tmp_path, kind, message, status):
    runs = tmp_path / "night"
    runs.mkdir()
    harness = 1 if kind == "harness" else 0
    if kind == "reference":
        make_run(runs / "a", reference={"wer": 0.01, "tolerance": 0.001, "source": "card", "passed": False})
    elif kind == "failed utterance":
        make_run(runs / "a", failed={UTTERANCES[1][0]: "unreadable"})
    elif kind in ("killed", "harness"):
        make_run(runs / "a")
        make_run(runs / "b", split="other", status="running")
    report = nightly(runs, tmp_path / "history.sqlite", harness_status=harness)
    assert report.exit_status == status and report.to_json()["exit_status"] == status
    assert message in (runs / "nightly.md").read_text()
    # a regression beside a night that is not whole: the regression's status
    if kind == "failed utterance":
        make_run(runs / "b", split="other", reference={"wer": 0.01, "tolerance": 0.001, "source": "c", "passed": False})
        assert nightly(runs, tmp_path / "h2.sqlite").exit_status == 1


def test_recording_the_same_night_twice_gives_the_same_answer(tmp_path):
    night(tmp_path, 1)
    night(tmp_path, 2, hyps=WORSE)
    again = nightly(tmp_path / "night2", tmp_path / "history.sqlite")
    assert again.exit_status == 1 and len(history.rows(tmp_path / "history.sqlite")) == 4


# ----------------------------------------------------------------------------------------------------------
# End to end: the real harness, then the nightly command


def bench(*overrides) -> int:
    """The harness in this process (`evaluate`, what `python -m w2v2bench` calls): no second torch import."""
    from hydra import compose, initialize_config_module

    from w2v2bench.config import register
    from w2v2bench.harness import evaluate

    register()
    with initialize_config_module(config_module="w2v2bench.conf", version_base=None):
        return evaluate(compose(config_name="config", overrides=list(overrides)))


def nightly_cli(*args):
    return subprocess.run([sys.executable, "-m", "w2v2bench.nightly", *args], capture_output=True, text=True)


@pytest.fixture
def worse_checkpoint(tiny_checkpoint, tmp_path):
    """The tiny checkpoint pushed to emit `E E E ...`: many insertions, a far higher WER."""
    import torch
    from transformers import AutoTokenizer, Wav2Vec2ForCTC

    out = tmp_path / "worse"
    shutil.copytree(tiny_checkpoint, out)
    model = Wav2Vec2ForCTC.from_pretrained(tiny_checkpoint)
    vocab = AutoTokenizer.from_pretrained(tiny_checkpoint).get_vocab()
    with torch.no_grad():
        model.lm_head.bias[[vocab["E"], vocab["|"]]] += 20.0
    model.save_pretrained(out)
    return out


def test_nightly_end_to_end_with_the_harness(tiny_checkpoint, worse_checkpoint, tmp_path):
    db = tmp_path / "results" / "history.sqlite"
    common = ["data=local", f"data.root={LIBRISPEECH}", "model.name=tiny", "split=clean", "limit=2"]
    for n, checkpoint in ((1, tiny_checkpoint), (2, tiny_checkpoint), (3, worse_checkpoint)):
        runs = tmp_path / f"night{n}"
        assert bench(*common, f"model.checkpoint={checkpoint}", f"output_dir={runs / 'tiny-clean'}") == 0
        if n < 3:
            assert nightly(runs, db).exit_status == 0
            assert len(history.rows(db)) == n and (runs / "nightly.md").is_file() and (runs / "trend.png").is_file()
    done = nightly_cli(f"runs={runs}", f"history={db}", "max_wer_increase=0.01")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL tiny on librispeech test-clean" in done.stdout and "WER rose" in done.stdout
    report = json.loads((runs / "nightly.json").read_text())
    assert report["runs"][0]["n_changed"] == 2 and report["runs"][0]["changed"][0]["after"].startswith("E E")
    assert "### Changed transcripts: 2 of 2 utterances" in (runs / "nightly.md").read_text()
    assert len(history.rows(db)) == 3 and history.rows(db)[0]["weights"] != history.rows(db)[2]["weights"]


def test_cli_arguments(tmp_path):
    assert "max_wer_increase" in nightly_cli("--help").stdout
    assert nightly_cli().returncode == 2
    with pytest.raises(FileNotFoundError, match="no such folder"):
        nightly(tmp_path / "nope", tmp_path / "history.sqlite")
    with pytest.raises(ValueError, match="max_wer_increase=-1"):
        nightly(tmp_path, tmp_path / "history.sqlite", max_wer_increase=-1)


def nights_with_data_commits(tmp_path, commits) -> str:
    """One clean run a night, its summary naming the dataset commit it read; the last night's nightly.md."""
    import json

    for n, commit in enumerate(commits, start=1):
        runs = tmp_path / f"night{n}"
        summary_path = make_run(runs / "clean", finished=NIGHT(n)) / "summary.json"
        summary = json.loads(summary_path.read_text())
        summary["config"]["data"]["commit"] = commit
        summary_path.write_text(json.dumps(summary))
        nightly(runs, tmp_path / "history.sqlite")
    return (tmp_path / f"night{len(commits)}" / "nightly.md").read_text()


def test_the_report_says_when_the_data_changed(tmp_path):
    report = nights_with_data_commits(tmp_path, ["a" * 40, "b" * 40])
    assert f"at commit {'b' * 40}; it was {'a' * 40} for the baseline: the data changed" in report


def test_an_unknown_data_commit_is_not_a_change(tmp_path):
    assert "the data changed" not in nights_with_data_commits(tmp_path, ["a" * 40, None])


def test_a_checkpoint_with_noise_in_its_weights_is_caught(tmp_path):
    """Issue #30's case: the same model name, 2 % noise added to the weights, the WER within the tolerance. The
    nightly names the changed weights and counts the changed transcripts; on_transcript_change=fail makes it 1."""
    import torch
    from transformers import Wav2Vec2ForCTC

    from w2v2bench.config import asset_path

    model_dir = tmp_path / "model"
    shutil.copytree(asset_path("demo-model"), model_dir)
    db, common = tmp_path / "history.sqlite", ["model=demo", "model.name=nightly-demo", "data=demo", "split=other",
                                              "limit=30", "device=cpu", "progress=false"]  # fmt: skip
    assert bench(*common, f"model.checkpoint={model_dir}", f"output_dir={tmp_path / 'night1' / 'run'}") == 0
    assert nightly(tmp_path / "night1", db).exit_status == 0
    model = Wav2Vec2ForCTC.from_pretrained(model_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * p.abs() * 0.02)
    model.save_pretrained(model_dir)
    assert bench(*common, f"model.checkpoint={model_dir}", f"output_dir={tmp_path / 'night2' / 'run'}") == 0
    runs = tmp_path / "night2"
    warn = nightly_cli(f"runs={runs}", f"history={db}", "max_wer_increase=0.5")
    assert warn.returncode == 0, warn.stdout + warn.stderr
    (run,) = json.loads((runs / "nightly.json").read_text())["runs"]
    assert run["n_changed"] > 0 and run["verdict"] == "pass", run["alarms"]
    assert run["alarms"][0].startswith("weights changed: sha256:") and run["alarms"][1].startswith("checkpoint changed")
    assert any(a.startswith(f"{run['n_changed']} transcripts changed (") for a in run["alarms"])
    md = (runs / "nightly.md").read_text()
    assert "- alarm: weights changed: " in md and f"- alarm: {run['n_changed']} transcripts changed" in md
    assert run["significance"]["verdict"] in ("significant", "within noise") and run["wer_ci95"] is not None
    fail = nightly_cli(f"runs={runs}", f"history={db}", "max_wer_increase=0.5", "on_transcript_change=fail")
    assert fail.returncode == 1 and "(on_transcript_change=fail)" in fail.stdout, fail.stdout + fail.stderr
    assert "alarm: weights changed" in fail.stdout


def test_the_trend_plot_has_dates_a_band_and_failed_nights_apart(tmp_path):
    from matplotlib.collections import PathCollection, PolyCollection

    from w2v2bench.history import SplitKey
    from w2v2bench.nightly import plot_trend

    night(tmp_path, 1)
    night(tmp_path, 2, hyps=WORSE)  # fails: WER rose
    night(tmp_path, 3)
    rows = history.rows(tmp_path / "history.sqlite")
    keys = list(dict.fromkeys(SplitKey(r) for r in rows))
    fig = plot_trend(rows, keys, tmp_path / "trend.png")
    ax_wer = fig.axes[0]
    clean = next(line for line in ax_wer.get_lines() if "test-clean" in line.get_label())
    assert [d.day for d in clean.get_xdata()] == [1, 3]  # datetimes; the failed night 2 is not in the line
    failed = [c for c in ax_wer.collections if isinstance(c, PathCollection) and c.get_offsets().shape[0] == 1]
    assert len(failed) == 1  # night 2 as a marker of its own
    assert sum(isinstance(c, PolyCollection) for c in ax_wer.collections) == 2  # a band per series
    assert "%" not in fig.axes[1].xaxis.get_major_formatter().__class__.__name__  # a date formatter, not numbers
    # runs of one day: its date and their times on the axis (not seconds within a minute)
    same_day = [{**r, "finished": f"2026-01-01T0{k}:00:00+00:00"} for k, r in enumerate(rows)]
    fig = plot_trend(same_day, keys, tmp_path / "day.png")
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[1].get_xticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"202[56]-\d\d-\d\d \d\d:\d\d", t) for t in labels), labels


def test_the_wer_by_length_plot_has_error_bars(tmp_path):
    from matplotlib.container import ErrorbarContainer

    from w2v2bench.analysis import analyse, plot_wer_by_length
    from w2v2bench.results import load_rows

    _, ref, hyp, _ = UTTERANCES[0]  # six more of 3 s: a bucket with enough utterances to resample
    more = [(f"1089-134686-01{n:02d}", ref, hyp if n % 2 else "HE HOPED", 3.0) for n in range(6)]
    rows = load_rows(make_run(tmp_path / "run", UTTERANCES + more, hyps=WORSE))
    fig = plot_wer_by_length(analyse(rows, lambda t: t, "none"), tmp_path / "w.png", "demo")
    assert any(isinstance(c, ErrorbarContainer) for c in fig.axes[0].containers)


def test_each_run_is_logged_to_a_local_mlflow_store_once(tmp_path, monkeypatch):
    # issue #30, item 7: a real MLflow tracking store (SQLite); a night recorded twice changes nothing; the runs'
    # files go beside the database, never into the folder the command runs in (MLflow's ./mlruns)
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    night(tmp_path, 1)
    runs = tmp_path / "night2"
    make_run(runs / "clean", finished=NIGHT(2), hyps=WORSE)
    first = nightly_cli(f"runs={runs}", f"history={tmp_path / 'history.sqlite'}", f"mlflow_uri={uri}")
    assert first.returncode == 1 and first.stdout.count("mlflow: ") == 1 and "logged as" in first.stdout, first
    again = nightly(runs, tmp_path / "history.sqlite", mlflow_uri=uri)
    assert again.mlflow[0].startswith("mlflow: ") and "already logged" in again.mlflow[0]
    client = MlflowClient(tracking_uri=uri)
    (logged,) = client.search_runs([client.get_experiment_by_name("w2v2bench").experiment_id])
    row = history.rows(tmp_path / "history.sqlite")[-1]
    assert logged.data.tags["w2v2bench.run_id"] == row["run_id"] and logged.data.tags["w2v2bench.verdict"] == "fail"
    assert logged.data.params["model"] == "demo" and logged.data.params["split"] == "clean"
    metrics = logged.data.metrics
    assert metrics["wer"] == row["wer"] and metrics["wer_ci95_low"] <= row["wer"] <= metrics["wer_ci95_high"]
    assert metrics["wer_delta"] > 0 and metrics["n_changed"] == 2 and 0 < metrics["delta_p_value"] <= 1
    assert logged.info.status == "FAILED"
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"summary.json", "transcripts.jsonl"} <= artifacts
    assert list((tmp_path / "cwd").iterdir()) == []
    assert list((tmp_path / "mlruns").rglob("summary.json"))


@pytest.mark.parametrize(
    "uri, where",
    [
        ("sqlite:///relative/m.db", "{cwd}/relative/mlruns"),
        ("sqlite:////abs/m.db", "/abs/mlruns"),
        ("sqlite+pysqlite:///m.db", "{cwd}/mlruns"),
        ("sqlite:///~/m.db", "{cwd}/~/mlruns"),  # SQLAlchemy does not expand ~: nor do the files
        ("sqlite:///my%20dir/m.db", "{cwd}/my dir/mlruns"),  # read as SQLAlchemy reads the path
        ("file:///abs/store", None),
        ("http://127.0.0.1:5000", None),
        ("postgresql://u@host/db", "refused"),
        ("sqlite://", "refused"),
        ("sqlite:///:memory:", "refused"),
    ],
)
def test_a_new_mlflow_experiments_files_never_land_in_the_current_folder(uri, where, tmp_path, monkeypatch):
    from w2v2bench.nightly.tracking import TrackingError, artifact_location

    monkeypatch.chdir(tmp_path)
    if where == "refused":
        with pytest.raises(TrackingError, match=r"would keep its files in ./mlruns of the current folder"):
            artifact_location(uri)
        return
    found = artifact_location(uri)
    assert found == (None if where is None else Path(where.format(cwd=tmp_path)).as_uri())


def test_mlflow_uri_without_mlflow_is_one_line_before_anything_is_recorded(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name.startswith("mlflow"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    make_run(tmp_path / "night" / "clean")
    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    with pytest.raises(
        ValueError, match=r"mlflow_uri='sqlite:///x.db' needs MLflow: pip install 'w2v2bench\[mlflow\]'"
    ):
        nightly(tmp_path / "night", tmp_path / "h.sqlite", mlflow_uri="sqlite:///x.db")
    assert not (tmp_path / "h.sqlite").exists()


@pytest.mark.slow
def test_make_nightly_ends_with_the_nightlys_own_status(tmp_path):
    # make can only exit 0 or 2: the recipe's last line says what the nightly itself said (issue #30, item 4)
    root = Path(__file__).resolve().parents[1]
    MATRIX = "model=demo data=demo split=clean limit=2 device=cpu progress=false"  # noqa: N806
    venv = tmp_path / "venv"  # the Makefile's own venv step is skipped: this interpreter runs the targets
    venv.mkdir()
    (tmp_path / "pyproject.toml").touch()  # what .installed is made from (the recipe runs in tmp_path)
    (venv / ".installed").touch()

    def make(args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [shutil.which("make"), "-s", "-f", str(root / "Makefile"), "nightly", f"VENV={venv}",
             f"PY={sys.executable}", f"NIGHTLY_MATRIX={MATRIX}", f"NIGHTLY_ARGS={args}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    done = make("")
    assert done.returncode == 0 and done.stdout.splitlines()[-1].startswith("nightly exit status: 0 "), done.stdout
    done = make("on_transcript_change=bogus")
    assert done.returncode == 2 and done.stdout.splitlines()[-1].startswith("nightly exit status: 2 "), done.stdout


# ---- what an attack on the interval and the nightly found ---------------------------------------------------


def test_too_few_units_to_resample_give_no_verdict():
    from w2v2bench.metrics.significance import interval, paired_bootstrap

    assert paired_bootstrap([0], [1], [5]).verdict == "n/a"  # was "significant", p = 0.0002
    assert paired_bootstrap([0, 0], [1, 1], [5, 5]).verdict == "n/a"
    assert interval([1, 2], [5, 5], ["a", "b"]) is None
    assert paired_bootstrap([0] * 6, [1] * 6, [5] * 6).verdict == "significant"


def test_a_baseline_whose_rows_are_gone_is_not_compared(tmp_path):
    night(tmp_path, 1)
    shutil.rmtree(tmp_path / "night1" / "clean")
    runs = tmp_path / "night2"
    make_run(runs / "clean", finished=NIGHT(2), hyps={UTTERANCES[0][0]: "HE HOPED"})
    warn = nightly(runs, tmp_path / "history.sqlite", max_wer_increase=0.5)
    (j,) = warn.judgements
    assert j.n_changed is None and warn.to_json()["runs"][0]["n_changed"] is None and warn.exit_status == 0
    assert "| n/a |" in (runs / "nightly.md").read_text()
    fail = nightly(runs, tmp_path / "history.sqlite", max_wer_increase=0.5, on_transcript_change="fail")
    assert fail.exit_status == 6 and "transcripts not compared" in fail.judgements[0].failures[0]


@pytest.mark.parametrize("arg", ["max_wer_increase=abc", "bogus=1", "max_wer_increase=nan", "harness_status=x"])
def test_a_bad_argument_is_status_2_never_a_regression(tmp_path, arg):
    make_run(tmp_path / "n" / "clean")
    done = nightly_cli(f"runs={tmp_path / 'n'}", f"history={tmp_path / 'h.sqlite'}", arg)
    assert done.returncode == 2, (done.returncode, done.stderr[-500:])


def test_a_history_with_a_damaged_interval_is_refused_in_one_line(tmp_path):
    import sqlite3

    night(tmp_path, 1)
    with sqlite3.connect(tmp_path / "history.sqlite") as con:
        con.execute("UPDATE runs SET wer_ci95_high = NULL WHERE split = 'clean'")
    con.close()
    with pytest.raises(history.HistoryError, match=r"has a damaged wer interval \(0\.\d+, None\)"):
        history.rows(tmp_path / "history.sqlite")


def test_the_trend_plot_shows_a_lone_runs_interval_and_whose_night_failed(tmp_path):
    from matplotlib.collections import PathCollection
    from matplotlib.container import ErrorbarContainer

    from w2v2bench.history import SplitKey
    from w2v2bench.nightly import plot_trend

    night(tmp_path, 1)
    rows = history.rows(tmp_path / "history.sqlite")
    fig = plot_trend(rows, list(dict.fromkeys(SplitKey(r) for r in rows)), tmp_path / "t.png")
    assert sum(isinstance(c, ErrorbarContainer) for c in fig.axes[0].containers) == 2  # one run each: bars
    failed = {**rows[0], "verdict": "fail", "run_id": "x", "finished": NIGHT(2)}
    fig = plot_trend([*rows, failed], [SplitKey(rows[0])], tmp_path / "f.png")
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == str(SplitKey(rows[0]))]
    marks = [c for c in fig.axes[0].collections if isinstance(c, PathCollection) and len(c.get_offsets()) == 1]
    assert marks and tuple(marks[0].get_facecolor()[0][:3]) == pytest.approx(
        __import__("matplotlib.colors").colors.to_rgb(line.get_color())
    )
