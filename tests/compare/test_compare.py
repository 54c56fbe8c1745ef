"""Tests for compare and align: paired tests against hand-computed answers, runs with known differences."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize
from hydra.core.config_store import ConfigStore

from tests.helpers import LIBRISPEECH
from tests.helpers.fake_runs import row, write_run
from w2v2bench.align import aligned
from w2v2bench.cli.compare import CompareConfig
from w2v2bench.compare import compare, thresholds_exceeded
from w2v2bench.compare.checkpoints import diff_checkpoints, resolve_target
from w2v2bench.compare.render import render, write
from w2v2bench.compare.runs import CompareError, compare_runs, load_run
from w2v2bench.metrics.significance import mapsswe, paired_bootstrap
from w2v2bench.results import ResultsFileError

# ---- runs written by hand: real counts from score.py, no model -------------------------------------------


ROWS_A = [
    row("1-1", "A B C D", "A B C D"),
    row("1-2", "THE CAT SAT", "THE CAT SAT"),
    row("1-3", "ON THE MAT", "ON MAT"),
    row("1-4", "HELLO WORLD", "HELLO WORLD"),
    row("1-5", "X Y", "X Y"),
    row("1-6", "ONLY IN A", "ONLY IN A"),
]
ROWS_B = [
    row("1-1", "A B C D", "A B C D"),  # same
    row("1-2", "THE CAT SAT", "THE BAT SAT"),  # B worse: a substitution
    row("1-3", "ON THE MAT", "ON THE MAT"),  # B better: the deletion is gone
    row("1-4", "HELLO WORLD", "HELLO WORLD AGAIN"),  # B worse: an insertion
    row("1-5", "X Y", None, error="cannot decode audio"),  # failed in B
    row("1-7", "ONLY IN B", "ONLY IN B"),
]
# paired (scored in both): 1-1..1-4; errors A [0, 0, 1, 0], B [0, 1, 0, 1]; 12 reference words


@pytest.fixture
def runs(tmp_path) -> tuple[Path, Path]:
    return write_run(tmp_path / "a", ROWS_A, "a"), write_run(tmp_path / "b", ROWS_B, "b")


# ---- statistics ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "errors_a,errors_b,w,p",
    [
        # Z = [1, 1, 1, -1]: mean 1/2, sample variance 1, W = 0.5 / (1 / 2) = 1, p = erfc(1 / sqrt 2)
        ([1, 1, 1, 0], [0, 0, 0, 1], 1.0, 0.31731050786291415),
        # Z = [2, 0, 2, 0]: mean 1, variance 4/3, W = sqrt 3
        ([2, 0, 2, 0], [0, 0, 0, 0], math.sqrt(3), 0.08326451666355043),
        # Z = [3, 1, 2, 0, 4]: mean 2, variance 10/4, W = 2 / sqrt(2.5 / 5) = 2 sqrt 2, p = erfc(2)
        ([3, 1, 2, 0, 4], [0] * 5, 2 * math.sqrt(2), 0.004677734981047265),
        ([0, 1, 0, 2], [0, 1, 0, 2], 0.0, 1.0),  # identical counts: p = 1
        ([1, 0], [0, 1], 0.0, 1.0),  # symmetric differences: W = 0
        ([0, 0, 0, 0], [2, 0, 2, 0], -math.sqrt(3), 0.08326451666355043),  # B worse: W negative, same p
        ([2, 2, 2], [1, 1, 1], math.inf, 0.0),  # every utterance one error better: no variance
    ],
)
def test_mapsswe_matches_hand_computed_answers(errors_a, errors_b, w, p):
    result = mapsswe(errors_a, errors_b)
    assert result.n == len(errors_a)
    assert result.w == pytest.approx(w, rel=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("errors_a,errors_b", [([], []), ([3], [1])])
def test_mapsswe_is_undefined_without_two_utterances(errors_a, errors_b):
    assert math.isnan(mapsswe(errors_a, errors_b).p_value)


def test_paired_bootstrap_identical_systems_has_p_one_and_a_zero_interval():
    boot = paired_bootstrap([1, 0, 2, 0, 1], [1, 0, 2, 0, 1], [5, 3, 4, 2, 6], samples=500, seed=3)
    assert (boot.delta_low, boot.delta_high, boot.p_value) == (0.0, 0.0, 1.0)
    # fewer than 5 utterances (or speakers) to resample: no verdict at all
    assert paired_bootstrap([1, 0, 2, 0], [1, 0, 2, 1], [5, 3, 4, 2]).verdict == "n/a"


def test_paired_bootstrap_clear_difference_and_seeded():
    # B makes 2 fewer errors in every 5-word utterance: every resample says WER B - A = -0.4
    boot = paired_bootstrap([2] * 20, [0] * 20, [5] * 20, samples=999, seed=0)
    assert boot.delta_low == pytest.approx(-0.4) and boot.delta_high == pytest.approx(-0.4)
    assert boot.p_value == pytest.approx(2 / 1000)  # (0 + 1) / (999 + 1), both tails
    mixed = ([3, 0, 1, 2, 0, 4, 1, 0], [1, 0, 1, 0, 1, 2, 1, 0], [9, 4, 6, 8, 3, 10, 5, 2])
    first, again = paired_bootstrap(*mixed, samples=300, seed=7), paired_bootstrap(*mixed, samples=300, seed=7)
    assert first == again
    observed = (sum(mixed[1]) - sum(mixed[0])) / sum(mixed[2])
    assert first.delta_low <= observed <= first.delta_high and 0 < first.p_value < 1


# ---- the alignment view ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref,hyps,expected",
    [
        ("A B C", {"HYP": "A B C"}, "REF: A B C\nHYP: A B C"),
        ("A B C D", {"HYP": "A X C D E"}, "REF: A B C D *\nHYP: A X C D E\n       S     I"),
        ("A B", {"HYP": ""}, "REF: A B\nHYP: * *\n     D D"),
        ("", {"HYP": "X"}, "REF: *\nHYP: X\n     I"),
        (
            "THE CAT SAT",
            {"A": "THE CAT SAT", "B": "THE CAT SAT DOWN"},
            "REF: THE CAT SAT ****\nA:   THE CAT SAT\nB:   THE CAT SAT DOWN\n                 I",
        ),
        ("ONE TWO THREE", {"H": "ONE THREE"}, "REF: ONE TWO THREE\nH:   ONE *** THREE\n         D"),
    ],
)
def test_alignment_view(ref, hyps, expected):
    assert aligned(ref, hyps) == expected


def test_alignment_wraps_long_utterances_into_blocks():
    ref = " ".join(f"W{i}" for i in range(40))
    view = aligned(ref, {"HYP": ref}, width=30)
    blocks = view.split("\n\n")
    assert len(blocks) > 3 and all(len(line) <= 30 for line in view.splitlines())
    assert " ".join(b.splitlines()[0].removeprefix("REF: ") for b in blocks) == ref


# ---- comparing runs --------------------------------------------------------------------------------------


def test_runs_with_known_differences(runs):
    result = compare_runs(load_run(runs[0]), load_run(runs[1]), bootstrap_samples=200)
    assert result.n_paired == 4 and (result.better, result.worse, result.same) == (1, 2, 1)
    assert (result.words_a.deletions, result.words_a.errors, result.words_a.ref_words) == (1, 1, 12)
    assert (result.words_b.substitutions, result.words_b.insertions, result.words_b.errors) == (1, 1, 2)
    assert (result.wer_a, result.wer_b, result.wer_delta) == pytest.approx((1 / 12, 2 / 12, 1 / 12))
    assert result.only_a == ["1-6"] and result.only_b == ["1-7"] and result.failed == ["1-5"]
    assert [d.id for d in result.differences] == ["1-2", "1-3", "1-4", "1-5", "1-6", "1-7"]
    assert result.mapsswe == mapsswe([0, 0, 1, 0], [0, 1, 0, 1])  # Z = [0, -1, 1, -1]
    assert result.mapsswe.w == pytest.approx(-0.25 / (math.sqrt(2.75 / 3) / 2))
    by_id = {d.id: d for d in result.differences}
    assert (by_id["1-2"].errors_a, by_id["1-2"].errors_b) == (0, 1)
    assert by_id["1-5"].b is None and "failed in B: cannot decode audio" in by_id["1-5"].note
    assert by_id["1-6"].note == "only in run A" and "\nB:   (not in run B)" in by_id["1-6"].alignment
    assert by_id["1-2"].alignment == "REF: THE CAT SAT\nA:   THE CAT SAT\nB:   THE BAT SAT\n         S"
    assert ("config.model.name", "a", "b") in result.settings
    assert not any(key == "config.output_dir" for key, _, _ in result.settings)


def test_identical_runs_are_reported_identical(runs, tmp_path):
    copy = shutil.copytree(runs[0], tmp_path / "a-again")
    result = compare_runs(load_run(runs[0]), load_run(copy), bootstrap_samples=100)
    assert result.identical and result.differences == [] and result.settings == []
    assert (result.wer_delta, result.mapsswe.p_value, result.bootstrap.p_value) == (0.0, 1.0, 1.0)
    assert thresholds_exceeded(result, max_wer_delta=0.0, fail_on_transcript_diff=True) == []


@pytest.mark.parametrize(
    "fail_on_transcript_diff,max_wer_delta,n_reasons",
    [(True, 0.0, 2), (True, 0.1, 1), (False, 0.05, 1), (False, 0.1, 0)],  # |WER delta| is 1/12 = 0.083
)
def test_thresholds(runs, fail_on_transcript_diff, max_wer_delta, n_reasons):
    result = compare_runs(load_run(runs[0]), load_run(runs[1]), bootstrap_samples=0)
    assert len(thresholds_exceeded(result, max_wer_delta, fail_on_transcript_diff)) == n_reasons


def test_report_shows_every_differing_utterance(runs, tmp_path):
    comparison = compare(str(runs[0]), str(runs[1]), tmp_path / "out", bootstrap_samples=100)
    summary = write(comparison, tmp_path / "out")
    markdown = (tmp_path / "out" / "compare.md").read_text()
    assert markdown.startswith(summary)
    for uid in ("1-2", "1-3", "1-4", "1-5", "1-6", "1-7"):
        assert f"### {uid}:" in markdown
    assert "### 1-1:" not in markdown and "**Different**: 6 utterance(s) differ" in summary
    assert re.search(r"\| WER % +\| 8\.33 +\| 16\.67 +\| \+8\.33 +\|", summary)
    payload = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert payload["kind"] == "runs" and payload["within_thresholds"] is False
    assert payload["wer_delta"] == pytest.approx(1 / 12)
    assert payload["runs"]["words_b"] == {"substitutions": 1, "deletions": 0, "insertions": 1, "ref_words": 12}
    assert [d["id"] for d in payload["runs"]["differences"]] == ["1-2", "1-3", "1-4", "1-5", "1-6", "1-7"]
    assert payload["runs"]["mapsswe"]["p_value"] == pytest.approx(0.6015081344405899)


def test_different_normalizers_and_references_are_noted(tmp_path):
    a = write_run(tmp_path / "a", [row("1-1", "A B", "A B")])
    b = write_run(tmp_path / "b", [row("1-1", "A C", "A B")], normalizer="basic")
    result = compare_runs(load_run(a), load_run(b), bootstrap_samples=0)
    assert result.reference_differs == ["1-1"] and len(result.notes) == 2


@pytest.mark.parametrize(
    "a,b,message",
    [
        ("{a}", "{tmp}/nowhere", "b='{tmp}/nowhere': no such folder"),
        ("{a}", "{tmp}", "neither summary.json"),
        ("{a}", "{ckpt}", "a= is a run folder and the other a checkpoint"),
    ],
)
def test_bad_targets_name_the_problem(runs, tiny_checkpoint, tmp_path, a, b, message):
    names = {"a": runs[0], "tmp": tmp_path, "ckpt": tiny_checkpoint}
    with pytest.raises(CompareError, match=re.escape(message.format(**names))):
        compare(a.format(**names), b.format(**names), tmp_path / "out")


@pytest.mark.parametrize(
    "rows,status,message",
    [
        (
            [row("1-1", "A", "A"), row("1-1", "A", "A")],
            "complete",
            r"transcripts.jsonl:2: field (id|index): .* is also on line 1",
        ),
        ([row("1-1", "A", "A")], "running", r"the run is not complete \(status 'running'\).*resume=true"),
    ],
)
def test_malformed_or_unfinished_run_fails_naming_why(tmp_path, rows, status, message):
    folder = write_run(tmp_path / "a", rows)
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "status": status}))
    with pytest.raises((CompareError, ResultsFileError), match=message):
        load_run(folder)


# ---- command line ----------------------------------------------------------------------------------------


def cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "w2v2bench.compare", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_cli_exit_status_follows_the_thresholds(runs, tmp_path):
    same = cli(f"a={runs[0]}", f"b={runs[0]}", f"out={tmp_path / 'same'}")
    assert same.returncode == 0, same.stderr
    assert "**Identical**: all 6 transcripts are the same." in same.stdout
    differ = cli(f"a={runs[0]}", f"b={runs[1]}", f"out={tmp_path / 'differ'}")
    assert differ.returncode == 4, differ.stderr
    assert "**Thresholds exceeded**" in differ.stdout
    payload = json.loads((tmp_path / "differ" / "compare.json").read_text())
    assert payload["config"]["max_wer_delta"] == 0.0 and payload["runs"]["worse"] == 2
    relaxed = cli(f"a={runs[0]}", f"b={runs[1]}", "fail_on_transcript_diff=false", "max_wer_delta=0.1",
                  f"out={tmp_path / 'relaxed'}")  # fmt: skip
    assert relaxed.returncode == 0, relaxed.stderr


def test_cli_usage_and_offline_hub_fail_in_one_line(tmp_path):
    usage = cli(f"a={tmp_path}")
    assert usage.returncode == 2 and "missing b=" in usage.stderr
    start = time.monotonic()
    offline = cli("a=w2v2bench-tests/no-such-model", f"b={tmp_path}", env={"HF_HUB_OFFLINE": "1"})
    assert time.monotonic() - start < 20
    lines = [line for line in offline.stderr.splitlines() if line.strip()]
    assert offline.returncode == 1 and len(lines) == 1, offline.stderr
    assert "Hugging Face Hub is unreachable" in lines[0] and "not cached" in lines[0]


def test_run_args_compose_as_a_list():
    ConfigStore.instance().store(name="compare", node=CompareConfig)
    with initialize(version_base=None):
        cfg = compose("compare", overrides=["a=x", "b=y", "run_args=['data=local','data.root=/d','limit=2']"])
    assert list(cfg.run_args) == ["data=local", "data.root=/d", "limit=2"]
    assert (cfg.max_wer_delta, cfg.fail_on_transcript_diff) == (0.0, True)


# ---- checkpoints -----------------------------------------------------------------------------------------


def edited_copy(source: Path, out: Path, *, bias: float = 0.0, vocab: int | None = None, normalize=None) -> Path:
    """A copy of a checkpoint with the encoder's final layer-norm bias shifted, lm_head resized, do_normalize set."""
    from transformers import Wav2Vec2ForCTC

    shutil.copytree(source, out)
    model = Wav2Vec2ForCTC.from_pretrained(out)
    with torch.no_grad():
        model.wav2vec2.encoder.layer_norm.bias += bias
    if vocab is not None:
        model.lm_head = torch.nn.Linear(model.lm_head.in_features, vocab)
        model.config.vocab_size = vocab
    model.save_pretrained(out)
    if normalize is not None:
        path = out / "processor_config.json"
        config = json.loads(path.read_text())
        config["feature_extractor"]["do_normalize"] = normalize
        path.write_text(json.dumps(config))
    return out


