"""Logits -> text: greedy and the n-gram LM decoder, through the command and the decoder's own API."""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.forked import run_forked
from tests.helpers.harness import read_run
from tests.helpers.ngram import transcripts, write_arpa
from w2v2bench.config import asset_path
from w2v2bench.data.audio import load_audio
from w2v2bench.data.local import local_utterances
from w2v2bench.decoders.lm import LMDecoder, LMOptions
from w2v2bench.model import load_model

DEMO_MODEL, DEMO_CORPUS = Path(asset_path("demo-model")), Path(asset_path("demo-corpus"))


def demo(out: Path, *extra: str) -> list[str]:
    return ["model=demo", "data=demo", f"output_dir={out}", *extra]


@pytest.fixture(scope="module")
def clean_lm(tmp_path_factory) -> Path:
    """A bigram LM counted from the demo corpus's test-clean text."""
    return write_arpa(transcripts(DEMO_CORPUS / "test-clean"), tmp_path_factory.mktemp("lm") / "clean.arpa")


@pytest.fixture(scope="module")
def with_lm_folder(tmp_path_factory) -> Path:
    """The demo model laid out as a Wav2Vec2ProcessorWithLM repo: language_model/ with attrs.json and unigrams,
    its LM in lower case (the model's vocabulary is upper case)."""
    folder = tmp_path_factory.mktemp("with-lm") / "demo-4-gram"
    shutil.copytree(DEMO_MODEL, folder)
    lm = folder / "language_model"
    lm.mkdir()
    sentences = [line.lower() for line in transcripts(DEMO_CORPUS / "test-clean")]
    write_arpa(sentences, lm / "4gram.arpa")
    (lm / "unigrams.txt").write_text("\n".join(sorted({w for line in sentences for w in line.split()})) + "\n")
    (lm / "attrs.json").write_text(json.dumps({"alpha": 0.8, "beta": 0.5, "unk_score_offset": -10.0}))
    return folder


@pytest.fixture(scope="module")
def lm_runs(clean_lm, with_lm_folder, tmp_path_factory):
    """The demo model on demo test-clean: greedy, LM batched in a pool, and from the with-LM folder."""
    root = tmp_path_factory.mktemp("runs")
    jobs = {
        "greedy": demo(root / "greedy", "split=clean", "limit=40"),
        "lm": demo(root / "lm", "split=clean", "decoder=lm", f"decoder.lm={clean_lm}", "batch_size=16",
                   "decoder.workers=2", "limit=40"),
        "folder": demo(root / "folder", "split=clean", "decoder=lm", f"model.checkpoint={with_lm_folder}", "limit=20"),
    }  # fmt: skip
    results = run_forked([{"args": args} for args in jobs.values()], root / "logs")
    for name, result in zip(jobs, results, strict=True):
        assert result["code"] == 0, (name, result["output"])
    return {name: read_run(root / name) for name in jobs}


@pytest.mark.slow  # a whole harness process: make test-slow
def test_the_lm_lowers_the_demo_models_wer(lm_runs):
    (greedy_rows, greedy), (lm_rows, lm) = lm_runs["greedy"], lm_runs["lm"]
    assert greedy["decoder"] == {"name": "greedy"} and lm["decoder"]["name"] == "lm"
    assert lm["wer"] < greedy["wer"] / 2 and lm["n_utterances"] == greedy["n_utterances"] == 40
    changed = [a["id"] for a, b in zip(greedy_rows, lm_rows, strict=True) if a["pred_text"] != b["pred_text"]]
    assert changed
    # the card's figures are for greedy decoding: an LM run is reported, not checked against them
    assert lm["reference"] is None and "decoder=greedy" in lm["reference_note"]


@pytest.mark.slow  # a whole harness process: make test-slow
def test_batched_lm_transcripts_equal_the_decoders_own_output_at_batch_size_one(lm_runs, clean_lm):
    rows, summary = lm_runs["lm"]
    assert summary["n_batches"] < 10  # batched
    transcriber = load_model(str(DEMO_MODEL))
    decoder = LMDecoder.create(
        LMOptions(lm=str(clean_lm), workers=0), tokens=transcriber.tokens, checkpoint=str(DEMO_MODEL), local=True,
        revision=None,
    )  # fmt: skip
    by_id = {r["id"]: r["pred_text"] for r in rows}
    for u in local_utterances(DEMO_CORPUS, "test", "clean")[:12]:
        logits = transcriber.logits([transcriber.prepare(load_audio(u.path, u.id)[0])])[0]
        (text,) = decoder.submit([torch.log_softmax(logits, dim=-1).numpy()])()
        assert text == by_id[u.id]
    decoder.close()


