import os
import re
import shutil
import time

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import LIBRISPEECH
from tests.helpers.harness import mirror_repo
from w2v2bench.data import AudioError, DataError, Utterance
from w2v2bench.data.audio import decode, load_audio
from w2v2bench.data.batching import decoded_windows, plan_batches
from w2v2bench.data.local import local_utterances


def test_local_tree_in_corpus_order():
    utts = local_utterances(LIBRISPEECH, "test", "clean")
    assert [u.id for u in utts] == sorted(u.id for u in utts) and len(utts) == 8
    first = utts[0]
    assert (first.id, first.speaker, first.chapter) == ("1089-134686-0000", "1089", "134686")
    assert first.text.startswith("HE HOPED THERE WOULD BE STEW") and first.error is None
    assert [u.index for u in utts] == list(range(8))


def test_parent_librispeech_folder_is_accepted():
    assert len(local_utterances(LIBRISPEECH.parent, "test", "other")) == 100
    assert len(local_utterances(LIBRISPEECH, "dev", "clean")) == 1


def test_missing_root_and_missing_split_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        local_utterances(tmp_path / "nowhere", "test", "clean")
    with pytest.raises(DataError, match=r"no dev-other/.*subsets found: \['dev-clean', 'test-clean', 'test-other'\]"):
        local_utterances(LIBRISPEECH, "dev", "other")


def test_empty_split_folder(tmp_path):
    (tmp_path / "test-clean").mkdir()
    with pytest.raises(DataError, match=r"test-clean: no audio files \(.flac, .wav\) and no transcript lines"):
        local_utterances(tmp_path, "test", "clean")


def test_per_utterance_faults_become_errors_naming_the_file(broken_tree):
    utts = {u.id: u for u in local_utterances(broken_tree, "test", "clean")}
    assert utts["1089-134686-0004"].error.endswith("transcript line for 1089-134686-0004 but no 1089-134686-0004.flac")
    assert utts["1089-134686-0004"].text == "A LINE WITH NO AUDIO"  # whitespace collapsed
    assert "1089-134686-0006.flac: audio with no transcript line" in utts["1089-134686-0006"].error
    decoded = {k: decode(u, lambda w: w) for k, u in utts.items()}
    assert decoded["1089-134686-0000"].error is None and decoded["1089-134686-0000"].duration_s > 10
    assert "1089-134686-0002.flac: cannot decode audio" in decoded["1089-134686-0002"].error
    assert "1089-134686-0003.flac: cannot decode audio" in decoded["1089-134686-0003"].error


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 16000])
@pytest.mark.parametrize("channels", [1, 2])
def test_audio_is_resampled_and_downmixed_to_16k_mono(tmp_path, rate, channels):
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = tmp_path / "tone.flac"
    sf.write(path, np.stack([tone] * channels, axis=1), rate)
    wave, notes = load_audio(str(path), "tone")
    assert wave.dtype == np.float32 and wave.ndim == 1 and abs(len(wave) - 16000) <= 1
    assert ("downmixed 2 channels" in notes) == (channels == 2)
    assert any("resampled" in n for n in notes) == (rate != 16000)


def test_non_finite_samples_are_refused(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.0, np.nan, 0.1], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio(str(path), str(path))


@given(st.lists(st.integers(1, 50_000), min_size=1, max_size=60), st.integers(1, 8), st.integers(1, 200_000))
def test_batches_cover_every_utterance_once_within_bounds(lengths, batch_size, max_samples):
    batches = plan_batches(lengths, batch_size, max_samples)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= batch_size
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= max_samples
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)


def test_windows_keep_corpus_order():
    utts = [Utterance(i, f"u{i}", "1", "1", "A", error="skip") for i in range(10)]
    windows = list(decoded_windows(utts, lambda w: w, window=3, workers=2))
    assert [len(w) for w in windows] == [3, 3, 3, 1]
    assert [d.utterance.index for w in windows for d in w] == list(range(10))


class FakeStream:
    """What `datasets.load_dataset(..., streaming=True)` gives for openslr/librispeech_asr, audio undecoded."""

    def __init__(self, rows):
        self.rows, self.cast = rows, None

    def cast_column(self, name, feature):
        self.cast = (name, feature)
        return self

    def __iter__(self):
        return iter(self.rows)


