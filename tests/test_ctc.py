import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from w2v2bench.ctc import CTCTokens, collapse
from w2v2bench.testing.random_model import VOCAB, processor

TOKENIZER = processor().tokenizer
TOKENS = CTCTokens.from_tokenizer(TOKENIZER)
ID = {t: i for i, t in enumerate(VOCAB)}


def greedy(ids: list[int]) -> str:
    out = collapse(torch.tensor([ids]), torch.tensor([len(ids)]), TOKENS.blank_id)[0]
    return TOKENS.text(out)


def frames(spec: str) -> list[int]:
    # one character per frame: "_" is the blank, "|" the word delimiter
    return [ID["<pad>"] if c == "_" else ID[c] for c in spec]


@pytest.mark.parametrize(
    "spec,text",
    [
        ("LL", "L"),  # a repeat without a blank between is one letter
        ("L_L", "LL"),  # a blank between two Ls keeps the double letter
        ("BOO_OK", "BOOK"),
        ("C_O_F_F_E_E", "COFFEE"),
        ("CO_FF_F_EE_E", "COFFEE"),
        ("|A||B|", "A B"),
        ("A|_|B", "A  B"),  # two delimiters split by a blank: batch_decode keeps both spaces
        ("DON'T", "DON'T"),
        ("____", ""),
    ],
)
def test_greedy_decoding_keeps_double_letters(spec, text):
    ids = frames(spec)
    assert greedy(ids) == text == TOKENIZER.batch_decode([ids])[0]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(range(len(VOCAB))) | st.sampled_from([0, 0, 4]), max_size=60))
def test_greedy_decoding_equals_batch_decode(ids):
    assert greedy(ids) == TOKENIZER.batch_decode([ids])[0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(0, len(VOCAB) - 1), min_size=1, max_size=30), min_size=1, max_size=6))
def test_collapse_decodes_each_row_over_its_own_frames(rows):
    # padded frames hold a letter that would show up if they were decoded
    width = max(map(len, rows))
    ids = torch.tensor([row + [ID["Z"]] * (width - len(row)) for row in rows])
    lengths = torch.tensor([len(row) for row in rows])
    texts = [TOKENS.text(c) for c in collapse(ids, lengths, TOKENS.blank_id)]
    assert texts == TOKENIZER.batch_decode(rows)