def test_checkpoint_diff_reports_settings_tensors_and_shapes(tiny_checkpoint, tmp_path):
    edited = edited_copy(tiny_checkpoint, tmp_path / "b", bias=0.25, vocab=33, normalize=False)
    diff = diff_checkpoints(resolve_target("a", str(tiny_checkpoint)), resolve_target("b", str(edited)))
    assert ("vocab_size", 32, 33) in diff.config
    assert diff.preprocessor == [("do_normalize", True, False)]
    differing = {t.name: t for t in diff.differing_tensors}
    assert sorted(differing) == ["lm_head.bias", "lm_head.weight", "wav2vec2.encoder.layer_norm.bias"]
    assert differing["lm_head.weight"].max_abs is None and differing["lm_head.weight"].shape_b == (33, 32)
    assert differing["wav2vec2.encoder.layer_norm.bias"].max_abs == pytest.approx(0.25, abs=1e-6)
    assert not (diff.only_a or diff.only_b or diff.not_in_file_a or diff.not_in_file_b) and not diff.identical


def test_checkpoints_of_different_architectures_list_tensors_only_in_one(tiny_checkpoints):
    diff = diff_checkpoints(
        resolve_target("a", str(tiny_checkpoints["group"])), resolve_target("b", str(tiny_checkpoints["layer"]))
    )
    assert ("feat_extract_norm", "group", "layer") in diff.config
    assert "wav2vec2.feature_extractor.conv_layers.1.layer_norm.weight" in diff.only_b
    assert "wav2vec2.feature_extractor.conv_layers.0.conv.bias" in diff.only_b and not diff.only_a


