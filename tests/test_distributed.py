"""Scale-out on existing engines: torchrun (gloo on CPU) and Hydra's submitit launcher."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import LIBRISPEECH
from tests.helpers.harness import bench, local, read_run, untimed
from w2v2bench.data.local import local_utterances
from w2v2bench.distributed import duration_s, shard


def test_shards_are_balanced_by_seconds_and_cover_everything():
    utts = local_utterances(LIBRISPEECH, "test", "other")
    shards = [shard(utts, 3, r) for r in range(3)]
    assert sorted(u.index for s in shards for u in s) == list(range(len(utts)))
    seconds = [sum(duration_s(u) for u in s) for s in shards]
    assert max(seconds) - min(seconds) <= max(duration_s(u) for u in utts)
    assert all([u.index for u in s] == sorted(u.index for u in s) for s in shards)


@pytest.mark.slow  # a whole harness process: make test-slow
def test_torchrun_two_processes_equal_one(tiny_checkpoint, tmp_path):
    args = ["split=other", "limit=16", "batch_size=4"]
    single = bench(*local(tiny_checkpoint, tmp_path / "one", *args))
    assert single.returncode == 0, single.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "w2v2bench",
        *local(tiny_checkpoint, tmp_path / "two", *args),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows1, s1 = read_run(tmp_path / "one")
    rows2, s2 = read_run(tmp_path / "two")
    assert untimed(rows2) == untimed(rows1)
    assert (s2["wer"], s2["cer"], s2["n_utterances"]) == (s1["wer"], s1["cer"], 16)
    assert s2["world_size"] == 2 and [r["rank"] for r in s2["ranks"]] == [0, 1]
    assert sum(r["utterances"] for r in s2["ranks"]) == 16 and all(r["rtfx"] > 0 for r in s2["ranks"])
    assert not list((tmp_path / "two").glob("transcripts.partial*"))


@pytest.mark.slow
def test_submitit_local_multirun_writes_one_folder_per_job_and_one_table(tiny_checkpoint, tmp_path):
    overrides = local(tiny_checkpoint, str(tmp_path / "results" / "tiny" / "${split}"), "limit=3")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "w2v2bench",
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "split=clean,other",
            *overrides,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for split in ("clean", "other"):
        rows, summary = read_run(tmp_path / "results" / "tiny" / split)
        assert summary["config"]["split"] == split and len(rows) == 3
    table = subprocess.run(
        [sys.executable, "-m", "w2v2bench.table", f"root={tmp_path / 'results'}"], capture_output=True, text=True
    )
    assert table.returncode == 0, table.stderr
    assert "test-clean" in table.stdout and "test-other" in table.stdout
    assert json.loads((tmp_path / "results" / "tiny" / "clean" / "summary.json").read_text())["status"] == "complete"
