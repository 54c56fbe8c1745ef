"""`python -m w2v2bench.export`: the old spelling of `python -m w2v2bench export`."""

from ..cli.export import main

raise SystemExit(main())
