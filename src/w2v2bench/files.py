"""Open input files without hanging on them: regular files only, checked on the open descriptor.

A FIFO, a socket or a device named as a checkpoint, an audio file or a transcript would block `open()` or
`read()` forever (or stream without end). `open_regular` opens without blocking and refuses anything that is
not a regular file before a byte is read; checking the open descriptor (not the path) leaves no window
between the check and the read.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


class NotARegularFile(OSError):
    """The path names something other than a regular file; it was not read."""


def open_regular(path: str | os.PathLike, max_bytes: int | None = None) -> BinaryIO:
    """`path` opened for binary reading, if it is a regular file (of at most `max_bytes`)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise NotARegularFile(f"{path}: is {kind}, expected a regular file; it was not read")
        if max_bytes is not None and info.st_size > max_bytes:
            raise NotARegularFile(f"{path}: {info.st_size} bytes, more than the {max_bytes} expected at most")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file (see `open_regular`)."""
    with open_regular(path, max_bytes) as handle:
        return handle.read()


def read_text(path: str | os.PathLike, max_bytes: int | None = None) -> str:
    """A regular UTF-8 text file (a leading byte-order mark dropped); a file in another encoding is named
    with the first bad byte's line and offset."""
    data = read_regular(path, max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1  # lines as every reader here counts them: by newline
        raise ValueError(
            f"{Path(path)}:{line}: not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start}); "
            "re-encode the file as UTF-8"
        ) from None


def sha256_regular(path: str | os.PathLike) -> str:
    """The sha256 of a regular file's bytes, read in blocks (see `open_regular`: a FIFO or a device is refused)."""
    with open_regular(path) as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for the team to read
    os.replace(tmp, path)


def write_json_atomic(path: Path, payload: Any) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, allow_nan=True) + "\n")


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


class OutputFolderError(ValueError):
    """A tool's output folder that would lose what is in it (a run, a user's files): one line naming a free one."""


def free_folder(path: Path) -> Path:
    """`path`, or `path-2`, `path-3` ...: the first that does not exist (for a message)."""
    candidate, n = path, 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def check_output_folder(out: Path, ours: Iterable[str], tool: str, key: str = "out") -> None:
    """Refuse `out` if it is a link or a file, or holds anything but the files `tool` writes there (`ours`): a
    tool rewrites only its own named files, never a run's or a user's."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputFolderError(
            f"{key}={str(out)!r} is a link or not a folder: give a folder, e.g. {key}={free_folder(out)}"
        )
    if not out.exists():
        return
    mine = set(ours)
    others = sorted(p.name for p in out.iterdir() if p.name not in mine)
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise OutputFolderError(
            f"{key}={str(out)!r} holds {shown}, which {tool} did not write: nothing there is replaced; give a new "
            f"folder, e.g. {key}={free_folder(out)}"
        )
