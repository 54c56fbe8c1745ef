"""A random-weight CTC checkpoint of the wav2vec2 family, built from a config (w2v2bench.testing.random_model).

Usage: python tools/random_model.py out=<folder> [size=tiny|base] [family=wav2vec2|hubert|data2vec-audio]
       [norm=group|layer] [seed=0]
"""

from __future__ import annotations

import sys

from w2v2bench.testing.random_model import build


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    args = dict(a.split("=", 1) for a in argv)
    unknown = set(args) - {"out", "size", "norm", "seed", "family"}
    if unknown or "out" not in args:
        sys.exit(f"expected out=<folder> [size=tiny|base] [family=...] [norm=group|layer] [seed=N]; got {argv}")
    print(
        build(
            args["out"],
            args.get("size", "tiny"),
            args.get("norm", "group"),
            int(args.get("seed", 0)),
            args.get("family", "wav2vec2"),
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
