"""`python -m w2v2bench.nightly`: the old spelling of `python -m w2v2bench nightly`."""

from ..cli.nightly import main

raise SystemExit(main())
