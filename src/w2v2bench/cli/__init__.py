"""Every command: a thin shell that parses its arguments, calls one library function, prints and exits.

`python -m w2v2bench [TOOL] key=value ...` (or the console script `w2v2bench`): a first word that names a module
here runs that tool; none runs the benchmark (`bench.py`). A new tool is a new module here.
"""

from __future__ import annotations

import atexit
import gc


def skip_the_last_collections() -> None:
    """At the interpreter's exit, move every object out of the cyclic collector's reach first: its collections
    during shutdown walk the whole heap torch and transformers built (0.8 s of a 6.5 s one-utterance run,
    docs/benchmark.md). Objects are still freed by reference counting (files flush and close); only unreachable
    cycles are left to the operating system. Registered once, however often a command runs in one process."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
