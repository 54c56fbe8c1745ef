"""Is the Hugging Face Hub reachable: one quick probe, the one-line offline hint, the cache's snapshot commit."""

from __future__ import annotations

import functools
import urllib.error
import urllib.request
from pathlib import Path


class HubUnavailable(RuntimeError):
    """The Hub cannot be reached and nothing usable is cached; the message says what to run instead."""


OFFLINE_HINT = (
    "run offline with model.checkpoint=<local folder> data=local data.root=<LibriSpeech folder>, "
    "or `make demo` for the shipped offline model and corpus"
)


HUB_PROBE_S = 4.0  # with interpreter start-up and a failed cache look-up, "unreachable" is said within 10 s


@functools.cache
def hub_unreachable_reason(timeout_s: float = HUB_PROBE_S) -> str | None:
    """Why the Hub cannot be reached (None if it can): one HEAD request, no retries, once per process (the
    data source and the model ask the same question; a hanging connection costs its time budget once)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = constants.ENDPOINT
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return None  # it answered: reachable
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return f"{endpoint} did not answer ({reason})"
    return None


def _cached_commit(cached: object) -> str | None:
    path = Path(cached) if isinstance(cached, str) else None
    return path.parent.name if path is not None and path.parent.parent.name == "snapshots" else None
