"""`python -m w2v2bench.convert`: the old spelling of `python -m w2v2bench convert`."""

from ..cli.convert import main

raise SystemExit(main())
