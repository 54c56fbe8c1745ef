"""The run loop: decoded windows -> length-sorted batches -> model -> CTC text -> scored results.

Results go to the journal batch by batch (a killed run loses at most the batch in flight); corpus
order is restored when the run is finalised. An out-of-memory error (CUDA's, or the CPU allocator's) splits
the batch in two and retries, down to one utterance: exact batching makes the split invisible in the
transcripts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .data import SAMPLE_RATE, Decoded, Utterance
from .data.batching import decoded_windows, plan_batches
from .decoders.base import DecodeFailure, Decoder
from .decoders.greedy import GreedyDecoder
from .metrics import Counts, rate
from .metrics.edits import utterance_counts
from .model import Output, Transcriber
from .model.precision import PrecisionStats
from .results import UtteranceResult


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, or the CPU allocator's (a plain RuntimeError)."""
    if isinstance(err, torch.OutOfMemoryError | MemoryError):
        return True
    return isinstance(err, RuntimeError) and "can't allocate memory" in str(err)


@dataclass
class RunStats:
    """What this process measured; WER and counts come from the results themselves (`totals`)."""

    n_utterances: int = 0
    n_failed: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    model_s: float = 0.0
    model_audio_s: float = 0.0
    warmup_batches: int = 0
    n_batches: int = 0
    oom_splits: int = 0
    padded_samples: int = 0
    valid_samples: int = 0
    precision_differs: int | None = None
    precision_check: PrecisionStats | None = None  # check_precision or recheck_margin ran

    @property
    def padding_fraction(self) -> float:
        return 1 - self.valid_samples / self.padded_samples if self.padded_samples else 0.0


