"""What ran where: the harness's git hash, package versions (recorded inside every output)."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# what transformers loads a checkpoint's weights from (a Trainer's training_args.bin, optimizer.pt and rng files
# beside them are not weights)
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
# what else in a checkpoint folder decides its transcripts: the model's config, the tokens, the input processing
DECIDING_FILES = (
    "config.json", "preprocessor_config.json", "vocab.json", "tokenizer_config.json", "tokenizer.json",
    "special_tokens_map.json", "added_tokens.json",
)  # fmt: skip
PACKAGES = ("w2v2bench", "torch", "transformers", "datasets", "jiwer", "soundfile", "hydra-core", "numpy")


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_hash() -> str | None:
    """The harness's own commit (with `-dirty` for uncommitted changes), if it runs from a checkout."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{rev}-dirty" if dirty else rev


def device_name(device: torch.device) -> str:
    import torch  # only where a model ran: the tools that read results never load torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


# ---- what identifies the weights ----------------------------------------------------------------------


_DIGESTS: dict[tuple, bytes] = {}  # (path, size, mtime, ctime, inode) -> the file's sha256
# a file changed less than this long before it was hashed is hashed again next time: a change within the same
# clock tick as that stat (file times are coarse: a few ms here, seconds on some file systems) keeps its times
RACY_S = 2.0


def _file_digest(path: Path) -> bytes:
    """A file's sha256, read once per process while its size, times and inode stay the same (the weights' id and
    the checkpoint's id share the weight files: a 360 MB file costs 0.28 s here)."""
    st = os.stat(path)
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if key in _DIGESTS:
        return _DIGESTS[key]
    settled = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_S * 1e9
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").digest()
    if settled:
        _DIGESTS[key] = digest
    return digest


def _hash_files(files: tuple[Path, ...]) -> str:
    """sha256 over each file's name and digest, in the order given."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(_file_digest(path))
    return digest.hexdigest()


def _hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit a revision points to in the local Hugging Face cache, without touching the network."""
    if revision and re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return None
    ref = Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / (revision or "main")
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def _files(folder: Path, patterns: tuple[str, ...]) -> tuple[Path, ...]:
    return tuple(sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()}))


def checkpoint_id(folder: str | Path) -> str | None:
    """sha256:<hex> of what decides a local checkpoint's transcripts: its weight files and its config, vocabulary,
    tokenizer and preprocessor files (name and contents, in name order); None without weight files. What a
    model config's pin (`model.pin.sha256`) names."""
    folder = Path(folder)
    if not _files(folder, WEIGHT_PATTERNS):
        return None
    return "sha256:" + _hash_files(_files(folder, WEIGHT_PATTERNS + DECIDING_FILES))


def weights_id(checkpoint: str, revision: str | None, local: bool) -> str | None:
    """sha256:<hex> of a local folder's weight files; git:<commit> or revision:<name> for a Hub id."""
    if local:
        files = _files(Path(checkpoint), WEIGHT_PATTERNS)
        if not files:
            return None
        return "sha256:" + _hash_files(files)
    commit = _hub_commit(checkpoint, revision)
    if commit:
        return f"git:{commit}"
    return f"revision:{revision}" if revision else None
