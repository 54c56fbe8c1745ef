"""Utterances from a source, decoded in parallel, cut into length-sorted batches.

A source is an iterable of `Utterance` in corpus order (LibriSpeech ids sorted as strings, as Kaldi
sorts them). `decoded_windows` decodes a bounded look-ahead window in worker threads while the
caller runs the model on the previous one; `plan_batches` sorts a window by length and cuts it into
batches bounded by count and padded audio seconds. Every result carries its corpus index, so the
caller restores corpus order window by window.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import one_line
from .files import read_regular, read_text

SAMPLE_RATE = 16_000
AUDIO_EXTENSIONS = (".flac", ".wav")  # OpenSLR ships FLAC; WAV is accepted for converted trees
SUBSET_RE = re.compile(r"^(test|dev|train)-(clean|other)(-\d+)?$")


class DataError(ValueError):
    """A data source that cannot be read at all (as opposed to one bad utterance)."""


class AudioError(ValueError):
    """One utterance's audio that cannot be used; the run records it and goes on."""


@dataclass(frozen=True)
class Utterance:
    index: int
    id: str
    speaker: str
    chapter: str
    text: str | None
    path: str | None = None
    data: bytes | None = field(default=None, repr=False)
    error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def origin(self) -> str:
        return self.path or f"<{self.id} bytes>"


@dataclass(frozen=True)
class Decoded:
    utterance: Utterance
    # what the model sees: 16 kHz mono float32, normalised if the checkpoint asks for it
    input_values: np.ndarray | None
    duration_s: float
    notes: tuple[str, ...] = ()
    error: str | None = None
    audio_sha256: str | None = None  # of the bytes that were decoded


def audio_bytes(utterance: Utterance) -> bytes:
    """The utterance's encoded audio: the Hub row's bytes, or the file's (a regular file only: a FIFO
    would hang the run)."""
    if utterance.data is not None:
        return utterance.data
    try:
        return read_regular(utterance.path)
    except OSError as err:
        raise AudioError(f"{utterance.origin}: cannot read ({one_line(err.strerror or err)})") from None


def audio_sha256(utterance: Utterance) -> str | None:
    """What identifies the audio an utterance's result was computed from (None: there is none to read)."""
    if utterance.error or (utterance.data is None and utterance.path is None):
        return None
    try:
        return hashlib.sha256(audio_bytes(utterance)).hexdigest()
    except AudioError:
        return None


