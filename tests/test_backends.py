"""Batch -> logits on other runtimes: each checked against PyTorch fp32 on the same audio."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from w2v2bench.backends import BackendError, make_backend
from w2v2bench.config import asset_path
from w2v2bench.data import load_audio, local_utterances
from w2v2bench.model import load_model

from .conftest import ARCHITECTURES, LIBRISPEECH
from .forked import run_forked
from .test_cli import read_run

pytest.importorskip("onnxruntime")


def demo(out: Path, *extra: str) -> list[str]:
    return ["model=demo", "data=demo", "split=other", "limit=12", f"output_dir={out}", *extra]


def test_onnxruntime_transcripts_equal_pytorch_and_the_export_is_reused(tmp_path):
    cache = tmp_path / "cache"
    ort = ["backend=onnxruntime", f"backend.cache={cache}", "batch_size=4"]
    jobs = {
        "torch": demo(tmp_path / "torch"),
        "first": demo(tmp_path / "first", *ort),
        "again": demo(tmp_path / "again", *ort),
    }
    for name, result in zip(jobs, run_forked([{"args": a} for a in jobs.values()], tmp_path / "logs"), strict=True):
        assert result["code"] == 0, (name, result["output"])
    (torch_rows, torch_run), (first_rows, first), (again_rows, again) = (read_run(tmp_path / n) for n in jobs)
    assert (
        [r["pred_text"] for r in first_rows]
        == [r["pred_text"] for r in torch_rows]
        == [r["pred_text"] for r in again_rows]
    )
    assert torch_run["backend"] == {"name": "torch", "version": torch.__version__, "precision": "fp32"}
    assert first["backend"]["name"] == "onnxruntime"
    assert first["backend"]["precision"] == "fp32" and first["backend"]["opset"] == 17
    assert (first["backend"]["cached"], again["backend"]["cached"]) == (False, True) and again["backend"][
        "export_s"
    ] == 0
    assert first["backend"]["cache"] == again["backend"]["cache"] and len(list(cache.rglob("model.onnx"))) == 1
    # batch_size=4 asked for, batch size 1 ran (no masks in the graph), and said so
    assert first["n_batches"] == 12 and "backend=onnxruntime takes no padding masks" in first["batching_fallback"]


@pytest.mark.parametrize("architecture", ARCHITECTURES, ids="-".join)
def test_onnxruntime_logits_match_pytorch_for_every_architecture(tiny_architectures, architecture, tmp_path):
    transcriber = load_model(str(tiny_architectures[architecture]))
    inputs = [
        transcriber.prepare(load_audio(u.path, u.id)[0]) for u in local_utterances(LIBRISPEECH, "test", "clean")[:4]
    ]
    reference = [transcriber.logits([x])[0] for x in inputs]
    transcriber.use_backend(make_backend("onnxruntime", transcriber.model, str(tmp_path)))
    for x, ref in zip(inputs, reference, strict=True):
        ours = transcriber.logits([x])[0]
        assert ours.shape == ref.shape and (ours - ref).abs().max() < 1e-3
        assert torch.equal(ours.argmax(-1), ref.argmax(-1))


def test_a_changed_weight_is_a_new_export(tmp_path):
    transcriber = load_model(asset_path("demo-model"))
    first = make_backend("onnxruntime", transcriber.model, str(tmp_path))
    with torch.no_grad():
        transcriber.model.lm_head.bias[0] += 1
    second = make_backend("onnxruntime", transcriber.model, str(tmp_path))
    assert first.settings()["cache"] != second.settings()["cache"] and not second.settings()["cached"]


def test_backend_failures_are_one_line(tmp_path):
    blocker = tmp_path / "blocked" / "onnxruntime"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed here')\n")
    damaged = tmp_path / "damaged"
    make_backend("onnxruntime", load_model(asset_path("demo-model")).model, str(damaged))
    (model,) = damaged.rglob("model.onnx")
    model.write_bytes(b"not an onnx model")
    cases = {
        "missing package": ([], "pip install 'w2v2bench[onnx]'", {"PYTHONPATH": str(blocker.parent)}),
        "damaged cache": ([f"backend.cache={damaged}"], "onnxruntime cannot load it", {}),
        "precision": (["precision=bf16"], "precision=bf16: backend=onnxruntime runs with precision=fp32 only", {}),
        "naive": (["batching=naive"], "batching=naive: backend=onnxruntime runs with batching=exact only", {}),
        "device": (["device=cuda"], "device=cuda: backend=onnxruntime runs with device=cpu only", {}),
    }
    for env in ({}, {"PYTHONPATH": str(blocker.parent)}):  # one interpreter for each environment
        names = [name for name, case in cases.items() if case[2] == env]
        jobs = [
            {
                "args": demo(
                    tmp_path / n.replace(" ", "-"),
                    "backend=onnxruntime",
                    f"backend.cache={tmp_path / 'c'}",
                    *cases[n][0],
                )
            }
            for n in names
        ]
        for name, result in zip(names, run_forked(jobs, tmp_path / f"logs-{len(env)}", env=env), strict=True):
            errors = [line for line in result["output"].splitlines() if line.startswith("w2v2bench: error:")]
            assert result["code"] == 1 and len(errors) == 1 and cases[name][1] in errors[0], (name, result["output"])


def test_an_unknown_backend_names_the_allowed_ones():
    with pytest.raises(BackendError, match=r"'tensorrt'.*torch.*onnxruntime"):
        make_backend("tensorrt", None, "/nowhere")
