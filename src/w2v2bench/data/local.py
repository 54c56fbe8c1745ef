"""Utterances from a local OpenSLR LibriSpeech tree (`<subset>/<speaker>/<chapter>/<id>.flac` + trans.txt)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, one_line
from ..files import read_text
from . import DataError, Utterance

AUDIO_EXTENSIONS = (".flac", ".wav")  # OpenSLR ships FLAC; WAV is accepted for converted trees


SUBSET_RE = re.compile(r"^(test|dev|train)-(clean|other)(-\d+)?$")


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


PARTITIONS = ("test", "dev")


@dataclass(frozen=True)
class LocalSettings:
    name: str  # what the set is called in outputs (librispeech, demo)
    root: str | None = None  # the folder holding test-clean/, test-other/ ...
    partition: str = "test"

    def __post_init__(self):
        if not self.root:
            raise ConfigError("data.root is not set: data=local needs data.root=<folder holding test-clean/ ...>")
        if self.partition not in PARTITIONS:
            raise ConfigError(f"data.partition={self.partition!r}: expected one of {list(PARTITIONS)}")


class LocalSource:
    """`data=local`/`data=demo`: an OpenSLR tree on disk, read whole (it is small) and counted up front."""

    name = "local"
    Settings = LocalSettings

    def __init__(self, settings: LocalSettings):
        self.settings = settings
        self.commit = None  # a folder has no commit (summary.json's config.data.commit)

    @classmethod
    def create(cls, settings: LocalSettings) -> LocalSource:
        return cls(settings)

    def utterances(self, split: str, limit: int | None) -> tuple[list[Utterance], int]:
        """(utterances in corpus order, their count): the first `limit` of `<partition>-<split>`."""
        found = local_utterances(self.settings.root, self.settings.partition, split)
        found = found[:limit] if limit is not None else found
        return found, len(found)
