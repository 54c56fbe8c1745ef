"""Utterances of a lhotse manifest: a CutSet, or supervisions with their recordings (`data=lhotse`).

Each supervision is an utterance: its id, text and speaker, the segment of its recording from `start` for
`duration` seconds (in a cut: the cut's start plus the supervision's), its channel. Only audio sources of type
`file` are read (soundfile, as every other source's): a `url` or `command` source (lhotse would fetch or run it)
is that utterance's recorded failure, never fetched or run. lhotse is an optional extra (`pip install
"w2v2bench[lhotse]"`); its manifests are read with its own `load_manifest` (JSON or JSON lines, gzipped or not).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, one_line
from ..files import read_regular
from . import DataError, Utterance
from .manifest import SAFE_ID, _seconds, plain_id, unique_id

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")  # what is read (lhotse's YAML manifests are not)
MAX_MANIFEST_BYTES = 512 * 2**20


def _suffix_ok(path: str) -> bool:
    return str(path).endswith(SUFFIXES)


@dataclass(frozen=True)
class LhotseSettings:
    name: str  # the set's name in outputs (default: the manifest's file name)
    path: str | None = None  # a CutSet, or a SupervisionSet (then `recordings` too)
    recordings: str | None = None  # null: the supervisions' file name with "supervisions" made "recordings"

    def __post_init__(self):
        if not self.path:
            raise ConfigError("data.path is not set: data=lhotse needs data.path=<cuts or supervisions manifest>")
        for key, value in (("path", self.path), ("recordings", self.recordings)):
            if value is None:
                continue
            if not _suffix_ok(value):
                raise ConfigError(f"data.{key}={value!r}: expected a lhotse manifest ({', '.join(SUFFIXES)})")
            try:
                found = Path(value).expanduser().is_file()
            except (RuntimeError, ValueError):  # ~user of no such user, a NUL
                found = False
            if not found:
                raise ConfigError(f"data.{key}={value!r}: no such file")


def _load(path: Path):
    """A lhotse manifest, read by lhotse from a regular file (a FIFO or a device would hang it)."""
    try:
        import lhotse
    except ImportError:
        raise DataError('data=lhotse needs lhotse: pip install "w2v2bench[lhotse]"') from None
    try:
        read_regular(path, MAX_MANIFEST_BYTES)[:0]  # a regular file of a sane size, or one line
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot be read ({one_line(err)})") from None
    try:
        return lhotse.load_manifest(path)
    except Exception as err:  # lhotse raises what its parsers raise: one line naming the file
        raise DataError(f"{path}: not a lhotse manifest ({type(err).__name__}: {one_line(err)})") from None


def _utterance(index: int, sup, recording, start, seen: dict) -> Utterance:
    error, path = None, None
    try:
        start, duration = _seconds(start, "start") or 0.0, _seconds(sup.duration, "duration")
    except ValueError as err:
        error, start, duration = f"supervision {sup.id}: {err}", 0.0, None
    if recording is False:
        error = error or f"supervision {sup.id}: in a mixed cut (several recordings): not read"
        recording = None
    elif recording is None:
        error = f"supervision {sup.id}: no recording {sup.recording_id!r} in the recordings manifest"
    else:
        sources = [s for s in recording.sources if s.type == "file"]
        if not sources:
            kinds = sorted({s.type for s in recording.sources})
            error = f"recording {recording.id}: audio source {kinds} not read (files only: nothing is fetched or run)"
        else:
            try:  # as lhotse reads it: a relative source against the working directory
                path = str(Path(sources[0].source).expanduser())
            except (RuntimeError, ValueError) as err:
                error = f"recording {recording.id}: audio source {sources[0].source!r} cannot be used ({err})"
    channel = sup.channel if isinstance(sup.channel, int) else None
    if isinstance(sup.channel, list) and len(sup.channel) > 1:
        error = error or f"supervision {sup.id}: channels {sup.channel} (one channel a supervision is read)"
    elif isinstance(sup.channel, list) and sup.channel:
        channel = sup.channel[0]
    text = " ".join(sup.text.split()) if isinstance(sup.text, str) and sup.text.strip() else None
    if text is None:
        error = error or f"supervision {sup.id}: no text"
    utt_id = str(sup.id)
    if not SAFE_ID.fullmatch(utt_id):
        error = error or f"supervision {sup.id!r}: not a plain id (no spaces, parentheses or control characters)"
        utt_id = plain_id(utt_id)
    elif utt_id in seen:
        error = error or f"supervision {sup.id}: its id is also supervision number {seen[utt_id] + 1}'s"
    utt_id = unique_id(utt_id, seen, f"supervision:{index + 1}")
    seen[utt_id] = index
    speaker = "" if sup.speaker is None else str(sup.speaker)
    return Utterance(
        index, utt_id, speaker, "", text, path, error=error, offset=start, duration=duration, channel=channel,
    )  # fmt: skip


def _start(cut, sup):
    """Where a cut's supervision starts in its recording (what is not a number is kept, and then refused)."""
    try:
        return float(cut.start) + float(sup.start)
    except (TypeError, ValueError):
        return f"{cut.start!r} + {sup.start!r}"


