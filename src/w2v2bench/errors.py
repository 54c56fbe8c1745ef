"""One-line errors, and the exit statuses of every command (one table, here)."""

from __future__ import annotations

from enum import IntEnum


class ConfigError(ValueError):
    """A bad setting found before any work: printed as one line, exit status 1."""


def one_line(err: BaseException | str) -> str:
    """An error message as the one line a command prints (some libraries' messages run over lines)."""
    return "; ".join(line.strip() for line in str(err).splitlines() if line.strip())


class Exit(IntEnum):
    """The exit status of every command (README "Exit statuses" lists them)."""

    OK = 0  # done: a run whose reference check passed or was not made; a tool's work; a night that passed
    FAILED = 1  # a run or a tool that failed (one line on stderr says why); nightly: a regression
    USAGE = 2  # a required key missing, or a value a tool cannot take before it starts
    REFERENCE_FAILED = 3  # the run is complete (every output written) and its WER misses the reference figure
    THRESHOLDS = 4  # compare: A and B differ beyond max_wer_delta or fail_on_transcript_diff
    NOT_EXACT = 5  # the run is complete, recheck_margin asked for fp32's transcripts, and some still differ
    # nightly: no regression found, but the night cannot be judged whole: a run that did not complete, utterances
    # that could not be transcribed, no WER, the benchmark's own non-zero exit, a history that cannot be used
    INCOMPLETE = 6
