import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from w2v2bench.data import (
    AudioError,
    DataError,
    Utterance,
    decode,
    decoded_windows,
    load_audio,
    local_utterances,
    plan_batches,
)

from .conftest import LIBRISPEECH


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
    with pytest.raises(DataError, match="test-clean: no .flac files and no .trans.txt files"):
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

    from w2v2bench.data import hub_utterances

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
    utts = list(hub_utterances("openslr/librispeech_asr", "abc123", "test", "clean"))
    assert calls == [(("openslr/librispeech_asr", "clean"), {"split": "test", "streaming": True, "revision": "abc123"})]
    assert stream.cast[0] == "audio" and stream.cast[1].decode is False
    (u,) = utts
    assert (u.id, u.speaker, u.chapter, u.index) == ("1089-134686-0001", "1089", "134686", 0)
    decoded = decode(u, lambda w: w)
    assert decoded.error is None
    assert np.array_equal(decoded.input_values, load_audio(str(flac), "")[0])
