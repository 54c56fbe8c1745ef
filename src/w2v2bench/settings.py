"""The config, checked once into a frozen `Run`: the only code that reads Hydra's config (harness.py reads `Run`).

A data source, backend or decoder is the class its group's YAML names with `_target_`; the class says what it
takes (`Settings`, a frozen dataclass whose `__post_init__` checks values) and what it can do (class attributes:
a backend's `devices`, `precisions`, `batchings`, `compiles`, `reference`; a decoder's `wants`). Checking is an
import and a dataclass, never a load: a bad key or value fails here, naming the allowed ones, before the model,
an LM or any audio is read. docs/extending.md shows a new one of each.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from .config import ReferenceConfig, group_options, load_reference
from .errors import ConfigError
from .metrics.normalizers import normalizer
from .model import ModelError, parse_device, resolve_checkpoint, resolve_defaults
from .provenance import checkpoint_id, weights_id

# group -> (the key that names the implementation in summary.json's config, what a class of it must have)
GROUPS = {
    "data": ("source", ("utterances",)),
    "backend": ("name", ("devices", "precisions", "batchings", "compiles", "reference", "max_batch_size")),
    "decoder": ("name", ("wants",)),
}


@dataclass(frozen=True)
class Part:
    """One implementation chosen by a config group: its class and its checked settings."""

    cls: type
    settings: Any

    @property
    def name(self) -> str:
        return self.cls.name

    def create(self, **context):
        """Build it (a decoder needs the model's tokens, a backend the model: they come as `context`)."""
        return self.cls.create(self.settings, **context)


@dataclass(frozen=True)
class Run:
    """Every setting of one model x split, checked and made concrete (device=auto, batch_size=null resolved)."""

    checkpoint: str
    revision: str | None
    data: Part
    backend: Part
    decoder: Part
    data_name: str
    partition: str | None
    split: str
    device: str
    batch_size: int
    max_batch_s: float
    sort_window: int
    batching: str
    precision: str
    check_precision: bool
    recheck_margin: float | None
    compile: bool
    num_workers: int | None
    limit: int | None
    normalizer: str | None
    output_dir: str
    resume: bool
    progress: bool | None
    progress_every_s: float
    verbose: bool
    reference: ReferenceConfig | None
    reference_note: str | None  # why the config's card is not checked, decided here (the weights are not its)
    naming: Naming
    config_json: str  # summary.json's `config`, as JSON (a fresh copy per call of `config`)

    def config(self, commit: str | None = None) -> dict:
        """What summary.json records as `config`: today's keys, resolved; `data.commit` as the source found it."""
        config = json.loads(self.config_json)
        if isinstance(config.get("data"), dict) and "commit" in config["data"]:
            config["data"]["commit"] = commit
        return config


PLAIN_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*(/[A-Za-z0-9_+-][A-Za-z0-9._+-]*)*")
DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def _shipped(group: str) -> dict[str, dict]:
    """option -> its conf/<group>/<option>.yaml as written (without resolving anything)."""
    folder = resources.files("w2v2bench.conf") / group
    return {
        o: OmegaConf.to_container(OmegaConf.create((folder / f"{o}.yaml").read_text(encoding="utf-8")))
        for o in group_options(group)
    }


def _shipped_targets(group: str) -> dict[str, str]:
    """The shipped classes by their label (data.source, backend.name, decoder.name): local -> LocalSource, ..."""
    label, _ = GROUPS[group]
    return {str(y.get(label)): str(y.get("_target_")) for y in _shipped(group).values()}


def _options_taking(group: str, key: str) -> list[str]:
    """The shipped conf/<group>/ options whose class takes `key` (for the message naming a misplaced key)."""
    found = []
    for option, yaml in _shipped(group).items():
        module, _, attr = str(yaml.get("_target_")).rpartition(".")
        try:
            settings = getattr(importlib.import_module(module), attr).Settings
        except (ImportError, AttributeError, ValueError):
            continue
        if key in {f.name for f in dataclasses.fields(settings)}:
            found.append(option)
    return found


def part(group: str, node: dict) -> Part:
    """The class `node["_target_"]` names, checked against what a `group` implementation must have, with its
    `Settings` built from the node's keys it takes (a key it does not take must be unset: null or empty)."""
    label, needs = GROUPS[group]
    if not isinstance(node, dict):
        raise ConfigError(f"{group} is not set: choose one with {group}=<one of {group_options(group)}>")
    target = node.get("_target_")
    if target in (None, "???"):  # a YAML written before `_target_` (extending the schema): its label names it
        target = _shipped_targets(group).get(node.get(label))
    if not isinstance(target, str) or not DOTTED.fullmatch(target):
        raise ConfigError(
            f"{group}._target_={node.get('_target_')!r}: expected the dotted path of a {group} class, as in "
            f"conf/{group}/*.yaml (choose one with {group}=<one of {group_options(group)}>)"
        )
    module, _, attr = target.rpartition(".")
    try:  # an import, as Hydra's instantiate does: the module named runs (docs/extending.md)
        cls = getattr(importlib.import_module(module), attr)
    except Exception as err:  # ImportError, AttributeError, or whatever the module raised as it was imported
        raise ConfigError(f"{group}._target_={target!r}: cannot import it ({type(err).__name__}: {err})") from None
    missing = [a for a in ("name", "Settings", "create", *needs) if not hasattr(cls, a)]
    if missing or not dataclasses.is_dataclass(cls.Settings):
        lacks = ", ".join(missing) if missing else "Settings as a dataclass"
        raise ConfigError(f"{group}._target_={target!r} is not a {group} class: it lacks {lacks} (docs/extending.md)")
    if node.get(label) != cls.name:
        raise ConfigError(
            f"{group}.{label}={node.get(label)!r} does not match {group}._target_={target!r} (named {cls.name!r}): "
            f"choose the {group} with {group}=<one of {group_options(group)}>"
        )
    allowed = [f.name for f in dataclasses.fields(cls.Settings) if f.init]
    given = {k: v for k, v in node.items() if k not in ("_target_", label)}
    for key, value in given.items():
        if key not in allowed and value not in (None, {}, []):  # the shared schema's unset keys are left out
            takes = ", ".join(allowed) if allowed else "no settings"
            others = [f"{group}={o}" for o in _options_taking(group, key)]
            hint = f": add {' or '.join(others)}" if others else ""
            raise ConfigError(f"{group}.{key} is set but {group}={cls.name} ignores it (it takes {takes}){hint}")
    try:
        return Part(cls, cls.Settings(**{k: v for k, v in given.items() if k in allowed}))
    except (TypeError, ValueError) as err:  # a setting's own check (ConfigError, DecoderError, BackendError)
        raise ConfigError(str(err)) from None


@dataclass(frozen=True)
class Naming:
    """Which series a run's weights belong to (docs/models.md, "A name means its weights")."""

    name: str  # the model name the run is filed, tabled and exported under
    pin: str  # matched | unpinned | renamed | other weights
    card: bool  # whether the config's card (reference=auto) is for these weights
    checkpoint: str = ""  # the checkpoint as resolved (a local folder's path, or a Hub id)
    revision: str | None = None
    local: bool = False
    note: str | None = None  # what the console says about it
    pinned: dict | None = None  # the pin the weights were held to (the config's, or one given on the command line)

    @functools.cached_property
    def weights(self) -> str | None:
        """provenance.weights_id of the weights that load (None: a Hub id not in the cache, known after the load)."""
        return weights_id(self.checkpoint, self.revision, self.local)

    @functools.cached_property
    def checkpoint_sha256(self) -> str | None:
        """provenance.checkpoint_id of a local folder: what a pin names."""
        return checkpoint_id(self.checkpoint) if self.local else None

    def settle(self) -> None:
        """Fix both ids now: after the load, of the files as loaded (each file read once for both). Weights judged
        to be the pinned ones before the load must still be them: else one line, nothing filed under the pin."""
        _ = self.weights, self.checkpoint_sha256
        hashes = (self.pinned or {}).get("sha256") or []
        if self.pin == "matched" and self.local and self.checkpoint_sha256 not in hashes:
            raise ModelError(
                f"model.checkpoint={self.checkpoint}: its files changed while it loaded ({self.checkpoint_sha256} is "
                f"not the {self.name!r} pin's): nothing was transcribed; run again once the folder stays as it is"
            )


def derived_name(checkpoint: str, local: bool) -> str:
    """The name of weights that are not the config's pinned ones: the Hub id, or the folder's name and a hash of
    its absolute path (the same folder keeps its name run after run)."""
    if not local:
        return checkpoint
    path = Path(checkpoint).expanduser().resolve()
    base = re.sub(r"[^A-Za-z0-9._+-]", "_", path.name).lstrip(".")[:64] or "checkpoint"  # a folder name fits
    return f"local/{base}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def name_the_weights(model: dict) -> Naming:
    """Keep the config's name (and card) for the weights it pins; name other weights after themselves. A config
    with no pin, or a name given on the command line (not the pin's), owns whatever weights it loads. A local
    folder's ids are hashed here where its pin names them, else after the load (`Naming.settle`)."""
    checkpoint, local = resolve_checkpoint(model["checkpoint"])
    pin = model.get("pin") or {}
    hashes = [h for h in pin.get("sha256") or [] if isinstance(h, str)]
    found = {"checkpoint": checkpoint, "revision": model.get("revision"), "local": local}
    if not (pin.get("hub") or hashes):
        return Naming(model["name"], pin="unpinned", card=True, **found)
    pinned = {"name": pin.get("name"), "hub": pin.get("hub"), "revision": pin.get("revision"), "sha256": hashes}
    found["pinned"] = pinned
    files = checkpoint_id(checkpoint) if local else None
    if local:
        matches = files in hashes
    else:
        matches = checkpoint == pin.get("hub") and pin.get("revision") in (None, model.get("revision"))
    if matches:
        return Naming(model["name"], pin="matched", card=True, **found)
    if model["name"] != pin.get("name"):
        why = f"model.name={model['name']!r} is not the pinned {pin.get('name')!r}: no card for other weights"
        return Naming(model["name"], pin="renamed", card=False, note=why, **found)
    name = derived_name(checkpoint, local)
    shown = files or weights_id(checkpoint, model.get("revision"), local)
    note = (
        f"model: {model['checkpoint']} ({shown or 'no weight files found'}) is not the checkpoint {model['name']!r} "
        f"pins (model.pin in its conf/model/ file): filed as {name!r}, no reference check; model.name=<name> names "
        "your own"
    )
    return Naming(name, pin="other weights", card=False, note=note, **found)


def validate(cfg: DictConfig) -> Run:
    """Check every setting once, before anything loads; nothing reads `cfg` after this."""
    for group in GROUPS:
        if OmegaConf.is_missing(cfg, group) or not isinstance(cfg.get(group), DictConfig):
            raise ConfigError(f"{group} is not set: choose one with {group}=<one of {group_options(group)}>")
    naming = name_the_weights(OmegaConf.to_container(cfg.model, resolve=True))
    if naming.name != cfg.model.name:
        with read_write(cfg), open_dict(cfg):
            cfg.model.name = naming.name  # before output_dir, built from it, is resolved
    raw = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    data, backend, decoder = (part(g, raw[g]) for g in ("data", "backend", "decoder"))
    for key, value in (
        ("model.name", raw["model"]["name"]),
        ("data.name", raw["data"].get("name", data.name)),  # a set without partitions is named by it in output_dir
        ("data.partition", getattr(data.settings, "partition", None) or "test"),
    ):
        if not (isinstance(value, str) and PLAIN_NAME.fullmatch(value)):  # output_dir is built from them
            raise ConfigError(
                f"{key}={value!r}: expected a plain name (letters, digits, '.', '_', '+', '-', and '/' between "
                "parts; no part starting with '.'), never a path out of the results folder"
            )
    device = raw["device"]
    if device == "auto" and backend.cls.devices:
        device = backend.cls.devices[0]  # a runtime that runs on the CPU only: there
    device, batch_size = resolve_defaults(device, raw["batch_size"])
    for key, value in (("batch_size", batch_size), ("sort_window", raw["sort_window"])):
        if value < 1:
            raise ConfigError(f"{key}={value}: expected a positive integer")
    if raw["num_workers"] is not None and raw["num_workers"] < 0:
        raise ConfigError(f"num_workers={raw['num_workers']}: expected null (automatic), 0 or a positive integer")
    if not (math.isfinite(raw["max_batch_s"]) and raw["max_batch_s"] > 0):
        raise ConfigError(f"max_batch_s={raw['max_batch_s']}: expected a positive number of seconds")
    if raw["limit"] is not None and raw["limit"] < 1:
        raise ConfigError(f"limit={raw['limit']}: expected null or a positive integer")
    if not (math.isfinite(raw["progress_every_s"]) and raw["progress_every_s"] >= 0):
        raise ConfigError(f"progress_every_s={raw['progress_every_s']}: expected seconds >= 0 (0: no progress lines)")
    ids = decoder.cls.wants == "ids"  # what check_precision and recheck_margin compare: greedy ids
    if raw["check_precision"] and not ids:
        raise ConfigError(
            f"check_precision=true compares greedy transcripts: it needs decoder=greedy, not {decoder.name}"
        )
    margin = raw["recheck_margin"]
    if margin is not None:
        if not (math.isfinite(margin) and 0 < margin <= 1e4):
            raise ConfigError(f"recheck_margin={margin}: expected null or a logit margin in (0, 1e4]")
        for wrong, why in (
            (
                raw["precision"] == "fp32" and backend.cls.reference,
                "the run is already PyTorch fp32: set precision=bf16|fp16 or another backend",
            ),
            (not ids, f"it re-checks greedy ids, not decoder={decoder.name}"),
            (raw["batching"] != "exact", "it needs batching=exact (each utterance re-run alone)"),
        ):
            if wrong:
                raise ConfigError(f"recheck_margin={margin}: {why}")
    b = backend.cls
    for key, value, allowed in (
        ("device", device.split(":")[0], b.devices),
        ("precision", raw["precision"], b.precisions),
        ("batching", raw["batching"], b.batchings),
        ("compile", raw["compile"], None if b.compiles else (False,)),
    ):
        if allowed is not None and value not in allowed:
            shown = "|".join(str(a) for a in allowed)
            raise ConfigError(f"{key}={value}: backend={b.name} runs with {key}={shown} only (backend=torch for more)")
    try:
        normalizer(raw["normalizer"])
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if raw["check_precision"] and raw["batching"] == "naive":
        raise ConfigError("check_precision=true: it needs batching=exact (naive batches are not compared)")
    parse_device(device)
    resolve_checkpoint(raw["model"]["checkpoint"])
    reference, reference_note = cfg.reference, None
    if reference.name == "auto":
        reference = load_reference(raw["model"]["reference"]) if raw["model"]["reference"] else None
        if reference is not None and not naming.card:
            reference, reference_note = (
                None,
                (
                    f"not checked: card {raw['model']['reference']!r} is for other weights ({naming.pin}: "
                    "summary.json measurement.fingerprints)"
                ),
            )
    else:
        reference = OmegaConf.to_object(reference)
    decoders = sorted({*_shipped_targets("decoder"), decoder.name})
    if reference is not None and reference.decoder not in decoders:
        raise ConfigError(f"reference.decoder={reference.decoder!r}: expected one of {decoders}")
    # summary.json's config: the composed config less the class paths, with the resolved device and batch size
    config = {**raw, "device": device, "batch_size": batch_size}
    for group in GROUPS:
        config[group] = {k: v for k, v in raw[group].items() if k != "_target_"}
    config["model"] = {k: v for k, v in raw["model"].items() if k != "pin"}  # the pin: measurement.fingerprints
    return Run(
        checkpoint=raw["model"]["checkpoint"],
        revision=raw["model"]["revision"],
        data=data,
        backend=backend,
        decoder=decoder,
        data_name=raw["data"].get("name", data.name),
        partition=getattr(data.settings, "partition", None),
        split=raw["split"],
        device=device,
        batch_size=batch_size,
        max_batch_s=raw["max_batch_s"],
        sort_window=raw["sort_window"],
        batching=raw["batching"],
        precision=raw["precision"],
        check_precision=raw["check_precision"],
        recheck_margin=margin,
        compile=raw["compile"],
        num_workers=raw["num_workers"],
        limit=raw["limit"],
        normalizer=raw["normalizer"],
        output_dir=raw["output_dir"],
        resume=raw["resume"],
        progress=raw["progress"],
        progress_every_s=raw["progress_every_s"],
        verbose=raw["verbose"],
        reference=reference,
        reference_note=reference_note,
        naming=naming,
        config_json=json.dumps(config),
    )