@pytest.mark.slow  # a whole harness process: make test-slow
def test_checkpoints_are_run_on_the_same_data_and_compared(tiny_checkpoint, tmp_path):
    copy = shutil.copytree(tiny_checkpoint, tmp_path / "copy")
    with pytest.raises(CompareError, match="run_args: 'model.checkpoint=x' sets model.checkpoint"):
        compare(str(tiny_checkpoint), str(copy), tmp_path / "out", run_args=["model.checkpoint=x"])
    (tmp_path / "used" / "a").mkdir(parents=True)
    with pytest.raises(CompareError, match="already holds"):
        compare(str(tiny_checkpoint), str(copy), tmp_path / "used")
    run_args = ["data=local", f"data.root={LIBRISPEECH}", "split=other", "limit=2"]
    comparison = compare(str(tiny_checkpoint), str(copy), tmp_path / "out", run_args=run_args, bootstrap_samples=0)
    assert comparison.kind == "checkpoints" and comparison.checkpoints.identical
    assert comparison.runs.identical and comparison.runs.n_paired == 2 and comparison.reasons == []
    settings = [key for key, _, _ in comparison.runs.settings]
    assert settings == ["config.model.checkpoint", "config.model.name", "model.checkpoint"]
    summary, details = render(comparison)
    assert "**Identical**: all 2 transcripts are the same." in summary and "Checkpoints **identical**" in summary
    a = json.loads((tmp_path / "out" / "a" / "summary.json").read_text())
    assert a["config"]["split"] == "other" and a["config"]["model"]["name"] == "a"
