"""`python -m w2v2bench [key=value ...]`: unpack the config, build the pieces, run, write; nothing else."""

from __future__ import annotations

import itertools
import socket
import sys
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .config import ReferenceConfig, register
from .data import DataError, hub_utterances, local_utterances
from .model import (
    OFFLINE_HINT,
    HubUnavailable,
    ModelError,
    device_name,
    hub_unreachable_reason,
    load_model,
    parse_device,
    resolve_checkpoint,
)
from .report import (
    SCHEMA_VERSION,
    TranscriptWriter,
    check_reference,
    git_hash,
    prepare_output_dir,
    versions,
    write_json_atomic,
    write_tables,
)
from .run import run
from .score import normalizer, rate

EXIT_OK, EXIT_RUN_FAILED, EXIT_REFERENCE_FAILED = 0, 1, 3


class UserError(ValueError):
    """A bad setting found before any work: printed as one line, exit status 1."""


def load_reference(name: str) -> ReferenceConfig:
    """The conf/reference/<name>.yaml figures (for reference=auto, named by the model config)."""
    folder = resources.files("w2v2bench.conf") / "reference"
    names = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
    if name not in names:
        raise UserError(f"model.reference={name!r}: expected one of {names}")
    raw = OmegaConf.create((folder / f"{name}.yaml").read_text(encoding="utf-8"))
    raw.pop("defaults", None)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ReferenceConfig), raw))


def utterance_source(cfg: DictConfig):
    """(iterable of utterances, count if known) for the configured data source."""
    data, split, partition = cfg.data, cfg.split.value, cfg.data.partition.value
    if data.source.value == "local":
        if not data.root:
            raise UserError("data.root is not set: data=local needs data.root=<folder holding test-clean/ ...>")
        utterances = local_utterances(data.root, partition, split)
        if cfg.limit is not None:
            utterances = utterances[: cfg.limit]
        return utterances, len(utterances)
    reason = hub_unreachable_reason()
    if reason is not None:
        raise HubUnavailable(f"cannot stream {data.dataset}: the Hugging Face Hub is unreachable ({reason}); {OFFLINE_HINT}")
    stream = hub_utterances(data.dataset, data.revision, partition, split)
    return (itertools.islice(stream, cfg.limit) if cfg.limit is not None else stream), cfg.limit


def validate(cfg: DictConfig) -> None:
    for key in ("batch_size", "num_workers", "sort_window"):
        if cfg[key] < (0 if key == "num_workers" else 1):
            raise UserError(f"{key}={cfg[key]}: expected a positive integer")
    if cfg.max_batch_s <= 0:
        raise UserError(f"max_batch_s={cfg.max_batch_s}: expected a positive number of seconds")
    if cfg.limit is not None and cfg.limit < 1:
        raise UserError(f"limit={cfg.limit}: expected null or a positive integer")
    normalizer(cfg.normalizer)
    parse_device(cfg.device)
    resolve_checkpoint(cfg.model.checkpoint)


