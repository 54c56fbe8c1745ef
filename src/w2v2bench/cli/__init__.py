"""Every command: a thin shell that parses its arguments, calls one library function, prints and exits.

`python -m w2v2bench [TOOL] key=value ...` (or the console script `w2v2bench`): a first word that names a module
here runs that tool; none runs the benchmark (`bench.py`). A new tool is a new module here.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import functools
import gc


@functools.cache  # once, however often a command runs in one process
def skip_the_last_collections() -> None:
    """At the interpreter's exit, move every object out of the cyclic collector's reach first: its collections
    during shutdown walk the whole heap torch and transformers built (0.8 s of a 6.5 s one-utterance run,
    docs/benchmark.md). Objects are still freed by reference counting; only unreachable cycles are left to the
    operating system, their `__del__` never run: a file object held only by a cycle is not flushed (every output
    of ours is written and closed, or flushed write by write, before the exit)."""
    atexit.register(gc.freeze)


# glibc's mallopt parameters, and what reuse_freed_host_memory sets them to; glibc before 2.35 refuses an mmap
# threshold above 32 MiB (HEAP_MAX_SIZE / 2): there it takes that
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLDS, TRIM_THRESHOLD = (1 << 30, 32 << 20), (1 << 31) - 1


def reuse_freed_host_memory() -> bool:
    """Serve buffers up to 1 GiB (32 MiB on glibc before 2.35) from glibc's heap and keep freed heap pages there
    (mallopt), for the whole process; returns whether it applied (glibc only). By default glibc maps each large
    buffer afresh and unmaps it when freed, so every CPU forward faults its activations in page by page: at batch
    size 1 on 2 cores that was 1.4 million page faults and 2.7 s of system time per 25 utterances, where the card
    script, whose `datasets` raised glibc's own thresholds early, had 0.3 million and 0.9 s (docs/benchmark.md). The
    run loop still hands free pages back (pipeline.release_host_memory: after every batch of several, every 10 s at
    batch size 1), so memory stays flat. Process-wide and permanent: the command line calls it for its own process;
    the library never does."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return any(mallopt(M_MMAP_THRESHOLD, size) for size in MMAP_THRESHOLDS) and trim
