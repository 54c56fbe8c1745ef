"""The journal and resume as units: rows written batch by batch are read back only when they are this run's own and
still match the corpus (the kill-at-every-step tests in test_faults.py cover the same through whole processes)."""

from __future__ import annotations

import json
from dataclasses import replace

from w2v2bench.pipeline import run
from w2v2bench.resume import JOURNAL, Journal, Resume, recover_journals
from w2v2bench.testing.fakes import FakeTranscriber, utterances

TEXTS = ["A CAT", "THE DOG RAN", "HELLO", "SEE THE SEA"]


def journaled(tmp_path, run_id="run-1", config="cfg-1"):
    """A journal holding every utterance's row, as an interrupted run leaves it (no finish)."""
    utts = utterances(TEXTS)
    journal = Journal(tmp_path, run_id, config)
    run(utts, FakeTranscriber({16_000 + i * 1_600: t for i, t in enumerate(TEXTS)}), journal.write, workers=0)
    journal.close()
    return utts, journal


def test_a_journal_is_read_back_whole(tmp_path):
    utts, journal = journaled(tmp_path)
    found = recover_journals(tmp_path, "run-1", "cfg-1")
    assert sorted(found.rows) == [0, 1, 2, 3] and found.dropped == []
    assert [found.rows[i].pred_text for i in range(4)] == TEXTS
    resume = Resume(found, lambda text: text)
    assert list(resume.pending(utts)) == [] and sorted(resume.kept) == [0, 1, 2, 3]


def test_another_run_or_config_takes_nothing(tmp_path):
    journaled(tmp_path)
    for run_id, config in (("run-2", "cfg-1"), ("run-1", "cfg-2")):
        found = recover_journals(tmp_path, run_id, config)
        assert found.rows == {} and "its header is not this run's" in found.dropped[0]


def test_a_torn_last_line_is_redone_silently_and_an_edited_row_is_dropped_with_a_reason(tmp_path):
    utts, journal = journaled(tmp_path)
    lines = journal.path.read_text().splitlines(keepends=True)
    edited = json.loads(lines[2])
    edited["pred_text"] = "SOMETHING ELSE"
    lines[2] = json.dumps(edited) + "\n"
    journal.path.write_text("".join(lines[:-1]) + lines[-1][:20])  # the kill tore the last line
    found = recover_journals(tmp_path, "run-1", "cfg-1")
    assert len(found.rows) == 2 and len(found.dropped) == 1 and "checksum" in found.dropped[0]
    pending = list(Resume(found, lambda text: text).pending(utts))
    assert len(pending) == 2  # the edited row's utterance and the torn one's


def test_a_row_whose_corpus_utterance_changed_is_transcribed_again(tmp_path):
    utts, _ = journaled(tmp_path)
    changed = [utts[0], replace(utts[1], text="THE DOG SAT"), utts[2], replace(utts[3], id="1-1-9999")]
    resume = Resume(recover_journals(tmp_path, "run-1", "cfg-1"), lambda text: text)
    assert [u.index for u in resume.pending(changed)] == [1, 3]
    assert any("reference text differs" in why for why in resume.dropped)
    assert any("but the corpus has 1-1-9999" in why for why in resume.dropped)


def test_finish_writes_every_row_in_id_order(tmp_path):
    _, journal = journaled(tmp_path)
    found = recover_journals(tmp_path, "run-1", "cfg-1")
    fresh = Journal(tmp_path, "run-1", "cfg-1", kept=found.rows.values())
    rows = fresh.finish(found.rows)  # the kept rows and this process's new ones (none here)
    assert [r.id for r in rows] == sorted(r.id for r in rows) and len(rows) == 4
    assert (tmp_path / "transcripts.jsonl").read_text().count("\n") == 4 and (tmp_path / JOURNAL).exists()
