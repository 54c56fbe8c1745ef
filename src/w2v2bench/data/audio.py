"""One utterance's audio: its bytes and their SHA-256, read and decoded to 16 kHz mono float32."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable

import numpy as np
import soundfile as sf
import soxr

from ..errors import one_line
from ..files import read_regular
from . import SAMPLE_RATE, AudioError, Decoded, Utterance


def audio_bytes(utterance: Utterance) -> bytes:
    """The utterance's encoded audio: the Hub row's bytes, or the file's (a regular file only: a FIFO
    would hang the run)."""
    if utterance.data is not None:
        return utterance.data
    try:
        return read_regular(utterance.path)
    except ValueError:  # a NUL in the path (a dataset's or manifest's value)
        raise AudioError(f"{utterance.origin!r}: not a path (it holds a NUL)") from None
    except OSError as err:
        raise AudioError(f"{utterance.origin}: cannot read ({one_line(err.strerror or err)})") from None


def audio_sha256(utterance: Utterance) -> str | None:
    """What identifies the audio an utterance's result was computed from (None: there is none to read)."""
    if utterance.error or (utterance.data is None and utterance.path is None):
        return None
    try:
        return hashlib.sha256(audio_bytes(utterance)).hexdigest()
    except AudioError:
        return None


def load_audio(
    source: str | bytes, origin: str, offset: float = 0.0, duration: float | None = None, channel: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """16 kHz mono float32 samples (of the segment from `offset` seconds, `duration` long: None to the end; of one
    `channel`, else every channel downmixed) and notes on what was done to get them (downmix, resample)."""
    notes: list[str] = []
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        with sf.SoundFile(handle) as audio:
            rate, frames = audio.samplerate, audio.frames
            start, stop = 0, frames
            if offset or duration is not None:  # a segment: only its frames are decoded
                start = min(round(offset * rate), frames)
                stop = frames if duration is None else start + round(duration * rate)
                if stop > frames + round(0.01 * rate):  # 10 ms of rounding in a manifest's durations is no fault
                    raise AudioError(f"{origin}: the segment ends past the file's {frames / rate:.3f} s")
                stop = min(stop, frames)
                audio.seek(start)
            samples = audio.read(stop - start, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as err:  # libsndfile's errors are plain RuntimeErrors or LibsndfileErrors
        raise AudioError(f"{origin}: cannot decode audio ({type(err).__name__}: {err})") from err
    if channel is not None:
        if not 0 <= channel < samples.shape[1]:
            raise AudioError(f"{origin}: no channel {channel} (the file has {samples.shape[1]})")
        samples = samples[:, channel : channel + 1]
    if samples.shape[0] == 0:
        raise AudioError(f"{origin}: audio has no samples")
    if samples.shape[1] > 1:
        notes.append(f"downmixed {samples.shape[1]} channels")
        samples = samples.mean(axis=1, dtype=np.float32, keepdims=True)
    wave = np.ascontiguousarray(samples[:, 0])
    if rate != SAMPLE_RATE:
        notes.append(f"resampled {rate} Hz -> {SAMPLE_RATE} Hz (soxr HQ)")
        wave = soxr.resample(wave, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    if not np.isfinite(wave).all():
        raise AudioError(f"{origin}: audio holds NaN or infinite samples")
    return wave, notes


def decode(utterance: Utterance, prepare: Callable[[np.ndarray], np.ndarray]) -> Decoded:
    """Read one utterance's audio and prepare the model input; faults become `error`, never raise."""
    if utterance.error:
        return Decoded(utterance, None, 0.0, utterance.notes, error=utterance.error)
    sha = None
    try:
        data = audio_bytes(utterance)
        sha = hashlib.sha256(data).hexdigest()
        wave, notes = load_audio(data, utterance.origin, utterance.offset, utterance.duration, utterance.channel)
        duration_s = len(wave) / SAMPLE_RATE
        try:
            prepared = prepare(wave)
        except AudioError as err:  # audio the model cannot take (shorter than its first frame)
            raise AudioError(f"{utterance.origin}: {err}") from None
        return Decoded(utterance, prepared, duration_s, utterance.notes + tuple(notes), audio_sha256=sha)
    except AudioError as err:
        return Decoded(utterance, None, 0.0, utterance.notes, error=str(err), audio_sha256=sha)