def test_hub_rows_become_utterances_decoded_from_bytes(monkeypatch):
    import datasets

    from w2v2bench.data.hub import hub_utterances

    flac = LIBRISPEECH / "test-clean/1089/134686/1089-134686-0001.flac"
    row = {
        "file": "1089-134686-0001.flac",
        "audio": {"bytes": flac.read_bytes(), "path": "1089-134686-0001.flac"},
        "text": "STUFF IT INTO YOU HIS BELLY COUNSELLED HIM",
        "speaker_id": 1089,
        "chapter_id": 134686,
        "id": "1089-134686-0001",
    }
    calls = []

    def load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        return stream

    stream = FakeStream([row])
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    utts = list(hub_utterances("openslr/librispeech_asr", "abc123", "clean", "test"))
    assert calls == [(("openslr/librispeech_asr", "clean"), {"split": "test", "streaming": True, "revision": "abc123"})]
    assert stream.cast[0] == "audio" and stream.cast[1].decode is False
    (u,) = utts
    assert (u.id, u.speaker, u.chapter, u.index) == ("1089-134686-0001", "1089", "134686", 0)
    decoded = decode(u, lambda w: w)
    assert decoded.error is None
    assert np.array_equal(decoded.input_values, load_audio(str(flac), "")[0])


@pytest.mark.parametrize(
    "overrides,called",
    [
        (["split=other"], (("openslr/librispeech_asr", "other"), "test")),
        (["data.partition=dev"], (("openslr/librispeech_asr", "clean"), "validation")),  # the Hub's name for dev
        (["data=esb", "split=other"], (("hf-audio/esb-datasets-test-only-sorted", "librispeech"), "test.other")),
        (["data=esb", "data.dataset=hf-audio/open-asr-leaderboard"],
         (("hf-audio/open-asr-leaderboard", "librispeech"), "test.clean")),
    ],
)  # fmt: skip
def test_each_hub_dataset_names_its_config_and_split_in_its_conf_file(monkeypatch, overrides, called):
    import datasets

    from tests.helpers.harness import open_source
    from w2v2bench.data import hub as cli

    calls = []
    row = {"audio": {"bytes": b"", "path": "x.flac"}, "text": "A", "id": "1-2-3"}

    def load_dataset(*args, **kwargs):
        calls.append((args, kwargs["split"]))
        return FakeStream([row])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(cli, "hub_unreachable_reason", lambda: None)
    utterances, _ = open_source(overrides)
    assert calls == [called]  # opened (its first row read) before the model would load
    assert [u.id for u in utterances] == ["1-2-3"]


def test_a_split_a_hub_dataset_does_not_have_is_named(monkeypatch):
    from tests.helpers.harness import open_source
    from w2v2bench.data import hub as cli
    from w2v2bench.errors import ConfigError

    monkeypatch.setattr(cli, "hub_unreachable_reason", lambda: None)
    with pytest.raises(ConfigError, match=r"has no dev-clean: it has \['test-clean', 'test-other'\]"):
        open_source(["data=esb", "data.partition=dev"])


def test_a_dataset_that_cannot_be_opened_fails_before_the_model_loads_in_one_line(monkeypatch):
    import datasets

    from tests.helpers.harness import open_source
    from w2v2bench.data import hub as cli

    def load_dataset(*args, **kwargs):
        raise ValueError("BuilderConfig 'clean' not found.\nAvailable: ['all']")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(cli, "hub_unreachable_reason", lambda: None)
    with pytest.raises(DataError) as err:
        open_source(["data.revision=abc123"])
    message = str(err.value)
    assert (
        "\n" not in message and "openslr/librispeech_asr (config 'clean', split 'test', revision 'abc123')" in message
    )
    assert "BuilderConfig 'clean' not found" in message


# ---- dirty corpora, through the public command ----------------------------------------------------------


def dirty_tree(root):
    """Real audio in an OpenSLR tree with every ambiguity a hand-made copy of LibriSpeech shows."""
    sources = sorted((LIBRISPEECH / "test-clean").glob("*/*/*.flac"))
    one, two = root / "test-clean/7/1", root / "test-clean/7/2"
    one.mkdir(parents=True)
    two.mkdir(parents=True)
    for n, source in enumerate(sources[:8]):
        shutil.copy(source, one / f"7-1-000{n}.flac")
    shutil.copy(sources[0], one / "7-1-0001.wav")  # .flac beside .wav
    shutil.copy(sources[0], two / "7-1-0002.flac")  # the same id in another chapter
    os.mkfifo(one / "7-1-0007.flac.tmp")
    (one / "7-1-0007.flac").unlink()
    os.rename(one / "7-1-0007.flac.tmp", one / "7-1-0007.flac")  # a FIFO where the audio should be
    (one / "7-1.trans.txt").write_text(
        "7-1-0000 HE HOPED\n7-1-0001 STUFF IT\n7-1-0002 AFTER EARLY\n7-1-0003 HELLO BERTIE\n"
        "7-1-0004\n7-1-0005 ONE\n7-1-0005 TWO\n7-1-0006 YES\n7-1-0007 A FIFO\n"
    )
    (two / "7-2.trans.txt").write_text("7-1-0006 YES AGAIN\n")
    return root


