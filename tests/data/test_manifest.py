"""Your own test set (issue #28, items 1, 2 and 4 in part): a NeMo manifest or a CSV/TSV (`data=manifest`), read
as the OpenSLR reader reads the same corpus, named by its own name, validated utterance by utterance."""

from __future__ import annotations

import csv
import json

import pytest
import soundfile as sf

from tests.helpers import LIBRISPEECH
from tests.helpers.harness import evaluate, read_run
from w2v2bench.cli.table import main as table
from w2v2bench.data import DataError
from w2v2bench.data.local import local_utterances
from w2v2bench.data.manifest import ManifestSettings, manifest_utterances
from w2v2bench.export import export

DEMO = ["model=demo", "device=cpu", "progress=false"]


def nemo_manifest(path, utterances, relative_to=None) -> list[dict]:
    """A NeMo manifest of `utterances` (paths relative to `relative_to` where given)."""
    entries = []
    for u in utterances:
        audio = u.path if relative_to is None else str(__import__("os").path.relpath(u.path, relative_to))
        entries.append({"audio_filepath": audio, "text": u.text, "duration": sf.info(u.path).duration})
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return entries


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The shipped LibriSpeech test-clean (8 utterances) as a NeMo manifest (relative paths) and a Common Voice-style
    CSV (`path`, `sentence`, `client_id`), beside the OpenSLR tree."""
    folder = tmp_path_factory.mktemp("manifests")
    utterances = local_utterances(LIBRISPEECH, "test", "clean")
    nemo_manifest(folder / "clean.json", utterances, relative_to=folder)
    with (folder / "clean.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["client_id", "path", "sentence"])
        for u in utterances:
            writer.writerow([u.speaker, u.path, u.text])
    return folder, utterances


def test_a_nemo_manifest_and_a_csv_give_the_openslr_readers_transcripts(tmp_path, corpus):
    folder, utterances = corpus
    assert evaluate(*DEMO, "data=local", f"data.root={LIBRISPEECH}", f"output_dir={tmp_path / 'openslr'}") == 0
    assert (
        evaluate(*DEMO, "data=manifest", f"data.path={folder / 'clean.json'}", f"output_dir={tmp_path / 'nemo'}") == 0
    )
    assert evaluate(*DEMO, "data=manifest", f"data.path={folder / 'clean.csv'}", "data.id_column=null",
                    f"output_dir={tmp_path / 'csv'}") == 0  # fmt: skip
    openslr, _ = read_run(tmp_path / "openslr")
    by_path = {r["audio_filepath"]: r["pred_text"] for r in openslr}
    for name in ("nemo", "csv"):
        rows, summary = read_run(tmp_path / name)
        assert {r["audio_filepath"]: r["pred_text"] for r in rows} == by_path, name
        assert sorted(r["id"] for r in rows) == sorted(u.id for u in utterances)  # the file names, as no id is given
        assert summary["config"]["data"]["commit"].startswith("sha256:")  # the manifest it read
        assert summary["measurement"]["series"]["data"]["name"] == "clean"
    assert {r["speaker"] for r in read_run(tmp_path / "csv")[0]} == {u.speaker for u in utterances}


def test_a_set_is_named_by_its_own_name_in_folders_and_tables(tmp_path, corpus, monkeypatch, capsys):
    folder, _ = corpus
    monkeypatch.chdir(tmp_path)  # output_dir's default: results/<model>/<the set's name>/...
    assert evaluate(*DEMO, "data=manifest", f"data.path={folder / 'clean.json'}", "data.name=my-set", "limit=2") == 0
    (summary,) = (tmp_path / "results").rglob("summary.json")
    assert summary.parent.parent == tmp_path / "results" / "demo" / "my-set"
    record = json.loads(summary.read_text())["measurement"]["series"]["data"]
    assert (record["name"], record["partition"], record["split"]) == ("my-set", None, None)
    capsys.readouterr()
    assert table([f"root={tmp_path / 'results'}"]) == 0
    assert "| demo    | my-set | my-set  |" in capsys.readouterr().out


def test_segments_of_one_file_are_utterances_of_their_own(tmp_path, capsys):
    (u,) = [u for u in local_utterances(LIBRISPEECH, "test", "clean") if u.id == "1089-134686-0000"]
    length = sf.info(u.path).duration
    entries = [
        {"audio_filepath": u.path, "offset": 0.0, "duration": round(length / 2, 3), "text": "HE HOPED"},
        {"audio_filepath": u.path, "offset": round(length / 2, 3), "duration": 1.0, "text": "STEW"},
        {"audio_filepath": u.path, "offset": length - 0.5, "duration": 5.0, "text": "PAST THE END"},
        {"audio_filepath": u.path, "text": "the whole file, lower case, punctuated."},
    ]
    (tmp_path / "segments.json").write_text("".join(json.dumps(e) + "\n" for e in entries))
    status = evaluate(*DEMO, "data=manifest", f"data.path={tmp_path / 'segments.json'}", f"output_dir={tmp_path / 'r'}")
    rows, summary = read_run(tmp_path / "r")
    assert status == 0 and len({r["id"] for r in rows}) == 4
    by_text = {r["text"]: r for r in rows}
    assert by_text["HE HOPED"]["duration_s"] == pytest.approx(length / 2, abs=1e-3)
    assert by_text["STEW"]["duration_s"] == pytest.approx(1.0, abs=1e-3)
    assert "ends past the file's" in by_text["PAST THE END"]["error"] and summary["n_failed"] == 1
    assert by_text["the whole file, lower case, punctuated."]["duration_s"] == pytest.approx(length, abs=1e-3)
    assert "1 of 4 references have lower-case letters or punctuation" in capsys.readouterr().out
    assert by_text["STEW"]["offset"] == round(length / 2, 3) and by_text["HE HOPED"]["offset"] == 0.0

    # exported, the segments stay segments: NeMo's offset, one lhotse recording with a supervision for each
    lhotse = pytest.importorskip("lhotse")
    export([tmp_path / "r"], tmp_path / "out", formats=["nemo", "lhotse"])
    nemo = [json.loads(line) for line in (tmp_path / "out" / "segments.nemo.json").read_text().splitlines()]
    assert sorted(n.get("offset", -1) for n in nemo) == [-1, 0.0, round(length / 2, 3)]  # the failed one left out
    recordings = lhotse.load_manifest(tmp_path / "out" / "segments.recordings.json")
    supervisions = lhotse.load_manifest(tmp_path / "out" / "segments.supervisions.json")
    lhotse.validate_recordings_and_supervisions(recordings, supervisions)
    assert len(recordings) == 2 and sorted(round(s.start, 3) for s in supervisions) == [0.0, 0.0, round(length / 2, 3)]


def settings(path, **kw) -> ManifestSettings:
    return ManifestSettings(name="x", path=str(path), **kw)


def test_what_makes_one_entry_unusable_is_its_recorded_failure(tmp_path):
    audio = str(LIBRISPEECH / "test-clean/1089/134686/1089-134686-0000.flac")
    entries = [
        {"audio_filepath": audio, "text": "A", "id": "one"},
        {"audio_filepath": audio, "text": "B", "id": "one"},
        {"audio_filepath": audio, "text": "  ", "id": "two"},
        {"text": "C", "id": "three"},
        {"audio_filepath": audio, "text": "D", "id": "four", "offset": "soon"},
    ]
    (tmp_path / "m.json").write_text("".join(json.dumps(e) + "\n" for e in entries))
    found, digest = manifest_utterances(settings(tmp_path / "m.json"))
    errors = {u.id: u.error for u in found}
    assert len(errors) == 5 and errors["one"] is None and len(digest) == 64
    assert "id 'one' is also on" in errors["one-line2"]
    assert "no text for two" in errors["two"] and "no audio path for three" in errors["three"]
    assert "offset 'soon' is not a number of seconds" in errors["four"]


@pytest.mark.parametrize(
    "content,name,kw,message",
    [
        ('{"audio_filepath": "a.flac", "text": "A"}\n{oops\n', "m.json", {}, "m.json:2: not a JSON line"),
        ("[1, 2]\n", "m.json", {}, "m.json:1: expected a JSON object, found list"),
        ('{"file": "a.flac", "words": "A"}\n', "m.json", {}, "no text field (looked for"),
        ("path,sentence\na.flac,A\n", "m.csv", {"text_column": "text"}, "data.text_column='text': "),
        ("", "m.tsv", {}, "no header line"),
        ("\n\n", "m.json", {}, "no entries"),
    ],
)
def test_a_manifest_that_cannot_be_read_is_one_line(tmp_path, content, name, kw, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=None) as caught:
        manifest_utterances(settings(tmp_path / name, **kw))
    assert message in str(caught.value) and "\n" not in str(caught.value)
