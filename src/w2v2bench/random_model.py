"""`python -m w2v2bench.random_model`: a random-weight checkpoint for tests and benchmarks; imported by nothing."""

if __name__ == "__main__":
    from .cli._random_model import main

    raise SystemExit(main())
