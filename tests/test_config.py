import json
import re
from importlib import resources

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from tests.helpers.harness import compose_with
from w2v2bench.config import load_reference, register

register()
CONF = resources.files("w2v2bench.conf")


def options(group: str) -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in (CONF / group).iterdir() if p.name.endswith(".yaml"))


def test_default_is_the_model_card_setup():
    cfg = compose_with([])
    assert cfg.model.checkpoint == "facebook/wav2vec2-base-960h"
    assert cfg.data.source == "hub" and cfg.data.dataset == "openslr/librispeech_asr"
    assert (cfg.split.value, cfg.data.partition.value, cfg.precision.value) == ("clean", "test", "fp32")
    assert (cfg.device, cfg.batch_size) == ("auto", None)
    assert cfg.reference.name == "auto" and cfg.model.reference == "wav2vec2-base-960h"


@pytest.mark.parametrize(
    "device,batch_size,cuda,expected",
    [
        ("auto", None, False, ("cpu", 1)),  # the card's protocol where batching costs time
        ("auto", None, True, ("cuda", 256)),  # batched on a GPU (exact, bounded by max_batch_s)
        ("auto", 1, True, ("cuda", 1)),  # an explicit batch size is kept
        ("cpu", None, True, ("cpu", 1)),
        ("cuda:1", 8, True, ("cuda:1", 8)),
    ],
)
def test_device_and_batch_size_defaults_fit_the_machine(monkeypatch, device, batch_size, cuda, expected):
    import torch

    from w2v2bench.model import resolve_defaults

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert resolve_defaults(device, batch_size) == expected


@pytest.mark.parametrize("group", ["model", "data", "reference", "decoder"])
def test_every_option_of_every_group_composes(group):
    for option in options(group):
        overrides = [f"{group}={option}"] + (["++data.root=/somewhere"] if group == "data" else [])
        cfg = compose_with(overrides)
        assert cfg[group] is not None


@pytest.mark.parametrize(
    "override,message",
    [
        ("split=ohter", r"ohter.*clean.*other"),
        ("data.partition=train", r"train.*test.*dev"),
        ("precision=fp8", r"fp8.*fp32.*bf16.*fp16"),
        ("batching=fast", r"fast.*exact.*naive"),
        ("batch_size=many", r"many"),
    ],
)
def test_bad_values_fail_at_composition_naming_the_allowed_ones(override, message):
    with pytest.raises((ValidationError, ConfigCompositionException)) as err:
        compose_with([override])
    assert re.search(message, f"{err.value} {err.value.__cause__}")


def test_unknown_group_option_lists_the_available_ones():
    with pytest.raises(Exception, match=r"(?s)model/nope.*wav2vec2-base-960h"):
        compose_with(["model=nope"])


@pytest.mark.parametrize("name", options("model"))
def test_every_model_names_its_own_card_figures(name):
    cfg = compose_with([f"model={name}"])
    assert cfg.model.name == name
    ref = load_reference(cfg.model.reference)
    assert ref.wer and set(ref.wer) <= {"clean", "other"} and set(ref.utterances) == set(ref.wer)
    assert all(0 < wer < 0.3 for wer in ref.wer.values()) and 0 < ref.tolerance <= 0.005
    assert ref.source and (ref.source.startswith("https://huggingface.co/") or name == "demo")
    if name != "demo" and not name.endswith("-converted"):
        assert ref.source.startswith(f"https://huggingface.co/{cfg.model.checkpoint} ")


def test_auto_reference_loads_the_named_figures():
    ref = load_reference("wav2vec2-base-960h")
    assert ref.wer == {"clean": 0.034, "other": 0.086} and ref.tolerance == 0.0005
    assert "huggingface.co/facebook/wav2vec2-base-960h" in ref.source


@pytest.mark.parametrize(
    "key,training_only",
    [("wav2vec2.masked_spec_embed", True), ("wavlm.masked_spec_embed", True), ("lm_head.weight", False)],
)
def test_which_missing_weights_only_training_uses(key, training_only):
    from w2v2bench.model import TRAINING_ONLY

    assert bool(TRAINING_ONLY.fullmatch(key)) is training_only


def test_a_resume_may_find_the_dataset_commit_unknown(tmp_path):
    from w2v2bench.resume import check_resumable, config_sha256

    data = {"name": "librispeech", "partition": "test", "dataset": "openslr/librispeech_asr", "commit": "a" * 40}
    config = {"data": data, "split": "clean", "resume": False}
    (tmp_path / "summary.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "status": "running",
                "config": {**config, "model": {"name": "m", "checkpoint": "c"}, "batch_size": 1},
            }
        )
    )
    offline = {**config, "data": {**config["data"], "commit": None}, "resume": True}
    offline |= {"model": {"name": "m", "checkpoint": "c"}, "batch_size": 1}
    check_resumable(tmp_path, offline)  # no error: each journal row's audio and text are checked instead
    assert config_sha256({**offline, "resume": False}) == config_sha256(
        {**config, "model": {"name": "m", "checkpoint": "c"}, "batch_size": 1}
    )
