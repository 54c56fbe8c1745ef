"""`python -m w2v2bench [key=value ...]`: the benchmark's command line: Hydra composes the config, `harness.evaluate`
runs each job (one model x split), and the exit status is the worst job's."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from ..config import register
from ..errors import Exit, one_line

STATUSES: list[int] = []  # one per job: a multirun goes on after a failed job and exits with the worst status


@hydra.main(version_base=None, config_path="pkg://w2v2bench.conf", config_name="config")
def _app(cfg: DictConfig) -> None:
    # Hydra's stdout logging at INFO would let every library's INFO through (an "HTTP Request:" line per request
    # of huggingface_hub and datasets); the harness itself prints what it has to say
    logging.getLogger().setLevel(logging.INFO if cfg.verbose else logging.WARNING)
    from .. import harness  # torch and transformers load here, after parsing: --help does not wait for them

    try:
        STATUSES.append(harness.evaluate(cfg))
    except harness.ONE_LINE_ERRORS as err:
        print(f"w2v2bench: error: {one_line(err)}", file=sys.stderr)
        STATUSES.append(Exit.FAILED)


def main() -> None:
    register()
    _app()
    # a failed run outranks a failed reference check, which outranks transcripts that are not fp32's
    sys.exit(next((s for s in (Exit.FAILED, Exit.REFERENCE_FAILED, Exit.NOT_EXACT) if s in STATUSES), Exit.OK))


if __name__ == "__main__":
    main()
