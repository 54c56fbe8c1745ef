"""`python -m w2v2bench [TOOL] [key=value ...]`: a first word that names a tool runs it; none runs the benchmark."""

from __future__ import annotations

import importlib
import pkgutil
import sys

from . import cli


def tools() -> list[str]:
    """The tools `python -m w2v2bench TOOL` runs: the modules of w2v2bench.cli, less the scaffold and the benchmark."""
    names = (m.name for m in pkgutil.iter_modules(cli.__path__))
    return sorted(n for n in names if not n.startswith("_") and n != "bench")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in tools():
        sys.exit(importlib.import_module(f"{cli.__name__}.{sys.argv.pop(1)}").main())
    else:
        importlib.import_module(f"{cli.__name__}.bench").main()


if __name__ == "__main__":
    main()
