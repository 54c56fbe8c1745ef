"""Shared fixtures: the shipped real LibriSpeech audio and tiny random checkpoints built from a config."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import ARCHITECTURES, DATA, LIBRISPEECH  # noqa: F401
from w2v2bench.testing import random_model

# the tests never reach the network: a Hub call must fail at once instead of retrying
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Random tiny checkpoints, one per feature-encoder norm: {"group": folder, "layer": folder}."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {norm: random_model.build(root / norm, "tiny", norm, seed=1) for norm in random_model.NORMS}


@pytest.fixture(scope="session")
def tiny_architectures(tmp_path_factory, tiny_checkpoints) -> dict[tuple[str, str], Path]:
    """One random tiny checkpoint per entry of ARCHITECTURES (wav2vec2's are `tiny_checkpoints`)."""
    root = tmp_path_factory.mktemp("architectures")
    return {
        (family, norm): tiny_checkpoints[norm]
        if family == "wav2vec2"
        else random_model.build(root / f"{family}-{norm}", "tiny", norm, seed=1, family=family)
        for family, norm in ARCHITECTURES
    }


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_checkpoints) -> Path:
    return tiny_checkpoints["group"]


@pytest.fixture
def broken_tree(tmp_path):
    """A copy of two real utterances plus every per-utterance fault the harness must survive."""
    chapter = tmp_path / "test-clean" / "1089" / "134686"
    chapter.mkdir(parents=True)
    for n in ("0000", "0001"):
        shutil.copy(LIBRISPEECH / "test-clean/1089/134686" / f"1089-134686-{n}.flac", chapter)
    (chapter / "1089-134686-0002.flac").write_bytes(b"this is not a flac file")  # corrupt
    (chapter / "1089-134686-0003.flac").write_bytes(b"")  # empty file
    (chapter / "1089-134686-0005.flac").write_bytes(b"")  # no transcript line either
    shutil.copy(chapter / "1089-134686-0001.flac", chapter / "1089-134686-0006.flac")  # audio, no transcript
    lines = (LIBRISPEECH / "test-clean/1089/134686/1089-134686.trans.txt").read_text().splitlines()
    extra = ["1089-134686-0003 EMPTY AUDIO", "1089-134686-0004 A   LINE  WITH NO AUDIO  "]
    (chapter / "1089-134686.trans.txt").write_text("\n".join(lines + extra) + "\n")
    return tmp_path


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.cuda` is the whole gate: such a test is skipped, with the reason, where CUDA is not there."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
