"""The plug-in seams: a data source, backend and decoder defined in the tests folder (tests/helpers/toys.py,
chosen by tests/conf/<group>/toy.yaml on Hydra's search path) run through the real harness, with no package
file edited; their settings are checked before anything loads, and capabilities, not names, decide what runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from tests.helpers.toys import ToyBackend
from w2v2bench.config import register
from w2v2bench.errors import ConfigError

TESTS_CONF = f"hydra.searchpath=[file://{Path(__file__).parent / 'conf'}]"
TOYS = ["data=toy", "backend=toy", "decoder=toy", "model=demo"]


def compose_toys(*overrides: str):
    register()
    with initialize_config_module(config_module="w2v2bench.conf", version_base=None):
        return compose(config_name="config", overrides=[TESTS_CONF, *TOYS, *overrides])


def run_toys(out: Path, *overrides: str) -> tuple[int, dict]:
    from w2v2bench.harness import evaluate

    status = evaluate(compose_toys(f"output_dir={out}", *overrides))
    return status, json.loads((out / "summary.json").read_text())


def test_a_toy_source_backend_and_decoder_run_through_the_harness(tmp_path):
    ToyBackend.calls = 0
    status, summary = run_toys(tmp_path / "run", "decoder.lowercase=true", "backend.scale=2.0")
    assert status == 0 and summary["status"] == "complete" and summary["n_utterances"] == 3
    assert ToyBackend.calls == 3  # max_batch_size = 1: one call per utterance
    assert summary["decoder"] == {"name": "toy", "lowercase": True}
    assert summary["backend"] == {"name": "toy", "scale": 2.0}
    config = summary["config"]
    assert config["data"] == {"source": "toy", "name": "toyset", "partition": "test", "texts": ["A B", "C D E", "F"]}
    assert "_target_" not in config["decoder"] and config["device"] == "cpu"  # devices = ("cpu",) on auto
    rows = [json.loads(line) for line in (tmp_path / "run" / "transcripts.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == ["A B", "C D E", "F"]
    from w2v2bench.results import read_run

    assert read_run(tmp_path / "run")[0]["decoder"]["name"] == "toy"  # the tools read a toy's run back
    assert all(r["pred_text"] == r["pred_text"].lower() for r in rows)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["+decoder.lowercse=true"], "decoder.lowercse is set but decoder=toy ignores it (it takes lowercase)"),
        (["+backend.cache=/x"], "backend.cache is set but backend=toy ignores it (it takes scale)"),
        (["data.texts=[]"], "data.texts is empty: expected at least one reference text"),
        (["decoder.name=lm"], "decoder.name='lm' does not match decoder._target_='tests.helpers.toys.ToyDecoder'"),
        (["precision=bf16"], "precision=bf16: backend=toy runs with precision=fp32 only"),
        (["device=cuda"], "device=cuda: backend=toy runs with device=cpu only"),
        (["compile=true"], "compile=True: backend=toy runs with compile=False only"),
        (["decoder._target_=tests.helpers.toys.Nothing"], "decoder._target_='tests.helpers.toys.Nothing': cannot"),
        (["decoder._target_=tests.helpers.toys.ToySource"], "is not a decoder class: it lacks wants"),
    ],
)
def test_a_toy_setting_is_checked_before_anything_loads(overrides, message):
    from w2v2bench.settings import validate

    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose_toys(*overrides))


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["decoder.lm=x.arpa"],
            "decoder.lm is set but decoder=greedy ignores it (it takes no settings): add decoder=lm",
        ),  # noqa: E501
        (["decoder=lm", "decoder.workers=-1"], "decoder.workers=-1: expected null (one per core)"),
        (["backend.precision=int8"], "backend.precision='int8': backend=torch uses `precision` (fp32|bf16|fp16)"),
        (["backend=onnxruntime", "backend.precision=fp8"], "backend.precision='fp8': expected one of ['fp32', 'int8']"),
        (["data=local"], "data.root is not set: data=local needs data.root="),
        (["data=esb", "data.partition=dev", "data.dataset=null"], "data.dataset is not set"),
        (["check_precision=true", "precision=bf16", "decoder=lm"], "needs decoder=greedy, not lm"),
    ],
)
def test_a_shipped_implementations_setting_is_checked_before_anything_loads(overrides, message):
    from tests.helpers.harness import compose_with
    from w2v2bench.settings import validate

    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose_with(["model=demo", *overrides]))


def test_the_settings_are_frozen_and_the_config_is_not_written_into():
    import dataclasses

    from w2v2bench.settings import validate

    cfg = compose_toys("device=auto", "batch_size=null")
    before = repr(cfg)
    run = validate(cfg)
    assert repr(cfg) == before  # device=auto and batch_size=null are resolved in the settings, not in cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.device = "cuda"
    run.config()["device"] = "changed"
    assert run.config()["device"] == "cpu" and run.config(commit="abc")["data"].get("commit") is None


@pytest.mark.slow  # a whole process: the command line finds the toys through Hydra's search path
def test_the_command_line_runs_the_toys(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "w2v2bench", TESTS_CONF, *TOYS, f"output_dir={out}"],
        capture_output=True, text=True, cwd=Path(__file__).parent.parent, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "summary.json").read_text())["backend"]["name"] == "toy"


# ---- found by attacking the seams ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data._target_=.x"], "data._target_='.x': expected the dotted path of a data class"),
        (
            ["~data"],
            "data is not set: choose one with data=<one of ['demo', 'esb', 'hf', 'hub', 'lhotse', 'local', "
            "'manifest', 'open_asr']>",
        ),
        (["reference=demo", "reference.decoder=gredy"], "reference.decoder='gredy': expected one of ['greedy', 'lm']"),
        (["max_batch_s=nan"], "max_batch_s=nan: expected a positive number of seconds"),
        (["decoder=lm", "decoder.lm=/nowhere/lm.arpa"], "decoder.lm='/nowhere/lm.arpa': no such file"),
        (["decoder=lm", "decoder.lexicon=/nowhere/words"], "decoder.lexicon='/nowhere/words': no such file"),
        (["decoder=lm", "decoder.lm=/etc/hostname", "decoder.beam_width=0"], "decoder.beam_width=0: expected"),
        (["data=hub", "data.dataset='~nosuchuser/x'"], "data.dataset='~nosuchuser/x': no such folder"),
        (["model.name=../../escape"], "model.name='../../escape': expected a plain name"),  # #27 item 8
        (["model.name=/tmp/x"], "model.name='/tmp/x': expected a plain name"),
    ],
)
def test_what_an_attack_found_fails_before_anything_loads_in_one_line(overrides, message):
    from tests.helpers.harness import compose_with
    from w2v2bench.settings import validate

    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose_with(["model=demo", "data=demo", *overrides]))


def test_every_shipped_model_name_is_plain():
    from tests.helpers.harness import compose_with
    from w2v2bench.settings import group_options, validate

    for name in group_options("model"):
        assert validate(compose_with([f"model={name}", "data=demo"])).config()["model"]["name"]


def test_a_module_that_fails_as_it_is_imported_is_one_line(tmp_path, monkeypatch):
    from w2v2bench.settings import part

    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('no display')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"cannot import it \(RuntimeError: no display\)"):
        part("decoder", {"_target_": "broken_plugin.Decoder", "name": "x"})


def test_a_missing_runtime_package_is_found_before_the_model_loads(monkeypatch):
    import importlib.util

    from tests.helpers.harness import compose_with
    from w2v2bench.settings import validate

    find_spec = importlib.util.find_spec
    hidden = lambda name, *a: None if name == "openvino" else find_spec(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", hidden)
    with pytest.raises(ConfigError, match=re.escape("needs the openvino package (not installed): pip install")):
        validate(compose_with(["model=demo", "data=demo", "backend=openvino"]))


def test_a_users_data_yaml_written_before_target_still_runs(tmp_path):
    """A group file of one's own that extends the schema and names its source (as before `_target_`): the shipped
    class of that name runs it."""
    from tests.helpers.harness import compose_with
    from w2v2bench.config import asset_path
    from w2v2bench.settings import validate

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.yaml").write_text(
        f"defaults:\n  - schema\nsource: local\nname: mine\nroot: {asset_path('demo-corpus')}\npartition: test\n"
    )
    run = validate(compose_with([f"hydra.searchpath=[file://{tmp_path}]", "model=demo", "data=mine"]))
    assert run.data.cls.__name__ == "LocalSource" and run.data_name == "mine"
    assert "_target_" not in run.config()["data"]
