"""Utterances of any Hugging Face dataset, its columns named (`data=hf`): a Hub dataset, a `save_to_disk` folder,
or parquet files.

`data.dataset` is a Hub id (streamed, as `data=hub` streams LibriSpeech), a folder `Dataset.save_to_disk` wrote,
or parquet files (a file, a folder of them, or a glob). `data.audio_column` (an `Audio` column, a `{bytes, path}`
struct, or a path), `data.text_column`, `data.id_column` and `data.speaker_column` say which columns are which
(a Common Voice set: `data.text_column=sentence data.speaker_column=client_id`). Audio stays encoded until the
harness decodes it (soundfile; no torchcodec). The set is named by `data.name` (default: the dataset's name, config
and split), where a LibriSpeech run has `<partition>-<split>`.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, one_line
from ..hub import OFFLINE_HINT, HubUnavailable, hub_unreachable_reason
from ..metrics.normalizers import NORMALIZERS, normalizer
from . import DataError, Utterance
from .hub import cached_dataset, hub_dataset_commit, open_stream
from .manifest import SAFE_ID, plain_id, unique_id


@dataclass(frozen=True)
class HFSettings:
    name: str  # the set's name in outputs (default: the dataset's name, config and split)
    dataset: str | None = None  # a Hub id, a save_to_disk folder, or parquet file(s) (a file, a folder, a glob)
    config: str | None = None  # the Hub dataset's config (null: its default)
    split: str = "test"  # the dataset's split (a save_to_disk DatasetDict's key; parquet files have none)
    revision: str | None = None  # a Hub dataset's revision (null: main; the commit it resolved to is recorded)
    audio_column: str = "audio"
    text_column: str = "text"
    id_column: str | None = None  # null: "id" where the dataset has it, else the audio file's name, else the row
    speaker_column: str | None = None  # null: "speaker_id" where the dataset has it
    # a normaliser's name: rows whose text it makes empty (or "ignore time segment in scoring") are left out, as the
    # Open ASR Leaderboard's prepare_data leaves them out (null: every row is an utterance; empty text a failure)
    drop_unscored: str | None = None

    def __post_init__(self):
        if not self.dataset:
            raise ConfigError(
                "data.dataset is not set: data=hf needs a Hub dataset id, a save_to_disk folder or parquet files"
            )
        if self.config is not None and not CONFIG_NAME.fullmatch(str(self.config)):
            raise ConfigError(f"data.config={self.config!r}: expected a dataset config's name (no / or ..)")
        if self.drop_unscored is not None and self.drop_unscored not in NORMALIZERS:
            raise ConfigError(
                f"data.drop_unscored={self.drop_unscored!r}: expected null or one of {sorted(NORMALIZERS)}"
            )


CONFIG_NAME = re.compile(r"(?!\.\.)[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a folder of a repo copy: never a path
SPLIT_NAMES = ("train", "validation", "valid", "dev", "test")


# a parquet file's split by its name: `test-00000-of-00002.parquet`, `test.clean-0.parquet`, `test.parquet`
NUMBERED = re.compile(r"(?P<label>.+?)(?:[-_.]\d+(?:-of-\d+)?)?\.parquet")


def _split_like(label: str) -> bool:
    """Whether a file or folder name says a split: one of its dotted or underscored parts is a split's name."""
    return any(part in SPLIT_NAMES for part in re.split(r"[._-]", label))


def _parquet_files(dataset: str, split: str) -> list[str] | None:
    """The parquet files of `split` that `dataset` names (a file, a glob, or a folder: a downloaded Hub repo's
    `<split>-*.parquet` or `<split>/` files, searched 3 folders deep), or None: not parquet. Files that name no
    split are all taken; files that name others but none of `split` are one line naming theirs."""
    path = Path(dataset).expanduser()
    if path.is_dir() and not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
        found = sorted({p for depth in ("", "*/", "*/*/") for p in path.glob(f"{depth}*.parquet") if p.is_file()})
        if not found:
            return None
        labels = {p: {NUMBERED.fullmatch(p.name).group("label"), *p.relative_to(path).parts[:-1]} for p in found}
        mine = [p for p in found if split in labels[p]]  # (`test.clean-0.parquet` is not of the split `test`)
        if mine:
            return [str(p) for p in mine]
        splits = sorted({label for p in found for label in labels[p] if _split_like(label)})
        if splits:
            raise DataError(f"data.split={split!r}: {dataset} has parquet files of the splits {splits}")
        return [str(p) for p in found]
    if str(dataset).endswith(".parquet"):
        return sorted(p for p in glob.glob(str(path)) if Path(p).is_file())
    return None


def _fingerprint(files: list[str]) -> str:
    """What identifies local parquet files without reading them all: sha256 of their names and sizes."""
    digest = hashlib.sha256()
    for name in files:
        digest.update(f"{Path(name).name}\0{Path(name).stat().st_size}\n".encode())
    return f"files:{digest.hexdigest()}"