def lhotse_utterances(settings: LhotseSettings) -> tuple[list[Utterance], str]:
    """(the supervisions as utterances, in the manifest's order; the sha256 of the manifest files read)."""
    import lhotse

    path = Path(settings.path).expanduser()
    manifest = _load(path)
    digest = hashlib.sha256(read_regular(path, MAX_MANIFEST_BYTES))
    seen: dict[str, int] = {}
    if isinstance(manifest, lhotse.CutSet):
        pairs = [(sup, getattr(cut, "recording", False), _start(cut, sup)) for cut in manifest
                 for sup in cut.supervisions]  # fmt: skip
    elif isinstance(manifest, lhotse.SupervisionSet):
        default = path.name.replace("supervisions", "recordings")
        recordings_path = Path(settings.recordings).expanduser() if settings.recordings else path.with_name(default)
        if recordings_path == path or not recordings_path.is_file():
            raise DataError(
                f"{path}: supervisions need their recordings: data.recordings=<file> (looked for {recordings_path})"
            )
        recordings = _load(recordings_path)
        if not isinstance(recordings, lhotse.RecordingSet):
            raise DataError(f"{recordings_path}: not a lhotse RecordingSet ({type(recordings).__name__})")
        digest.update(read_regular(recordings_path, MAX_MANIFEST_BYTES))
        pairs = [(sup, recordings[sup.recording_id] if sup.recording_id in recordings else None, sup.start)
                 for sup in manifest]  # fmt: skip
    else:
        raise DataError(f"{path}: a {type(manifest).__name__}; expected a CutSet or a SupervisionSet")
    if not pairs:
        raise DataError(f"{path}: no supervisions")
    return [_utterance(i, sup, rec, start, seen) for i, (sup, rec, start) in enumerate(pairs)], digest.hexdigest()


class LhotseSource:
    """`data=lhotse`: the supervisions of a lhotse manifest, read whole and counted up front."""

    name = "lhotse"
    Settings = LhotseSettings

    def __init__(self, settings: LhotseSettings):
        self.settings = settings
        self.commit: str | None = None  # sha256:<hex> of the manifest file(s), once read (summary.json's data.commit)

    @classmethod
    def create(cls, settings: LhotseSettings) -> LhotseSource:
        return cls(settings)

    def utterances(self, split: str, limit: int | None) -> tuple[list[Utterance], int]:
        """(the first `limit` supervisions as utterances, their count); a manifest has no splits."""
        found, digest = lhotse_utterances(self.settings)
        self.commit = f"sha256:{digest}"
        found = found[:limit] if limit is not None else found
        return found, len(found)
