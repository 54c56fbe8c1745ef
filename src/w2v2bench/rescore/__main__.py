"""`python -m w2v2bench.rescore`: an old spelling of `python -m w2v2bench score`."""

from ..cli.score import main

raise SystemExit(main())