def load_audio(source: str | bytes, origin: str) -> tuple[np.ndarray, list[str]]:
    """16 kHz mono float32 samples and notes on what was done to get them (downmix, resample)."""
    notes: list[str] = []
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        samples, rate = sf.read(handle, dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile's errors are plain RuntimeErrors or LibsndfileErrors
        raise AudioError(f"{origin}: cannot decode audio ({type(err).__name__}: {err})") from err
    if samples.shape[0] == 0:
        raise AudioError(f"{origin}: audio has no samples")
    if samples.shape[1] > 1:
        notes.append(f"downmixed {samples.shape[1]} channels")
        samples = samples.mean(axis=1, dtype=np.float32, keepdims=True)
    wave = np.ascontiguousarray(samples[:, 0])
    if rate != SAMPLE_RATE:
        notes.append(f"resampled {rate} Hz -> {SAMPLE_RATE} Hz (soxr HQ)")
        wave = soxr.resample(wave, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    if not np.isfinite(wave).all():
        raise AudioError(f"{origin}: audio holds NaN or infinite samples")
    return wave, notes


def _find_subset(root: Path, partition: str, split: str) -> Path:
    if not root.is_dir():
        raise DataError(f"data.root={str(root)!r}: no such folder")
    subset = f"{partition}-{split}"
    for candidate in (root / subset, root / "LibriSpeech" / subset):
        if candidate.is_dir():
            return candidate
    found = sorted(p.name for p in (*root.glob("*"), *root.glob("LibriSpeech/*")) if SUBSET_RE.match(p.name))
    raise DataError(
        f"data.root={str(root)!r}: no {subset}/ folder (nor LibriSpeech/{subset}/); subsets found: {found or 'none'}"
    )


MAX_TRANSCRIPT_BYTES = 64 * 2**20  # a chapter's trans.txt is a few KB


def _transcript_lines(subset: Path) -> tuple[dict[str, list[tuple[str, str]]], int]:
    """utterance id -> [(text, "file:line"), ...] over every trans.txt, and how many files were read."""
    lines: dict[str, list[tuple[str, str]]] = {}
    files = sorted(p for p in subset.glob("*/*/*.trans.txt") if not p.name.startswith("."))
    for trans in files:
        try:
            content = read_text(trans, max_bytes=MAX_TRANSCRIPT_BYTES)
        except ValueError as err:  # not UTF-8: the file, line and byte offset are in the message
            raise DataError(str(err)) from None
        except OSError as err:
            raise DataError(f"{trans}: cannot be read ({one_line(err.strerror or err)})") from None
        # newlines only (and CRLF): other line breaks inside a line are whitespace of its text
        for number, line in enumerate(content.split("\n"), start=1):
            if line.strip():
                utt_id, _, text = line.strip().partition(" ")
                lines.setdefault(utt_id, []).append((" ".join(text.split()), f"{trans}:{number}"))
    return lines, len(files)


def local_utterances(root: str | os.PathLike, partition: str, split: str) -> list[Utterance]:
    """Utterances of an OpenSLR tree: `<subset>/<speaker>/<chapter>/<utt>.flac` + `<spk>-<ch>.trans.txt`.

    Transcript whitespace is collapsed and a lower-case line is upper-cased (with a note). Anything that
    makes an utterance ambiguous or incomplete becomes an utterance that carries `error` (recorded, never
    silently dropped or resolved): a transcript line without audio, audio without a transcript line, a line
    with an id and no text, an id on two transcript lines (in one file or two), an id with two audio files
    (`.flac` beside `.wav`, or in two chapter folders). A transcript file that cannot be read (not UTF-8, a
    FIFO or device) stops the run with one line: its utterances' references are unknown.
    """
    subset = _find_subset(Path(root), partition, split)
    texts, n_files = _transcript_lines(subset)
    audio: dict[str, list[Path]] = {}
    for path in sorted(p for ext in AUDIO_EXTENSIONS for p in subset.glob(f"*/*/*{ext}")):
        if path.name.startswith("."):  # macOS `._` sidecars and other hidden files are not utterances
            continue
        try:
            path.stem.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(f"{str(path)!r}: the file name is not UTF-8; rename it") from None
        audio.setdefault(path.stem, []).append(path)
    if not texts and not audio:
        found = f"{n_files} .trans.txt file(s), every one empty" if n_files else "no .trans.txt files"
        raise DataError(f"{subset}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) and no transcript lines ({found})")
    utterances = []
    for index, utt_id in enumerate(sorted(texts.keys() | audio.keys())):
        speaker, chapter = (utt_id.split("-") + ["", ""])[:2]
        lines, paths = texts.get(utt_id, []), audio.get(utt_id, [])
        text, where = lines[0] if lines else (None, None)
        error, notes = None, ()
        if text and text != text.upper():
            text, notes = text.upper(), ("reference upper-cased (OpenSLR transcripts are upper case)",)
        if len(lines) > 1:
            error = f"{utt_id}: on {len(lines)} transcript lines ({', '.join(w for _, w in lines)}): which is its text?"
        elif len(paths) > 1:
            error = f"{utt_id}: {len(paths)} audio files ({', '.join(map(str, paths))}): which is its audio?"
        elif lines and not text:
            error = f"{where}: transcript line for {utt_id} has no text"
        elif not paths:
            error = f"{where}: transcript line for {utt_id} but no {utt_id}.flac"
        elif not lines:
            error = f"{paths[0]}: audio with no transcript line in {speaker}-{chapter}.trans.txt"
        path_str = str(paths[0]) if paths else None
        utterances.append(Utterance(index, utt_id, speaker, chapter, text or None, path_str, error=error, notes=notes))
    return utterances


def hub_utterances(dataset: str, revision: str | None, config: str, split: str) -> Iterator[Utterance]:
    """Stream a LibriSpeech split from the Hub with `datasets` (its own config and split names, see
    `data.hub_names`); audio stays encoded (no torchcodec). Any error of `datasets` opening the stream is
    one DataError naming the dataset, config, split and revision."""
    from datasets import Audio, load_dataset

    where = f"{dataset} (config {config!r}, split {split!r}, revision {revision or 'main'!r})"
    mirror = Path(dataset).expanduser()
    if mirror.is_dir():  # a copy of the Hub repo's files: <config>/<split>/*.parquet, read offline
        files = sorted(str(p) for p in (mirror / config / split).glob("*.parquet"))
        if not files:
            raise DataError(f"data.dataset={dataset!r}: no {config}/{split}/*.parquet (the Hub repo's layout) in it")
        where = f"{dataset} ({len(files)} parquet file(s) in {config}/{split})"
    try:
        if mirror.is_dir():
            stream = load_dataset("parquet", data_files={split: files}, split=split, streaming=True)
        else:
            stream = load_dataset(dataset, config, split=split, streaming=True, revision=revision)
        stream = stream.cast_column("audio", Audio(decode=False))
        rows = iter(stream)
        first = next(rows, None)
    except Exception as err:  # whatever datasets, pyarrow or the Hub raise while opening the stream
        raise DataError(f"cannot open {where}: {type(err).__name__}: {one_line(err)}") from None
    if first is None:
        raise DataError(f"{where} has no rows")
    index, row = 0, first
    while row is not None:
        yield _hub_row(index, row, where)
        try:
            row = next(rows, None)
        except Exception as err:  # a later shard that cannot be read (pyarrow, the network): the run stops here
            raise DataError(f"{where}: row {index + 1} cannot be read: {type(err).__name__}: {one_line(err)}") from None
        index += 1


def _hub_row(index: int, row: dict, where: str) -> Utterance:
    """One row of a LibriSpeech dataset as an utterance; a row without what the harness needs is one DataError."""
    audio, text = row.get("audio"), row.get("text")
    if not isinstance(audio, dict) or not isinstance(audio.get("bytes"), bytes | None) or not isinstance(text, str):
        raise DataError(
            f"{where}: row {index} has no audio {{bytes, path}} column or no text "
            f"(found audio: {type(audio).__name__}, text: {type(text).__name__})"
        )
    utt_id = str(row.get("id") or Path(audio.get("path") or "").stem)
    if not utt_id:
        raise DataError(f"{where}: row {index} has neither an id nor an audio path to name it by")
    return Utterance(
        index=index,
        id=utt_id,
        speaker=str(row.get("speaker_id", "")),
        chapter=str(row.get("chapter_id", "")),
        text=" ".join(text.split()),
        path=audio.get("path"),
        data=audio.get("bytes"),
    )


def cached_dataset(dataset: str, revision: str | None) -> str | None:
    """The folder of a Hub dataset repo's files in the Hugging Face cache (downloaded before, e.g. with
    `hf download --repo-type dataset`), or None: read offline like a mirror (`<config>/<split>/*.parquet`)."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(dataset, repo_type="dataset", revision=revision, local_files_only=True)
    except Exception:  # not cached (LocalEntryNotFoundError), or not a repo id at all
        return None


def hub_dataset_commit(dataset: str, revision: str | None) -> str | None:
    """The commit a Hub dataset's revision (None: main) points to now; None when the Hub does not say."""
    from huggingface_hub import HfApi

    try:
        return HfApi().dataset_info(dataset, revision=revision, timeout=10).sha
    except Exception:  # informational only: the stream itself is already open
        return None


def open_stream(utterances: Iterator[Utterance]) -> Iterator[Utterance]:
    """`utterances` with its first item already read: a source that cannot be opened fails now (before the
    model loads, which may mean a download), not inside the run."""
    first = next(utterances, None)
    return iter(()) if first is None else itertools.chain([first], utterances)


def decode(utterance: Utterance, prepare: Callable[[np.ndarray], np.ndarray]) -> Decoded:
    """Read one utterance's audio and prepare the model input; faults become `error`, never raise."""
    if utterance.error:
        return Decoded(utterance, None, 0.0, utterance.notes, error=utterance.error)
    sha = None
    try:
        data = audio_bytes(utterance)
        sha = hashlib.sha256(data).hexdigest()
        wave, notes = load_audio(data, utterance.origin)
        duration_s = len(wave) / SAMPLE_RATE
        try:
            prepared = prepare(wave)
        except AudioError as err:  # audio the model cannot take (shorter than its first frame)
            raise AudioError(f"{utterance.origin}: {err}") from None
        return Decoded(utterance, prepared, duration_s, utterance.notes + tuple(notes), audio_sha256=sha)
    except AudioError as err:
        return Decoded(utterance, None, 0.0, utterance.notes, error=str(err), audio_sha256=sha)


def decoded_windows(
    utterances: Iterable[Utterance],
    prepare: Callable[[np.ndarray], np.ndarray],
    window: int,
    workers: int,
) -> Iterator[list[Decoded]]:
    """Windows of decoded utterances in corpus order; the next window decodes while the caller works.

    `workers=0` decodes in the calling thread instead: on a CPU device the model already uses every core,
    and decoding threads beside it only make the two contend."""
    it = iter(utterances)
    chunks = iter(lambda: list(itertools.islice(it, max(1, window))), [])
    if workers == 0:
        for chunk in chunks:
            yield [decode(u, prepare) for u in chunk]
        return
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        pending: list[Future[Decoded]] | None = None
        for chunk in chunks:
            submitted = [pool.submit(decode, u, prepare) for u in chunk]
            if pending is not None:
                yield [f.result() for f in pending]
            pending = submitted
        if pending is not None:
            yield [f.result() for f in pending]


def plan_batches(lengths: list[int], batch_size: int, max_batch_samples: int) -> list[list[int]]:
    """Positions into `lengths`, longest first, grouped so that count <= batch_size and
    count x longest <= max_batch_samples (a single longer utterance gets a batch of its own)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches:
            batch = batches[-1]
            longest = lengths[batch[0]]
            if len(batch) < batch_size and (len(batch) + 1) * longest <= max_batch_samples:
                batch.append(i)
                continue
        batches.append([i])
    return batches
