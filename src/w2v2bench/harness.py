"""The harness: one model x split as configured: unpack the config, build the pieces, run, write (cli/bench.py)."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from . import distributed, summary
from .backends import make_backend
from .backends.base import BackendError
from .config import load_reference
from .data import DataError
from .data.hub import cached_dataset, hub_dataset_commit, hub_utterances, open_stream
from .data.local import local_utterances
from .decoders import make_decoder
from .decoders.base import DecoderError
from .errors import ConfigError, one_line
from .hub import OFFLINE_HINT, HubUnavailable, hub_unreachable_reason
from .metrics.normalizers import normalizer
from .model import ModelError, load_model, parse_device, resolve_checkpoint, resolve_defaults
from .pipeline import run
from .results import SCHEMA_VERSION, ResultsFileError, write_summary
from .resume import (
    Journal,
    Resume,
    _kept,
    already_complete,
    check_same_decoder,
    claim_output_dir,
    config_sha256,
    recover_journals,
    remove_journals,
)


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
    if not data.dataset:
        raise ConfigError("data.dataset is not set: data=hub needs a Hub dataset id or a folder of its files")
    looks_like_path = str(data.dataset).startswith(("/", "./", "../", "~"))
    if looks_like_path and not Path(data.dataset).expanduser().is_dir():
        raise ConfigError(f"data.dataset={data.dataset!r}: no such folder (expected a copy of a Hub dataset repo)")
    key = f"{partition}-{split}"
    if key not in data.hub_names:
        raise ConfigError(
            f"data={data.name} ({data.dataset}) has no {key}: it has {sorted(data.hub_names)} "
            "(data.hub_names in its conf/data file)"
        )
    if len(data.hub_names[key]) != 2:
        raise ConfigError(f"data.hub_names.{key}={list(data.hub_names[key])}: expected [config, split]")
    hub_config, hub_split = data.hub_names[key]
    dataset = data.dataset
    mirrored = Path(dataset).expanduser().is_dir()  # a local copy of the Hub repo: no network needed
    reason = None if mirrored else hub_unreachable_reason()
    commit = None
    if reason is not None:
        dataset = cached_dataset(dataset, data.revision)  # the repo's files downloaded before (hf download)
        if dataset is None or not any(Path(dataset, hub_config, hub_split).glob("*.parquet")):
            raise HubUnavailable(
                f"cannot stream {data.dataset}: the Hugging Face Hub is unreachable ({reason}) and the dataset repo "
                f"is not in the Hugging Face cache; {OFFLINE_HINT}"
            )
        commit = Path(dataset).name  # the cache's snapshot folder is named by its commit
        mirrored = True
    stream = open_stream(hub_utterances(dataset, data.revision, hub_config, hub_split))
    # what data.revision (null: main) resolved to, so a nightly can tell that the data changed
    cfg.data.commit = commit if mirrored else hub_dataset_commit(data.dataset, data.revision)
    return (itertools.islice(stream, cfg.limit) if cfg.limit is not None else stream), cfg.limit


def validate(cfg: DictConfig) -> None:
    """Check every setting, and make `device=auto` and `batch_size=null` concrete (recorded as such)."""
    if cfg.backend.name.value != "torch" and cfg.device == "auto":
        cfg.device = "cpu"  # the other runtimes run on the CPU here
    cfg.device, cfg.batch_size = resolve_defaults(cfg.device, cfg.batch_size)
    for key in ("batch_size", "sort_window"):
        if cfg[key] < 1:
            raise ConfigError(f"{key}={cfg[key]}: expected a positive integer")
    if cfg.num_workers is not None and cfg.num_workers < 0:
        raise ConfigError(f"num_workers={cfg.num_workers}: expected null (automatic), 0 or a positive integer")
    if cfg.max_batch_s <= 0:
        raise ConfigError(f"max_batch_s={cfg.max_batch_s}: expected a positive number of seconds")
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError(f"limit={cfg.limit}: expected null or a positive integer")
    if cfg.decoder.name.value != "greedy" and cfg.check_precision:
        raise ConfigError(
            f"check_precision=true compares greedy transcripts: it needs decoder=greedy, not {cfg.decoder.name}"
        )
    if cfg.recheck_margin is not None:
        if not (math.isfinite(cfg.recheck_margin) and 0 < cfg.recheck_margin <= 1e4):
            raise ConfigError(f"recheck_margin={cfg.recheck_margin}: expected null or a logit margin in (0, 1e4]")
        reference = cfg.precision.value == "fp32" and cfg.backend.name.value == "torch"
        for wrong, why in (
            (reference, "the run is already PyTorch fp32: set precision=bf16|fp16 or another backend"),
            (cfg.decoder.name.value != "greedy", f"it re-checks greedy ids, not decoder={cfg.decoder.name}"),
            (cfg.batching.value != "exact", "it needs batching=exact (each utterance re-run alone)"),
        ):
            if wrong:
                raise ConfigError(f"recheck_margin={cfg.recheck_margin}: {why}")
    if cfg.backend.name.value != "torch":
        other = cfg.backend.name.value
        for key, value, allowed in (
            ("device", cfg.device, "cpu"),
            ("precision", cfg.precision.value, "fp32"),
            ("batching", cfg.batching.value, "exact"),
            ("compile", cfg.compile, False),
        ):
            if value != allowed:
                raise ConfigError(
                    f"{key}={value}: backend={other} runs with {key}={allowed} only (backend=torch for more)"
                )
    lm_keys = [k for k, v in cfg.decoder.items() if k != "name" and v is not None]
    if cfg.decoder.name.value == "greedy" and lm_keys:
        raise ConfigError(f"decoder.{lm_keys[0]} is set but decoder=greedy ignores it: add decoder=lm")
    cores = len(os.sched_getaffinity(0))
    if cfg.decoder.workers is not None and not 0 <= cfg.decoder.workers <= 4 * cores:
        raise ConfigError(
            f"decoder.workers={cfg.decoder.workers}: expected null (one per core), 0 (inline) or up to 4 x the "
            f"{cores} cores this process may use"
        )
    try:
        normalizer(cfg.normalizer)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if cfg.check_precision and cfg.batching.value == "naive":
        raise ConfigError("check_precision=true: it needs batching=exact (naive batches are not compared)")
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
    claim = claim_output_dir(config["output_dir"], config, cfg.resume) if main_rank else None
    try:
        if claim is not None and claim.stored is not None and claim.stored.get("status") == "complete":
            return already_complete(claim)
        # one output folder and run id for all ranks
        config["output_dir"], run_id = distributed.broadcast((config["output_dir"], claim and claim.run_id), rank)
        return _evaluate(cfg, config, started, reference, rank, utterances, total, run_id, claim)
    finally:
        if claim is not None:
            claim.release()


def _evaluate(cfg, config, started, reference, rank, utterances, total, run_id, claim) -> int:
    main_rank = rank is None or rank.is_main
    output_dir = Path(config["output_dir"])
    config_hash = config_sha256(config)
    header = {
        "schema_version": SCHEMA_VERSION,
        "status": "running",
        "run_id": run_id,
        "started": started,
        "config": config,
    }
    if cfg.resume and claim is not None and claim.stored is not None and "decoder" in claim.stored:
        header["decoder"] = claim.stored["decoder"]  # the interrupted run's LM, checked once the decoder is built
    resume: Resume | None = None
    try:
        if main_rank:
            if cfg.resume:
                resume = Resume(recover_journals(output_dir, run_id, config_hash), normalizer(cfg.normalizer))
                print(
                    f"resuming: {len(resume.candidates)} journal rows of the interrupted run in {output_dir}; "
                    "each is kept only if it matches the corpus's utterance at its index"
                )
            write_summary(output_dir, header)
        journal = None
        if main_rank:  # first: it takes in what every rank's journal held
            journal = Journal(output_dir, run_id, config_hash, rank=None if rank is None else 0, kept=_kept(resume))
        distributed.broadcast(None, rank)
        if journal is None:
            journal = Journal(output_dir, run_id, config_hash, rank=rank.rank)
        if rank is not None:
            utterances = list(utterances)
            todo = list(resume.pending(utterances)) if resume is not None else utterances
            todo_indices = distributed.broadcast({u.index for u in todo} if main_rank else None, rank)
            utterances = distributed.shard(
                [u for u in utterances if u.index in todo_indices], rank.world_size, rank.rank
            )
            total = len(utterances)
        elif resume is not None:
            total = None if total is None else total - len(resume.candidates)
            utterances = resume.pending(utterances)

        load_start = time.perf_counter()
        transcriber = load_model(
            cfg.model.checkpoint,
            revision=cfg.model.revision,
            device=distributed.rank_device(cfg.device, rank),
            batching=cfg.batching.value,
            precision=cfg.precision.value,
            check_precision=cfg.check_precision,
            compile=cfg.compile,
            verbose=cfg.verbose,
        )
        # the decoder first: a bad LM file is found before a backend's export, which can take minutes
        decoder = build_decoder(cfg, transcriber)
        try:
            backend = make_backend(
                cfg.backend.name.value,
                transcriber.model,
                os.path.expanduser(cfg.backend.cache),
                precision=cfg.backend.precision,
            )
            if backend is not None:
                transcriber.use_backend(backend)
            transcriber.recheck_margin = cfg.recheck_margin
            load_s = time.perf_counter() - load_start
            missing = transcriber.info.training_only_missing
            if missing and main_rank:
                print(f"note: {', '.join(missing)} not in the checkpoint: used in training only, harmless here")
            fallback = transcriber.info.batching_fallback
            if fallback and cfg.batch_size > 1 and main_rank:
                print(f"note: batch_size={cfg.batch_size} not used: {fallback} (summary.json: batching_fallback)")
            if main_rank:
                check_same_decoder(header.get("decoder"), decoder.settings(), bool(resume and resume.candidates))
                header["decoder"] = decoder.settings()
                write_summary(output_dir, header)
            stats = run(
                utterances,
                transcriber,
                journal.write,
                batch_size=cfg.batch_size,
                max_batch_s=cfg.max_batch_s,
                window=cfg.sort_window,
                # automatic: decode beside the model on a GPU; on a CPU the model has every core already
                workers=cfg.num_workers
                if cfg.num_workers is not None
                else (0 if transcriber.device.type == "cpu" else 4),
                normalize=normalizer(cfg.normalizer),
                total=total,
                progress=cfg.progress if main_rank else False,
                decoder=decoder,
            )
        finally:
            decoder.close()
        per_rank = distributed.gather((journal.new if not main_rank else [], stats), rank)
        if not main_rank:
            journal.close()
            status = distributed.broadcast(None, rank)
            distributed.finish(rank)
            return status
        status, lines = summary.finish(
            cfg, config, started, reference, journal, resume, per_rank, load_s, transcriber, run_id, decoder.settings()
        )
    except BaseException as err:  # before the commit: after it, nothing can mark a complete run failed
        if main_rank:
            failed = {**header, "status": "failed", "error": f"{type(err).__name__}: {one_line(err)}"}
            with contextlib.suppress(OSError):
                write_summary(output_dir, failed)
        raise
    with contextlib.suppress(OSError):  # leftovers are harmless: a later resume removes them
        remove_journals(output_dir)
    distributed.broadcast(status, rank)
    distributed.finish(rank)
    print("\n".join(lines))
    return status


def build_decoder(cfg: DictConfig, transcriber):
    """The configured logits -> text step (an LM decoder loads its LM here, before any audio is read)."""
    d = cfg.decoder
    overrides = {
        k: d[k] for k in ("beam_width", "beam_size_token", "beam_threshold", "lm_weight", "word_score", "sil_score")
    }
    return make_decoder(
        d.name.value,
        transcriber.tokens,
        checkpoint=cfg.model.checkpoint,
        local=transcriber.info.local,
        revision=cfg.model.revision,
        lm=d.lm,
        lexicon=d.lexicon,
        overrides=overrides,  # the decoder keeps the values that are set
        workers=d.workers if d.workers is not None else len(os.sched_getaffinity(0)),
        verbose=cfg.verbose,
    )


# what the command line prints as one line (exit 1) rather than a traceback
ONE_LINE_ERRORS = (
    ConfigError,
    DataError,
    DecoderError,
    BackendError,
    ModelError,
    HubUnavailable,
    ResultsFileError,
    OSError,
)
