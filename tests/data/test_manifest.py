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


@pytest.fixture(scope="module")
def lhotse_corpus(tmp_path_factory):
    """lhotse's own LibriSpeech recipe over the shipped test-clean: recordings, supervisions, and their cuts."""
    lhotse = pytest.importorskip("lhotse")
    from lhotse.recipes import prepare_librispeech

    folder = tmp_path_factory.mktemp("lhotse")
    parts = prepare_librispeech(LIBRISPEECH, output_dir=folder, dataset_parts=["test-clean"], num_jobs=1)
    part = parts["test-clean"]
    lhotse.CutSet.from_manifests(recordings=part["recordings"], supervisions=part["supervisions"]).to_file(
        folder / "cuts.jsonl.gz"
    )
    return folder


def test_lhotse_supervisions_and_cuts_give_the_openslr_readers_transcripts(tmp_path, lhotse_corpus):
    assert evaluate(*DEMO, "data=local", f"data.root={LIBRISPEECH}", f"output_dir={tmp_path / 'openslr'}") == 0
    supervisions = lhotse_corpus / "librispeech_supervisions_test-clean.jsonl.gz"
    for name, path in (("supervisions", supervisions), ("cuts", lhotse_corpus / "cuts.jsonl.gz")):
        assert evaluate(*DEMO, "data=lhotse", f"data.path={path}", f"output_dir={tmp_path / name}") == 0
    openslr = {r["id"]: r for r in read_run(tmp_path / "openslr")[0]}
    for name in ("supervisions", "cuts"):
        rows, summary = read_run(tmp_path / name)
        assert {r["id"]: r["pred_text"] for r in rows} == {i: r["pred_text"] for i, r in openslr.items()}, name
        assert {r["id"]: r["speaker"] for r in rows} == {i: r["speaker"] for i, r in openslr.items()}
        assert summary["config"]["data"]["commit"].startswith("sha256:")


def test_a_lhotse_source_that_would_fetch_or_run_something_is_never_read(tmp_path, lhotse_corpus):
    # lhotse's `command` and `url` sources would run a shell command or fetch a URL: recorded failures, never run
    lhotse = pytest.importorskip("lhotse")
    recordings = lhotse.load_manifest(lhotse_corpus / "librispeech_recordings_test-clean.jsonl.gz")
    marker = tmp_path / "ran"
    hostile = []
    for i, recording in enumerate(recordings):
        entry = recording.to_dict()
        if i == 0:
            entry["sources"] = [{"type": "command", "channels": [0], "source": f"touch {marker}; cat /dev/null"}]
        if i == 1:
            entry["sources"] = [{"type": "url", "channels": [0], "source": "http://127.0.0.1:9/x.flac"}]
        hostile.append(entry)
    lhotse.RecordingSet.from_dicts(hostile).to_file(tmp_path / "recordings.jsonl")
    supervisions = lhotse_corpus / "librispeech_supervisions_test-clean.jsonl.gz"
    out = tmp_path / "run"
    hostile_recordings = f"data.recordings={tmp_path / 'recordings.jsonl'}"
    assert evaluate(*DEMO, "data=lhotse", f"data.path={supervisions}", hostile_recordings, f"output_dir={out}") == 0
    rows, summary = read_run(out)
    errors = [r["error"] for r in rows if r["error"]]
    assert len(errors) == 2 and all("not read (files only: nothing is fetched or run)" in e for e in errors)
    assert summary["n_failed"] == 2 and not marker.exists()


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.path={corpus}/librispeech_supervisions_test-clean.jsonl.gz", "data.recordings={tmp}/none.jsonl"],
         "data.recordings="),
        (["data.path={tmp}/m.yaml"], "expected a lhotse manifest (.jsonl, .jsonl.gz, .json, .json.gz)"),
        (["data.path={tmp}/junk.jsonl"], "not a lhotse manifest"),
    ],
)  # fmt: skip
def test_a_lhotse_manifest_that_cannot_be_read_is_one_line(tmp_path, lhotse_corpus, overrides, message, capsys):
    (tmp_path / "m.yaml").write_text("!!python/object/apply:os.system ['true']\n")
    (tmp_path / "junk.jsonl").write_text('{"what": 1}\n')
    overrides = [o.format(corpus=lhotse_corpus, tmp=tmp_path) for o in overrides]
    with pytest.raises(Exception) as caught:
        evaluate(*DEMO, "data=lhotse", *overrides, f"output_dir={tmp_path / 'run'}")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_what_an_attack_found_is_one_line_or_a_recorded_failure(tmp_path):
    audio = str(LIBRISPEECH / "test-clean/1089/134686/1089-134686-0000.flac")
    entries = [
        {"audio_filepath": audio, "text": "A", "offset": 1e306, "duration": 1},
        {"audio_filepath": audio, "text": "B", "offset": 1, "duration": 1e306, "id": "huge"},
        {"audio_filepath": "a\u0000b.flac", "text": "C", "id": "nul"},
        {"audio_filepath": audio, "text": "D", "id": "u-line6"},
        {"audio_filepath": audio, "text": "E", "id": "u"},
        {"audio_filepath": audio, "text": "F", "id": "u"},
        {"audio_filepath": audio, "text": "G", "id": "a\nb (c)"},
        {"audio_filepath": audio, "text": "H", "id": True},
        {"audio_filepath": audio, "text": "I", "offset": True, "id": "bool"},
        {"audio_filepath": audio, "text": "J", "speaker": 0, "id": "zero"},
    ]
    (tmp_path / "m.json").write_text("".join(json.dumps(e) + "\n" for e in entries))
    found, _ = manifest_utterances(settings(tmp_path / "m.json"))
    ids = [u.id for u in found]
    assert len(set(ids)) == len(ids) == 10  # every row an id of its own
    errors = {u.text: u.error or "" for u in found}
    assert "is not a number of seconds from 0 to 1e+07" in errors["A"] and "seconds" in errors["B"]
    assert "cannot be used" in errors["C"] and "is also on" in errors["F"] and not errors["D"] and not errors["E"]
    assert "not a plain id" in errors["G"] and "not a plain id" in errors["H"] and "seconds" in errors["I"]
    assert all(" " not in i and "(" not in i and "\n" not in i for i in ids)
    assert [u.speaker for u in found if u.id == "zero"] == ["0"]


