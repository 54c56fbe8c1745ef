"""Batch -> logits on other runtimes: each checked against PyTorch fp32 on the same audio."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers import ARCHITECTURES, LIBRISPEECH
from tests.helpers.forked import run_forked
from tests.helpers.harness import read_run
from w2v2bench.backends.base import BackendError
from w2v2bench.config import asset_path
from w2v2bench.data.audio import load_audio
from w2v2bench.data.local import local_utterances
from w2v2bench.model import load_model

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
RUNTIMES = ["onnxruntime", "openvino"]


def make_backend(runtime: str, model, cache: str):
    """The runtime's backend class built as the harness builds it (its Settings, then `create`)."""
    from w2v2bench.backends.onnxruntime import OnnxRuntimeBackend
    from w2v2bench.backends.openvino import OpenVinoBackend

    cls = {"onnxruntime": OnnxRuntimeBackend, "openvino": OpenVinoBackend}[runtime]
    return cls.create(cls.Settings(cache=cache), model=model)


def demo(out: Path, *extra: str) -> list[str]:
    return ["model=demo", "data=demo", "split=other", "limit=12", f"output_dir={out}", *extra]


@pytest.mark.slow  # a whole harness process: make test-slow
def test_runtime_transcripts_equal_pytorch_and_the_export_is_shared_and_reused(tmp_path):
    cache = tmp_path / "cache"
    jobs = {"torch": demo(tmp_path / "torch")}
    for runtime in RUNTIMES:
        args = [f"backend={runtime}", f"backend.cache={cache}", "batch_size=4"]
        jobs |= {
            runtime: demo(tmp_path / runtime, *args),
            f"{runtime}-again": demo(tmp_path / f"{runtime}-again", *args),
        }
    for name, result in zip(jobs, run_forked([{"args": a} for a in jobs.values()], tmp_path / "logs"), strict=True):
        assert result["code"] == 0, (name, result["output"])
    runs = {name: read_run(tmp_path / name) for name in jobs}
    texts = {name: [r["pred_text"] for r in rows] for name, (rows, _) in runs.items()}
    assert all(t == texts["torch"] for t in texts.values()), texts
    assert runs["torch"][1]["backend"] == {"name": "torch", "version": torch.__version__, "precision": "fp32"}
    (export,) = cache.rglob("model.onnx")  # one export, made by the first runtime, reused by every later run
    assert [runs[n][1]["backend"]["cached"] for n in jobs if n != "torch"] == [False, True, True, True]
    for runtime in RUNTIMES:
        backend = runs[runtime][1]["backend"]
        assert backend["name"] == runtime and backend["precision"] == "fp32" and backend["opset"] == 17
        assert backend["cache"] == str(export) and runs[f"{runtime}-again"][1]["backend"]["export_s"] == 0
        # batch_size=4 asked for, batch size 1 ran (no masks in the graph), and said so
        summary = runs[runtime][1]
        assert (
            summary["n_batches"] == 12 and f"backend={runtime} takes no padding masks" in summary["batching_fallback"]
        )
    assert runs["openvino"][1]["backend"]["inference_precision_hint"] == "f32"  # not the CPU's bf16 default


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("architecture", ARCHITECTURES, ids="-".join)
def test_runtime_logits_match_pytorch_for_every_architecture(tiny_architectures, architecture, runtime, tmp_path):
    transcriber = load_model(str(tiny_architectures[architecture]))
    inputs = [
        transcriber.prepare(load_audio(u.path, u.id)[0]) for u in local_utterances(LIBRISPEECH, "test", "clean")[:4]
    ]
    reference = [transcriber.logits([x])[0] for x in inputs]
    transcriber.use_backend(make_backend(runtime, transcriber.model, str(tmp_path)))
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


