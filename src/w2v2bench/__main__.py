"""`python -m w2v2bench [key=value ...]`: unpack the config, build the pieces, run, write; nothing else."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import sys
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from . import distributed
from .analysis import write_analysis
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
    Journal,
    ReferenceCheck,
    check_reference,
    git_hash,
    prepare_output_dir,
    versions,
    write_json_atomic,
    write_tables,
)
from .run import RunStats, Totals, run, totals
from .score import normalizer

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
        raise HubUnavailable(
            f"cannot stream {data.dataset}: the Hugging Face Hub is unreachable ({reason}); {OFFLINE_HINT}"
        )
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


# settings a resumed run may change: they do not touch the transcripts
RESUMABLE_KEYS = {"resume", "progress", "num_workers", "output_dir"}


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resumable(output_dir: Path, config: dict) -> None:
    """A resumed run must have been started with the same config (keys that change nothing excepted)."""
    path = output_dir / "summary.json"
    if not path.exists():
        raise UserError(f"resume=true: {path} does not exist: nothing to resume in output_dir={str(output_dir)!r}")
    stored = json.loads(path.read_text(encoding="utf-8"))
    if stored.get("status") == "complete":
        raise UserError(f"resume=true: the run in {output_dir} is already complete")
    old, new = flatten(stored.get("config", {})), flatten(config)
    differing = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in RESUMABLE_KEYS)
    if differing:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differing)
        raise UserError(f"resume=true: the config differs from the interrupted run's in {shown}")


def reference_check(reference: ReferenceConfig | None, t: Totals, cfg: DictConfig) -> tuple[ReferenceCheck | None, str]:
    """The check against published figures, or why there is none."""
    split = cfg.split.value
    if reference is None or not reference.wer:
        return None, "no reference figures for this model"
    if split not in reference.wer:
        return None, f"reference {reference.name!r} has no figure for split={split!r}"
    if reference.partition.value != cfg.data.partition.value:
        return None, f"reference {reference.name!r} is for data.partition={reference.partition.value!r}"
    if cfg.limit is not None:
        return None, f"skipped: limit={cfg.limit} scores a subset, the reference is for the whole split"
    expected_n = reference.utterances.get(split, t.n_utterances)
    if expected_n != t.n_utterances:
        return None, (
            f"skipped: {t.n_utterances} utterances scored, the reference is for all "
            f"{expected_n} of {cfg.data.partition.value}-{split}"
        )
    if t.n_failed:
        check = check_reference(float("nan"), reference.wer[split], reference.tolerance, reference.source)
        return check, f"failed: {t.n_failed} utterance(s) could not be transcribed"
    return check_reference(t.wer, reference.wer[split], reference.tolerance, reference.source), "checked"


def evaluate(cfg: DictConfig) -> int:
    """Run one model x split as configured (one rank of it under torchrun); returns the exit status."""
    started = datetime.now(UTC).isoformat(timespec="seconds")
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
            raise UserError(
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
            workers=cfg.num_workers,
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
    check, reference_note = reference_check(reference, t, cfg)
    summary = build_summary(cfg, config, started, t, [s for _, s in per_rank], load_s, transcriber)
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


def build_summary(
    cfg: DictConfig, config: dict, started: str, t: Totals, ranks: list[RunStats], load_s: float, transcriber
) -> dict:
    """summary.json: the figures from the results, timing from each rank's stats, and what ran where."""
    wall_s = max(s.wall_s for s in ranks)  # ranks run side by side: the slowest one is the run's wall
    timed_audio_s = sum(s.audio_s for s in ranks)
    model_s, model_audio_s = sum(s.model_s for s in ranks), sum(s.model_audio_s for s in ranks)
    padded, valid = sum(s.padded_samples for s in ranks), sum(s.valid_samples for s in ranks)
    differs = [s.precision_differs for s in ranks if s.precision_differs is not None]
    timed_utterances = sum(s.n_utterances for s in ranks)
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "complete",
        "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "wer": t.wer,
        "cer": t.cer,
        "n_utterances": t.n_utterances,
        "n_failed": t.n_failed,
        "failed_excluded_from_wer": True,
        "ref_words": t.words.ref_words,
        "word_errors": {
            "substitutions": t.words.substitutions,
            "deletions": t.words.deletions,
            "insertions": t.words.insertions,
        },
        "ref_chars": t.chars.ref_words,
        "char_errors": t.chars.errors,
        "normalizer": cfg.normalizer or "none",
        "audio_s": t.audio_s,
        # timing covers what this run's processes transcribed (all of it unless resumed)
        "timed_utterances": timed_utterances,
        "timed_audio_s": timed_audio_s,
        "resumed_from": t.n_utterances - timed_utterances if cfg.resume else None,
        "wall_s": wall_s,
        "load_s": load_s,
        "rtfx": timed_audio_s / wall_s if wall_s else 0.0,
        "model_s": model_s,
        "model_rtfx": model_audio_s / model_s if model_s else 0.0,
        "warmup_batches": sum(s.warmup_batches for s in ranks),
        "n_batches": sum(s.n_batches for s in ranks),
        "oom_splits": sum(s.oom_splits for s in ranks),
        "padding_fraction": 1 - valid / padded if padded else 0.0,
        "precision": cfg.precision.value,
        "precision_differs_from_fp32": sum(differs) if differs else None,
        "world_size": len(ranks),
        "ranks": [
            {
                "rank": r,
                "utterances": s.n_utterances,
                "audio_s": s.audio_s,
                "wall_s": s.wall_s,
                "rtfx": s.audio_s / s.wall_s if s.wall_s else 0.0,
            }
            for r, s in enumerate(ranks)
        ],
        "model": vars(transcriber.info),
        "device": device_name(transcriber.device),
        "host": socket.gethostname(),
        "git_hash": git_hash(),
        "versions": versions(),
        "command": " ".join(sys.argv),
        "config": config,
    }


STATUSES: list[int] = []  # one per job: a multirun goes on after a failed job and exits with the worst status


@hydra.main(version_base=None, config_path="pkg://w2v2bench.conf", config_name="config")
def _app(cfg: DictConfig) -> None:
    try:
        STATUSES.append(evaluate(cfg))
    except (UserError, DataError, ModelError, HubUnavailable, OSError) as err:
        print(f"w2v2bench: error: {err}", file=sys.stderr)
        STATUSES.append(EXIT_RUN_FAILED)


def main() -> None:
    register()
    _app()
    # a failed run outranks a failed reference check
    sys.exit(next((s for s in (EXIT_RUN_FAILED, EXIT_REFERENCE_FAILED) if s in STATUSES), EXIT_OK))


if __name__ == "__main__":
    main()