@pytest.mark.slow  # a whole harness process: make test-slow
def test_a_with_lm_folder_loads_its_lm_and_settings(lm_runs, with_lm_folder):
    rows, summary = lm_runs["folder"]
    settings = summary["decoder"]
    assert settings["lm"] == str(with_lm_folder / "language_model" / "4gram.arpa")
    assert settings["lexicon"].endswith("unigrams.txt") and settings["lexicon_dropped"] == 0
    assert settings["lm_weight"] == pytest.approx(0.8 * math.log(10)) and settings["word_score"] == 0.5
    assert settings["settings_from"] == ["lm_weight", "word_score"]
    # words are written in the model's tokens' case, whatever case the LM spells them in
    assert all(r["pred_text"] == r["pred_text"].upper() for r in rows) and summary["wer"] < 0.05


def test_lexicon_spells_words_in_the_models_tokens(tmp_path):
    from w2v2bench.decoders.lm import build_lexicon, read_lexicon

    transcriber = load_model(str(DEMO_MODEL))
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("HELLO\nworld w o r l d |\nNAÏVE\n<unk>\nDON'T\nBAD 1 2 |\n")
    words = build_lexicon(read_lexicon(lexicon), transcriber.tokens)
    assert words.words == ["HELLO", "world", "DON'T"] and words.texts == ["HELLO", "WORLD", "DON'T"]
    assert words.dropped == 2  # NAÏVE and BAD's spelling have letters the vocabulary lacks


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.slow  # many LM files, each a run: make test-slow
def test_bad_lm_inputs_fail_with_one_line_before_any_audio(tmp_path, clean_lm):
    no_lm = tmp_path / "no-lm"
    shutil.copytree(DEMO_MODEL, no_lm)
    two = tmp_path / "two"
    shutil.copytree(DEMO_MODEL, two)
    shutil.copy(clean_lm, write(two / "language_model" / "a.arpa", "").parent / "b.arpa")
    bad_attrs = tmp_path / "bad-attrs"
    shutil.copytree(DEMO_MODEL, bad_attrs)
    shutil.copy(clean_lm, write(bad_attrs / "language_model" / "attrs.json", '{"alpha": "high"}').parent / "x.arpa")
    fifo = tmp_path / "lm.fifo"
    os.mkfifo(fifo)
    huge_alpha, deep_attrs = tmp_path / "huge-alpha", tmp_path / "deep-attrs"
    for folder, attrs in ((huge_alpha, '{"alpha": 1e308}'), (deep_attrs, "[" * 100_000 + "]" * 100_000)):
        shutil.copytree(DEMO_MODEL, folder)
        shutil.copy(clean_lm, write(folder / "language_model" / "attrs.json", attrs).parent / "lm.arpa")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("NAÏVE\nA\n".encode("latin-1"))
    fake_binary = tmp_path / "fake.bin"
    fake_binary.write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\0" + bytes(range(256)) * 8)
    random_bin = tmp_path / "random.bin"
    random_bin.write_bytes(bytes(range(256)) * 64)
    lexicon = write(tmp_path / "lexicon.txt", "A\nTHE\n")
    arpa = clean_lm.read_text()
    lying = write(tmp_path / "lying.arpa", re.sub(r"ngram 1=\d+", "ngram 1=100000000", arpa, count=1))
    lower = write(
        tmp_path / "lower.txt",
        "\n".join(w.lower() for w in sorted({w for t in transcripts(DEMO_CORPUS) for w in t.split()})),
    )

    def header(line: str) -> Path:
        return write(tmp_path / f"h{abs(hash(line))}.arpa", re.sub(r"ngram 1=\d+", line, arpa, count=1))

    commented = write(tmp_path / "commented.arpa", "# made by hand\n" + arpa)
    gzipped = tmp_path / "lm.arpa.gz"
    gzipped.write_bytes(gzip.compress(arpa.encode()))
    never = write(tmp_path / "never.arpa", re.sub(r"^-?[0-9.]+\t", "-inf\t", arpa, flags=re.M))
    cases = {
        "missing": (["decoder.lm=/nowhere/lm.arpa"], "decoder.lm='/nowhere/lm.arpa': no such file"),
        "folder": ([f"decoder.lm={tmp_path}"], "is a folder, expected a regular file"),
        "fifo": ([f"decoder.lm={fifo}"], "expected a regular file"),
        "garbage": ([f"decoder.lm={write(tmp_path / 'g.arpa', 'garbage')}"], "neither an ARPA file"),
        "garbage with lexicon": (
            [f"decoder.lm={write(tmp_path / 'g.bin', 'garbage')}", f"decoder.lexicon={write(tmp_path / 'w', 'A')}"],
            "neither an ARPA file (its first line is not \\data\\) nor a KenLM binary",
        ),
        "unigram only": ([f"decoder.lm={write(tmp_path / 'u.arpa', UNIGRAM_ONLY)}"], "at least a bigram"),
        "no words": ([f"decoder.lm={clean_lm}", f"decoder.lexicon={write(tmp_path / 'l.txt', 'ÆØÅ')}"], "no word"),
        "no folder": ([f"model.checkpoint={no_lm}"], "has no language_model/ folder; give an n-gram LM"),
        "two lms": ([f"model.checkpoint={two}"], "expected one KenLM file"),
        "attrs": ([f"model.checkpoint={bad_attrs}"], "alpha='high': expected a number"),
        "beam": ([f"decoder.lm={clean_lm}", "decoder.beam_width=0"], "decoder.beam_width=0: expected an integer"),
        "precision": (["precision=bf16", "check_precision=true"], "needs decoder=greedy"),
        # found by attacking the change: each used to crash the interpreter, hang, or pass silently
        "token beam": ([f"decoder.lm={clean_lm}", "decoder.beam_size_token=-1"], "beam_size_token=-1: expected null"),
        "threshold": ([f"decoder.lm={clean_lm}", "decoder.beam_threshold=-5"], "beam_threshold=-5.0: expected a fin"),
        "nan weight": ([f"decoder.lm={clean_lm}", "decoder.lm_weight=nan"], "lm_weight=nan: expected a finite"),
        "inf score": ([f"decoder.lm={clean_lm}", "decoder.word_score=-inf"], "word_score=-inf: expected a finite"),
        "huge alpha": ([f"model.checkpoint={huge_alpha}"], "lm_weight=inf (from attrs.json): expected a finite"),
        "deep attrs": ([f"model.checkpoint={deep_attrs}"], "attrs.json: not a JSON object (RecursionError)"),
        "latin-1 lexicon": ([f"decoder.lm={clean_lm}", f"decoder.lexicon={latin1}"], "not UTF-8 text"),
        "random bytes": ([f"decoder.lm={random_bin}", f"decoder.lexicon={lexicon}"], "neither an ARPA file"),
        "fake binary": ([f"decoder.lm={fake_binary}", f"decoder.lexicon={lexicon}"], "KenLM cannot read it"),
        "lying header": ([f"decoder.lm={lying}"], "n-grams, more than its"),
        "other case": ([f"decoder.lm={clean_lm}", f"decoder.lexicon={lower}"], "(is the lexicon in the LM's case?"),
        "no probability": ([f"decoder.lm={never}"], "has a probability in the LM"),
        "greedy with lm": (["decoder=greedy", f"decoder.lm={clean_lm}"], "decoder.lm is set but decoder=greedy"),
        "many workers": ([f"decoder.lm={clean_lm}", "decoder.workers=100000"], "decoder.workers=100000: expected"),
        # the second attack: headers KenLM would read otherwise than the size check did, and overflowing weights
        "odd digit": ([f"decoder.lm={header('ngram 1=30²')}"], "bad ARPA header line 'ngram 1=30²'"),
        "long count": ([f"decoder.lm={header('ngram 1=' + '9' * 5000)}"], "bad ARPA header line"),
        "long line": ([f"decoder.lm={header('ngram 2=' + ' ' * 70_000 + '8')}"], "bad ARPA header line"),
        "comment first": ([f"decoder.lm={commented}", f"decoder.lexicon={lexicon}"], "neither an ARPA file"),
        "gzip": ([f"decoder.lm={gzipped}", f"decoder.lexicon={lexicon}"], "a compressed file"),
        "overflow": ([f"decoder.lm={clean_lm}", "decoder.word_score=1e308", "decoder.lm_weight=-1e308"], "from -1e4"),
    }
    jobs = [{"args": demo(tmp_path / name, "decoder=lm", "limit=2", *args)} for name, (args, _) in cases.items()]
    for (name, (_, message)), result in zip(
        cases.items(), run_forked(jobs, tmp_path / "logs", timeout=120), strict=True
    ):
        errors = [line for line in result["output"].splitlines() if line.startswith("w2v2bench: error:")]
        assert result["code"] == 1 and len(errors) == 1, (name, result["output"])
        assert message in errors[0], (name, errors[0])
        assert not (tmp_path / name / "transcripts.jsonl").exists(), name


