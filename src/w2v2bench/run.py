"""The run loop: decoded windows -> length-sorted batches -> model -> CTC text -> scored results in order."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from .data import SAMPLE_RATE, Decoded, Utterance, decoded_windows, plan_batches
from .model import Transcriber
from .report import UtteranceResult
from .score import Counts, char_counts, rate, word_counts


@dataclass
class RunStats:
    n_utterances: int = 0
    n_failed: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    model_s: float = 0.0
    model_audio_s: float = 0.0
    warmup_batches: int = 0
    n_batches: int = 0
    padded_samples: int = 0
    valid_samples: int = 0
    precision_differs: int | None = None
    words: Counts = field(default_factory=Counts)
    chars: Counts = field(default_factory=Counts)

    @property
    def padding_fraction(self) -> float:
        return 1 - self.valid_samples / self.padded_samples if self.padded_samples else 0.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def transcribe_window(
    window: list[Decoded], transcriber: Transcriber, batch_size: int, max_batch_s: float, stats: RunStats,
    warmup_batches: int, on_batch: Callable[[int], None] = lambda n: None,
) -> dict[int, tuple[str, str | None]]:
    """Position in window -> (hypothesis, fp32 hypothesis when checking precision)."""
    ready = [i for i, d in enumerate(window) if d.error is None]
    lengths = [len(window[i].input_values) for i in ready]
    texts: dict[int, tuple[str, str | None]] = {}
    for batch in plan_batches(lengths, batch_size, int(max_batch_s * SAMPLE_RATE)):
        positions = [ready[b] for b in batch]
        inputs = [window[p].input_values for p in positions]
        timed = stats.n_batches >= warmup_batches
        _sync(transcriber.device)
        start = time.perf_counter()
        output = transcriber.forward(inputs)  # collapse() moved the ids to the host: synchronised
        elapsed = time.perf_counter() - start
        stats.n_batches += 1
        if timed:
            stats.model_s += elapsed
            stats.model_audio_s += sum(len(x) for x in inputs) / SAMPLE_RATE
        else:
            stats.warmup_batches += 1
        stats.padded_samples += len(inputs) * max(len(x) for x in inputs)
        stats.valid_samples += sum(len(x) for x in inputs)
        for k, p in enumerate(positions):
            fp32 = transcriber.text(output.fp32_ids[k]) if output.fp32_ids is not None else None
            texts[p] = (transcriber.text(output.ids[k]), fp32)
        on_batch(len(positions))
    return texts


def score(decoded: Decoded, hyp: str | None, normalize: Callable[[str], str]) -> UtteranceResult:
    u = decoded.utterance
    error = decoded.error
    words = chars = Counts()
    if error is None and hyp is not None and u.text is not None:
        ref_n, hyp_n = normalize(u.text), normalize(hyp)
        words, chars = word_counts(ref_n, hyp_n), char_counts(ref_n, hyp_n)
    return UtteranceResult(
        id=u.id,
        speaker=u.speaker,
        chapter=u.chapter,
        duration_s=round(decoded.duration_s, 4),
        text=u.text,
        pred_text=hyp,
        substitutions=words.substitutions,
        deletions=words.deletions,
        insertions=words.insertions,
        ref_words=words.ref_words,
        char_errors=chars.errors,
        ref_chars=chars.ref_words,
        error=error,
        notes=list(decoded.notes),
    )


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
    warmup_batches: int = 1,
) -> RunStats:
    """Transcribe and score every utterance; `write` gets each window's results in corpus order."""
    stats = RunStats()
    if transcriber.check_precision:
        stats.precision_differs = 0
    start = time.perf_counter()
    bar = tqdm(total=total, unit="utt", disable=None if progress is None else not progress, dynamic_ncols=True)
    with bar:
        for window_items in decoded_windows(utterances, transcriber.prepare, window, workers):
            texts = transcribe_window(
                window_items, transcriber, batch_size, max_batch_s, stats, warmup_batches, bar.update
            )
            results = []
            for position, decoded in enumerate(window_items):
                hyp, fp32 = texts.get(position, (None, None))
                result = score(decoded, hyp, normalize)
                results.append(result)
                stats.n_utterances += 1
                stats.audio_s += decoded.duration_s
                if result.error is not None:
                    stats.n_failed += 1
                else:
                    stats.words += Counts(result.substitutions, result.deletions, result.insertions, result.ref_words)
                    stats.chars += Counts(result.char_errors, 0, 0, result.ref_chars)
                if fp32 is not None and fp32 != hyp:
                    stats.precision_differs += 1
            write(results)
            elapsed = time.perf_counter() - start
            bar.update(len(window_items) - len(texts))
            bar.set_postfix(
                audio_s_per_s=f"{stats.audio_s / elapsed:.0f}",
                wer=f"{rate([stats.words]) * 100:.2f}%",
                failed=stats.n_failed,
                refresh=False,
            )
    stats.wall_s = time.perf_counter() - start
    return stats
