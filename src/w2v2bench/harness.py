"""The harness: one model x split, the walk from checked settings (settings.py) to summary.json (cli/bench.py)."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path

from omegaconf import DictConfig

from . import distributed, pipeline, summary
from .backends.base import BackendError
from .data import DataError
from .decoders.base import DecoderError
from .errors import ConfigError, one_line
from .hub import HubUnavailable
from .metrics.normalizers import normalizer
from .model import ModelError, load_model
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
from .settings import Run, validate


def evaluate(cfg: DictConfig) -> int:
    """Run one model x split as configured (one rank of it under torchrun); returns the exit status."""
    started = datetime.now(UTC).isoformat(timespec="milliseconds")
    return bench(validate(cfg), started)


def bench(run: Run, started: str) -> int:
    """One model x split from its checked settings; nothing below reads the config."""
    source = run.data.create()
    rank = distributed.init(run.device)
    main_rank = rank is None or rank.is_main
    utterances, total = source.utterances(run.split, run.limit)
    config = run.config(commit=source.commit)
    claim = claim_output_dir(config["output_dir"], config, run.resume) if main_rank else None
    try:
        if claim is not None and claim.stored is not None and claim.stored.get("status") == "complete":
            return already_complete(claim)
        # one output folder and run id for all ranks
        config["output_dir"], run_id = distributed.broadcast((config["output_dir"], claim and claim.run_id), rank)
        return _evaluate(run, config, started, rank, utterances, total, run_id, claim)
    finally:
        if claim is not None:
            claim.release()


def _evaluate(run: Run, config, started, rank, utterances, total, run_id, claim) -> int:
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
    if run.resume and claim is not None and claim.stored is not None and "decoder" in claim.stored:
        header["decoder"] = claim.stored["decoder"]  # the interrupted run's LM, checked once the decoder is built
    resume: Resume | None = None
    try:
        if main_rank:
            if run.resume:
                resume = Resume(recover_journals(output_dir, run_id, config_hash), normalizer(run.normalizer))
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
            run.checkpoint,
            revision=run.revision,
            device=distributed.rank_device(run.device, rank),
            batching=run.batching,
            precision=run.precision,
            check_precision=run.check_precision,
            compile=run.compile,
            verbose=run.verbose,
        )
        # the decoder first: a bad LM file is found before a backend's export, which can take minutes
        decoder = run.decoder.create(
            tokens=transcriber.tokens,
            checkpoint=run.checkpoint,
            local=transcriber.info.local,
            revision=run.revision,
            verbose=run.verbose,
        )
        try:
            backend = run.backend.create(model=transcriber.model)
            if backend is not None:
                transcriber.use_backend(backend)
            transcriber.recheck_margin = run.recheck_margin
            load_s = time.perf_counter() - load_start
            missing = transcriber.info.training_only_missing
            if missing and main_rank:
                print(f"note: {', '.join(missing)} not in the checkpoint: used in training only, harmless here")
            fallback = transcriber.info.batching_fallback
            if fallback and run.batch_size > 1 and main_rank:
                print(f"note: batch_size={run.batch_size} not used: {fallback} (summary.json: batching_fallback)")
            if main_rank:
                check_same_decoder(header.get("decoder"), decoder.settings(), bool(resume and resume.candidates))
                header["decoder"] = decoder.settings()
                write_summary(output_dir, header)
            stats = pipeline.run(
                utterances,
                transcriber,
                journal.write,
                batch_size=run.batch_size,
                max_batch_s=run.max_batch_s,
                window=run.sort_window,
                # automatic: decode beside the model on a GPU; on a CPU the model has every core already
                workers=run.num_workers
                if run.num_workers is not None
                else (0 if transcriber.device.type == "cpu" else 4),
                normalize=normalizer(run.normalizer),
                total=total,
                progress=run.progress if main_rank else False,
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
            run, config, started, journal, resume, per_rank, load_s, transcriber, run_id, decoder.settings()
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