UNIGRAM_ONLY = "\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n-1\tA\n\n\\end\\\n"


def test_log_probs_cover_each_rows_own_frames():
    transcriber = load_model(str(DEMO_MODEL))
    transcriber.emit = "log_probs"
    waves = [load_audio(u.path, u.id)[0] for u in local_utterances(DEMO_CORPUS, "test", "other")[:3]]
    inputs = [transcriber.prepare(w) for w in waves]
    out = transcriber.forward(inputs).ids
    frames = transcriber.frames(torch.tensor([len(x) for x in inputs])).tolist()
    assert [x.shape[0] for x in out] == frames
    assert all(np.allclose(np.exp(x).sum(axis=1), 1, atol=1e-4) for x in out)


def lm_decoder(lm: Path, workers: int = 0):
    transcriber = load_model(str(DEMO_MODEL))
    decoder = LMDecoder.create(
        LMOptions(lm=str(lm), workers=workers), tokens=transcriber.tokens, checkpoint=str(DEMO_MODEL), local=True,
        revision=None,
    )  # fmt: skip
    return transcriber, decoder


def test_non_finite_log_probs_are_one_utterances_failure(clean_lm):
    from w2v2bench.decoders.base import DecodeFailure

    _, decoder = lm_decoder(clean_lm)
    good = np.log(np.full((20, 32), 1 / 32, dtype=np.float32))
    texts = decoder.submit([good, np.full((20, 32), np.nan, dtype=np.float32), good[:0]])()
    assert isinstance(texts[0], str) and texts[2] == ""
    assert isinstance(texts[1], DecodeFailure) and "not finite" in texts[1].message


