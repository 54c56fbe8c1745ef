"""The reference check as a table: when a run is checked against its card's figure, and why it is not."""

from __future__ import annotations

import math

import pytest

from w2v2bench.config import ReferenceConfig
from w2v2bench.metrics import Counts, Totals
from w2v2bench.results import OFFICIAL_SPLITS
from w2v2bench.summary import reference_check

CARD = ReferenceConfig(name="card", wer={"clean": 0.034, "other": 0.086}, tolerance=0.0005, source="the card",
                       utterances={"clean": 2620, "other": 2939})  # fmt: skip


def totals(wer: float, n: int = 2620, failed: int = 0) -> Totals:
    words = Counts(substitutions=round(wer * 10_000), ref_words=10_000)
    return Totals(n, failed, 1000.0, words, Counts())


# (totals, split, data, partition, limit, decoder, reference) -> (passed or None: not checked, the note)
CASES = [
    ("checked, within", totals(0.0343), {}, True, "checked"),
    ("checked, outside", totals(0.036), {}, False, "checked"),
    ("at the tolerance", totals(0.0345), {}, True, "checked"),
    ("another split's figure", totals(0.086, n=2939), {"split": "other"}, True, "checked"),
    ("a failed utterance fails it", totals(0.034, failed=1), {}, False, "failed: 1 utterance(s)"),
    ("a subset", totals(0.034, n=100), {}, None, "skipped: 100 utterances scored, the reference is for all 2620"),
    ("limit", totals(0.034), {"limit": 10}, None, "skipped: limit=10 scores a subset"),
    ("a limit past the end is no subset", totals(0.0343), {"limit": 5000}, True, "checked"),  # #27 item 8
    ("a limit at the end is no subset", totals(0.0343), {"limit": 2620}, True, "checked"),
    ("a limit with no count known", totals(0.034), {"limit": 5000, "reference": ReferenceConfig(
        name="card", wer={"clean": 0.034})}, None, "skipped: limit=5000 scores a subset"),
    ("other data", totals(0.034), {"data": "demo"}, None, "is for data 'librispeech', not 'demo'"),
    ("dev partition", totals(0.034), {"partition": "dev"}, None, "is for data.partition='test'"),
    ("another decoder", totals(0.034), {"decoder": "lm"}, None, "is for decoder=greedy, this run used lm"),
    ("no figures", totals(0.034), {"reference": None}, None, "no reference figures for this model"),
    # issue #27: only the card's series is checked
    ("a normaliser", totals(0.030), {"normalizer": "whisper"}, None, "not checked: normalizer='whisper'"),
    ("the official ids", totals(0.0343), {"ids": OFFICIAL_SPLITS["test-clean"][1]}, True, "checked"),
    ("2620 other ids", totals(0.0343), {"ids": "0" * 64}, None, "ids are not the official test-clean list"),
]  # fmt: skip


@pytest.mark.parametrize("what,t,where,passed,note", CASES, ids=[c[0] for c in CASES])
def test_reference_check(what, t, where, passed, note):
    args = {"data": "librispeech", "split": "clean", "partition": "test", "limit": None, "decoder": "greedy"} | where
    reference = where.get("reference", CARD)
    check, why = reference_check(reference, t, args["data"], args["split"], args["partition"], args["limit"],
                                 args["decoder"], where.get("normalizer"), where.get("ids"))  # fmt: skip
    assert note in why
    assert (None if check is None else check.passed) == passed
    if check is not None and not math.isnan(check.measured_wer):
        assert check.measured_wer == t.wer and check.line().startswith("reference check")
