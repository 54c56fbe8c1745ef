"""The config schema: structured configs that Hydra validates before anything loads.

`conf/` holds the YAML choices; these dataclasses are their types, so `split=ohter` or `precision=fp8`
fails at composition with the allowed values in the message.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from .errors import ConfigError


class Choice(str, Enum):
    """An enum whose interpolation (`${split}` in output_dir) is its value, not `Split.clean`."""

    def __str__(self) -> str:
        return self.value


class Split(Choice):
    clean = "clean"
    other = "other"


class Partition(Choice):
    test = "test"
    dev = "dev"


class Precision(Choice):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Batching(Choice):
    exact = "exact"
    naive = "naive"


@dataclass
class WeightsPin:
    """The weights a model config's name and card stand for (docs/models.md, "A name means its weights")."""

    name: str | None = None  # the name the pin is for: the config's own `name` (a model.name= override is not)
    hub: str | None = None  # the Hub id whose files they are
    revision: str | None = None  # ... at this revision only (null: any, recorded as a fingerprint)
    sha256: list[str] = field(default_factory=list)  # or local checkpoint folders with these hashes (`sha256:<hex>`
    # of the weight, config, vocabulary and preprocessor files, as measurement.fingerprints.checkpoint_sha256 records)


@dataclass
class ModelConfig:
    name: str = MISSING
    checkpoint: str = MISSING
    revision: str | None = None
    # name of the conf/reference/ file with this model's published figures, used by reference=auto
    reference: str | None = None
    pin: WeightsPin = field(default_factory=WeightsPin)


# The built-in data sources, decoders and backends share one schema per group (below), so that summary.json's
# `config` keeps the keys it always had; `_target_` names the implementation's class, and each class's own
# `Settings` says which of the keys it takes (settings.py). A new implementation's YAML need not use the schema.


@dataclass
class DataConfig:
    _target_: str = MISSING
    source: str = MISSING
    name: str = MISSING
    # hub: a dataset id streamed with `datasets`; local: a folder of OpenSLR subset folders
    dataset: str | None = None
    revision: str | None = None
    root: str | None = None
    partition: Partition = Partition.test
    # hub: "<partition>-<split>" -> [the dataset's config name, its split name]; each dataset names them its way
    hub_names: dict[str, list[str]] = field(default_factory=dict)
    # set by the run, not by hand: the Hub commit `revision` resolved to (recorded in summary.json's config)
    commit: str | None = None


@dataclass
class DecoderConfig:
    _target_: str = MISSING
    name: str = MISSING
    # lm only; null: the checkpoint's language_model/ folder (attrs.json) where it has one, else the defaults
    lm: str | None = None  # an ARPA or KenLM binary file
    lexicon: str | None = None  # words (and spellings); null: language_model/unigrams.txt or the ARPA's 1-grams
    beam_width: int | None = None  # null: 50
    beam_size_token: int | None = None  # null: every token
    beam_threshold: float | None = None  # null: 25
    lm_weight: float | None = None  # null: attrs.json's alpha x ln(10), else 2
    word_score: float | None = None  # null: attrs.json's beta, else 0
    sil_score: float | None = None  # null: 0
    workers: int | None = None  # processes decoding beside the model; null: one per usable core; 0: inline


@dataclass
class BackendConfig:
    _target_: str = MISSING
    name: str = MISSING
    # where exported models are kept (one folder per weights x config x versions x export settings)
    cache: str = "~/.cache/w2v2bench"
    # the runtime's own precision: fp32 (the default, transcripts as PyTorch's) or int8 (onnxruntime's dynamic
    # quantisation of the weights: a variant that changes transcripts, to measure what it costs in WER), bf16
    # (openvino: its CPU plugin's bf16 inference; changes transcripts unless recheck_margin re-runs doubtful ones)
    precision: str = "fp32"


@dataclass
class ReferenceConfig:
    # "auto" stands for the figures named by model.reference; "none" means no check
    name: str = "none"
    # split -> WER as a fraction; an empty mapping means "no check"
    wer: dict[str, float] = field(default_factory=dict)
    tolerance: float = 0.0005
    source: str | None = None
    # split -> utterance count of the full split the figure is for; a run over fewer is not checked
    utterances: dict[str, int] = field(default_factory=dict)
    data: str = "librispeech"  # the data.name the figures are for
    partition: Partition = Partition.test
    decoder: str = "greedy"  # the decoder the figures were measured with