# id -> fragment of its error (None: transcribed)
DIRTY = {
    "7-1-0000": None,
    "7-1-0001": "2 audio files",
    "7-1-0002": "2 audio files",
    "7-1-0003": None,
    "7-1-0004": "has no text",
    "7-1-0005": "on 2 transcript lines",
    "7-1-0006": "on 2 transcript lines",
    "7-1-0007": "is a FIFO",
}


@pytest.mark.slow  # a whole harness process: make test-slow
def test_a_dirty_corpus_gives_each_ambiguous_utterance_an_error_naming_both_places(tiny_checkpoint, tmp_path):
    from tests.helpers.harness import bench, local, read_run

    root = dirty_tree(tmp_path / "tree")
    done = bench(*local(tiny_checkpoint, tmp_path / "run"), f"data.root={root}")
    assert done.returncode == 0, done.stderr
    rows, summary = read_run(tmp_path / "run")
    by_id = {r["id"]: r for r in rows}
    assert sorted(by_id) == sorted(DIRTY)
    for utt_id, fragment in DIRTY.items():
        if fragment is None:
            assert by_id[utt_id]["error"] is None and by_id[utt_id]["pred_text"] is not None, utt_id
        else:
            assert fragment in by_id[utt_id]["error"], (utt_id, by_id[utt_id]["error"])
    assert "7-1.trans.txt:6" in by_id["7-1-0005"]["error"] and "7-1.trans.txt:7" in by_id["7-1-0005"]["error"]
    assert "7-2.trans.txt:1" in by_id["7-1-0006"]["error"] and "7-1.trans.txt:8" in by_id["7-1-0006"]["error"]
    assert "7-1-0001.wav" in by_id["7-1-0001"]["error"] and "7-1-0001.flac" in by_id["7-1-0001"]["error"]
    assert summary["n_failed"] == sum(1 for f in DIRTY.values() if f)


def test_byte_order_marks_sidecars_and_odd_line_breaks_are_read_as_people_mean_them(tmp_path):
    chapter = tmp_path / "test-clean/7/1"
    chapter.mkdir(parents=True)
    source = LIBRISPEECH / "test-clean/1089/134686/1089-134686-0000.flac"
    shutil.copy(source, chapter / "7-1-0000.flac")
    shutil.copy(source, chapter / "7-1-0001.flac")
    (chapter / "._7-1-0000.flac").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    (chapter / "._7-1.trans.txt").write_bytes(b"\x00\x05\x16\x07\xff")
    (chapter / "7-1.trans.txt").write_text("\ufeff7-1-0000 HE HOPED\u2028THERE\r\n7-1-0001 WOULD\x0cBE\r\n")
    utts = local_utterances(tmp_path, "test", "clean")
    assert [(u.id, u.text, u.error) for u in utts] == [
        ("7-1-0000", "HE HOPED THERE", None),
        ("7-1-0001", "WOULD BE", None),
    ]


def test_a_file_name_that_is_not_utf8_is_named(tmp_path):
    chapter = tmp_path / "test-clean/7/1"
    chapter.mkdir(parents=True)
    name = os.fsdecode(b"7-1-000\xff.flac")
    shutil.copy(LIBRISPEECH / "test-clean/1089/134686/1089-134686-0000.flac", chapter / name)
    with pytest.raises(DataError, match="the file name is not UTF-8"):
        local_utterances(tmp_path, "test", "clean")


def _latin1(chapter):
    (chapter / "7-1.trans.txt").write_bytes("7-1-0000 HE HOPED\n7-1-0001 CAFÉ\n".encode("latin-1"))


def _fifo(chapter):
    os.mkfifo(chapter / "7-1.trans.txt")


def _empty(chapter):
    (chapter / "7-1.trans.txt").write_text("")
    (chapter / "7-1-0000.flac").unlink()


