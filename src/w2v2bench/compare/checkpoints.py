"""Two checkpoints side by side: resolved, tensors and settings diffed, each run by the harness on the same data."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Exit
from .runs import ABSENT, CompareError, Run, is_run, load_run, setting_differences

# a failed reference check (3) or transcripts not all fp32's (5) still wrote a complete run
HARNESS_OK = (Exit.OK, Exit.REFERENCE_FAILED, Exit.NOT_EXACT)


@dataclass(frozen=True)
class Target:
    spec: str  # as given on the command line
    kind: str  # "run", "folder" (a checkpoint folder) or "hub" (a Hub model id)
    path: str
    offline: str | None = None  # a Hub id while the Hub is unreachable: why (it loads from the cache)


def resolve_target(key: str, spec: str) -> Target:
    """What `key=spec` names: a run folder, a checkpoint folder, or a Hub id (failing fast if unusable offline)."""
    path = Path(spec).expanduser()
    if is_run(path):
        return Target(spec, "run", str(path))
    if (path / "config.json").is_file():
        return Target(spec, "folder", str(path))
    if path.is_dir():
        raise CompareError(
            f"{key}={spec!r}: a folder with neither summary.json + transcripts.jsonl (a run) nor config.json "
            "(a checkpoint)"
        )
    from huggingface_hub import try_to_load_from_cache

    from ..hub import hub_unreachable_reason
    from ..model import ModelError, resolve_checkpoint

    try:
        resolve_checkpoint(spec)
    except ModelError:
        raise CompareError(
            f"{key}={spec!r}: no such folder (expected a run folder, a checkpoint folder or a Hub model id)"
        ) from None
    reason = hub_unreachable_reason()
    if reason is None:
        return Target(spec, "hub", spec)
    try:
        cached = try_to_load_from_cache(spec, "config.json")
    except ValueError as err:  # huggingface_hub's HFValidationError: not a valid repo id
        raise CompareError(f"{key}={spec!r}: not a run folder, checkpoint folder or Hub model id ({err})") from None
    if not isinstance(cached, str):
        raise CompareError(
            f"cannot load {key}={spec!r}: the Hugging Face Hub is unreachable ({reason}) and it is not cached; "
            "compare local folders instead (a=<checkpoint folder or run folder> b=<...>)"
        )
    return Target(spec, "hub", spec, offline=reason)


@dataclass(frozen=True)
class TensorDiff:
    name: str
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    dtype_a: str
    dtype_b: str
    max_abs: float | None  # max |a - b| in float64; None when the shapes differ


@dataclass(frozen=True)
class CheckpointDiff:
    config: list[tuple[str, Any, Any]]  # config.json as transformers reads it (defaults filled in)
    preprocessor: list[tuple[str, Any, Any]]  # feature extractor settings: do_normalize, sampling_rate ...
    tokenizer: list[tuple[str, Any, Any]]  # special tokens and settings, and `vocab.<token>` ids
    tensors: list[TensorDiff]  # every tensor in both models, by name
    only_a: list[str]  # model tensors A has and B's model has not (different architectures)
    only_b: list[str]
    not_in_file_a: list[str]  # model tensors missing from A's files: transformers initialised them at random
    not_in_file_b: list[str]
    unused_a: list[str]  # tensors in A's files that the model does not use
    unused_b: list[str]

    @property
    def differing_tensors(self) -> list[TensorDiff]:
        return [t for t in self.tensors if t.max_abs is None or t.max_abs > 0 or t.dtype_a != t.dtype_b]

    @property
    def identical(self) -> bool:
        found = (self.config, self.preprocessor, self.tokenizer, self.differing_tensors, self.only_a, self.only_b)
        return not any(found) and not (self.not_in_file_a or self.not_in_file_b)


def _load_checkpoint(key: str, target: Target):
    from transformers import AutoFeatureExtractor, AutoModelForCTC, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs = {"local_files_only": True} if target.offline else {}
    try:
        model, info = AutoModelForCTC.from_pretrained(target.path, output_loading_info=True, **kwargs)
        extractor = AutoFeatureExtractor.from_pretrained(target.path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(target.path, **kwargs)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CompareError(f"{key}={target.spec!r}: cannot load the checkpoint ({first})") from None
    return model, info, extractor, tokenizer


def _tokenizer_settings(tokenizer) -> dict[str, Any]:
    return {
        "special_tokens": dict(tokenizer.special_tokens_map),
        "do_lower_case": getattr(tokenizer, "do_lower_case", ABSENT),
        "vocab": tokenizer.get_vocab(),
    }


def diff_checkpoints(a: Target, b: Target) -> CheckpointDiff:
    """Settings and weights of two checkpoints; tensors matched by name as transformers loads them."""
    import torch

    model_a, info_a, extractor_a, tokenizer_a = _load_checkpoint("a", a)
    model_b, info_b, extractor_b, tokenizer_b = _load_checkpoint("b", b)
    config_a, config_b = model_a.config.to_dict(), model_b.config.to_dict()
    for config in (config_a, config_b):
        config.pop("_name_or_path", None)
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    tensors = []
    with torch.no_grad():
        for name in [n for n in state_a if n in state_b]:
            ta, tb = state_a[name], state_b[name]
            max_abs = None
            if ta.shape == tb.shape:
                max_abs = (ta.double() - tb.double()).abs().max().item() if ta.numel() else 0.0
            tensors.append(
                TensorDiff(
                    name=name,
                    shape_a=tuple(ta.shape),
                    shape_b=tuple(tb.shape),
                    dtype_a=str(ta.dtype).removeprefix("torch."),
                    dtype_b=str(tb.dtype).removeprefix("torch."),
                    max_abs=max_abs,
                )
            )
    return CheckpointDiff(
        config=setting_differences(config_a, config_b),
        preprocessor=setting_differences(extractor_a.to_dict(), extractor_b.to_dict()),
        tokenizer=setting_differences(_tokenizer_settings(tokenizer_a), _tokenizer_settings(tokenizer_b)),
        tensors=tensors,
        only_a=[n for n in state_a if n not in state_b],
        only_b=[n for n in state_b if n not in state_a],
        not_in_file_a=sorted(info_a["missing_keys"]),
        not_in_file_b=sorted(info_b["missing_keys"]),
        unused_a=sorted(info_a["unexpected_keys"]),
        unused_b=sorted(info_b["unexpected_keys"]),
    )


def _hydra_value(value: str) -> str:
    """`value` quoted for a Hydra override where needed, so commas, spaces or brackets stay one string."""
    if re.fullmatch(r"[\w./@:+~-]+", value):
        return value
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise CompareError(f"{value!r}: a path with both kinds of quote cannot be passed to the harness")


def _check_run_args(run_args: Sequence[str]) -> None:
    for arg in run_args:
        key = arg.split("=", 1)[0].lstrip("+~")
        if key == "output_dir" or key == "model" or key.startswith("model."):
            raise CompareError(
                f"run_args: {arg!r} sets {key}: a= and b= choose the checkpoints and compare chooses output_dir; "
                "pass data, split, limit, device, batch_size ..."
            )


def run_harness(key: str, target: Target, output_dir: Path, run_args: Sequence[str]) -> Run:
    """`python -m w2v2bench` on one checkpoint (its output shown as it goes); the run it wrote."""
    command = [
        sys.executable, "-m", "w2v2bench", *run_args, f"model.checkpoint={_hydra_value(target.path)}",
        f"model.name={key}", "model.reference=null", f"output_dir={_hydra_value(str(output_dir))}",
    ]  # fmt: skip
    print(f"w2v2bench.compare: running {key}: {shlex.join(command)}", flush=True)
    done = subprocess.run(command)
    if done.returncode not in HARNESS_OK:
        raise CompareError(f"the harness run for {key}={target.spec!r} failed (exit status {done.returncode})")
    return load_run(output_dir)