def _dies_on_marked_input(log_probs):
    if log_probs.shape[0] == 13:  # the marked utterance kills its worker, as a crash in the decoder would
        os._exit(1)
    return "ALIVE"


def test_a_decoding_process_that_dies_fails_only_its_utterance(clean_lm, monkeypatch):
    from w2v2bench.decoders import lm
    from w2v2bench.decoders.base import DecodeFailure

    _, decoder = lm_decoder(clean_lm, workers=2)
    monkeypatch.setattr(lm, "_decode", _dies_on_marked_input)
    batches = [[np.zeros((n, 32), dtype=np.float32) for n in lengths] for lengths in ((13, 5, 5), (13, 5, 5))]
    pending = [decoder.submit(batch) for batch in batches]  # two batches in flight, as the run loop has them
    texts = [text for collect in pending for text in collect()]
    failed = [i for i, t in enumerate(texts) if isinstance(t, DecodeFailure)]
    assert failed == [0, 3] and all(t == "ALIVE" for i, t in enumerate(texts) if i not in failed), texts
    assert "died" in texts[0].message
    assert decoder.submit(batches[0][1:])() == ["ALIVE", "ALIVE"]  # a new pool for the next batch
    decoder.close()


def _hangs_on_marked_input(log_probs):
    if log_probs.shape[0] == 13:
        time.sleep(60)
    return "ALIVE"


