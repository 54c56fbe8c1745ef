"""The real Hub path end to end, through a stand-in Hub on 127.0.0.1: the default command downloads the model
repo and streams the dataset repo with the real huggingface_hub, transformers and datasets code."""

from __future__ import annotations

import pytest

from tests.helpers import LIBRISPEECH
from tests.helpers.forked import run_forked
from tests.helpers.harness import mirror_repo, read_run, untimed
from tests.helpers.stand_in_hub import Repo, StandInHub

README = """---
configs:
- config_name: clean
  data_files:
  - split: test
    path: clean/test/*.parquet
  - split: validation
    path: clean/validation/*.parquet
- config_name: other
  data_files:
  - split: test
    path: other/test/*.parquet
---
# LibriSpeech (stand-in)
"""


@pytest.fixture(scope="module")
def repos(tiny_checkpoint, tmp_path_factory) -> list[Repo]:
    """facebook/wav2vec2-base-960h as the Hub has it (old weight-norm names, no masked_spec_embed; random tiny
    weights) and openslr/librispeech_asr's parquet layout, from the shipped audio."""
    import shutil

    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("hub")
    model = root / "model"
    shutil.copytree(tiny_checkpoint, model)
    legacy = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}
    state = {}
    for key, value in load_file(model / "model.safetensors").items():
        for new, old in legacy.items():
            key = key.replace(new, old)
        state[key] = value
    state.pop("wav2vec2.masked_spec_embed")
    save_file(state, model / "model.safetensors", metadata={"format": "pt"})
    data = mirror_repo(root / "data", with_dev=True)
    (data / "README.md").write_text(README)
    return [
        Repo.from_folder("model", "facebook/wav2vec2-base-960h", model),
        Repo.from_folder("dataset", "openslr/librispeech_asr", data),
    ]


@pytest.mark.slow
def test_the_default_command_runs_through_the_hub_then_offline_from_the_cache(repos, tiny_checkpoint, tmp_path):
    env = {"HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}
    local = ["data=local", f"data.root={LIBRISPEECH}"]
    jobs = {
        "clean": ["limit=3"],
        "other": ["split=other", "limit=3"],
        "dev": ["data.partition=dev"],
        "local-data-hub-model": [*local, "split=other", "limit=3"],
        "no-such-dataset": ["data.dataset=nobody/nothing", "limit=3"],
    }
    with StandInHub(repos) as hub:
        env["HF_ENDPOINT"] = hub.url
        results = run_forked(
            [{"args": [*args, f"output_dir={tmp_path / name}"]} for name, args in jobs.items()],
            tmp_path / "logs",
            env=env,
        )
    *results, missing = results
    errors = [line for line in missing["output"].splitlines() if line.startswith("w2v2bench: error:")]
    assert missing["code"] == 1 and len(errors) == 1, missing["output"]
    assert "cannot open nobody/nothing (config 'clean', split 'test', revision 'main')" in errors[0]
    assert "LOAD REPORT" not in missing["output"] and "Loading weights" not in missing["output"]  # before the model
    for name, result in zip(jobs, results, strict=False):
        assert result["code"] == 0, (name, result["output"])
        assert "HTTP Request" not in result["output"] and "LOAD REPORT" not in result["output"], name
        assert result["output"].count("note: wav2vec2.masked_spec_embed not in the checkpoint") == 1, name
    model, dataset = repos
    for name in ("clean", "other"):
        rows, summary = read_run(tmp_path / name)
        assert [r["id"] for r in rows] == sorted(r["id"] for r in rows) and len(rows) == 3
        assert summary["model"]["commit"] == model.sha and summary["config"]["data"]["commit"] == dataset.sha
    hub_rows, _ = read_run(tmp_path / "other")
    local_rows, _ = read_run(tmp_path / "local-data-hub-model")
    keys = ("id", "text", "pred_text", "audio_sha256")
    assert [[r[k] for k in keys] for r in hub_rows] == [[r[k] for k in keys] for r in local_rows]
    dev_rows, dev = read_run(tmp_path / "dev")
    assert dev["config"]["data"]["partition"] == "dev" and [r["id"] for r in dev_rows] == ["2412-153948-0000"]

    # the server is gone: the model is in the cache (offline), the stream is not (one line)
    after = run_forked(
        [{"args": [*local, "split=other", "limit=3", f"output_dir={tmp_path / 'cached'}"]},
         {"args": ["split=other", "limit=3", f"output_dir={tmp_path / 'gone'}"]}],
        tmp_path / "logs-after",
        env=env,
    )  # fmt: skip
    assert after[0]["code"] == 0, after[0]["output"]
    assert untimed(read_run(tmp_path / "cached")[0]) == untimed(local_rows)
    assert after[1]["code"] == 1
    errors = [line for line in after[1]["output"].splitlines() if line.startswith("w2v2bench: error:")]
    assert len(errors) == 1 and "Hugging Face Hub is unreachable" in errors[0] and "not in the Hugging" in errors[0]


@pytest.mark.slow
def test_a_dataset_repo_downloaded_to_the_cache_is_streamed_offline(repos, tiny_checkpoint, tmp_path):
    import os
    import subprocess
    import sys

    env = {"HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}
    with StandInHub(repos) as hub:  # what `hf download --repo-type dataset openslr/librispeech_asr` does
        script = "import huggingface_hub as h; h.snapshot_download('openslr/librispeech_asr', repo_type='dataset')"
        subprocess.run([sys.executable, "-c", script], env={**os.environ, **env, "HF_ENDPOINT": hub.url}, check=True)
        env["HF_ENDPOINT"] = hub.url
    args = [f"model.checkpoint={tiny_checkpoint}", "model.name=tiny", "split=other", "limit=3"]
    (offline,) = run_forked([{"args": [*args, f"output_dir={tmp_path / 'run'}"]}], tmp_path / "logs", env=env)
    assert offline["code"] == 0, offline["output"]
    rows, _ = read_run(tmp_path / "run")
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows) and len(rows) == 3
    assert all(r["error"] is None for r in rows)