@dataclass
class BenchConfig:
    model: ModelConfig = MISSING
    data: Any = MISSING  # DataConfig for the built-in sources; any mapping with a _target_ for others
    reference: ReferenceConfig = MISSING
    decoder: Any = MISSING  # DecoderConfig, or any mapping with a _target_
    backend: Any = MISSING  # BackendConfig, or any mapping with a _target_
    split: Split = Split.clean
    device: str = "auto"
    batch_size: int | None = None
    max_batch_s: float = 400.0
    sort_window: int = 1024
    batching: Batching = Batching.exact
    precision: Precision = Precision.fp32
    check_precision: bool = False
    recheck_margin: float | None = None
    compile: bool = False
    num_workers: int | None = None
    limit: int | None = None
    normalizer: str | None = None
    output_dir: str = MISSING
    resume: bool = False
    progress: bool | None = None
    progress_every_s: float = 30.0
    verbose: bool = False


def asset_path(name: str) -> str:
    """`${asset:demo-model}`: a folder shipped inside the package (found from any working directory)."""
    return str(resources.files("w2v2bench") / "assets" / name)


def job_suffix() -> str:
    """`_<job number>` inside a Hydra multirun, so jobs started in the same second get their own output_dir."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return ""
    hydra_cfg = HydraConfig.get()
    return f"_{hydra_cfg.job.num}" if hydra_cfg.mode == RunMode.MULTIRUN else ""


def run_stamp() -> str:
    """`${run_stamp:}`: the start time to the millisecond and this process's id, so two runs started at
    once on one machine never share a default output_dir (and the folder lock refuses any that would)."""
    now = datetime.now()
    return f"{now:%Y-%m-%d_%H-%M-%S}.{now.microsecond // 1000:03d}-{os.getpid()}"


def manifest_name(path: str | None) -> str:
    """`${manifest_name:${data.path}}`: a manifest's set name by default, its file name without suffixes, as a
    plain name (it names the output folder)."""
    stem = Path(str(path or "")).name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_+-]", "_", stem) or "manifest"


def dataset_name(dataset: str | None, config: str | None = None, split: str | None = None) -> str:
    """`${dataset_name:...}`: a Hugging Face set's default name, from the dataset's own name (a Hub id's or a
    path's last part), its config and split, as a plain name (it names the output folder)."""
    plain = [p for p in Path(str(dataset or "dataset")).parts if not any(c in p for c in "*?[") and p != "/"]
    last = (plain[-1] if plain else "dataset").removesuffix(".parquet")  # a glob: its last plain folder
    parts = [last] + [str(p) for p in (config, split) if p]
    return re.sub(r"[^A-Za-z0-9_+-]", "_", "-".join(parts)) or "dataset"


def set_label(name: str, partition: str | None, split: str) -> str:
    """What a run's utterances are called in folder names and tables: `<partition>-<split>` for a LibriSpeech
    partition (test-clean), the set's own name for a set without one (a manifest)."""
    return f"{partition}-{split}" if partition else str(name)


def register() -> None:
    """Register the schema under the names conf/config.yaml and the group files extend."""
    OmegaConf.register_new_resolver("job_suffix", job_suffix, replace=True)
    OmegaConf.register_new_resolver("run_stamp", run_stamp, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("asset", asset_path, replace=True)
    OmegaConf.register_new_resolver("manifest_name", manifest_name, replace=True)
    OmegaConf.register_new_resolver("set_label", set_label, replace=True)
    OmegaConf.register_new_resolver("dataset_name", dataset_name, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="schema", node=BenchConfig)
    cs.store(group="model", name="schema", node=ModelConfig)
    cs.store(group="data", name="schema", node=DataConfig)
    cs.store(group="reference", name="schema", node=ReferenceConfig)
    cs.store(group="decoder", name="schema", node=DecoderConfig)
    cs.store(group="backend", name="schema", node=BackendConfig)


def group_options(group: str) -> list[str]:
    """The conf/<group>/*.yaml choices shipped with the package (no torch: the command line reads them first)."""
    folder = resources.files("w2v2bench.conf") / group
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_reference(name: str) -> ReferenceConfig:
    """The conf/reference/<name>.yaml figures (for reference=auto, named by the model config)."""
    folder = resources.files("w2v2bench.conf") / "reference"
    names = group_options("reference")
    if name not in names:
        raise ConfigError(f"model.reference={name!r}: expected one of {names}")
    raw = OmegaConf.create((folder / f"{name}.yaml").read_text(encoding="utf-8"))
    raw.pop("defaults", None)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ReferenceConfig), raw))
