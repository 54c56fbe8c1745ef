"""`python -m w2v2bench convert key=value ...`: the command-line shell of w2v2bench.convert."""

from __future__ import annotations

import pickle
import sys
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING, OmegaConf

from ..errors import Exit, one_line
from ._tool import quiet_defaults, quiet_hydra, tool_main

HELP = """w2v2bench.convert: fairseq wav2vec 2.0 CTC checkpoint -> Hugging Face folder (no fairseq needed)

Usage: python -m w2v2bench.convert checkpoint=<file.pt> dict=<dict.ltr.txt> out=<folder>

  checkpoint  fairseq fine-tuned CTC checkpoint (2020 `args` or later `cfg` form); unpickled through an
              allow-list: fairseq.* objects become inert placeholders, anything else executable is refused
  dict        the fine-tuning dictionary (dict.ltr.txt: one `<symbol> <count>` per line)
  out         a new or empty folder; receives config.json, model.safetensors, preprocessor_config.json,
              vocab.json and the tokenizer files

== Config ==
$CONFIG"""


@dataclass
class ConvertConfig:
    """Command-line schema: three required paths, and Hydra told to write nothing but `out`."""

    checkpoint: str = MISSING
    dict: str = MISSING
    out: str = MISSING
    defaults: list[Any] = quiet_defaults()
    hydra: Any = quiet_hydra(HELP, "convert")


def run(cfg: Any) -> int | None:
    missing = [key for key in ("checkpoint", "dict", "out") if OmegaConf.is_missing(cfg, key)]
    if missing:
        print(
            f"w2v2bench.convert: error: missing {', '.join(f'{k}=' for k in missing)}; usage: "
            "python -m w2v2bench.convert checkpoint=<file.pt> dict=<dict.ltr.txt> out=<folder>",
            file=sys.stderr,
        )
        sys.exit(Exit.USAGE)
    from ..convert.fairseq import convert  # torch loads here, after parsing: --help does not wait for it

    try:
        report = convert(cfg.checkpoint, cfg.dict, cfg.out)
    except (ValueError, OSError, pickle.UnpicklingError) as err:  # ConversionError, UnreadableCheckpoint
        print(f"w2v2bench.convert: error: {one_line(err)}", file=sys.stderr)
        sys.exit(Exit.FAILED)
    print(report.summary())


def main() -> None:
    tool_main("convert", ConvertConfig, run)
