"""The Open ASR Leaderboard's English sets (issue #28, item 3): `data=open_asr data.set=<set>` on a fabricated copy
of the hf-audio/open-asr-leaderboard repo's parquet files (no Hub data), the leaderboard's rule for which rows
count, and `make open-asr`: every set scored the harness's way and the leaderboard's, in one table."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import LIBRISPEECH
from tests.helpers.harness import bench, evaluate, read_run
from w2v2bench.data.local import local_utterances

ROOT = Path(__file__).resolve().parents[2]
DEMO = ["model=demo", "device=cpu", "progress=false", "data=open_asr"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# rows the leaderboard's prepare_data leaves out: the normaliser empties their text (a filler, a marker only)
UNSCORED = [("uh", "x-filler"), ("ignore_time_segment_in_scoring", "x-marker")]


def _rows(split: str, count: int, prefix: str) -> list[dict]:
    """`count` shipped utterances of LibriSpeech `split` as the leaderboard's rows (lower-case text, an `id`), each
    id prefixed (so a test can tell which set a row came from), and the two rows it leaves out."""
    rows = [{"audio": {"bytes": Path(u.path).read_bytes(), "path": Path(u.path).name}, "text": u.text.lower(),
             "id": f"{prefix}-{u.id}"} for u in local_utterances(LIBRISPEECH, "test", split)[:count]]  # fmt: skip
    first = local_utterances(LIBRISPEECH, "test", split)[0]
    audio = {"bytes": Path(first.path).read_bytes(), "path": Path(first.path).name}
    return rows[:1] + [{"audio": audio, "text": t, "id": f"{prefix}-{i}"} for t, i in UNSCORED] + rows[1:]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """The repo's files for three sets in both layouts a copy can have: `<config>/<split>/*.parquet` (ami) and
    `<config>/<split>-*.parquet` with test.clean beside test.other (librispeech)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("open-asr-leaderboard")
    (root / "ami_cleaned" / "test").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(_rows("clean", 3, "ami")), root / "ami_cleaned" / "test" / "0000.parquet")
    (root / "librispeech").mkdir()
    for split, name in (("clean", "test.clean"), ("other", "test.other")):
        table = pa.Table.from_pylist(_rows(split, 3, split))
        pq.write_table(table, root / "librispeech" / f"{name}-00000-of-00001.parquet")
    return root


def test_a_set_reads_its_config_and_split_and_leaves_out_what_the_leaderboard_does(tmp_path, mirror, capsys):
    for name, prefix, split in (("ami", "ami", "test"), ("librispeech-other", "other", "test.other")):
        out = tmp_path / name
        assert evaluate(*DEMO, f"data.set={name}", f"data.dataset={mirror}", f"output_dir={out}") == 0
        rows, summary = read_run(out)
        # its own rows only (test.other's, not test.clean's beside them), the two unscored ones left out
        assert len(rows) == 3 and all(r["id"].startswith(f"{prefix}-") for r in rows), [r["id"] for r in rows]
        data = summary["config"]["data"]
        assert (data["config"], data["split"]) == ({"ami": "ami_cleaned"}.get(name, "librispeech"), split), data
        series = summary["measurement"]["series"]["data"]
        assert series["name"] == f"open_asr-{name}" and series["split"] is None and series["official"] is False
        assert summary["config"]["data"]["commit"].startswith("files:")
        printed = capsys.readouterr().out
        assert "left out 2 row(s)" in printed and "normalizer=whisper" in printed  # scored as written: a note
    # limit counts utterances, not rows: the left-out rows do not take its places
    assert evaluate(*DEMO, "data.set=ami", f"data.dataset={mirror}", "limit=2", f"output_dir={tmp_path / 'l'}") == 0
    assert len(read_run(tmp_path / "l")[0]) == 2


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.set=tedlium"], r"data.set='tedlium': the Open ASR Leaderboard's English sets are \['ami', "),
        (["data.config=foo"], r"data.config='foo': data=open_asr chooses it by data.set"),
        (["data.split=test"], r"data.split='test': data=open_asr chooses it by data.set \(librispeech-clean"),
        (["data.drop_unscored=nonesuch"], r"data.drop_unscored='nonesuch': expected null or one of"),
        # what an attack found: data.sets overridden to give another folder a set's name; a config that is a path
        (["data.set=ami", "data.sets.ami=[../other,test]"], r"data.sets is the Open ASR Leaderboard's own table"),
        (["+data.sets.mine=[librispeech,test.clean]", "data.set=mine"], r"data.sets is the Open ASR Leaderboard's"),
        (["data=hf", "data.config=../other"], r"data.config='../other': expected a dataset config's name"),
        # a split with no files of its own is never filled with another's (test.other beside no test.clean)
        (
            ["data=hf", "data.config=librispeech", "data.split=validation"],
            r"data.split='validation': .* has parquet files of the splits \['test.clean', 'test.other'\]",
        ),
        (["data=hf"], r"holds the configs \['ami_cleaned', 'librispeech'\]: name one with data.config"),
    ],
)
def test_a_set_or_setting_it_does_not_have_is_one_line_naming_the_allowed_ones(tmp_path, mirror, overrides, message):
    with pytest.raises(Exception, match=message):
        evaluate(*DEMO, f"data.dataset={mirror}", *overrides, f"output_dir={tmp_path / 'x'}")