@pytest.mark.parametrize(
    "make,message",
    [
        (_latin1, "7-1.trans.txt:2: not UTF-8 text (byte 0xc9 at offset 30)"),
        (_fifo, "7-1.trans.txt: is a FIFO (named pipe), expected a regular file"),
        (_empty, "no transcript lines (1 .trans.txt file(s), every one empty)"),
    ],
    ids=["latin-1", "fifo", "empty"],
)
@pytest.mark.slow  # a whole harness process: make test-slow
def test_a_transcript_file_that_cannot_be_read_stops_the_run_in_one_line(tiny_checkpoint, tmp_path, make, message):
    from tests.helpers.harness import bench, local

    chapter = tmp_path / "tree/test-clean/7/1"
    chapter.mkdir(parents=True)
    shutil.copy(LIBRISPEECH / "test-clean/1089/134686/1089-134686-0000.flac", chapter / "7-1-0000.flac")
    make(chapter)
    t0 = time.monotonic()
    done = bench(*local(tiny_checkpoint, tmp_path / "run"), f"data.root={tmp_path / 'tree'}")
    assert done.returncode == 1 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert time.monotonic() - t0 < 60


@pytest.mark.slow  # datasets' parquet reader end to end: make test-slow
def test_a_mirrored_hub_repo_is_read_offline_through_datasets(tiny_checkpoint, tmp_path):
    from tests.helpers.harness import bench, local, read_run

    mirror = mirror_repo(tmp_path / "librispeech_asr")
    args = [f"model.checkpoint={tiny_checkpoint}", "model.name=tiny", "split=other", "limit=5"]
    done = bench(*args, f"data.dataset={mirror}", f"output_dir={tmp_path / 'hub'}")  # HF_HUB_OFFLINE=1 here
    assert done.returncode == 0, done.stderr
    assert bench(*local(tiny_checkpoint, tmp_path / "local", "split=other", "limit=5")).returncode == 0
    hub_rows, summary = read_run(tmp_path / "hub")
    local_rows, _ = read_run(tmp_path / "local")
    keys = ("id", "text", "pred_text", "audio_sha256", "substitutions", "deletions", "insertions")
    assert [[r[k] for k in keys] for r in hub_rows] == [[r[k] for k in keys] for r in local_rows]
    assert summary["config"]["data"]["dataset"] == str(mirror)
    missing = bench(*args, f"data.dataset={mirror}", "data.partition=dev", f"output_dir={tmp_path / 'dev'}")
    assert missing.returncode == 1 and "no other/validation/*.parquet" in missing.stderr


GOOD_ROW = {"audio": {"bytes": b"", "path": "1-2-3.flac"}, "text": "A", "id": "1-2-3"}


@pytest.mark.parametrize(
    "rows,message",
    [
        ([{**GOOD_ROW, "text": None}], "row 0 has no audio {bytes, path} column or no text"),
        ([{k: v for k, v in GOOD_ROW.items() if k != "audio"}], "row 0 has no audio"),
        ([{**GOOD_ROW, "audio": "/etc/hostname"}], "row 0 has no audio"),
        ([{**GOOD_ROW, "id": "", "audio": {"bytes": b"", "path": None}}], "neither an id nor an audio path"),
    ],
)
def test_a_hub_row_without_what_the_harness_needs_is_one_line_before_the_model_loads(monkeypatch, rows, message):
    import datasets

    from tests.helpers.harness import open_source
    from w2v2bench.data import hub as cli

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: FakeStream(rows))
    monkeypatch.setattr(cli, "hub_unreachable_reason", lambda: None)
    with pytest.raises(DataError, match=re.escape(message)):
        open_source([])


def test_a_shard_that_fails_later_stops_the_run_in_one_line(monkeypatch):
    import datasets

    from tests.helpers.harness import open_source
    from w2v2bench.data import hub as cli

    class Failing(FakeStream):
        def __iter__(self):
            yield GOOD_ROW
            raise ValueError("Parquet magic bytes not found in footer")

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: Failing([]))
    monkeypatch.setattr(cli, "hub_unreachable_reason", lambda: None)
    utterances, _ = open_source([])
    with pytest.raises(DataError, match="row 1 cannot be read: ValueError: Parquet magic bytes"):
        list(utterances)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.dataset=/no/such/mirror"], "data.dataset='/no/such/mirror': no such folder"),
        (["data.dataset=null"], "data.dataset is not set"),
        (["data.hub_names.test-clean=[a]"], "data.hub_names.test-clean=['a']: expected [config, split]"),
    ],
)
def test_a_bad_hub_setting_is_one_line(monkeypatch, overrides, message):
    from tests.helpers.harness import open_source
    from w2v2bench.data import hub as cli
    from w2v2bench.errors import ConfigError

    monkeypatch.setattr(cli, "hub_unreachable_reason", lambda: None)
    with pytest.raises(ConfigError, match=re.escape(message)):
        open_source(overrides)
