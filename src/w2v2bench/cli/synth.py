"""`python -m w2v2bench synth out=DIR ...`: the demo corpus generator (w2v2bench.synth)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import Exit
from ..testing.synth import SUBSETS, generate, require_espeak

# ---------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------
DEFAULTS = {
    "out": None,
    "seed": "0",
    "n_train": "24000",
    "n_test": "100",
    "sets": "train,test-clean,test-other",
    "workers": "2",
}


USAGE = """usage: python -m w2v2bench.synth out=DIR [seed=0] [n_train=24000] [n_test=100]
                               [sets=train,test-clean,test-other] [workers=2]

Speak generated sentences with espeak-ng into DIR/<subset>/<speaker>/<chapter>/ (OpenSLR layout,
16 kHz 16-bit FLAC + <speaker>-<chapter>.trans.txt), plus DIR/<subset>.json describing the subset.
n_test applies to test-clean and test-other each. Same seed and sizes give the same corpus."""


def parse_args(argv: Sequence[str]) -> dict:
    """key=value arguments into typed settings; errors name the bad value and the allowed ones."""
    args = dict(DEFAULTS)
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULTS:
            raise ValueError(f"argument {item!r}: expected key=value with key one of {list(DEFAULTS)}")
        args[key] = value
    if not args["out"]:
        raise ValueError("out=DIR is required")
    sets = [s for s in args["sets"].split(",") if s]
    for s in sets:
        if s not in SUBSETS:
            raise ValueError(f"sets: {s!r} is not a subset: expected a comma list of {list(SUBSETS)}")
    ints = {}
    for key in ("seed", "n_train", "n_test", "workers"):
        try:
            ints[key] = int(args[key])
        except ValueError:
            raise ValueError(f"{key}={args[key]!r}: expected an integer") from None
        if key != "seed" and ints[key] < 1:
            raise ValueError(f"{key}={ints[key]}: expected a positive integer")
    return {"out": Path(args["out"]), "sets": sets, **ints}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or "--help" in argv or "-h" in argv:
        print(USAGE)
        return Exit.OK
    try:
        args = parse_args(argv)
        require_espeak()
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return Exit.USAGE
    for subset in args["sets"]:
        n = args["n_train"] if subset == "train" else args["n_test"]
        summary = generate(args["out"], subset, n, args["seed"], args["workers"])
        print(
            f"{subset}: {summary['utterances']} utterances, {summary['hours']} h, "
            f"{len(summary['speakers'])} speakers -> {args['out'] / subset}"
        )
    return Exit.OK
