"""`python -m w2v2bench.random_model out=<folder> [size=tiny|base] [family=wav2vec2|hubert|data2vec-audio]
[norm=group|layer] [seed=0]`: a random-weight CTC checkpoint built from a config (w2v2bench.testing.random_model).

A developer's tool, not one of `python -m w2v2bench TOOL`'s (the leading underscore keeps it off that list).
"""

from __future__ import annotations

import sys

from ..testing import random_model


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(random_model.__doc__)
        return
    args = dict(a.split("=", 1) for a in argv)
    unknown = set(args) - {"out", "size", "norm", "seed", "family"}
    if unknown or "out" not in args:
        sys.exit(f"expected out=<folder> [size=tiny|base] [family=...] [norm=group|layer] [seed=N]; got {argv}")
    print(
        random_model.build(
            args["out"],
            args.get("size", "tiny"),
            args.get("norm", "group"),
            int(args.get("seed", 0)),
            args.get("family", "wav2vec2"),
        )
    )
