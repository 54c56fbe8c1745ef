"""tools/train_demo_model.py is reproducible: the same command gives the same weights, and a run that is
stopped and resumed gives the same weights as one that was not.

A tiny model trained a few steps on shipped audio (no espeak-ng needed: the training cache is written
directly), so the whole script runs in seconds: cache, augmentation, schedule, checkpoint, export, scoring.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from w2v2bench.testing import synth

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "src" / "w2v2bench" / "assets" / "demo-corpus"


@pytest.fixture(scope="module")
def trainer():
    spec = importlib.util.spec_from_file_location("train_demo_model", REPO / "tools" / "train_demo_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    yield module
    torch.set_num_threads(threads)  # main() sets the thread count for the process


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """A training cache of 24 shipped utterances and an evaluation corpus of 2 + 2."""
    root = tmp_path_factory.mktemp("train-data")
    rows = synth.read_subset(CORPUS / "test-clean")[:12] + synth.read_subset(CORPUS / "test-other")[:12]
    audio = [sf.read(path, dtype="int16")[0] for path, _ in rows]
    np.savez(
        root / "train_cache.npz",
        audio=np.concatenate(audio),
        lengths=np.array([len(a) for a in audio]),
        texts=np.array([text for _, text in rows]),
        ids=np.array([path.stem for path, _ in rows]),
    )
    for subset in ("test-clean", "test-other"):
        picked = synth.read_subset(CORPUS / subset)[:2]
        folder = root / "eval" / subset / "1" / "1"
        folder.mkdir(parents=True)
        lines = []
        for path, text in picked:
            shutil.copy(path, folder / path.name)
            lines.append(f"{path.stem} {text}")
        (folder / "1-1.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def _train(trainer, small_data: Path, work: Path, *extra: str) -> dict[str, torch.Tensor]:
    work.mkdir(exist_ok=True)
    if not (work / "train_cache.npz").exists():
        shutil.copy(small_data / "train_cache.npz", work / "train_cache.npz")
    trainer.main(
        [
            f"--work-dir={work}",
            f"--eval-corpus={small_data / 'eval'}",
            "--max-steps=6",
            "--warmup-steps=2",
            "--batch-seconds=12",
            "--n-dev=2",
            "--hidden=32",
            "--layers=1",
            "--heads=2",
            "--conv-dim=16",
            "--save-every=100",
            "--eval-every=100",
            f"--threads={torch.get_num_threads()}",
            *extra,
        ]
    )
    from safetensors.torch import load_file

    return load_file(work / "model" / "model.safetensors") if (work / "model").exists() else {}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_same_command_gives_same_weights_and_resume_is_seamless(trainer, small_data, tmp_path):
    first = _train(trainer, small_data, tmp_path / "a")
    again = _train(trainer, small_data, tmp_path / "b")
    _assert_same(first, again)

    # Stop after the first step (checkpoint written), then rerun the same command: it resumes.
    assert _train(trainer, small_data, tmp_path / "c", "--stop-after-minutes=1e-9") == {}
    assert (tmp_path / "c" / "checkpoint.pt").exists()
    assert torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=False)["state"]["step"] == 1
    _assert_same(first, _train(trainer, small_data, tmp_path / "c"))

    # The weights moved from their initialisation, and a different seed trains a different model.
    other = _train(trainer, small_data, tmp_path / "d", "--seed=1")
    assert any(not torch.equal(first[name], other[name]) for name in first)


def test_augmentation_is_keyed_and_changes_speed_and_noise(trainer):
    args = trainer.parse_args(["--noise-prob=1", "--speed-prob=1", "--speed-range", "1.25", "1.25"])
    clean = (np.sin(np.arange(16_000) / 10) * 8000).astype(np.int16)
    out = trainer.augment(clean, np.random.default_rng(3), args)
    assert len(out) == pytest.approx(16_000 / 1.25, abs=2)  # 25 % faster, 20 % shorter
    again = trainer.augment(clean, np.random.default_rng(3), args)
    np.testing.assert_array_equal(out, again)
    none = trainer.parse_args(["--noise-prob=0", "--speed-prob=0"])
    np.testing.assert_array_equal(trainer.augment(clean, np.random.default_rng(3), none), clean / 32768.0)