@pytest.mark.slow  # a run per damaged cache: make test-slow
def test_backend_failures_are_one_line(tmp_path):
    def failing(args: list[str]) -> list[str]:
        backend = [] if any(a.startswith("backend=") for a in args) else ["backend=onnxruntime"]
        cache = [] if any(a.startswith("backend.cache=") for a in args) else [f"backend.cache={tmp_path / 'c'}"]
        return [*backend, *cache, *args]

    for package in RUNTIMES:
        blocker = tmp_path / "blocked" / package
        blocker.mkdir(parents=True)
        (blocker / "__init__.py").write_text("raise ImportError('not installed here')\n")
    exported = tmp_path / "exported"
    make_backend("onnxruntime", load_model(asset_path("demo-model")).model, str(exported))
    caches = {}
    for kind in ("damaged", "fifo", "link", "no record", "other key"):
        caches[kind] = tmp_path / kind.replace(" ", "-")
        shutil.copytree(exported, caches[kind])
        (model,) = caches[kind].rglob("model.onnx")
        if kind == "damaged":
            model.write_bytes(b"not an onnx model")
        elif kind == "fifo":  # onnxruntime would wait on it forever
            model.unlink()
            os.mkfifo(model)
        elif kind == "link":
            model.unlink()
            model.symlink_to(next(exported.rglob("model.onnx")))
        elif kind == "no record":
            (model.parent / "export.json").unlink()
        else:
            record = json.loads((model.parent / "export.json").read_text())
            (model.parent / "export.json").write_text(json.dumps({**record, "weights": "0" * 64}))
    damaged = caches["damaged"]
    cases = {
        "missing package": ([], "pip install 'w2v2bench[onnx]'", {"PYTHONPATH": str(blocker.parent)}),
        "missing openvino": (
            ["backend=openvino"],
            "pip install 'w2v2bench[openvino]'",
            {"PYTHONPATH": str(blocker.parent)},
        ),
        "damaged for openvino": (["backend=openvino", f"backend.cache={damaged}"], "it changed since it was exp", {}),
        "damaged cache": ([f"backend.cache={damaged}"], "it changed since it was exported", {}),
        "fifo cache": ([f"backend.cache={caches['fifo']}"], "not a regular file", {}),
        "linked cache": ([f"backend.cache={caches['link']}"], "not a regular file", {}),
        "no record": ([f"backend.cache={caches['no record']}"], "its export record cannot be read", {}),
        "other key": ([f"backend.cache={caches['other key']}"], "its export record is for other weights", {}),
        "precision": (["precision=bf16"], "precision=bf16: backend=onnxruntime runs with precision=fp32 only", {}),
        "naive": (["batching=naive"], "batching=naive: backend=onnxruntime runs with batching=exact only", {}),
        "device": (["device=cuda"], "device=cuda: backend=onnxruntime runs with device=cpu only", {}),
    }
    for env in ({}, {"PYTHONPATH": str(blocker.parent)}):  # one interpreter for each environment
        names = [name for name, case in cases.items() if case[2] == env]
        jobs = [{"args": demo(tmp_path / "runs" / n.replace(" ", "-"), *failing(cases[n][0]))} for n in names]
        for name, result in zip(names, run_forked(jobs, tmp_path / f"logs-{len(env)}", env=env), strict=True):
            errors = [line for line in result["output"].splitlines() if line.startswith("w2v2bench: error:")]
            assert result["code"] == 1 and len(errors) == 1 and cases[name][1] in errors[0], (name, result["output"])


def test_an_unknown_backend_class_is_one_line_naming_it():
    from w2v2bench.errors import ConfigError
    from w2v2bench.settings import part

    with pytest.raises(ConfigError, match=r"backend._target_='w2v2bench.backends.tensorrt.TensorRT': cannot import"):
        part("backend", {"_target_": "w2v2bench.backends.tensorrt.TensorRT", "name": "tensorrt"})
    with pytest.raises(ConfigError, match=r"backend._target_=None: .*one of \['onnxruntime', 'openvino', 'torch'\]"):
        part("backend", {"name": "tensorrt"})


# ---- found by attacking the backends ------------------------------------------------------------------------


def test_openvino_is_right_after_a_one_frame_first_input(tmp_path):
    # OpenVINO's first inference shaped the later ones: a 1-frame first input left every later logit wrong
    transcriber = load_model(asset_path("demo-model"))
    (u,) = local_utterances(asset_path("demo-corpus"), "test", "other")[:1]
    x = transcriber.prepare(load_audio(u.path, u.id)[0])
    reference = transcriber.logits([x])[0]
    transcriber.use_backend(make_backend("openvino", transcriber.model, str(tmp_path)))
    transcriber.logits([transcriber.prepare(load_audio(u.path, u.id)[0][:500])])
    assert (transcriber.logits([x])[0] - reference).abs().max() < 1e-3


def test_the_export_key_covers_config_and_versions_not_training_only_weights():
    from w2v2bench.backends.onnx_export import export_key

    model = load_model(asset_path("demo-model")).model
    key = export_key(model)
    with torch.no_grad():
        model.wav2vec2.masked_spec_embed.uniform_()  # random when a checkpoint lacks it: not part of the graph
    assert export_key(model) == key
    model.config.hidden_act = "relu"  # same weights, another graph
    assert export_key(model)["config_sha256"] != key["config_sha256"]
    assert {"class", "transformers", "torch", "opset"} <= set(key)


def test_an_extra_file_in_a_cached_export_is_refused(tmp_path):
    model = load_model(asset_path("demo-model")).model
    make_backend("onnxruntime", model, str(tmp_path))
    (folder,) = (tmp_path / "onnx").iterdir()
    (folder / "weights.bin").write_bytes(b"external data a hostile graph could point to")
    with pytest.raises(BackendError, match="its files differ from export.json"):
        make_backend("onnxruntime", model, str(tmp_path))


