"""`python -m w2v2bench.compare`: the old spelling of `python -m w2v2bench compare`."""

from ..cli.compare import main

raise SystemExit(main())