def evaluate(cfg: DictConfig) -> int:
    """Run one model x split as configured; returns the exit status."""
    started = datetime.now(UTC)
    validate(cfg)
    reference = cfg.reference
    if reference.name == "auto":
        reference = load_reference(cfg.model.reference) if cfg.model.reference else None
    utterances, total = utterance_source(cfg)
    output_dir = prepare_output_dir(cfg.output_dir)
    load_start = time.perf_counter()
    transcriber = load_model(
        cfg.model.checkpoint,
        revision=cfg.model.revision,
        device=cfg.device,
        batching=cfg.batching.value,
        precision=cfg.precision.value,
        check_precision=cfg.check_precision,
        compile=cfg.compile,
    )
    load_s = time.perf_counter() - load_start
    writer = TranscriptWriter(output_dir / "transcripts.jsonl")
    try:
        stats = run(
            utterances,
            transcriber,
            writer.write,
            batch_size=cfg.batch_size,
            max_batch_s=cfg.max_batch_s,
            window=cfg.sort_window,
            workers=cfg.num_workers,
            normalize=normalizer(cfg.normalizer),
            total=total,
            progress=cfg.progress,
        )
    finally:
        writer.close()

    wer, cer = rate([stats.words]), rate([stats.chars])
    split = cfg.split.value
    check, reference_note = None, None
    if reference is None or not reference.wer:
        reference_note = "no reference figures for this model"
    elif split not in reference.wer:
        reference_note = f"reference {reference.name!r} has no figure for split={split!r}"
    elif reference.partition.value != cfg.data.partition.value:
        reference_note = f"reference {reference.name!r} is for data.partition={reference.partition.value!r}"
    elif cfg.limit is not None:
        reference_note = f"skipped: limit={cfg.limit} scores a subset, the reference is for the whole split"
    elif reference.utterances.get(split, stats.n_utterances) != stats.n_utterances:
        reference_note = (
            f"skipped: {stats.n_utterances} utterances scored, the reference is for all "
            f"{reference.utterances[split]} of {cfg.data.partition.value}-{split}"
        )
    elif stats.n_failed:
        reference_note = f"failed: {stats.n_failed} utterance(s) could not be transcribed"
        check = check_reference(float("nan"), reference.wer[split], reference.tolerance, reference.source)
    else:
        check = check_reference(wer, reference.wer[split], reference.tolerance, reference.source)

    summary = {
        "schema_version": SCHEMA_VERSION,
        "status": "complete",
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "wer": wer,
        "cer": cer,
        "n_utterances": stats.n_utterances,
        "n_failed": stats.n_failed,
        "failed_excluded_from_wer": True,
        "ref_words": stats.words.ref_words,
        "word_errors": {
            "substitutions": stats.words.substitutions,
            "deletions": stats.words.deletions,
            "insertions": stats.words.insertions,
        },
        "ref_chars": stats.chars.ref_words,
        "char_errors": stats.chars.errors,
        "normalizer": cfg.normalizer or "none",
        "audio_s": stats.audio_s,
        "wall_s": stats.wall_s,
        "load_s": load_s,
        "rtfx": stats.audio_s / stats.wall_s if stats.wall_s else 0.0,
        "model_s": stats.model_s,
        "model_rtfx": stats.model_audio_s / stats.model_s if stats.model_s else 0.0,
        "warmup_batches": stats.warmup_batches,
        "n_batches": stats.n_batches,
        "padding_fraction": stats.padding_fraction,
        "precision": cfg.precision.value,
        "precision_differs_from_fp32": stats.precision_differs,
        "reference": None
        if check is None
        else {"wer": check.wer, "tolerance": check.tolerance, "source": check.source, "passed": check.passed},
        "reference_note": reference_note,
        "model": vars(transcriber.info),
        "device": device_name(transcriber.device),
        "host": socket.gethostname(),
        "git_hash": git_hash(),
        "versions": versions(),
        "command": " ".join(sys.argv),
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
    }
    write_json_atomic(output_dir / "summary.json", summary)
    table = write_tables(output_dir, summary)
    print(table.to_markdown(index=False))
    print(f"outputs: {output_dir}")
    if check is not None:
        print(check.line())
    else:
        print(f"reference check: none ({reference_note})")
    return EXIT_OK if check is None or check.passed else EXIT_REFERENCE_FAILED


@hydra.main(version_base=None, config_path="pkg://w2v2bench.conf", config_name="config")
def _app(cfg: DictConfig) -> None:
    try:
        status = evaluate(cfg)
    except (UserError, DataError, ModelError, HubUnavailable, OSError) as err:
        print(f"w2v2bench: error: {err}", file=sys.stderr)
        status = EXIT_RUN_FAILED
    sys.exit(status)


def main() -> None:
    register()
    _app()


if __name__ == "__main__":
    main()
