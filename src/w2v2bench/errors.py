"""One-line errors and the harness's exit statuses."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad setting found before any work: printed as one line, exit status 1."""


def one_line(err: BaseException | str) -> str:
    """An error message as the one line a command prints (some libraries' messages run over lines)."""
    return "; ".join(line.strip() for line in str(err).splitlines() if line.strip())


EXIT_OK, EXIT_RUN_FAILED, EXIT_REFERENCE_FAILED = 0, 1, 3
