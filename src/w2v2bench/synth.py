"""`python -m w2v2bench.synth`: the old spelling of `python -m w2v2bench synth`; imported by nothing."""

if __name__ == "__main__":
    from .cli.synth import main

    raise SystemExit(main())