def _glibc_malloc_trim() -> Callable[[], None]:
    """glibc's malloc_trim(0), or a no-op where there is no glibc (macOS, musl)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


# A batch's host buffers (audio, CPU activations) are freed in pieces of every size; glibc keeps the
# freed pages in its heaps, fragmented, so a long run's peak memory creeps up with the corpus. Handing
# free pages back after each batch keeps peak memory flat (bench/bench.py's memory rows: +9 % from 1x to 10x
# the corpus at batch size 8, +25 % trimming every 10 s instead). The call is cheap, but the next forward has to
# fault the pages in again: at batch size 1 on CPU that cost 3-6 % of the forwards (wav2vec2-base architecture)
# and bought nothing (+14 % from 1x to 10x either way), so single-utterance batches trim at most every
# TRIM_EVERY_S seconds (docs/benchmark.md has the measurements and their commands).
release_host_memory = _glibc_malloc_trim()
TRIM_EVERY_S = 10.0


class Trimmer:
    """`release_host_memory` after every batch of several utterances; after single ones at most every `every_s`
    seconds."""

    def __init__(self, every_s: float = TRIM_EVERY_S, trim: Callable[[], None] | None = None):
        self.every_s, self.trim, self.last = every_s, trim or release_host_memory, -math.inf

    def __call__(self, batch_size: int) -> None:
        now = time.perf_counter()
        if batch_size > 1 or now - self.last >= self.every_s:
            self.trim()
            self.last = time.perf_counter()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_with_backoff(
    transcriber: Transcriber, inputs: list[np.ndarray], stats: RunStats
) -> list[tuple[list[int] | np.ndarray, list[int] | None] | str]:
    """Per input: (ids or log-probs, fp32 ids) or, if it failed alone on out-of-memory, the error message."""
    try:
        out: Output = transcriber.forward(inputs)
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        if transcriber.device.type == "cuda":
            torch.cuda.empty_cache()
        if len(inputs) == 1:
            return [f"out of memory for {len(inputs[0]) / SAMPLE_RATE:.1f} s of audio alone: {err}"]
        stats.oom_splits += 1
        half = len(inputs) // 2
        return forward_with_backoff(transcriber, inputs[:half], stats) + forward_with_backoff(
            transcriber, inputs[half:], stats
        )
    fp32 = out.fp32_ids or [None] * len(out.ids)
    return list(zip(out.ids, fp32, strict=True))


def score(
    decoded: Decoded,
    hyp: str | None,
    normalize: Callable[[str], str],
    error: str | None = None,
    model_s: float | None = None,
) -> UtteranceResult:
    """One utterance's row; a failed one has pred_text "" (never null: other tools' readers stop at a null) and
    its `error`, and is left out of every count."""
    u = decoded.utterance
    error = decoded.error or error
    words = chars = Counts()
    if error is None and hyp is not None and u.text is not None:
        words, chars = utterance_counts(u.text, hyp, normalize)
    return UtteranceResult(
        index=u.index,
        id=u.id,
        speaker=u.speaker,
        chapter=u.chapter,
        duration_s=round(decoded.duration_s, 4),
        text=u.text,
        pred_text="" if error is not None else hyp,
        substitutions=words.substitutions,
        deletions=words.deletions,
        insertions=words.insertions,
        ref_words=words.ref_words,
        char_errors=chars.errors,
        ref_chars=chars.ref_words,
        error=error,
        notes=list(decoded.notes),
        audio_sha256=decoded.audio_sha256,
        audio_filepath=os.path.abspath(u.path) if u.path is not None and u.data is None else None,
        duration=round(decoded.duration_s, 4),
        model_s=None if model_s is None else round(model_s, 6),
        offset=u.offset if (u.offset or u.duration is not None) else None,
    )


class Progress:
    """What a long run shows while it works: on a terminal (or with progress=true) tqdm's bar; without one, a line
    on stderr every `every_s` seconds (Slurm and CI logs: utterances done of the total, audio seconds per second,
    ETA, running WER, failures); progress=false: nothing."""

    def __init__(self, total: int | None, progress: bool | None, every_s: float, label: str = ""):
        self.total, self.every_s, self.label = total, every_s, label
        terminal = sys.stderr.isatty()
        bar = progress if progress is not None else terminal
        self.bar = tqdm(total=total, unit="utt", disable=not bar, dynamic_ncols=True)
        self.lines = progress is None and not terminal and every_s > 0
        self.start = self.last = time.perf_counter()

    def update(self, done: int, audio_s: float, wer: float, failed: int, added: int) -> None:
        now = time.perf_counter()
        speed = audio_s / (now - self.start) if now > self.start else 0.0
        self.bar.update(added)
        self.bar.set_postfix(audio_s_per_s=f"{speed:.0f}", wer=f"{wer * 100:.2f}%", failed=failed, refresh=False)
        if self.lines and now - self.last >= self.every_s:
            self.last = now
            print(self.line(done, speed, wer, failed, now - self.start), file=sys.stderr, flush=True)

    def line(self, done: int, speed: float, wer: float, failed: int, elapsed: float) -> str:
        of = f"/{self.total} utterances ({done / self.total * 100:.1f} %)" if self.total else " utterances"
        eta = _clock(max(0.0, elapsed / done * (self.total - done))) if self.total and done else "n/a"
        return (
            f"progress{self.label}: {done}{of}, {speed:.1f} audio s/s, elapsed {_clock(elapsed)}, ETA {eta}, "
            f"WER so far {wer * 100:.2f} %, {failed} failed"
        )


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run(
    utterances: Iterable[Utterance],
    transcriber: Transcriber,
    write: Callable[[list[UtteranceResult]], None],
    *,
    batch_size: int = 1,
    max_batch_s: float = 400.0,
    window: int = 1024,
    workers: int = 2,
    normalize: Callable[[str], str] = lambda text: text,
    total: int | None = None,
    progress: bool | None = None,
    progress_every_s: float = 30.0,
    progress_label: str = "",
    warmup_batches: int = 1,
    decoder: Decoder | None = None,
) -> RunStats:
    """Transcribe and score every utterance; `write` gets results batch by batch (utterances whose audio failed
    as soon as they are read; the journal's order is not the corpus's, which the finish restores).

    A decoder that works beside the model (the LM's process pool) gets each batch as soon as the model is done
    with it; its texts are collected up to `lookahead` batches later, in order, while the model goes on."""
    decoder = decoder or GreedyDecoder(transcriber.tokens)
    transcriber.emit = decoder.wants
    lookahead = 0 if decoder.wants == "ids" else 2
    pending: deque[tuple[list[Decoded], list, Callable[[], list[str]]]] = deque()
    stats = RunStats()
    if transcriber.max_batch_size is not None:  # a model whose batches cannot be made exact (summary.json says why)
        batch_size = min(batch_size, transcriber.max_batch_size)
    if transcriber.check_precision:
        stats.precision_differs = 0
    if transcriber.check_precision or transcriber.recheck_margin is not None:
        transcriber.precision_stats = stats.precision_check = PrecisionStats()
    words = Counts()
    start = time.perf_counter()
    shown = Progress(total, progress, progress_every_s, progress_label)
    trim = Trimmer()

    def emit(results: list[UtteranceResult]) -> None:
        nonlocal words
        write(results)
        for r in results:
            stats.n_utterances += 1
            stats.audio_s += r.duration_s
            stats.n_failed += r.error is not None
            if r.error is None:
                words += Counts(r.substitutions, r.deletions, r.insertions, r.ref_words)
        shown.update(stats.n_utterances, stats.audio_s, rate([words]), stats.n_failed, len(results))

    def collect(
        decoded: list[Decoded], outputs: list, texts_of: Callable[[], list[str]], shares: list[float]
    ) -> list[UtteranceResult]:
        texts = iter(texts_of())
        results = []
        for d, out, share in zip(decoded, outputs, shares, strict=True):
            if isinstance(out, str):
                results.append(score(d, None, normalize, error=f"{d.utterance.origin}: {out}", model_s=share))
                continue
            hyp = next(texts)
            if isinstance(hyp, DecodeFailure):
                results.append(score(d, None, normalize, error=f"{d.utterance.origin}: {hyp.message}", model_s=share))
                continue
            if out[1] is not None and transcriber.text(out[1]) != hyp:
                stats.precision_differs += 1
            results.append(score(d, hyp, normalize, model_s=share))
        return results

    with shown.bar:
        for items in decoded_windows(utterances, transcriber.prepare, window, workers):
            failed = [d for d in items if d.error is not None]
            if failed:
                emit([score(d, None, normalize) for d in failed])
            ready = [d for d in items if d.error is None]
            lengths = [len(d.input_values) for d in ready]
            for batch in plan_batches(lengths, batch_size, int(max_batch_s * SAMPLE_RATE)):
                decoded = [ready[i] for i in batch]
                inputs = [d.input_values for d in decoded]
                timed = stats.n_batches >= warmup_batches
                _sync(transcriber.device)
                tic = time.perf_counter()
                outputs = forward_with_backoff(transcriber, inputs, stats)  # ids are on the host: synchronised
                elapsed = time.perf_counter() - tic
                samples = sum(map(len, inputs))
                stats.n_batches += 1
                if timed:
                    stats.model_s += elapsed
                    stats.model_audio_s += samples / SAMPLE_RATE
                else:
                    stats.warmup_batches += 1
                stats.padded_samples += len(inputs) * max(map(len, inputs))
                stats.valid_samples += samples
                ok = [out[0] for out in outputs if not isinstance(out, str)]
                # each utterance's share of the batch's synchronised model time, by its length
                shares = [elapsed * len(x) / samples for x in inputs]
                pending.append((decoded, outputs, decoder.submit(ok), shares))
                del decoded, inputs, outputs, ok, shares
                while len(pending) > lookahead:
                    emit(collect(*pending.popleft()))
                trim(len(batch))
        while pending:
            emit(collect(*pending.popleft()))
    stats.wall_s = time.perf_counter() - start
    return stats
