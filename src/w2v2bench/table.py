"""`python -m w2v2bench.table [root=results]`: the completed runs under a folder as one model x split table."""

from __future__ import annotations

import sys
from pathlib import Path

from .report import gather


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("Writes <root>/table.md and <root>/table.csv; `all=true` keeps every run, not only the latest.")
        return 0
    args = dict(a.split("=", 1) for a in argv)
    unknown = sorted(set(args) - {"root", "all"})
    if unknown:
        print(
            f"w2v2bench.table: unknown argument(s) {unknown}: expected root=<folder> all=true|false",
            file=sys.stderr,
        )
        return 1
    root = Path(args.get("root", "results"))
    frame = gather(root)
    if frame.empty:
        print(f"w2v2bench.table: no completed runs (summary.json) under {root}", file=sys.stderr)
        return 1
    if args.get("all", "false").lower() != "true":
        frame = frame.groupby(["model", "data", "split"], as_index=False).tail(1)
    frame.to_csv(root / "table.csv", index=False)
    (root / "table.md").write_text(frame.to_markdown(index=False) + "\n", encoding="utf-8")
    print(frame.drop(columns=["run"]).to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
