"""`python -m w2v2bench.table`: the old spelling of `python -m w2v2bench table`."""

from ..cli.table import main

raise SystemExit(main())