def test_a_set_whose_rows_are_all_left_out_or_missing_is_one_line(tmp_path, mirror):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "copy"
    (root / "earnings22").mkdir(parents=True)  # only rows the leaderboard leaves out
    pq.write_table(pa.Table.from_pylist(_rows("clean", 0, "e")), root / "earnings22" / "test-00000-of-00001.parquet")
    (root / "librispeech").mkdir()  # test.other's files only: librispeech-clean has none
    shutil.copy(mirror / "librispeech" / "test.other-00000-of-00001.parquet", root / "librispeech")
    for name, message in (("earnings22", r"leaves out every one of its 2 rows"),
                          ("librispeech-clean", r"data.split='test.clean': .* splits \['test.other'\]")):  # fmt: skip
        with pytest.raises(Exception, match=message):
            evaluate(*DEMO, f"data.set={name}", f"data.dataset={root}", f"output_dir={tmp_path / name}")
        assert not (tmp_path / name).exists()


def test_offline_the_default_hub_id_reads_the_repo_from_the_hugging_face_cache(tmp_path, mirror):
    """The config as shipped (data.dataset=hf-audio/open-asr-leaderboard) with no Hub: the repo's files in the
    cache (as `hf download --repo-type dataset` leaves them) are read, their snapshot's commit recorded."""
    repo = tmp_path / "hub" / "datasets--hf-audio--open-asr-leaderboard"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(mirror / "ami_cleaned", repo / "snapshots" / COMMIT / "ami_cleaned")
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(repo.parent)}
    done = bench(*DEMO, "data.set=ami", f"output_dir={tmp_path / 'run'}", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    rows, summary = read_run(tmp_path / "run")
    assert len(rows) == 3 and summary["config"]["data"]["commit"] == COMMIT
    # not in the cache: one line saying the Hub is unreachable and what to do
    done = bench(*DEMO, "data.set=spgispeech", f"output_dir={tmp_path / 'none'}", env=env)
    assert done.returncode != 0 and "unreachable" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    # data=hf of the same Hub id offline: the cached copy's configs are not read as one set
    shutil.copytree(mirror / "librispeech", repo / "snapshots" / COMMIT / "librispeech")
    done = bench(*DEMO[:-1], "data=hf", "data.dataset=hf-audio/open-asr-leaderboard", f"output_dir={tmp_path / 'h'}",
                 env=env)  # fmt: skip
    assert done.returncode != 0 and "holds the configs ['ami_cleaned', 'librispeech']" in done.stderr, done.stderr


@pytest.mark.slow
def test_make_open_asr_scores_every_set_both_ways_in_one_table(tmp_path, mirror):
    venv = tmp_path / "venv"  # the Makefile's own venv step is skipped: this interpreter runs the targets
    venv.mkdir()
    (venv / ".installed").touch()
    board = tmp_path / "board"
    done = subprocess.run(
        [shutil.which("make"), "-s", "open-asr", f"VENV={venv}", f"PY={sys.executable}", f"OPEN_ASR_DIR={board}",
         "OPEN_ASR_SETS=ami,librispeech-clean", "OPEN_ASR_MODELS=demo",
         f"OPEN_ASR_ARGS=device=cpu progress=false data.dataset={mirror}"],
        cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = pd.read_csv(board / "table.csv")
    # each set twice: the harness's scoring (every word) and the leaderboard's (merged compounds), named as such
    assert sorted(zip(table["data"], table["merge_compounds"], strict=True)) == [
        ("open_asr-ami", False), ("open_asr-ami", True),
        ("open_asr-librispeech-clean", False), ("open_asr-librispeech-clean", True),
    ]  # fmt: skip
    assert set(table["normalizer"]) == {"whisper"} and table["series"].nunique() == 4
    assert sorted(table["scoring"]) == ["re-score", "re-score", "run", "run"]
