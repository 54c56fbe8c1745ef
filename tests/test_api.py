"""`w2v2bench.evaluate()` (issue #29, item 1 in part): the command line's code path from Python, the same figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import w2v2bench
from tests.helpers import LIBRISPEECH
from tests.helpers.harness import bench, read_run
from w2v2bench.data.local import local_utterances


def test_import_stays_light():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, w2v2bench; print('torch' in sys.modules, 'hydra' in sys.modules)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.split() == ["False", "False"], done.stderr


@pytest.mark.slow  # a whole harness process besides the in-process one: make test-slow
def test_evaluate_gives_the_command_lines_figures(tmp_path):
    done = bench("model=demo", "data=demo", "split=clean", "limit=5", f"output_dir={tmp_path / 'cli'}")
    assert done.returncode == 0, done.stderr
    result = w2v2bench.evaluate("demo", "demo", split="clean", limit=5, output_dir=str(tmp_path / "api"))
    rows, summary = read_run(tmp_path / "cli")
    assert [r["pred_text"] for r in result.rows] == [r["pred_text"] for r in rows]
    assert result.wer == summary["wer"] and result.measurement["series_id"] == summary["measurement"]["series_id"]


def test_evaluate_keeps_no_files_when_asked_and_takes_dotted_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = w2v2bench.evaluate("demo", "demo", split="other", limit=3, output_dir=None, normalizer="basic",
                                overrides={"reference": "none"})  # fmt: skip
    assert result.output_dir is None and not any(tmp_path.iterdir())
    assert len(result.rows) == 3 and result.status == 0 and result.summary["normalizer"] == "basic"
    assert result.measurement["series"]["protocol"]["normalizer"] == "basic"
    assert result.summary["reference_note"] == "no reference figures for this model"


def test_evaluate_takes_a_manifest_path_and_a_librispeech_folder(tmp_path):
    utterances = local_utterances(LIBRISPEECH, "test", "clean")[:3]
    manifest = tmp_path / "my set.json"  # a space: the path is quoted for Hydra
    manifest.write_text("".join(json.dumps({"audio_filepath": u.path, "text": u.text}) + "\n" for u in utterances))
    mine = w2v2bench.evaluate("demo", str(manifest), output_dir=str(tmp_path / "a"), device="cpu")
    tree = w2v2bench.evaluate("demo", str(LIBRISPEECH), limit=3, output_dir=str(tmp_path / "b"), device="cpu")
    assert [r["pred_text"] for r in mine.rows] == [r["pred_text"] for r in tree.rows]
    assert (
        mine.measurement["series"]["data"]["name"] == "my_set"
        and tree.summary["config"]["data"]["name"] == "librispeech"
    )


def test_a_bad_key_is_the_command_lines_one_line_error(tmp_path):
    with pytest.raises(Exception, match="batch_size=0: expected a positive integer"):
        w2v2bench.evaluate("demo", "demo", batch_size=0, output_dir=None)
    with pytest.raises(TypeError, match="expected key=value strings in a list"):
        w2v2bench.evaluate("demo", "demo", overrides="decoder=lm", output_dir=None)


def test_a_path_is_passed_as_it_is_never_interpolated(tmp_path):
    from w2v2bench.api import _quoted

    folder = tmp_path / "it's ${oc.env:HOME} a, b"
    folder.mkdir()
    utterances = local_utterances(LIBRISPEECH, "test", "clean")[:1]
    manifest = folder / "m.json"
    manifest.write_text(json.dumps({"audio_filepath": utterances[0].path, "text": utterances[0].text}) + "\n")
    result = w2v2bench.evaluate("demo", str(manifest), output_dir=str(folder / "out"), device="cpu")
    assert result.summary["config"]["data"]["path"] == str(manifest) and len(result.rows) == 1
    assert _quoted("a\\b") == "'a\\\\b'"


def _state(model) -> tuple:
    import torch

    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    return (
        tensors,
        [type(m).__name__ for m in model.modules()],
        hooks,
        model.training,
        next(model.parameters()).device,
        torch.is_grad_enabled(),
    )


def test_a_model_in_memory_gives_its_folders_transcripts_and_is_left_as_it_was(tmp_path):
    # issue #29 items 1-2: the same transcripts as the checkpoint folder; the caller's model untouched
    import datasets
    import torch
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    from w2v2bench.config import asset_path

    model = Wav2Vec2ForCTC.from_pretrained(asset_path("demo-model")).train()  # mid-training: training mode
    processor = Wav2Vec2Processor.from_pretrained(asset_path("demo-model"))
    before = _state(model)
    folder = w2v2bench.evaluate("demo", "demo", split="clean", limit=4, output_dir=None)
    memory = w2v2bench.evaluate(model, "demo", processor=processor, split="clean", limit=4, output_dir=None)
    assert [r["pred_text"] for r in memory.rows] == [r["pred_text"] for r in folder.rows] and memory.wer == folder.wer
    assert (
        memory.summary["config"]["model"]["name"].startswith("Wav2Vec2ForCTC-") and memory.summary["reference"] is None
    )
    after = _state(model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0]) and before[1:] == after[1:]
    # a datasets.Dataset object, its audio an Audio column
    utterances = local_utterances(LIBRISPEECH, "test", "clean")[:2]
    table = datasets.Dataset.from_list([{"audio": u.path, "text": u.text, "id": u.id} for u in utterances])
    result = w2v2bench.evaluate("demo", table.cast_column("audio", datasets.Audio()), output_dir=None)
    assert [r["id"] for r in result.rows] == [u.id for u in utterances]
    with pytest.raises(TypeError, match="weights in \\['torch.float16'\\]"):
        w2v2bench.evaluate(model.half(), "demo", processor=processor, output_dir=None)
    with pytest.raises(TypeError, match="needs its processor"):
        w2v2bench.evaluate(model.float(), "demo", output_dir=None)
