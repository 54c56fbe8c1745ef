"""`python -m w2v2bench.table [root=results] [view=runs|leaderboard]`: completed runs under a folder as one table.

`view=runs` (default): one row per series (model x data x split x coverage x protocol: summary.json's
measurement) with WER, CER, error counts, RTFx and the reference check; the protocol columns shown are those in
which some row differs from the card protocol (backend, precision, decoder, normalizer, batching, device ...).
`view=leaderboard`: one row per series (the latest run of each), our WER beside the
card's figure, the difference in percentage points, the check's verdict (or why there was none), RTFx, and the
class and feature-encoder norm each checkpoint was found to have.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import Exit
from ..files import write_text_atomic
from ..table import VIEWS, gather, shown


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("Writes <root>/table.md and <root>/table.csv (view=leaderboard: leaderboard.md and leaderboard.csv);")
        print("`all=true` keeps every run, not only the latest of each row; `rescores=true` adds the re-scores")
        print("(python -m w2v2bench score) under root, each a row of its own (scoring: re-score).")
        return Exit.OK
    bad = [a for a in argv if "=" not in a or a.split("=", 1)[0] not in ("root", "all", "view", "rescores")]
    if bad:
        print(
            f"w2v2bench.table: error: {bad[0]!r}: expected root=<folder>, view=runs|leaderboard, all=true|false or "
            "rescores=true|false",
            file=sys.stderr,
        )
        return Exit.FAILED
    args = dict(a.split("=", 1) for a in argv)
    root = Path(args.get("root", "results"))
    view = args.get("view", "runs")
    if view not in VIEWS:
        print(f"w2v2bench.table: error: view={view!r}: expected one of {list(VIEWS)}", file=sys.stderr)
        return Exit.FAILED
    if not root.is_dir():
        print(f"w2v2bench.table: error: root={str(root)!r}: no such folder", file=sys.stderr)
        return Exit.FAILED
    row, keys = VIEWS[view]
    rescores = args.get("rescores", "false").lower()
    if rescores not in ("true", "false"):
        print(f"w2v2bench.table: error: rescores={rescores!r}: expected true or false", file=sys.stderr)
        return Exit.FAILED
    frame, skipped = gather(root, row, rescores=rescores == "true")
    for line in skipped:
        print(f"w2v2bench.table: {line}", file=sys.stderr)
    if frame.empty:
        print(f"w2v2bench.table: no completed runs (summary.json) under {root}", file=sys.stderr)
        return Exit.FAILED
    if args.get("all", "false").lower() != "true":
        frame = frame.groupby(keys, as_index=False, dropna=False).tail(1)
    name = "table" if view == "runs" else "leaderboard"
    write_text_atomic(root / f"{name}.csv", frame.to_csv(index=False))
    frame = shown(frame)
    write_text_atomic(root / f"{name}.md", frame.drop(columns=["finished"]).to_markdown(index=False) + "\n")
    print(frame.drop(columns=["run", "finished"]).to_markdown(index=False))
    return Exit.OK
