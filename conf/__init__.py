"""Hydra configs, importable as the package w2v2bench.conf so an installed harness finds them."""
