"""The run loop on a fake transcriber (no model, in-memory audio): batching, scoring, out-of-memory back-off, failed
audio, timing shares; milliseconds each."""

from __future__ import annotations

from dataclasses import replace

import pytest

from w2v2bench.data import Utterance
from w2v2bench.metrics import totals
from w2v2bench.pipeline import run
from w2v2bench.testing.fakes import FakeTranscriber, utterances

TEXTS = ["A CAT", "THE DOG RAN", "HELLO", "SEE THE SEA", "AN APPLE", "GOOD"]


def corpus(texts=TEXTS):
    utts = utterances(texts)
    hear = {16_000 + i * 1_600: text for i, text in enumerate(texts)}  # each one's reference, by its length
    return utts, hear


def transcribe(utts, transcriber, **settings):
    written: list[list] = []
    stats = run(utts, transcriber, written.append, workers=0, **settings)
    rows = sorted((r for batch in written for r in batch), key=lambda r: r.index)
    return rows, stats, written


@pytest.mark.parametrize("batch_size", [1, 2, 4, 16])
def test_every_utterance_is_transcribed_scored_and_written_batch_by_batch(batch_size):
    utts, hear = corpus()
    fake = FakeTranscriber(hear)
    rows, stats, written = transcribe(utts, fake, batch_size=batch_size)
    assert [r.id for r in rows] == [u.id for u in utts]
    assert [r.pred_text for r in rows] == TEXTS and totals(rows).wer == 0.0
    assert max(fake.batches) <= batch_size and sum(fake.batches) == len(TEXTS)
    assert len(written) == stats.n_batches == len(fake.batches)  # the journal gets each batch as it is done
    assert (stats.n_utterances, stats.n_failed, stats.warmup_batches) == (6, 0, 1)
    assert stats.audio_s == pytest.approx(sum(r.duration_s for r in rows))


def test_batches_are_length_sorted_and_bounded_by_padded_seconds():
    utts, hear = corpus()
    fake = FakeTranscriber(hear)
    # 2.5 s of padded audio at most (lengths 1.0 to 1.5 s): one pair of neighbours fits, no three do
    _, stats, _ = transcribe(utts, fake, batch_size=8, max_batch_s=2.5)
    assert sorted(fake.batches) == [1, 1, 1, 1, 2]
    assert 0 < stats.padding_fraction < 0.05


def test_errors_are_counted_from_the_transcripts():
    utts, hear = corpus()
    misheard = {**hear, 16_000 + 1_600: "THE DOG"}  # one word deleted of three
    rows, _, _ = transcribe(utts, FakeTranscriber(misheard))
    assert (rows[1].deletions, rows[1].ref_words) == (1, 3)
    assert totals(rows).words.errors == 1 and totals(rows).wer == pytest.approx(1 / 12)


def test_out_of_memory_splits_the_batch_until_it_fits():
    utts, hear = corpus()
    fake = FakeTranscriber(hear, fits=1)
    rows, stats, _ = transcribe(utts[:4], fake, batch_size=4)
    assert [r.pred_text for r in rows] == TEXTS[:4] and not any(r.error for r in rows)
    assert fake.batches == [4, 2, 1, 1, 2, 1, 1] and stats.oom_splits == 3


def test_an_utterance_that_does_not_fit_alone_is_a_recorded_failure():
    utts, hear = corpus()
    rows, stats, _ = transcribe(utts[:2], FakeTranscriber(hear, fits=0), batch_size=2)
    assert all(r.error and "out of memory for 1." in r.error and r.pred_text == "" for r in rows)
    assert stats.n_failed == 2 and totals(rows).n_failed == 2


def test_unreadable_audio_is_a_failed_row_and_the_rest_go_on():
    utts, hear = corpus()
    broken = [*utts[:2], replace(utts[2], data=b"not audio"), *utts[3:]]
    rows, stats, _ = transcribe(broken, FakeTranscriber(hear), batch_size=4)
    assert rows[2].error and rows[2].pred_text == "" and rows[2].audio_sha256 is not None
    assert [r.pred_text for i, r in enumerate(rows) if i != 2] == [t for i, t in enumerate(TEXTS) if i != 2]
    assert stats.n_failed == 1


def test_each_row_gets_its_share_of_the_batch_model_time():
    utts, hear = corpus()
    rows, stats, _ = transcribe(utts, FakeTranscriber(hear), batch_size=16, warmup_batches=0)
    assert stats.model_s == pytest.approx(sum(r.model_s for r in rows), abs=1e-5)
    # shares by length: never less for a longer utterance
    by_length = [r.model_s for r in sorted(rows, key=lambda r: r.duration_s)]
    assert by_length == sorted(by_length) and by_length[-1] > 0


