import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from w2v2bench.metrics import Counts, rate
from w2v2bench.metrics.edits import char_counts, word_counts
from w2v2bench.metrics.normalizers import normalizer


@pytest.mark.parametrize(
    "ref,hyp,wer",
    [
        ("A B C", "A B C", 0.0),
        ("A B C", "A C", 1 / 3),
        ("A B C", "A X C D", 2 / 3),
        ("A B C", "", 1.0),
        ("A B", "A  B", 0.0),  # double spaces from CTC decoding are not words
        ("HELLO WORLD", "HELO WORLD", 0.5),
    ],
)
def test_word_rate_matches_jiwer(ref, hyp, wer):
    assert rate([word_counts(ref, hyp)]) == pytest.approx(wer)
    assert rate([word_counts(ref, hyp)]) == pytest.approx(jiwer.wer(ref, hyp))


def test_empty_reference_counts_insertions():
    assert word_counts("", "A B") == Counts(insertions=2)


WORDS = st.lists(st.sampled_from(["A", "B", "CAT", "DOG", "ALL", "AL", "IT'S"]), max_size=8).map(" ".join)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(WORDS.filter(bool), WORDS), min_size=1, max_size=8))
def test_corpus_rate_from_summed_counts_equals_jiwer(pairs):
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    assert rate(word_counts(r, h) for r, h in pairs) == pytest.approx(jiwer.wer(refs, hyps))
    assert rate(char_counts(r, h) for r, h in pairs) == pytest.approx(jiwer.cer(refs, hyps))


@pytest.mark.parametrize("name,text,out", [(None, "it's A, b.", "it's A, b."), ("basic", "it's A, b.", "IT'S A B")])
def test_normalizers(name, text, out):
    assert normalizer(name)(text) == out


def test_unknown_normalizer_names_the_choices():
    with pytest.raises(ValueError, match=r"normalizer='nope'.*\['basic', 'none', 'whisper'\]"):
        normalizer("nope")
