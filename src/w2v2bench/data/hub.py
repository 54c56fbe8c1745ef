"""Utterances streamed from a Hugging Face Hub dataset (or a local copy of its repo, or the HF cache)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, one_line
from ..hub import OFFLINE_HINT, HubUnavailable, hub_unreachable_reason
from . import DataError, Utterance


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


@dataclass(frozen=True)
class HubSettings:
    name: str  # what the set is called in outputs (librispeech)
    dataset: str | None = None  # a Hub dataset id, or a folder holding a copy of its repo
    revision: str | None = None
    partition: str = "test"
    # "<partition>-<split>" -> [the dataset's config name, its split name]; each dataset names them its way
    hub_names: Mapping[str, list[str]] = field(default_factory=dict)

    def __post_init__(self):
        if not self.dataset:
            raise ConfigError("data.dataset is not set: data=hub needs a Hub dataset id or a folder of its files")
        looks_like_path = str(self.dataset).startswith(("/", "./", "../", "~"))
        try:
            missing = looks_like_path and not Path(self.dataset).expanduser().is_dir()
        except RuntimeError:  # ~user of no such user
            missing = True
        if missing:
            raise ConfigError(f"data.dataset={self.dataset!r}: no such folder (expected a copy of a Hub dataset repo)")
        for key, names in self.hub_names.items():
            if len(names) != 2:
                raise ConfigError(f"data.hub_names.{key}={list(names)}: expected [config, split]")


class HubSource:
    """`data=hub`/`data=esb`: a Hub dataset streamed (or a local copy of its repo, or the HF cache offline)."""

    name = "hub"
    Settings = HubSettings

    def __init__(self, settings: HubSettings):
        self.settings = settings
        self.commit: str | None = None  # what `revision` resolved to, once opened (summary.json's data.commit)

    @classmethod
    def create(cls, settings: HubSettings) -> HubSource:
        return cls(settings)

    def utterances(self, split: str, limit: int | None) -> tuple[Iterable[Utterance], int | None]:
        """(a stream of `<partition>-<split>` already opened, the count if known: `limit` at most)."""
        s = self.settings
        key = f"{s.partition}-{split}"
        if key not in s.hub_names:
            raise ConfigError(
                f"data={s.name} ({s.dataset}) has no {key}: it has {sorted(s.hub_names)} "
                "(data.hub_names in its conf/data file)"
            )
        hub_config, hub_split = s.hub_names[key]
        dataset = s.dataset
        mirrored = Path(dataset).expanduser().is_dir()  # a local copy of the Hub repo: no network needed
        reason = None if mirrored else hub_unreachable_reason()
        commit = None
        if reason is not None:
            dataset = cached_dataset(dataset, s.revision)  # the repo's files downloaded before (hf download)
            if dataset is None or not any(Path(dataset, hub_config, hub_split).glob("*.parquet")):
                raise HubUnavailable(
                    f"cannot stream {s.dataset}: the Hugging Face Hub is unreachable ({reason}) and the dataset repo "
                    f"is not in the Hugging Face cache; {OFFLINE_HINT}"
                )
            commit = Path(dataset).name  # the cache's snapshot folder is named by its commit
            mirrored = True
        stream = open_stream(hub_utterances(dataset, s.revision, hub_config, hub_split))
        # what revision (null: main) resolved to, so a nightly can tell that the data changed
        self.commit = commit if mirrored else hub_dataset_commit(s.dataset, s.revision)
        return (itertools.islice(stream, limit) if limit is not None else stream), limit
