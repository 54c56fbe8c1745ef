"""`python -m w2v2bench.analysis`: the old spelling of `python -m w2v2bench analysis`."""

from ..cli.analysis import main

raise SystemExit(main())
