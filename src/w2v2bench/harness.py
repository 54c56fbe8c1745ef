"""The harness: one model x split, the walk from checked settings (settings.py) to summary.json (cli/bench.py)."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime

from omegaconf import DictConfig

from . import distributed, pipeline, summary
from .backends.base import BackendError
from .data import DataError, reference_style
from .decoders.base import DecoderError
from .errors import ConfigError
from .hub import HubUnavailable
from .metrics.normalizers import normalizer
from .model import ModelError, load_model
from .results import ResultsFileError
from .resume import RunFolder, already_complete
from .settings import Run, validate


def evaluate(cfg: DictConfig) -> int:
    """Run one model x split as configured (one rank of it under torchrun); returns the exit status."""
    started = datetime.now(UTC).isoformat(timespec="milliseconds")
    return bench(validate(cfg), started)


def bench(run: Run, started: str) -> int:
    """One model x split, top to bottom: source, model, decoder, backend, run loop, summary. The ranks (sharding
    and gathering under torchrun; nothing for one process) and the run folder (claim, journal, resume) wrap it;
    nothing below reads the config."""
    source = run.data.create()
    with distributed.session(run.device) as ranks:
        utterances, total = source.utterances(run.split, run.limit)
        if ranks.is_main and run.normalizer is None and isinstance(utterances, list):
            style = reference_style(utterances)
            if style:
                print(f"note: {style}")
        hint = getattr(source, "normalizer_hint", None)  # a source whose references need one (data=open_asr)
        if ranks.is_main and run.normalizer is None and hint:
            print(f"note: normalizer=null scores data={source.name}'s cased, punctuated references as written: "
                  f"normalizer={hint} scores words")  # fmt: skip
        with RunFolder(run.config(commit=source.commit), run.resume, ranks, started) as folder:
            if folder.complete:
                return already_complete(folder.claim)
            folder.open(normalizer(run.normalizer))
            utterances, total = ranks.shard(*folder.pending(utterances, total))
            load_start = time.perf_counter()
            transcriber = load_model(run.checkpoint, device=ranks.device(run.device), **_model_options(run))
            run.naming.settle()  # the ids of the files as loaded
            # the decoder before the backend: a bad LM file is found before an export, which can take minutes
            decoder = run.decoder.create(tokens=transcriber.tokens, **_decoder_context(run, transcriber))
            with contextlib.closing(decoder):
                transcriber.use_backend(run.backend.create(model=transcriber.model), run.recheck_margin)
                load_s = time.perf_counter() - load_start
                folder.decoding(decoder.settings())
                _notes(run, transcriber, decoder.settings(), ranks)
                stats = pipeline.run(utterances, transcriber, folder.journal.write, decoder=decoder,
                                     **_loop(run, transcriber, ranks, total, folder.resume is not None))  # fmt: skip
            per_rank = ranks.gather((folder.journal.new if not ranks.is_main else [], stats))
            if not ranks.is_main:
                return folder.follow()
            status, lines = summary.finish(run, folder, per_rank, load_s, transcriber, decoder.settings())
            folder.commit(status)
    dropped = getattr(source, "dropped", None)  # rows a source's own rule left out (data.drop_unscored)
    if dropped:
        lines.append(f"note: data.drop_unscored left out {len(dropped)} row(s) whose text it empties: "
                     + ", ".join(dropped[:5]) + (", ..." if len(dropped) > 5 else ""))  # fmt: skip
    print("\n".join(lines))
    return status


def _model_options(run: Run) -> dict:
    return {
        "revision": run.revision,
        "batching": run.batching,
        "precision": run.precision,
        "check_precision": run.check_precision,
        "compile": run.compile,
        "verbose": run.verbose,
    }


def _decoder_context(run: Run, transcriber) -> dict:
    """What a decoder may need besides the tokens: where the checkpoint is (an LM decoder finds its LM there)."""
    return {
        "checkpoint": run.checkpoint,
        "local": transcriber.info.local,
        "revision": run.revision,
        "verbose": run.verbose,
    }


def _loop(run: Run, transcriber, ranks, total: int | None, resumed: bool = False) -> dict:
    """The run loop's settings."""
    share = "" if ranks.rank is None else f"rank 0 of {ranks.rank.world_size}: its share"
    resumed_only = "resumed: the utterances left" if resumed else ""  # the kept rows are not in its counts
    return {
        "total": total,
        "progress": run.progress if ranks.is_main else False,
        "progress_every_s": run.progress_every_s,
        # under torchrun the main rank reports its own share of the run
        "progress_label": "".join(f" ({x})" for x in (share, resumed_only) if x),
        "batch_size": run.batch_size,
        "max_batch_s": run.max_batch_s,
        "window": run.sort_window,
        # automatic: decode beside the model on a GPU; on a CPU the model has every core already
        "workers": run.num_workers if run.num_workers is not None else (0 if transcriber.device.type == "cpu" else 4),
        "normalize": normalizer(run.normalizer),
    }


def _notes(run: Run, transcriber, decoder: dict, ranks) -> None:
    """What the load found that the user should know (the main rank says it; summary.json records each)."""
    if not ranks.is_main:
        return
    notes = [run.naming.note] if run.naming.note else []
    if decoder.get("lexicon_dropped"):
        notes.append(
            f"the lexicon lost {decoder['lexicon_dropped']} of its words: the model's tokens cannot spell them "
            "(or they are too long); the LM decoder can never output them (summary.json: decoder.lexicon_dropped)"
        )
    missing = transcriber.info.training_only_missing
    if missing:
        notes.append(f"{', '.join(missing)} not in the checkpoint: used in training only, harmless here")
    fallback = transcriber.info.batching_fallback
    if fallback and run.batch_size > 1:
        notes.append(f"batch_size={run.batch_size} not used: {fallback} (summary.json: batching_fallback)")
    for note in notes:
        try:
            print(f"note: {note}", flush=True)
        except (BrokenPipeError, ValueError):  # nobody reads stdout any more: the run goes on, its files say it
            pass


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
