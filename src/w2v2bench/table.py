"""`python -m w2v2bench.table [root=results]`: the completed runs under a folder as one model x split table."""

from __future__ import annotations

import sys
from pathlib import Path

from .report import gather, write_text_atomic


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("Writes <root>/table.md and <root>/table.csv; `all=true` keeps every run, not only the latest.")
        return 0
    bad = [a for a in argv if "=" not in a or a.split("=", 1)[0] not in ("root", "all")]
    if bad:
        print(f"w2v2bench.table: error: {bad[0]!r}: expected root=<folder> or all=true|false", file=sys.stderr)
        return 1
    args = dict(a.split("=", 1) for a in argv)
    root = Path(args.get("root", "results"))
    if not root.is_dir():
        print(f"w2v2bench.table: error: root={str(root)!r}: no such folder", file=sys.stderr)
        return 1
    frame, skipped = gather(root)
    for line in skipped:
        print(f"w2v2bench.table: {line}", file=sys.stderr)
    if frame.empty:
        print(f"w2v2bench.table: no completed runs (summary.json) under {root}", file=sys.stderr)
        return 1
    if args.get("all", "false").lower() != "true":
        frame = frame.groupby(["model", "data", "split"], as_index=False).tail(1)
    write_text_atomic(root / "table.csv", frame.to_csv(index=False))
    write_text_atomic(root / "table.md", frame.to_markdown(index=False) + "\n")
    print(frame.drop(columns=["run"]).to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