def test_a_decoding_that_hangs_fails_its_utterance_in_bounded_time(clean_lm, monkeypatch):
    from w2v2bench.decoders import lm
    from w2v2bench.decoders.base import DecodeFailure

    _, decoder = lm_decoder(clean_lm, workers=1)
    monkeypatch.setattr(lm, "_decode", _hangs_on_marked_input)
    monkeypatch.setattr(lm, "DECODE_TIMEOUT_S", 2.0)
    start = time.monotonic()
    texts = decoder.submit([np.zeros((n, 32), dtype=np.float32) for n in (13, 5, 7)])()
    decoder.close()
    assert time.monotonic() - start < 20
    assert isinstance(texts[0], DecodeFailure) and "took more than 2 s" in texts[0].message
    assert texts[1:] == ["ALIVE", "ALIVE"]  # queued behind it, retried alone once the stuck worker was killed


@pytest.mark.slow  # a whole harness process: make test-slow
def test_overlong_words_are_dropped_not_inserted(clean_lm, tmp_path):
    # flashlight's trie recursed once per letter: a 200,000-letter word overflowed the stack (a segfault)
    from w2v2bench.decoders.lm import MAX_WORD_TOKENS, build_lexicon

    transcriber = load_model(str(DEMO_MODEL))
    words = build_lexicon([("A", None), ("B" * (MAX_WORD_TOKENS + 1), None), ("X" * 200_000, None)], transcriber.tokens)
    assert words.words == ["A"] and words.dropped == 2
    arpa = clean_lm.read_text().replace("\t</s>\n", "\t</s>\n-3.0\t" + "X" * 200_000 + "\t-0.3\n", 1)
    long_lm = tmp_path / "long.arpa"
    long_lm.write_text(re.sub(r"ngram 1=(\d+)", lambda m: f"ngram 1={int(m[1]) + 1}", arpa, count=1))
    (result,) = run_forked(
        [{"args": demo(tmp_path / "run", "decoder=lm", f"decoder.lm={long_lm}", "limit=2")}], tmp_path / "logs"
    )
    assert result["code"] == 0, result["output"]
    assert read_run(tmp_path / "run")[1]["decoder"]["lexicon_dropped"] == 1
    assert "note: the lexicon lost 1 of its words" in result["output"]  # said on the console too (#27 item 8)


@pytest.mark.slow
def test_resume_refuses_an_lm_that_changed_since_the_interrupted_run(clean_lm, tmp_path):
    lm = tmp_path / "lm.arpa"
    shutil.copy(clean_lm, lm)
    args = demo(tmp_path / "run", "decoder=lm", f"decoder.lm={lm}", "limit=6", "decoder.workers=0")
    (killed,) = run_forked([{"args": args, "kill_at": 1}], tmp_path / "logs-1")  # killed as it finishes
    assert killed["signal"] == 9
    lm.write_text(write_arpa(["A B C"], tmp_path / "other.arpa").read_text())
    (changed,) = run_forked([{"args": [*args, "resume=true"]}], tmp_path / "logs-2")
    errors = [line for line in changed["output"].splitlines() if line.startswith("w2v2bench: error:")]
    assert changed["code"] == 1 and len(errors) == 1 and "lm_sha256" in errors[0], changed["output"]
    summary_path = tmp_path / "run" / "summary.json"
    stored = summary_path.read_text()
    summary_path.write_text(json.dumps({**json.loads(stored), "decoder": "abc"}))
    (tampered,) = run_forked([{"args": [*args, "resume=true"]}], tmp_path / "logs-tampered")
    errors = [line for line in tampered["output"].splitlines() if line.startswith("w2v2bench: error:")]
    assert tampered["code"] == 1 and len(errors) == 1 and "not as an object" in errors[0], tampered["output"]
    summary_path.write_text(stored)
    shutil.copy(clean_lm, lm)  # the interrupted run's LM back: the resume takes every journal row
    (resumed,) = run_forked([{"args": [*args, "resume=true"]}], tmp_path / "logs-3")
    assert resumed["code"] == 0, resumed["output"]
    rows, summary = read_run(tmp_path / "run")
    assert summary["resumed_from"] == 6 and summary["timed_utterances"] == 0 and len(rows) == 6