def test_a_tsv_quotes_nothing_and_a_broken_csv_is_one_line(tmp_path):
    audio = str(LIBRISPEECH / "test-clean/1089/134686/1089-134686-0000.flac")
    (tmp_path / "cv.tsv").write_text(f'path\tsentence\n{audio}\t"he said, hi\n{audio}\tB\n')
    found, _ = manifest_utterances(settings(tmp_path / "cv.tsv"))
    assert [u.text for u in found] == ['"he said, hi', "B"]
    (tmp_path / "bad.csv").write_text('audio_filepath,text\na.flac,"' + "x" * 200_000)
    with pytest.raises(DataError, match=r"bad.csv:\d+: not CSV"):
        manifest_utterances(settings(tmp_path / "bad.csv"))


def test_a_set_name_never_leads_out_of_results(tmp_path, corpus, monkeypatch):
    folder, _ = corpus
    monkeypatch.chdir(tmp_path)
    for name in ("../../../escaped", "", "a b"):
        with pytest.raises(Exception, match="data.name=.*expected a plain name"):
            evaluate(*DEMO, "data=manifest", f"data.path={folder / 'clean.json'}", f"data.name='{name}'", "limit=1")
    assert not any(tmp_path.iterdir())


def test_a_sets_model_index_entry_names_the_set(tmp_path, corpus):
    folder, _ = corpus
    assert evaluate(*DEMO, "data=manifest", f"data.path={folder / 'clean.json'}", "data.name=librispeech",
                    f"output_dir={tmp_path / 'run'}") == 0  # fmt: skip
    record = export([tmp_path / "run"], tmp_path / "out", formats=["model-index", "leaderboard"], model_id="org/m")
    import yaml

    (entry,) = yaml.safe_load((tmp_path / "out" / "model-index.yaml").read_text())["model-index"][0]["results"]
    assert entry["dataset"] == {"name": "librispeech", "type": "librispeech", "args": {"language": "en"}}
    assert entry["metrics"][0]["name"] == "Test WER" and not record["model_index_skipped"]
    (name,) = [p.name for p in (tmp_path / "out").glob("*.jsonl")]
    assert "librispeech_test.clean" not in name  # never one of the leaderboard's LibriSpeech columns


def test_lhotse_values_that_are_no_segment_are_recorded_failures(tmp_path, lhotse_corpus):
    lhotse = pytest.importorskip("lhotse")
    supervisions = lhotse.load_manifest(lhotse_corpus / "librispeech_supervisions_test-clean.jsonl.gz")
    entries = [s.to_dict() for s in supervisions]
    entries[0]["start"], entries[1]["start"], entries[2]["duration"] = -5, float("inf"), -1.0
    (tmp_path / "supervisions.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries[:4]))
    recordings = lhotse_corpus / "librispeech_recordings_test-clean.jsonl.gz"
    status = evaluate(*DEMO, "data=lhotse", f"data.path={tmp_path / 'supervisions.jsonl'}",
                      f"data.recordings={recordings}", f"output_dir={tmp_path / 'run'}")  # fmt: skip
    rows, summary = read_run(tmp_path / "run")
    assert status == 0 and summary["n_failed"] == 3 and summary["n_utterances"] == 4
    assert all("is not a number of seconds" in r["error"] for r in rows if r["error"])
    cuts = lhotse.load_manifest(lhotse_corpus / "cuts.jsonl.gz")
    first, second = cuts[0], cuts[1]
    lhotse.CutSet.from_cuts([first.mix(second, offset_other_by=1.0), second]).to_file(tmp_path / "mixed.jsonl")
    assert evaluate(*DEMO, "data=lhotse", f"data.path={tmp_path / 'mixed.jsonl'}", f"output_dir={tmp_path / 'm'}") == 0
    rows = read_run(tmp_path / "m")[0]
    assert any("in a mixed cut (several recordings): not read" in (r["error"] or "") for r in rows)
