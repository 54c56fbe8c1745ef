"""`python -m w2v2bench [key=value ...]`: the benchmark's command line: Hydra composes the config, `harness.evaluate`
runs each job (one model x split), and the exit status is the worst job's."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from ..config import group_options, register
from ..errors import Exit, one_line
from . import reuse_freed_host_memory, skip_the_last_collections

STATUSES: list[int] = []  # one per job: a multirun goes on after a failed job and exits with the worst status


@hydra.main(version_base=None, config_path="pkg://w2v2bench.conf", config_name="config")
def _app(cfg: DictConfig) -> None:
    # Hydra's stdout logging at INFO would let every library's INFO through (an "HTTP Request:" line per request
    # of huggingface_hub and datasets); the harness itself prints what it has to say
    logging.getLogger().setLevel(logging.INFO if cfg.verbose else logging.WARNING)
    from .. import harness  # torch and transformers load here, after parsing: --help does not wait for them

    job = multirun_job(cfg)
    if job:
        print(job, file=sys.stderr, flush=True)
    try:
        STATUSES.append(harness.evaluate(cfg))
    except harness.ONE_LINE_ERRORS as err:
        print(f"w2v2bench: error: {one_line(err)}", file=sys.stderr)
        STATUSES.append(Exit.FAILED)


def multirun_job(cfg: DictConfig) -> str | None:
    """`job 3 of 18: <model> on <set>` in a multirun (a long matrix says where it is), else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    total = 1
    try:  # the sweep's size: the product of the swept values' counts on the command line
        for override in OverridesParser.create().parse_overrides([a for a in sys.argv[1:] if "=" in a]):
            if override.is_sweep_override():
                total *= len(list(override.sweep_iterator()))
        of = f" of {total}"
    except Exception:  # a sweep Hydra reads otherwise (a sweeper plugin, a range in a file): no total
        of = ""
    from ..config import set_label

    data = cfg.data
    label = set_label(data.get("name"), data.get("partition"), cfg.get("split"))
    where = label if label == data.get("name") else f"{data.get('name')} {label}"
    return f"job {HydraConfig.get().job.num + 1}{of}: {cfg.model.name} on {where}"


GROUPS = ("model", "data", "reference", "decoder", "backend")
OTHER_CONFIGS = (
    "hydra.searchpath",
    "+hydra.searchpath",
    "--config-dir",
    "-cd",
    "--config-path",
    "-cp",
    "--config-name",
)


def unknown_choice(argv: list[str]) -> str | None:
    """One line for a config group option that is not shipped (`reference=nonesuch`), before Hydra composes and
    prints its own several lines; None when each choice is a shipped one, or when another config folder is on
    the search path (Hydra decides then)."""
    if any(a.startswith(OTHER_CONFIGS) for a in argv):
        return None
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+")
        if not sep or key not in GROUPS or "(" in value:  # a sweep function (choice(...), range(...)): Hydra's
            continue
        options = group_options(key)
        for choice in value.split(","):  # a multirun's list
            choice = choice.strip()
            if len(choice) >= 2 and choice[0] == choice[-1] and choice[0] in "'\"":
                choice = choice[1:-1]  # Hydra's quoted value
            if choice not in options:
                return f"{key}={choice!r}: no such option; expected one of {options} (conf/{key}/)"
    return None


def main() -> None:
    skip_the_last_collections()
    reuse_freed_host_memory()
    register()
    bad = unknown_choice(sys.argv[1:])
    if bad:
        print(f"w2v2bench: error: {bad}", file=sys.stderr)
        sys.exit(Exit.FAILED)
    _app()
    # a failed run outranks a failed reference check, which outranks transcripts that are not fp32's
    sys.exit(next((s for s in (Exit.FAILED, Exit.REFERENCE_FAILED, Exit.NOT_EXACT) if s in STATUSES), Exit.OK))


if __name__ == "__main__":
    main()
