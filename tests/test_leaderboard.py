"""`make leaderboard` end to end: every model config of the family through the real Hub code (a stand-in Hub on
127.0.0.1 serving tiny random checkpoints of each row's class and norm), then the model x split table."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from tests.helpers import LIBRISPEECH
from tests.helpers.ngram import transcripts, write_arpa
from tests.helpers.stand_in_hub import Repo, StandInHub
from w2v2bench.testing import random_model

ROOT = Path(__file__).resolve().parents[1]
# each row's class and feature-encoder norm (issue #15's table, hubert-large's read from its config.json)
ROWS = {
    "wav2vec2-base-960h": ("wav2vec2", "group"),
    "wav2vec2-base-100h": ("wav2vec2", "group"),
    "wav2vec2-large-960h": ("wav2vec2", "group"),
    "wav2vec2-large-960h-lv60": ("wav2vec2", "layer"),
    "wav2vec2-large-960h-lv60-self": ("wav2vec2", "layer"),
    "hubert-large-ls960-ft": ("hubert", "layer"),
    "hubert-xlarge-ls960-ft": ("hubert", "layer"),
    "data2vec-audio-base-960h": ("data2vec-audio", "layer"),
    "data2vec-audio-large-960h": ("data2vec-audio", "layer"),
    "wav2vec2-base-960h-4-gram": ("wav2vec2", "group"),
}
CLASSES = {"wav2vec2": "Wav2Vec2ForCTC", "hubert": "HubertForCTC", "data2vec-audio": "Data2VecAudioForCTC"}


def makefile_list(name: str) -> list[str]:
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith(f"{name} ?="))
    return line.split("?=", 1)[1].strip().split(",")


def test_every_conf_model_of_the_family_is_on_the_leaderboard():
    on_board = makefile_list("LEADERBOARD_MODELS") + makefile_list("LEADERBOARD_LM_MODELS")
    conf = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))
    assert sorted(on_board) == sorted(ROWS) == [n for n in conf if n not in ("demo", "wav2vec2-base-960h-converted")]


@pytest.mark.slow
def test_make_leaderboard_runs_every_row_from_the_hub_and_prints_the_table(tmp_path):
    repos = []
    lm_text = transcripts(LIBRISPEECH)
    for name, (family, norm) in ROWS.items():
        folder = random_model.build(tmp_path / "repos" / name, "tiny", norm, seed=1, family=family)
        if name.endswith("4-gram"):
            write_arpa(lm_text, (folder / "language_model").mkdir() or folder / "language_model" / "4gram.arpa")
        hub_id = OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml").checkpoint
        repos.append(Repo.from_folder("model", hub_id, folder))
    venv = tmp_path / "venv"  # the Makefile's own venv step is skipped: this interpreter runs the targets
    venv.mkdir()
    (venv / ".installed").touch()
    board = tmp_path / "board"
    args = f"device=cpu data=local data.root={LIBRISPEECH} limit=2 batch_size=2"
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}
    with StandInHub(repos) as hub:
        done = subprocess.run(
            [shutil.which("make"), "-s", "leaderboard", f"VENV={venv}", f"PY={sys.executable}",
             f"LEADERBOARD_ARGS={args}", f"LEADERBOARD_DIR={board}"],
            cwd=ROOT, env={**env, "HF_ENDPOINT": hub.url}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = pd.read_csv(board / "leaderboard.csv")
    assert len(table) == 2 * len(ROWS) and "| model" in done.stdout
    for row in table.itertuples():
        family, norm = ROWS[row.model]
        assert (row._4, row.norm) == (CLASSES[family], norm), row  # _4: the `class` column
        assert row.decoder == ("lm" if row.model.endswith("4-gram") else "greedy")
        hubert_other = row.model.startswith("hubert") and row.split == "test-other"
        no_figure = "has no figure for split='other'" if hubert_other else "skipped: limit=2"
        assert row.utterances == 2 and row.check.startswith("not checked: ") and no_figure in row.check, row
    figures = table.set_index(["model", "split"])["card_%"]
    assert (
        figures["wav2vec2-base-960h", "test-clean"] == 3.4 and figures["data2vec-audio-base-960h", "test-other"] == 7.08
    )
    assert pd.isna(figures["hubert-large-ls960-ft", "test-other"])  # the card has no figure: reported, not checked


@pytest.mark.parametrize(
    "field,value",
    [("reference_figure", {"wer": "abc", "decoder": "greedy"}), ("decoder", "lm"), ("model", "x"), ("device", 3)],
)
def test_a_damaged_summary_is_skipped_with_one_line_and_the_others_count(tmp_path, field, value):
    import json

    from tests.helpers.fake_runs import make_run

    make_run(tmp_path / "good")
    bad = make_run(tmp_path / "bad", split="other")
    summary = json.loads((bad / "summary.json").read_text())
    summary[field] = value
    (bad / "summary.json").write_text(json.dumps(summary))
    done = subprocess.run(
        [sys.executable, "-m", "w2v2bench.table", f"root={tmp_path}", "view=leaderboard"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\n") == 1 and "skipped" in done.stderr and field in done.stderr, done.stderr
    assert len(pd.read_csv(tmp_path / "leaderboard.csv")) == 1