def test_a_batch_size_the_model_cannot_make_exact_is_capped():
    utts, hear = corpus()
    fake = FakeTranscriber(hear)
    fake.max_batch_size = 1
    transcribe(utts, fake, batch_size=16)
    assert set(fake.batches) == {1}


def test_an_utterance_marked_bad_by_its_source_is_not_read():
    utts, hear = corpus()
    bad = Utterance(99, "1-1-0099", "1", "1", "X", error="no audio file for this transcript line")
    rows, _, _ = transcribe([*utts, bad], FakeTranscriber(hear))
    assert rows[-1].error == "no audio file for this transcript line" and rows[-1].audio_sha256 is None


class LookaheadDecoder:
    """A decoder that works beside the model (as the LM's pool does): it records when each batch is handed over
    and when its texts are collected, and fails the utterances whose text is in `fail`."""

    name = "lookahead"
    wants = "log_probs"

    def __init__(self, tokens, fail=()):
        self.tokens, self.fail, self.events = tokens, set(fail), []

    def submit(self, items):
        from w2v2bench.decoders.base import DecodeFailure

        k = sum(event == "submit" for event, _ in self.events)
        self.events.append(("submit", k))

        def texts():
            self.events.append(("collect", k))
            return [DecodeFailure("beam search died") if self.tokens.text(x) in self.fail else self.tokens.text(x)
                    for x in items]  # fmt: skip

        return texts

    def settings(self):
        return {"name": self.name}

    def close(self):
        pass


def test_a_decoder_beside_the_model_gets_two_batches_ahead_and_its_texts_come_back_in_order():
    utts, hear = corpus()
    transcriber = FakeTranscriber(hear)
    decoder = LookaheadDecoder(transcriber.tokens, fail={"HELLO"})
    rows, stats, _ = transcribe(utts, transcriber, batch_size=1, decoder=decoder)
    submits = [k for event, k in decoder.events if event == "submit"]
    collects = [k for event, k in decoder.events if event == "collect"]
    assert submits == collects == list(range(6))
    # batch k is collected only after batch k + 2 was handed over (the model goes on meanwhile)
    for k in range(4):
        assert decoder.events.index(("submit", k + 2)) < decoder.events.index(("collect", k))
    assert [r.text for r in rows] == TEXTS
    failed = [r for r in rows if r.error is not None]
    assert [r.text for r in failed] == ["HELLO"] and "beam search died" in failed[0].error
    assert stats.n_failed == 1 and all(r.pred_text == r.text for r in rows if r.error is None)


def test_without_a_terminal_a_long_run_says_how_far_it_is_every_so_often(capsys):
    # issue #30, item 5: Slurm and CI logs get a line every progress_every_s (here: at every batch)
    utts, hear = corpus()
    transcribe(utts, FakeTranscriber({**hear, 16_000: "A CAR"}), total=len(utts), progress_every_s=1e-9)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(TEXTS)  # one per batch of one
    assert lines[0].startswith("progress: 1/6 utterances (16.7 %), ") and "ETA 0:00:00" in lines[0]
    assert lines[-1].endswith(f"WER so far {100 / 12:.2f} %, 0 failed")  # the last line's WER is the run's
    # progress=false: nothing; progress_every_s=0: no lines; under torchrun the main rank says whose share it is
    transcribe(utts, FakeTranscriber(hear), total=len(utts), progress=False, progress_every_s=1e-9)
    transcribe(utts, FakeTranscriber(hear), total=len(utts), progress_every_s=0)
    assert capsys.readouterr().err == ""
    transcribe(utts, FakeTranscriber(hear), progress_every_s=1e-9, progress_label=" (rank 0 of 2: its share)")
    assert capsys.readouterr().err.splitlines()[0].startswith("progress (rank 0 of 2: its share): 1 utterances, ")


def test_host_memory_is_handed_back_after_each_batch_of_several_and_now_and_then_after_single_ones():
    # issue #31: trimming after every single-utterance forward cost 3-6 % of them on CPU and kept nothing flatter
    from w2v2bench.pipeline import Trimmer

    calls = []
    trim = Trimmer(every_s=3600, trim=lambda: calls.append(1))
    for size in (1, 1, 1, 8, 1, 2):
        trim(size)
    assert len(calls) == 3  # the first single one, then each batch of several
    trim = Trimmer(every_s=0, trim=lambda: calls.append(1))
    trim(1), trim(1)
    assert len(calls) == 5
