"""The scaffold every key=value tool shares: quiet Hydra settings and one `tool_main`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import field
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore

from . import skip_the_last_collections


def quiet_defaults() -> Any:
    """Defaults list of a tool's own Hydra config: no logging set-up of Hydra's."""
    steps = ["_self_", {"override hydra/job_logging": "none"}, {"override hydra/hydra_logging": "none"}]
    return field(default_factory=lambda: list(steps))


def quiet_hydra(help_template: str, job_name: str) -> Any:
    """Hydra settings of a key=value tool (convert, compare, ...): it writes nothing but its own outputs. The job
    is named as before the tools moved to cli/ (Hydra would name it after this module)."""
    return field(
        default_factory=lambda: {
            "output_subdir": None,
            "run": {"dir": "."},
            "job": {"chdir": False, "name": job_name},
            "help": {"template": help_template},
        }
    )


def tool_main(name: str, schema: type, body: Callable[[Any], int | None], config_error: int = 1) -> None:
    """Parse `key=value` arguments against `schema` (a dataclass) with Hydra, run `body(cfg)` and exit with the
    status it returns (None: 0). Hydra's own errors (an unknown key, a value of the wrong type) exit 1, or
    `config_error` for a tool whose 1 means something else (the nightly's: a regression)."""
    skip_the_last_collections()
    ConfigStore.instance().store(name=name, node=schema)
    started = []

    def task(cfg: Any) -> None:
        started.append(True)
        status = body(cfg)
        if status:
            sys.exit(status)

    try:
        hydra.main(version_base=None, config_name=name)(task)()
    except SystemExit as done:
        if done.code == 1 and not started:  # Hydra refused the arguments before the tool began
            sys.exit(config_error)
        raise
