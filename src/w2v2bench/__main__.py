"""`python -m w2v2bench [key=value ...]`: unpack the config, build the pieces, run, write; nothing else."""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from . import distributed
from .analysis import write_analysis
from .config import ConfigError, load_reference, register
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
    Journal,
    build_summary,
    check_resumable,
    prepare_output_dir,
    reference_check,
    write_json_atomic,
    write_tables,
)
from .run import run
from .score import normalizer, totals

EXIT_OK, EXIT_RUN_FAILED, EXIT_REFERENCE_FAILED = 0, 1, 3


def utterance_source(cfg: DictConfig):
    """(iterable of utterances, count if known) for the configured data source."""
    data, split, partition = cfg.data, cfg.split.value, cfg.data.partition.value
    if data.source.value == "local":
        if not data.root:
            raise ConfigError("data.root is not set: data=local needs data.root=<folder holding test-clean/ ...>")
        utterances = local_utterances(data.root, partition, split)
        if cfg.limit is not None:
            utterances = utterances[: cfg.limit]
        return utterances, len(utterances)
    reason = hub_unreachable_reason()
    if reason is not None:
        raise HubUnavailable(
            f"cannot stream {data.dataset}: the Hugging Face Hub is unreachable ({reason}); {OFFLINE_HINT}"
        )
    stream = hub_utterances(data.dataset, data.revision, partition, split)
    return (itertools.islice(stream, cfg.limit) if cfg.limit is not None else stream), cfg.limit


def validate(cfg: DictConfig) -> None:
    for key in ("batch_size", "sort_window"):
        if cfg[key] < 1:
            raise ConfigError(f"{key}={cfg[key]}: expected a positive integer")
    if cfg.num_workers is not None and cfg.num_workers < 0:
        raise ConfigError(f"num_workers={cfg.num_workers}: expected null (automatic), 0 or a positive integer")
    if cfg.max_batch_s <= 0:
        raise ConfigError(f"max_batch_s={cfg.max_batch_s}: expected a positive number of seconds")
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError(f"limit={cfg.limit}: expected null or a positive integer")
    normalizer(cfg.normalizer)
    parse_device(cfg.device)
    resolve_checkpoint(cfg.model.checkpoint)


def evaluate(cfg: DictConfig) -> int:
    """Run one model x split as configured (one rank of it under torchrun); returns the exit status."""
    started = datetime.now(UTC).isoformat(timespec="milliseconds")
    validate(cfg)
    reference = cfg.reference
    if reference.name == "auto":
        reference = load_reference(cfg.model.reference) if cfg.model.reference else None
    rank = distributed.init(cfg.device)
    main_rank = rank is None or rank.is_main
    utterances, total = utterance_source(cfg)
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    if main_rank:
        output_dir = prepare_output_dir(config["output_dir"])
        if cfg.resume:
            check_resumable(output_dir, config)
        elif (output_dir / "summary.json").exists():
            raise ConfigError(
                f"output_dir={str(output_dir)!r} already holds a run: pass resume=true to continue an "
                "interrupted one, or choose another output_dir"
            )
    config["output_dir"] = distributed.broadcast(config["output_dir"], rank)  # one `now` for all ranks
    output_dir = Path(config["output_dir"])
    header = {"schema_version": SCHEMA_VERSION, "status": "running", "started": started, "config": config}
    journal = Journal(output_dir, resume=cfg.resume, rank=None if rank is None else rank.rank)
    done = distributed.broadcast(set(journal.done), rank)
    if done:
        if main_rank:
            print(f"resuming: {len(done)} utterances already transcribed in {output_dir}")
        utterances = (u for u in utterances if u.index not in done)
        total = None if total is None else total - len(done)
    elif main_rank:
        write_json_atomic(output_dir / "summary.json", header)
    if rank is not None:
        utterances = distributed.shard(list(utterances), rank.world_size, rank.rank)
        total = len(utterances)

    load_start = time.perf_counter()
    transcriber = load_model(
        cfg.model.checkpoint,
        revision=cfg.model.revision,
        device=distributed.rank_device(cfg.device, rank),
        batching=cfg.batching.value,
        precision=cfg.precision.value,
        check_precision=cfg.check_precision,
        compile=cfg.compile,
    )
    load_s = time.perf_counter() - load_start
    try:
        stats = run(
            utterances,
            transcriber,
            journal.write,
            batch_size=cfg.batch_size,
            max_batch_s=cfg.max_batch_s,
            window=cfg.sort_window,
            # automatic: decode beside the model on a GPU; on a CPU the model has every core already
            workers=cfg.num_workers if cfg.num_workers is not None else (0 if transcriber.device.type == "cpu" else 4),
            normalize=normalizer(cfg.normalizer),
            total=total,
            progress=cfg.progress if main_rank else False,
        )
    except BaseException as err:
        journal.close()
        if main_rank:
            failed = {**header, "status": "failed", "error": f"{type(err).__name__}: {err}"}
            with contextlib.suppress(OSError):
                write_json_atomic(output_dir / "summary.json", failed)
        raise
    per_rank = distributed.gather((journal.new if not main_rank else [], stats), rank)
    if not main_rank:
        journal.close()
        status = distributed.broadcast(None, rank)
        distributed.finish(rank)
        return status

    results = journal.finish(r for new, _ in per_rank for r in new)
    t = totals(results)
    check, reference_note = reference_check(
        reference, t, cfg.data.name, cfg.split.value, cfg.data.partition.value, cfg.limit
    )
    summary = build_summary(
        config, started, t, [s for _, s in per_rank], load_s, vars(transcriber.info), device_name(transcriber.device)
    )
    summary["reference"] = (
        None
        if check is None
        else {"wer": check.wer, "tolerance": check.tolerance, "source": check.source, "passed": check.passed}
    )
    summary["reference_note"] = reference_note
    write_json_atomic(output_dir / "summary.json", summary)
    table = write_tables(output_dir, summary)
    write_analysis(output_dir)
    print(table.to_markdown(index=False))
    print(f"outputs: {output_dir}")
    print(check.line() if check is not None else f"reference check: none ({reference_note})")
    status = EXIT_OK if check is None or check.passed else EXIT_REFERENCE_FAILED
    distributed.broadcast(status, rank)
    distributed.finish(rank)
    return status


STATUSES: list[int] = []  # one per job: a multirun goes on after a failed job and exits with the worst status


@hydra.main(version_base=None, config_path="pkg://w2v2bench.conf", config_name="config")
def _app(cfg: DictConfig) -> None:
    try:
        STATUSES.append(evaluate(cfg))
    except (ConfigError, DataError, ModelError, HubUnavailable, OSError) as err:
        print(f"w2v2bench: error: {err}", file=sys.stderr)
        STATUSES.append(EXIT_RUN_FAILED)


def main() -> None:
    register()
    _app()
    # a failed run outranks a failed reference check
    sys.exit(next((s for s in (EXIT_RUN_FAILED, EXIT_REFERENCE_FAILED) if s in STATUSES), EXIT_OK))


if __name__ == "__main__":
    main()
