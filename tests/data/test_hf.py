"""Any Hugging Face dataset, its columns named (issue #28, item 1): parquet files and a save_to_disk folder of the
shipped LibriSpeech audio, Common Voice-style columns, give the OpenSLR reader's transcripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import LIBRISPEECH
from tests.helpers.harness import evaluate, read_run
from w2v2bench.data.local import local_utterances

DEMO = ["model=demo", "device=cpu", "progress=false"]
COMMON_VOICE = ["data.text_column=sentence", "data.speaker_column=client_id"]


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """The shipped test-clean as (a folder of parquet files with a {bytes, path} `path` column, a save_to_disk
    DatasetDict with an Audio column), both with Common Voice's `sentence` and `client_id`."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("hf")
    utterances = local_utterances(LIBRISPEECH, "test", "clean")
    rows = [{"path": {"bytes": Path(u.path).read_bytes(), "path": Path(u.path).name}, "sentence": u.text,
             "client_id": u.speaker} for u in utterances]  # fmt: skip
    (folder / "cv").mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:5]), folder / "cv" / "test-00000.parquet")
    pq.write_table(pa.Table.from_pylist(rows[5:]), folder / "cv" / "test-00001.parquet")
    disk = datasets.Dataset.from_list([{"audio": u.path, "sentence": u.text, "client_id": u.speaker, "id": u.id}
                                       for u in utterances])  # fmt: skip
    disk = disk.cast_column("audio", datasets.Audio(sampling_rate=None, decode=True))
    datasets.DatasetDict({"test": disk}).save_to_disk(str(folder / "saved"))
    return folder, utterances


def test_parquet_files_and_a_saved_dataset_give_the_openslr_readers_transcripts(tmp_path, sets):
    folder, utterances = sets
    assert evaluate(*DEMO, "data=local", f"data.root={LIBRISPEECH}", f"output_dir={tmp_path / 'openslr'}") == 0
    openslr = {Path(r["audio_filepath"]).stem: r for r in read_run(tmp_path / "openslr")[0]}
    runs = {
        "parquet": [f"data.dataset={folder / 'cv'}", "data.audio_column=path"],
        "glob": [f"data.dataset={folder / 'cv'}/test-*.parquet", "data.audio_column=path", "data.name=cv-glob"],
        "saved": [f"data.dataset={folder / 'saved'}", "data.split=test"],
    }
    for name, overrides in runs.items():
        assert evaluate(*DEMO, "data=hf", *COMMON_VOICE, *overrides, f"output_dir={tmp_path / name}") == 0, name
        rows, summary = read_run(tmp_path / name)
        assert sorted(r["id"] for r in rows) == sorted(u.id for u in utterances), name  # the file names, or `id`
        assert {r["id"]: r["pred_text"] for r in rows} == {i: r["pred_text"] for i, r in openslr.items()}, name
        assert {r["id"]: r["speaker"] for r in rows} == {i: r["speaker"] for i, r in openslr.items()}, name
    assert read_run(tmp_path / "parquet")[1]["measurement"]["series"]["data"]["name"] == "cv-test"


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.dataset={folder}/cv"], "no column 'audio' (it has ['client_id', 'path', 'sentence']): name it with "
         "data.audio_column=<column>"),
        (["data.dataset={folder}/saved", "data.split=train"], "data.split='train': "),
        (["data.dataset={folder}/none-*.parquet"], "no parquet files there"),
    ],
)  # fmt: skip
def test_a_dataset_that_cannot_be_read_as_configured_is_one_line(tmp_path, sets, overrides, message):
    folder, _ = sets
    with pytest.raises(Exception) as caught:
        evaluate(*DEMO, "data=hf", *COMMON_VOICE, *(o.format(folder=folder) for o in overrides),
                 f"output_dir={tmp_path / 'run'}")  # fmt: skip
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_what_an_attack_found_in_a_dataset_is_one_line_or_a_recorded_failure(tmp_path, sets):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder, utterances = sets
    flac = Path(utterances[0].path).read_bytes()
    # audio as bytes with no path (the usual layout of audio built from arrays): ids by row, none failed
    pq.write_table(pa.Table.from_pylist([{"audio": {"bytes": flac, "path": None}, "text": "A B"}] * 3),
                   tmp_path / "nopath.parquet")  # fmt: skip
    assert (
        evaluate(*DEMO, "data=hf", f"data.dataset={tmp_path / 'nopath.parquet'}", f"output_dir={tmp_path / 'a'}") == 0
    )
    rows, summary = read_run(tmp_path / "a")
    assert [r["id"] for r in rows] == ["row000000", "row000001", "row000002"] and summary["n_failed"] == 0
    # a downloaded Hub repo: data/test-*.parquet beside data/train-*.parquet; data.split picks
    repo = tmp_path / "repo" / "data"
    repo.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"audio": {"bytes": flac, "path": "t.flac"}, "text": "A"}] * 2),
                   repo / "test-00000-of-00001.parquet")  # fmt: skip
    pq.write_table(pa.Table.from_pylist([{"audio": {"bytes": flac, "path": "x.flac"}, "text": "B"}] * 3),
                   repo / "train-00000-of-00001.parquet")  # fmt: skip
    assert evaluate(*DEMO, "data=hf", f"data.dataset={tmp_path / 'repo'}", f"output_dir={tmp_path / 'b'}") == 0
    assert read_run(tmp_path / "b")[1]["n_utterances"] == 2
    with pytest.raises(Exception, match=r"data.split='dev': .* has parquet files of the splits \['test', 'train'\]"):
        evaluate(
            *DEMO, "data=hf", f"data.dataset={tmp_path / 'repo'}", "data.split=dev", f"output_dir={tmp_path / 'c'}"
        )
    # a second Audio column is left encoded too; a path that is no path, or a misspelt column
    disk = datasets.Dataset.from_list(
        [
            {"audio": utterances[0].path, "path": "a\u0000b.flac", "text": "A"},
            {"audio": utterances[0].path, "path": "~nosuchuser/a.flac", "text": "B"},
        ]
    )
    disk.cast_column("audio", datasets.Audio()).save_to_disk(str(tmp_path / "two"))  # fmt: skip
    assert evaluate(*DEMO, "data=hf", f"data.dataset={tmp_path / 'two'}", "data.audio_column=path",
                    f"output_dir={tmp_path / 'd'}") == 0  # fmt: skip
    assert read_run(tmp_path / "d")[1]["n_failed"] == 2
    with pytest.raises(Exception, match="no column 'nope'"):
        evaluate(
            *DEMO, "data=hf", f"data.dataset={tmp_path / 'two'}", "data.id_column=nope", f"output_dir={tmp_path}/e"
        )