@pytest.mark.slow  # a whole harness process: make test-slow
def test_audio_shorter_than_one_frame_is_that_utterances_failure(tmp_path):
    import soundfile as sf

    chapter = tmp_path / "corpus" / "test-other" / "1" / "2"
    chapter.mkdir(parents=True)
    (u,) = local_utterances(asset_path("demo-corpus"), "test", "other")[:1]
    sf.write(chapter / "1-2-0000.flac", load_audio(u.path, u.id)[0], 16000)
    sf.write(chapter / "1-2-0001.flac", torch.zeros(300).numpy(), 16000)
    (chapter / "1-2.trans.txt").write_text(f"1-2-0000 {u.text}\n1-2-0001 TOO SHORT\n")
    local = ["data=local", f"data.root={tmp_path / 'corpus'}", "split=other", "model=demo"]
    jobs = [{"args": [*local, f"output_dir={tmp_path / b}", f"backend={b}", f"backend.cache={tmp_path / 'c'}"]}
            for b in ("torch", "onnxruntime", "openvino")]  # fmt: skip
    for result in run_forked(jobs, tmp_path / "logs"):
        assert result["code"] == 0, result["output"]
    for b in ("torch", "onnxruntime", "openvino"):
        rows, summary = read_run(tmp_path / b)
        assert summary["n_failed"] == 1 and rows[0]["error"] is None
        assert "300 samples, shorter than the model's first frame (400 samples)" in rows[1]["error"]


def test_device_auto_with_another_backend_is_the_cpu(monkeypatch):
    from hydra import compose, initialize_config_module

    from w2v2bench.config import register
    from w2v2bench.settings import validate

    register()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with initialize_config_module(config_module="w2v2bench.conf", version_base=None):
        cfg = compose(config_name="config", overrides=["backend=onnxruntime", "model=demo", "data=demo"])
    run = validate(cfg)
    assert (run.device, run.batch_size) == ("cpu", 1)
    assert (run.config()["device"], run.config()["batch_size"]) == ("cpu", 1)


@pytest.mark.slow  # quantises the export: make test-slow
def test_int8_is_a_recorded_variant_beside_the_fp32_export(tmp_path):
    cache = tmp_path / "cache"
    jobs = {
        "fp32": demo(tmp_path / "fp32", "backend=onnxruntime", f"backend.cache={cache}"),
        "int8": demo(tmp_path / "int8", "backend=onnxruntime", "backend.precision=int8", f"backend.cache={cache}"),
        "again": demo(tmp_path / "again", "backend=onnxruntime", "backend.precision=int8", f"backend.cache={cache}"),
        "bad": demo(tmp_path / "bad", "backend=onnxruntime", "backend.precision=fp8", f"backend.cache={cache}"),
        "openvino": demo(tmp_path / "ov", "backend=openvino", "backend.precision=int8", f"backend.cache={cache}"),
    }
    results = dict(zip(jobs, run_forked([{"args": a} for a in jobs.values()], tmp_path / "logs"), strict=True))
    for name in ("fp32", "int8", "again"):
        assert results[name]["code"] == 0, results[name]["output"]
    int8, again = read_run(tmp_path / "int8")[1]["backend"], read_run(tmp_path / "again")[1]["backend"]
    assert int8["precision"] == "int8" and int8["weight_type"] == "QInt8" and not int8["cached"] and again["cached"]
    assert (
        int8["cache"].endswith("-int8/model.onnx")
        and int8["cache"] != read_run(tmp_path / "fp32")[1]["backend"]["cache"]
    )
    for name, message in (
        ("bad", "backend.precision='fp8': expected one of ['fp32', 'int8']"),
        ("openvino", "int8: onnxruntime"),
    ):
        errors = [line for line in results[name]["output"].splitlines() if line.startswith("w2v2bench: error:")]
        assert results[name]["code"] == 1 and len(errors) == 1 and message in errors[0], results[name]["output"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_forged_cache_entry_is_caught_by_the_probe(runtime, tmp_path):
    # another model's export copied into this model's entry, with an export.json rewritten to match its files: the
    # integrity record passes, the probe against PyTorch fp32 (computed in this process) does not (issue #27)
    from w2v2bench.backends import base

    transcriber = load_model(asset_path("demo-model"))
    make_backend(runtime, transcriber.model, str(tmp_path / "a"))
    other = load_model(asset_path("demo-model")).model
    with torch.no_grad():
        other.lm_head.weight.copy_(other.lm_head.weight.flip(0))  # another model: its letters permuted
    make_backend(runtime, other, str(tmp_path / "b"))
    (mine,), (theirs,) = (tmp_path / "a" / "onnx").iterdir(), (tmp_path / "b" / "onnx").iterdir()
    record = json.loads((mine / "export.json").read_text())
    for name in record["files_sha256"]:
        (mine / name).unlink()
    for path in theirs.iterdir():
        if path.name != "export.json":
            shutil.copy(path, mine / path.name)
    forged = json.loads((theirs / "export.json").read_text())["files_sha256"]
    (mine / "export.json").write_text(json.dumps({**record, "files_sha256": forged}))
    base.PROBED.clear()
    with pytest.raises(BackendError, match=rf"the cached export is not this model's; delete {re.escape(str(mine))}"):
        make_backend(runtime, transcriber.model, str(tmp_path / "a"))
