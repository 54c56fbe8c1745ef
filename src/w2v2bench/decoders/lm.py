"""Beam search with an n-gram LM (flashlight-text's lexicon decoder and its KenLM), in a process pool.

The decoder of torchaudio's and fairseq's published LM figures. Words come from a lexicon: `decoder.lexicon`
(a word per line, optionally followed by its spelling in the model's tokens), else the LM folder's
`unigrams.txt`, else the ARPA file's 1-grams; each is spelled in the model's own tokens (case folded where the
vocabulary has one case) and ends with the word delimiter, as the model emits it. Scores are
`log p_ctc + lm_weight * log10 p_lm + word_score` per word (KenLM scores are log10).

A Hub repo laid out for `Wav2Vec2ProcessorWithLM` (pyctcdecode) has a `language_model/` folder: `attrs.json`
(alpha, beta, ...), `unigrams.txt` and one KenLM file. Its alpha weighs natural-log LM scores, so it becomes
`lm_weight = alpha * ln(10)` here; beta becomes `word_score`; `unk_score_offset` has no counterpart (a lexicon
decoder emits only lexicon words). The transcripts are flashlight's, not pyctcdecode's: close, not identical.

The decoder is built once, in this process (a bad LM file fails before any audio is read), and the pool's
workers are forked from it, so a large LM's memory is shared, not loaded again per worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import multiprocessing
import os
import re
import signal
from collections.abc import Callable
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..ctc import CTCTokens
from ..files import open_regular, read_text, sha256_regular
from .base import DecodeFailure, DecoderError

LM_FOLDER = "language_model"
LM_SUFFIXES = (".arpa", ".bin", ".binary", ".klm", ".kenlm")
SPECIAL_WORDS = {"<s>", "</s>", "<unk>"}
OVERRIDES = ("beam_width", "beam_size_token", "beam_threshold", "lm_weight", "word_score", "sil_score")
ATTRS = {"alpha": "lm_weight", "beta": "word_score"}  # pyctcdecode's attrs.json -> ours (alpha scaled, see above)
MAX_WORD_TOKENS = 100  # longer "words" are dropped (flashlight's trie recurses once per token: a stack overflow)
MAX_WORDS_BYTES = 512 * 2**20  # a lexicon or unigrams.txt (LibriSpeech's lexicon is about 6 MB)
MAX_ATTRS_BYTES = 2**20
ARPA_LINE_BYTES = 2**16  # read at most this much of a line at a time
ARPA_COUNT = re.compile(r"ngram[ \t]+([0-9]{1,2})[ \t]*=[ \t]*([0-9]{1,15})", re.ASCII)
KENLM_BINARY_MAGIC = b"mmap lm http://kheafield.com/code"
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")  # gzip, bzip2, xz, zstd: KenLM inflates
MAX_WEIGHT = 1e4  # |lm_weight|, |word_score|, |sil_score|: far beyond any tuned value, far from overflowing a score
MIN_ARPA_LINE_BYTES = 4  # "p\tw\n" at least: an ARPA header that claims more n-grams than that lies
MAX_BEAM = 10_000  # 6x the widest published LibriSpeech setting (torchaudio's 1500)
DECODE_TIMEOUT_S = 600.0  # one utterance's beam search; beyond it the utterance is recorded as failed


@dataclass(frozen=True)
class LMSettings:
    """Everything that decides the transcripts, recorded in summary.json."""

    lm: str
    lexicon: str  # where the words came from: a file, `unigrams.txt`, or the ARPA file's 1-grams
    beam_width: int = 50
    beam_size_token: int | None = None  # null: every token
    beam_threshold: float = 25.0
    lm_weight: float = 2.0
    word_score: float = 0.0
    sil_score: float = 0.0
    unk_score: float = -math.inf
    lexicon_words: int = 0
    lexicon_dropped: int = 0  # words the model's tokens cannot spell (or longer than MAX_WORD_TOKENS)
    lexicon_oov: int = 0  # lexicon words the LM does not know (scored as its <unk>)
    settings_from: list[str] = field(default_factory=list)  # which values came from a language_model/attrs.json
    lm_sha256: str = ""  # the files' contents: a resumed run refuses another LM or lexicon under the same name
    lexicon_sha256: str | None = None

    def check(self) -> None:
        """Each value in its range, after scaling (attrs.json's alpha x ln 10 can overflow)."""
        if not 1 <= self.beam_width <= MAX_BEAM:
            raise DecoderError(
                f"decoder.beam_width={self.beam_width}: expected an integer from 1 to {MAX_BEAM} (a wider beam does "
                "not finish an utterance within the decode timeout)"
            )
        if self.beam_size_token is not None and not 1 <= self.beam_size_token <= 1_000_000:
            raise DecoderError(
                f"decoder.beam_size_token={self.beam_size_token}: expected null (every token) or an integer >= 1"
            )
        if not (math.isfinite(self.beam_threshold) and self.beam_threshold >= 0):
            raise DecoderError(f"decoder.beam_threshold={self.beam_threshold}: expected a finite number >= 0")
        for key in ("lm_weight", "word_score", "sil_score"):
            value = getattr(self, key)
            if not (math.isfinite(value) and abs(value) <= MAX_WEIGHT):
                source = " (from attrs.json)" if key in self.settings_from else ""
                raise DecoderError(f"decoder.{key}={value}{source}: expected a finite number from -1e4 to 1e4")

    def record(self) -> dict:
        out = asdict(self)
        out["unk_score"] = None if math.isinf(self.unk_score) else self.unk_score  # JSON has no -inf
        return {"name": "lm", **out}


def find_language_model(folder: Path) -> tuple[Path, Path | None, dict]:
    """(LM file, unigrams.txt or None, attrs) of a `language_model/` folder laid out as pyctcdecode saves it."""
    files = sorted(p for p in folder.iterdir() if p.name not in ("attrs.json", "unigrams.txt"))
    models = [p for p in files if p.name.endswith(LM_SUFFIXES)]
    if len(models) != 1:
        raise DecoderError(
            f"{folder}: expected one KenLM file ({', '.join(LM_SUFFIXES)}), found {[p.name for p in models] or 'none'}"
        )
    attrs: dict = {}
    if (folder / "attrs.json").exists():
        try:
            attrs = json.loads(read_text(folder / "attrs.json", MAX_ATTRS_BYTES))
        except (ValueError, RecursionError) as err:
            raise DecoderError(f"{folder / 'attrs.json'}: not a JSON object ({type(err).__name__})") from None
        if not isinstance(attrs, dict):
            raise DecoderError(f"{folder / 'attrs.json'}: expected a JSON object, got {type(attrs).__name__}")
        for key in ATTRS:
            value = attrs.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise DecoderError(f"{folder / 'attrs.json'}: {key}={value!r}: expected a number")
            if value is not None and not math.isfinite(value):
                raise DecoderError(f"{folder / 'attrs.json'}: {key}={value!r}: expected a finite number")
    unigrams = folder / "unigrams.txt"
    return models[0], unigrams if unigrams.exists() else None, attrs


def language_model_folder(checkpoint: str, local: bool, revision: str | None) -> Path | None:
    """The checkpoint's `language_model/` folder: in a local folder, or downloaded from its Hub repo."""
    if local:
        folder = Path(checkpoint) / LM_FOLDER
        return folder if folder.is_dir() else None
    from huggingface_hub import snapshot_download

    from ..hub import OFFLINE_HINT, hub_unreachable_reason

    reason = hub_unreachable_reason()
    try:
        snapshot = snapshot_download(
            checkpoint, revision=revision, allow_patterns=[f"{LM_FOLDER}/*"], local_files_only=reason is not None
        )
    except Exception as err:  # huggingface_hub's errors for a missing repo, revision or cache entry
        why = f"the Hugging Face Hub is unreachable ({reason}) and it is not cached" if reason else str(err)
        raise DecoderError(
            f"decoder=lm: cannot get {checkpoint}'s {LM_FOLDER}/ ({why}); give decoder.lm=<ARPA or KenLM file>, "
            f"or {OFFLINE_HINT}"
        ) from None
    folder = Path(snapshot) / LM_FOLDER
    return folder if folder.is_dir() else None


def read_arpa(path: Path, words: bool = True) -> list[str]:
    """Check an ARPA file's `\\data\\` header against its size (KenLM allocates what the header claims before
    it reads a line) and return the words of its `\\1-grams:` section (what pyctcdecode reads when given no
    unigrams); a file that is not ARPA (a KenLM binary) returns [] unless `words` are needed."""
    counts, found, section, first = {}, [], None, None
    with open_regular(path) as raw:
        size = os.fstat(raw.fileno()).st_size
        head = raw.read(len(KENLM_BINARY_MAGIC))
        if head.startswith(KENLM_BINARY_MAGIC) and not words:
            return []  # a KenLM binary: KenLM checks its own header
        if head.startswith(COMPRESSED_MAGIC):
            raise DecoderError(f"{path}: a compressed file; give the ARPA file uncompressed or a KenLM binary")
        raw.seek(0)
        while raw_line := raw.readline(ARPA_LINE_BYTES):  # bounded: a binary file may have no newline at all
            overlong = len(raw_line) == ARPA_LINE_BYTES and not raw_line.endswith(b"\n")
            if overlong:  # its start is kept (a word that long is dropped by the lexicon), the rest skipped
                while (rest := raw.readline(ARPA_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
            line = raw_line.decode("utf-8", errors="replace").strip()
            if first is None and line:
                first = line
                if first != "\\data\\":
                    break
                continue
            if line.startswith("\\"):
                if section is not None or line != "\\1-grams:" or not words:
                    break  # the header is read (and the 1-grams, when they are wanted)
                section = line
                continue
            if section is None and line:
                match = ARPA_COUNT.fullmatch(line)
                if overlong or match is None:
                    raise DecoderError(f"{path}: bad ARPA header line {line[:80]!r} (expected 'ngram N=count')")
                counts[int(match[1])] = int(match[2])
                if sum(counts.values()) * MIN_ARPA_LINE_BYTES > size:
                    raise DecoderError(
                        f"{path}: its header claims {sum(counts.values())} n-grams, more than its {size} bytes can "
                        "hold (a damaged or hostile ARPA file)"
                    )
            elif section is not None and line:
                parts = line.split("\t") if "\t" in line else line.split()
                if len(parts) >= 2:
                    found.append(parts[1])
    if first != "\\data\\":
        raise DecoderError(
            f"{path}: neither an ARPA file (its first line is not \\data\\) nor a KenLM binary"
            + ("; for a KenLM binary give its words with decoder.lexicon=<file>" if words else "")
        )
    if max(counts, default=0) < 2:
        raise DecoderError(f"{path}: an ARPA file of order {max(counts, default=0)}; KenLM needs at least a bigram")
    if words and not found:
        raise DecoderError(f"{path}: an ARPA file without words in its \\1-grams: section")
    return found


def _words_text(path: Path) -> str:
    try:
        return read_text(path, MAX_WORDS_BYTES)
    except ValueError as err:  # read_text's "not UTF-8 text" line, naming the line and byte
        raise DecoderError(str(err)) from None


def read_lexicon(path: Path) -> list[tuple[str, list[str] | None]]:
    """A lexicon file: `WORD` or `WORD t o k e n s |` per line (torchaudio's format); None: spell by letters."""
    entries = []
    for number, line in enumerate(_words_text(path).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        entries.append((parts[0], parts[1:] or None))
        if len(entries) > 10_000_000:
            raise DecoderError(f"{path}:{number}: more than 10,000,000 words")
    if not entries:
        raise DecoderError(f"{path}: no words")
    return entries


def spell(pieces: list[str] | str, tokens: dict[str, int]) -> list[int] | None:
    """The token ids of `pieces` (a word's letters, or its given tokens), each case folded to the vocabulary's
    where it has one case; None if one is missing."""
    ids = []
    for piece in pieces:
        for candidate in (piece, piece.upper(), piece.lower()):
            # a case fold, not a spelling change: "ſ".upper() is "S", but "S" is not the same letter
            if candidate in tokens and candidate.lower() == piece.lower():
                ids.append(tokens[candidate])
                break
        else:
            return None
    return ids


@dataclass
class Lexicon:
    words: list[str]  # as the LM spells them
    spellings: list[list[int]]  # token ids, ending with the word delimiter
    texts: list[str]  # as the model writes them (its tokens' case)
    dropped: int


def build_lexicon(entries: list[tuple[str, list[str] | None]], tokens: CTCTokens) -> Lexicon:
    token_ids = {t: i for i, t in tokens.id_to_token.items()}
    delimiter = token_ids[tokens.word_delimiter]
    special = {tokens.blank_id, delimiter, token_ids.get(tokens.unk_token, -1)}
    special |= {token_ids[t] for t in ("<s>", "</s>") if t in token_ids}
    words, spellings, texts, seen, dropped = [], [], [], set(), 0
    for word, given in entries:
        if word in SPECIAL_WORDS or word in seen:
            continue
        ids = spell(word if given is None else given, token_ids)
        if ids and given is not None and ids[-1] == delimiter:
            ids = ids[:-1]
        if not ids or len(ids) > MAX_WORD_TOKENS or any(i in special for i in ids):
            dropped += 1
            continue
        seen.add(word)
        words.append(word)
        spellings.append([*ids, delimiter])
        texts.append(tokens.text(ids))
    if not words:
        raise DecoderError(f"no word of the lexicon ({dropped} read) can be spelled with the model's tokens")
    return Lexicon(words, spellings, texts, dropped)


@contextlib.contextmanager
def _quiet_stderr(quiet: bool):
    """KenLM prints its progress bar to file descriptor 2; hidden unless verbose."""
    if not quiet:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def build_flashlight(settings: LMSettings, lexicon: Lexicon, tokens: CTCTokens, verbose: bool = False):
    from flashlight.lib.text.decoder import (
        CriterionType,
        LexiconDecoder,
        LexiconDecoderOptions,
        SmearingMode,
        Trie,
    )
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    vocab = [tokens.id_to_token[i] for i in range(len(tokens.id_to_token))]
    word_dict = Dictionary([*lexicon.words, "<unk>"])
    unk = word_dict.get_index("<unk>")
    word_dict.set_default_index(unk)
    lm_path = Path(settings.lm)
    read_arpa(lm_path, words=False)  # an ARPA header that claims more than the file holds is refused first
    try:
        with _quiet_stderr(not verbose):
            lm = KenLM(settings.lm, word_dict)
    except (RuntimeError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[-1] if isinstance(err, RuntimeError) else "an unreadable error message"
        raise DecoderError(f"decoder.lm={settings.lm!r}: KenLM cannot read it ({reason[:300]})") from None
    delimiter = vocab.index(tokens.word_delimiter)
    trie = Trie(len(vocab), delimiter)
    start = lm.start(False)
    _, unk_score = lm.score(start, unk)
    oov = finite = 0
    for index, spelling in enumerate(lexicon.spellings):
        _, score = lm.score(start, index)
        oov += score == unk_score
        finite += math.isfinite(score) and score > -99  # KenLM scores a word it lacks -100 when the LM has no <unk>
        trie.insert(spelling, index, score)
    if oov == len(lexicon.words) or not finite:
        raise DecoderError(
            f"decoder.lm={settings.lm!r}: none of the {len(lexicon.words)} lexicon words has a probability in the LM "
            f"(is the lexicon in the LM's case? first words: {lexicon.words[:3]})"
        )
    trie.smear(SmearingMode.MAX)
    options = LexiconDecoderOptions(
        beam_size=settings.beam_width,
        beam_size_token=settings.beam_size_token or len(vocab),
        beam_threshold=settings.beam_threshold,
        lm_weight=settings.lm_weight,
        word_score=settings.word_score,
        unk_score=settings.unk_score,
        sil_score=settings.sil_score,
        log_add=False,
        criterion_type=CriterionType.CTC,
    )
    return LexiconDecoder(options, trie, lm, delimiter, tokens.blank_id, unk, [], False), oov


# the decoder a forked worker inherits (set in the parent before the pool starts)
_DECODER: tuple | None = None


def _decode(log_probs: np.ndarray) -> str | DecodeFailure:
    decoder, texts = _DECODER
    emissions = np.ascontiguousarray(log_probs, dtype=np.float32)
    frames, vocab = emissions.shape
    if frames == 0:
        return ""
    if not np.isfinite(emissions).all():
        return DecodeFailure("the model's log-probs are not finite (NaN or infinite): nothing to decode")
    results = decoder.decode(emissions.ctypes.data, frames, vocab)
    if not results:
        return DecodeFailure("the beam search kept no hypothesis (decoder.beam_threshold or the LM's scores)")
    if not math.isfinite(results[0].score):
        return DecodeFailure(
            f"the best hypothesis scored {results[0].score} (the decoder's weights or the LM's scores)"
        )
    return " ".join(texts[w] for w in results[0].words if 0 <= w < len(texts))


def _die_with_the_run() -> None:
    """A pool worker ends when the run's process does, even on SIGKILL (Linux: PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def _kill(pool: ProcessPoolExecutor) -> None:
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        with contextlib.suppress(Exception):
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=5)


@dataclass(frozen=True)
class LMOptions:
    """The keys of conf/decoder/lm.yaml; each null one comes from the checkpoint's attrs.json or the defaults."""

    lm: str | None = None  # an ARPA or KenLM binary file; null: the checkpoint's language_model/ folder
    lexicon: str | None = None  # words (and spellings); null: language_model/unigrams.txt or the ARPA's 1-grams
    beam_width: int | None = None  # null: 50
    beam_size_token: int | None = None  # null: every token
    beam_threshold: float | None = None  # null: 25
    lm_weight: float | None = None  # null: attrs.json's alpha x ln(10), else 2
    word_score: float | None = None  # null: attrs.json's beta, else 0
    sil_score: float | None = None  # null: 0
    workers: int | None = None  # processes decoding beside the model; null: one per usable core; 0: inline

    def __post_init__(self):
        """What can be checked before the model loads: the LM file is there, the values set are in range (the
        rest, with attrs.json's, once the LM folder is read: LMSettings.check)."""
        if self.lm is not None and not Path(self.lm).expanduser().exists():
            raise DecoderError(f"decoder.lm={self.lm!r}: no such file (expected an ARPA or KenLM binary file)")
        if self.lexicon is not None and not Path(self.lexicon).expanduser().exists():
            raise DecoderError(f"decoder.lexicon={self.lexicon!r}: no such file (expected WORD [spelling] lines)")
        set_values = {k: getattr(self, k) for k in OVERRIDES if getattr(self, k) is not None}
        LMSettings(lm="", lexicon="", **set_values).check()
        cores = len(os.sched_getaffinity(0))
        if self.workers is not None and not 0 <= self.workers <= 4 * cores:
            raise DecoderError(
                f"decoder.workers={self.workers}: expected null (one per core), 0 (inline) or up to 4 x the "
                f"{cores} cores this process may use"
            )


class LMDecoder:
    """`decoder=lm`: beam search over each utterance's log-probs, `workers` processes beside the model."""

    name = "lm"
    Settings = LMOptions
    wants = "log_probs"

    @classmethod
    def create(
        cls,
        options: LMOptions,
        *,
        tokens: CTCTokens,
        checkpoint: str,
        local: bool,
        revision: str | None,
        verbose: bool = False,
    ) -> LMDecoder:
        """Load the LM and lexicon now (a bad file is found before any audio is read)."""
        overrides = {k: getattr(options, k) for k in OVERRIDES}
        return load_lm_decoder(
            tokens,
            checkpoint=checkpoint,
            local=local,
            revision=revision,
            lm=options.lm,
            lexicon=options.lexicon,
            overrides=overrides,  # the decoder keeps the values that are set
            workers=options.workers if options.workers is not None else len(os.sched_getaffinity(0)),
            verbose=verbose,
        )

    def __init__(self, settings: LMSettings, lexicon: Lexicon, tokens: CTCTokens, workers: int, verbose: bool = False):
        global _DECODER
        decoder, oov = build_flashlight(settings, lexicon, tokens, verbose)
        self._settings = {**settings.record(), "lexicon_oov": oov}
        _DECODER = (decoder, lexicon.texts)
        self._workers = workers
        self._pool = self._start_pool() if workers > 0 else None

    def _start_pool(self) -> ProcessPoolExecutor:
        # fork: the workers share the decoder (and the LM's memory) built above. All of them start now, before
        # the run starts its audio threads, not at the first batch
        pool = ProcessPoolExecutor(
            self._workers, mp_context=multiprocessing.get_context("fork"), initializer=_die_with_the_run
        )
        pool.submit(os.getpid).result()
        return pool

    def _result(self, future, item: np.ndarray, pool: ProcessPoolExecutor) -> str | DecodeFailure:
        """A worker that died takes the pool and the utterances it held with it: each of those is tried once more
        alone, in a process of its own, so only the utterance that kills a process is recorded as failed."""
        try:
            return future.result(timeout=DECODE_TIMEOUT_S)
        except FutureTimeout:
            self._kill_pool(pool)  # the stuck worker goes; the others' utterances are retried alone
            return DecodeFailure(f"the beam search took more than {DECODE_TIMEOUT_S:.0f} s")
        except (BrokenProcessPool, CancelledError):  # cancelled: queued in a pool that was killed
            self._kill_pool(pool)
        return self._alone(item)

    def _alone(self, item: np.ndarray) -> str | DecodeFailure:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"), initializer=_die_with_the_run)
        try:
            return pool.submit(_decode, item).result(timeout=DECODE_TIMEOUT_S)
        except FutureTimeout:
            return DecodeFailure(f"the beam search took more than {DECODE_TIMEOUT_S:.0f} s")
        except BrokenProcessPool:
            return DecodeFailure("the LM decoding process died on this utterance")
        finally:
            _kill(pool)

    def _kill_pool(self, pool: ProcessPoolExecutor) -> None:
        """End `pool` now (its workers killed, not waited for); if it is the shared one, the next batch starts a
        new one (a later batch's pool is left alone)."""
        _kill(pool)
        if pool is self._pool:
            self._pool = None

    def submit(self, items: list[np.ndarray]) -> Callable[[], list[str | DecodeFailure]]:
        if self._workers == 0:
            texts = [_decode(x) for x in items]
            return lambda: texts
        if self._pool is None:
            self._pool = self._start_pool()
        pool = self._pool
        futures = [pool.submit(_decode, x) for x in items]
        return lambda: [self._result(f, x, pool) for f, x in zip(futures, items, strict=True)]

    def settings(self) -> dict:
        return self._settings

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def load_lm_decoder(
    tokens: CTCTokens,
    *,
    checkpoint: str,
    local: bool,
    revision: str | None,
    lm: str | None,
    lexicon: str | None,
    overrides: dict,
    workers: int,
    verbose: bool = False,
) -> LMDecoder:
    """The LM decoder as configured: `decoder.lm` (an ARPA or KenLM binary file), else the checkpoint's own
    `language_model/` folder; `overrides` (decoder.* values that are not null) win over its attrs.json."""
    unigrams, attrs, settings_from = None, {}, []
    if lm is None:
        folder = language_model_folder(checkpoint, local, revision)
        if folder is None:
            raise DecoderError(
                f"decoder=lm: model.checkpoint={checkpoint!r} has no {LM_FOLDER}/ folder; "
                "give an n-gram LM with decoder.lm=<ARPA or KenLM binary file>"
            )
        lm_path, unigrams, attrs = find_language_model(folder)
    else:
        lm_path = Path(lm).expanduser()
        if not lm_path.exists():
            raise DecoderError(f"decoder.lm={lm!r}: no such file (expected an ARPA or KenLM binary file)")
    values = {}
    for key, ours in ATTRS.items():
        if attrs.get(key) is not None and overrides.get(ours) is None:
            values[ours] = attrs[key] * math.log(10) if key == "alpha" else attrs[key]
            settings_from.append(ours)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if lexicon is not None:
        source, entries = lexicon, read_lexicon(Path(lexicon).expanduser())
    elif unigrams is not None:
        source, entries = str(unigrams), [(w, None) for w in _words_text(unigrams).split()]
    else:
        source, entries = f"{lm_path} (1-grams)", [(w, None) for w in read_arpa(lm_path)]
    words = build_lexicon(entries, tokens)
    words_file = Path(lexicon).expanduser() if lexicon is not None else unigrams
    settings = LMSettings(
        lm=str(lm_path),
        lexicon=source,
        lexicon_words=len(words.words),
        lexicon_dropped=words.dropped,
        settings_from=settings_from,
        **values,
    )
    settings.check()
    settings = replace(
        settings,
        lm_sha256=sha256_regular(lm_path),
        lexicon_sha256=None if words_file is None else sha256_regular(words_file),
    )
    return LMDecoder(settings, words, tokens, workers, verbose)