def _rows(s: HFSettings) -> tuple[Iterable[dict], str, str | None]:
    """(the dataset's rows, audio left encoded; where they come from, for messages; the Hub commit or None)."""
    from datasets import Audio, DatasetDict, load_dataset, load_from_disk

    commit = None
    try:
        path = Path(s.dataset).expanduser()
        if not path.is_dir() and not str(s.dataset).endswith(".parquet") and hub_unreachable_reason() is not None:
            cached = cached_dataset(s.dataset, s.revision)  # a Hub id offline: its repo's files downloaded before
            if cached is not None:
                path, commit = Path(cached), Path(cached).name  # the cache's snapshot folder is named by its commit
                if s.config and not (path / s.config).is_dir():
                    raise HubUnavailable(
                        f"cannot stream {s.dataset}: the Hugging Face Hub is unreachable and its cached copy has no "
                        f"{s.config}/ files; download them (hf download {s.dataset} --repo-type dataset "
                        f"--include '{s.config}/*' while online) or give data.dataset=<a copy of the repo's files>"
                    )
        saved = (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()
        if s.config and path.is_dir() and not saved:  # a copy of a Hub repo: <config>/<split>/ or <split>-* files
            if not (path / s.config).is_dir():  # never another config's files found deeper down
                raise DataError(f"data.dataset={s.dataset!r}: no folder {s.config}/ (data.config) in it")
            path = path / s.config
        elif path.is_dir() and not saved:  # several configs' folders: which one is not guessed
            configs = sorted(
                {q.relative_to(path).parts[0] for depth in ("*/", "*/*/") for q in path.glob(f"{depth}*.parquet")}
            )
            configs = [c for c in configs if not _split_like(c)]
            if len(configs) > 1:
                raise DataError(
                    f"data.dataset={s.dataset!r} holds the configs {configs}: name one with data.config=<config>"
                )
        parquet = _parquet_files(str(path), s.split)
        if parquet is not None:
            if not parquet:
                raise DataError(f"data.dataset={s.dataset!r}: no parquet files there")
            where = f"{s.dataset} ({len(parquet)} parquet file(s))"
            commit = commit or _fingerprint(parquet)
            rows = load_dataset("parquet", data_files={"rows": parquet}, split="rows", streaming=True)
        elif path.is_dir():
            where = f"{s.dataset} (save_to_disk)"
            rows = load_from_disk(str(path))
            if isinstance(rows, DatasetDict):
                if s.split not in rows:
                    raise DataError(f"data.split={s.split!r}: {s.dataset} has the splits {sorted(rows)}")
                rows = rows[s.split]
            commit = f"fingerprint:{getattr(rows, '_fingerprint', None)}"  # datasets' own, saved with it
        else:
            where = f"{s.dataset} (config {s.config!r}, split {s.split!r}, revision {s.revision or 'main'!r})"
            reason = hub_unreachable_reason()
            if reason is not None:
                raise HubUnavailable(
                    f"cannot stream {s.dataset}: the Hugging Face Hub is unreachable ({reason}); give data.dataset a "
                    f"save_to_disk folder or its parquet files, or {OFFLINE_HINT}"
                )
            rows = load_dataset(s.dataset, s.config, split=s.split, streaming=True, revision=s.revision)
            commit = hub_dataset_commit(s.dataset, s.revision)
        features = getattr(rows, "features", None) or {}
        for column, kind in features.items():  # every Audio column: soundfile decodes the chosen one, not torchcodec
            if isinstance(kind, Audio):
                rows = rows.cast_column(column, Audio(decode=False))
    except (DataError, HubUnavailable):
        raise
    except Exception as err:  # whatever datasets, pyarrow or the Hub raise while opening it
        raise DataError(f"cannot open {s.dataset}: {type(err).__name__}: {one_line(err)}") from None
    return rows, where, commit


UNSCORED = "ignore time segment in scoring"  # a segment the Open ASR Leaderboard's prepare_data leaves out


def hf_utterances(
    s: HFSettings, rows: Iterable[dict], where: str, base: Path | None, dropped: list[str] | None = None
) -> Iterator[Utterance]:
    """The rows as utterances: a row without the audio or text column stops with one line (the columns are
    wrong); a row whose values cannot be used is that utterance's recorded failure. With `s.drop_unscored`, a
    row whose text that normaliser makes empty is left out, its row number added to `dropped`."""
    taken: dict[str, tuple[str, bool]] = {}  # id -> (where, whether the dataset stated it)
    unscored = None if s.drop_unscored is None else normalizer(s.drop_unscored)
    iterator = iter(rows)
    index, kept = 0, 0
    while True:
        try:
            row = next(iterator, None)
        except Exception as err:  # a shard that cannot be read (pyarrow, the network): the run stops here
            raise DataError(f"{where}: row {index} cannot be read: {type(err).__name__}: {one_line(err)}") from None
        if row is None:
            break
        for key, column in (("audio", s.audio_column), ("text", s.text_column), ("id", s.id_column),
                            ("speaker", s.speaker_column)):  # fmt: skip
            if column is not None and column not in row:
                raise DataError(
                    f"{where}: no column {column!r} (it has {sorted(row)}): name it with data.{key}_column=<column>"
                )
        text = row[s.text_column]
        if unscored is not None and isinstance(text, str) and unscored(text).strip() in ("", UNSCORED):
            if dropped is not None:
                dropped.append(f"row {index}")
        else:
            yield _utterance(s, kept, index, row, where, base, taken)
            kept += 1
        index += 1
    if not kept and index and unscored is not None:  # nothing to score: no figure, and never a run that says 0
        raise DataError(f"{where}: data.drop_unscored={s.drop_unscored} leaves out every one of its {index} rows")


def _utterance(
    s: HFSettings, number: int, index: int, row: dict, where: str, base: Path | None, taken: dict
) -> Utterance:
    """Row `index` as the `number`-th utterance."""
    audio, text, error = row[s.audio_column], row[s.text_column], None
    path, data = None, None
    if isinstance(audio, dict):
        path, data = audio.get("path"), audio.get("bytes")
        if not isinstance(data, bytes):
            data = None
    elif isinstance(audio, str):
        path = audio
    if data is None and isinstance(path, str) and path:
        try:
            candidate = Path(path).expanduser()
            path = str(candidate if candidate.is_absolute() or base is None else base / candidate)
        except RuntimeError:  # ~user of no such user
            error, path = f"{where}: row {index}: audio path {path!r} cannot be used (no such user)", None
    elif data is None:
        error = f"{where}: row {index}: no audio in column {s.audio_column!r} (found {type(audio).__name__})"
        path = None
    id_column = s.id_column or ("id" if "id" in row else None)
    given = row.get(id_column) if id_column else None
    stated = given is not None and given != "" and not isinstance(given, bool)
    if stated:
        wanted = str(given)
    else:  # the audio file's name, else the row's number: made here, so never a failure when taken
        named = audio.get("path") if isinstance(audio, dict) else audio
        wanted = (Path(named).stem if isinstance(named, str) else "") or f"row{index:06d}"
    if not SAFE_ID.fullmatch(wanted):
        if stated:
            error = error or f"{where}: row {index}: id {wanted!r} is not a plain id (no spaces, parentheses, controls)"
        wanted = plain_id(wanted)
    elif stated and taken.get(wanted, (None, False))[1]:  # only a repeat of a stated id is ambiguous
        error = error or f"{where}: row {index}: id {wanted!r} is also {taken[wanted][0]}'s"
    utt_id = unique_id(wanted, taken, f"row:{index}")
    taken[utt_id] = (f"row {index}", stated)
    speaker_column = s.speaker_column or ("speaker_id" if "speaker_id" in row else None)
    speaker = row.get(speaker_column) if speaker_column else None
    if isinstance(text, str) and text.strip():
        text = " ".join(text.split())
    else:
        error, text = error or f"{where}: row {index}: no text in column {s.text_column!r}", None
    return Utterance(number, utt_id, "" if speaker is None else str(speaker), "", text, path, data=data, error=error)


class HFSource:
    """`data=hf`: any Hugging Face dataset (Hub, save_to_disk folder, parquet files), its columns named."""

    name = "hf"
    Settings = HFSettings

    def __init__(self, settings: HFSettings):
        self.settings = settings
        self.commit: str | None = None  # the Hub commit the revision resolved to (summary.json's data.commit)
        self.dropped: list[str] = []  # the rows data.drop_unscored left out, as they are read

    @classmethod
    def create(cls, settings: HFSettings) -> HFSource:
        return cls(settings)

    def utterances(self, split: str, limit: int | None) -> tuple[Iterator[Utterance], int | None]:
        """(a stream of the rows as utterances, already opened; the count where the dataset knows it)."""
        s = self.settings
        rows, where, self.commit = _rows(s)
        text = str(s.dataset)
        cut = min((text.find(c) for c in "*?[" if c in text), default=-1)  # a glob: the folder before its wildcard
        path = Path(text if cut < 0 else text[:cut]).expanduser()
        base = path if path.is_dir() and cut < 0 else (path.parent if text.endswith(".parquet") else None)
        count = len(rows) if hasattr(rows, "__len__") else None
        if s.drop_unscored is not None:  # the count is known once every row is read; the limit counts utterances
            utterances = hf_utterances(s, rows, where, base, self.dropped)
            return open_stream(itertools.islice(utterances, limit) if limit is not None else utterances), limit
        if limit is not None:
            rows = rows.take(limit) if hasattr(rows, "take") else rows
            count = limit if count is None else min(count, limit)
        return open_stream(hf_utterances(s, rows, where, base)), count
