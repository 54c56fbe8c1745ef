"""`python -m w2v2bench.score`: the old spelling of `python -m w2v2bench score`; imported by nothing."""

if __name__ == "__main__":
    from .cli.score import main

    raise SystemExit(main())
