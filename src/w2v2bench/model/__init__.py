"""Load a CTC checkpoint of the wav2vec2 family; batched forwards whose per-utterance output equals batch size 1.

Where zero padding leaks into an utterance's own frames, and how each leak is closed (`exact`), for the
classes whose leaks are all closed here (`PROVEN_EXACT`: Wav2Vec2ForCTC, HubertForCTC, Data2VecAudioForCTC):
1. Input normalisation (`do_normalize`): the feature extractor normalises the padded batch, so the
   zeros enter the mean and variance. Here each utterance is normalised alone, before padding.
2. The convolutional feature encoder: a valid output frame reads only valid samples (each layer's
   valid length is `floor((L - kernel) / stride) + 1`, the formula transformers uses), so the convs
   themselves do not leak. Except for
3. the first conv layer's GroupNorm in group-norm checkpoints (`feat_extract_norm: group`: wav2vec2-base,
   -large-960h, hubert-base): it normalises each channel over *time*, padded frames included.
   `MaskedGroupNorm` takes the statistics over each row's valid frames only. Per-frame norms (LayerNorm in
   every conv layer: `feat_extract_norm: layer`, the lv60 and HuBERT-large families, and data2vec-audio)
   need nothing here, nor do the feature projection's per-frame LayerNorms.
4. The convolutional positional embedding reads up to half its kernel past an utterance's end: transformers
   zeroes padded frames before it when it gets an attention mask, which is what batch size 1 sees (the
   conv's own zero padding). So an attention mask is always passed. HuBERT's optional BatchNorm there
   (`conv_pos_batch_norm`) uses running statistics in eval mode: per channel, no leak.
5. A positional embedding made of several convs (data2vec-audio: `num_conv_pos_embeddings` layers, each
   conv -> LayerNorm -> GELU): after the first, padded frames are no longer zero, so the next conv reads
   them where batch size 1 reads zeros. A hook zeroes the padded frames again after every layer but the last.
6. Self-attention: the same attention mask removes padded keys; padded queries only touch their own
   rows, which are cut off before decoding.
7. Decoding: only each row's valid frames are decoded (`ctc.collapse` with per-row lengths).
Which norm a checkpoint has is read from its modules, never from its name. A checkpoint of any other class
(or with adapter layers, whose strided convs read padded frames) runs at batch size 1, said in summary.json.
"""

from __future__ import annotations

import contextlib
import functools
import pickle
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..ctc import CTCTokens, collapse, doubtful_rows, within_bound
from ..errors import one_line
from ..hub import OFFLINE_HINT, HubUnavailable, _cached_commit, hub_unreachable_reason
from .exact import MaskedGroupNorm, batching_fallback, feature_encoder_norm, stacked_positional_convs
from .precision import PrecisionStats

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
BATCHING = ("exact", "naive")


class ModelError(ValueError):
    """A checkpoint that cannot be loaded or a setting it cannot run with."""


def resolve_checkpoint(checkpoint: str) -> tuple[str, bool]:
    """(where to load from, whether it is a local folder); a path-like name that does not exist fails."""
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return str(path), True
    if checkpoint.startswith(("/", "./", "../", "~")) or path.exists():
        raise ModelError(f"model.checkpoint={checkpoint!r}: no such folder (expected a Hugging Face model folder)")
    return checkpoint, False


@dataclass(frozen=True)
class ModelInfo:
    checkpoint: str
    revision: str | None
    local: bool
    feat_extract_norm: str
    do_stable_layer_norm: bool
    do_normalize: bool
    attn_implementation: str
    n_parameters: int
    vocab_size: int
    commit: str | None = None  # the Hub commit the files came from (None for a local folder)
    training_only_missing: tuple[str, ...] = ()  # weights absent from the checkpoint that inference never uses
    model_type: str = "wav2vec2"
    architecture: str = "Wav2Vec2ForCTC"
    batching_fallback: str | None = None  # why it ran at batch size 1 whatever batch_size said (None: batched)


@dataclass
class Output:
    """One batch's collapsed CTC ids per utterance (or, when `emit == "log_probs"`, each utterance's
    frames x vocabulary log-probs on the host), and (with check_precision) the fp32 ids too."""

    ids: list[list[int]] | list[np.ndarray]
    fp32_ids: list[list[int]] | None = None


class Transcriber:
    """A loaded checkpoint and how to batch it; `prepare` runs per utterance, `forward` per batch."""

    def __init__(
        self,
        model: nn.Module,
        feature_extractor,
        tokens: CTCTokens,
        info: ModelInfo,
        device: torch.device,
        batching: str = "exact",
        precision: str = "fp32",
        check_precision: bool = False,
    ):
        if batching not in BATCHING:
            raise ModelError(f"batching={batching!r}: expected one of {list(BATCHING)}")
        if precision not in PRECISIONS:
            raise ModelError(f"precision={precision!r}: expected one of {sorted(PRECISIONS)}")
        self.model, self.feature_extractor, self.tokens, self.info = model, feature_extractor, tokens, info
        self.device, self.batching, self.precision = device, batching, precision
        self._check_requested = check_precision
        # frames whose top-two logit margin is under this bound are re-run in fp32 (the whole utterance): exact by
        # construction wherever the fast precision's logit error stays under half the bound (check_precision
        # measures that error on the same run); None: off
        self.recheck_margin: float | None = None
        self.precision_stats = PrecisionStats()
        self.emit = "ids"  # what forward hands the decoder: "ids" (greedy, collapsed here) or "log_probs"
        self.backend = None  # another runtime's batch -> logits (backends/); None: the model's own forward
        self.sample_rate = feature_extractor.sampling_rate
        # at most this many utterances per batch: 1 for a model whose batches cannot be made exact
        self.max_batch_size = 1 if batching == "exact" and info.batching_fallback else None
        self._masked_norm: MaskedGroupNorm | None = None
        self._frame_mask: torch.Tensor | None = None
        self._stacked_pos_convs: list[nn.Module] = []
        if batching != "exact" or info.batching_fallback:
            return
        first_layer = model.base_model.feature_extractor.conv_layers[0]
        self._conv0 = first_layer.conv
        # the module itself says whether it normalises over time (GroupNorm) whatever the config calls it
        if isinstance(getattr(first_layer, "layer_norm", None), nn.GroupNorm):
            self._masked_norm = MaskedGroupNorm(first_layer.layer_norm)
            first_layer.layer_norm = self._masked_norm
        self._stacked_pos_convs = stacked_positional_convs(model)
        for layer in self._stacked_pos_convs[:-1]:
            layer.register_forward_hook(self._zero_padded_frames)

    @property
    def is_reference(self) -> bool:
        """The reference computation: PyTorch's own forward in fp32 (what check_precision compares against)."""
        return self.backend is None and self.precision == "fp32"

    @property
    def check_precision(self) -> bool:
        return self._check_requested and not self.is_reference

    def _zero_padded_frames(self, module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
        # between stacked positional convs: padded frames back to the zeros batch size 1 sees there
        mask = self._frame_mask
        if mask is None:
            return output
        if output.shape[0] != mask.shape[0] or output.shape[-1] != mask.shape[1]:
            raise RuntimeError(f"{type(module).__name__} output {tuple(output.shape)} is not (batch, channels, frames)")
        return output * mask[:, None, :].to(output.dtype)

    def _masks_off(self) -> None:
        self._frame_mask = None
        if self._masked_norm is not None:
            self._masked_norm.valid_frames = None

    @functools.cached_property
    def min_samples(self) -> int:
        """The shortest input that gives one output frame (400 samples, 25 ms, for the family's conv stack)."""
        config = self.model.config
        samples = 1
        for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride, strict=True))):
            samples = (samples - 1) * stride + kernel
        return samples

    def prepare(self, wave: np.ndarray) -> np.ndarray:
        """What the model sees for one utterance: exact mode normalises it alone, as batch size 1 does."""
        if len(wave) < self.min_samples:
            from ..data import AudioError

            raise AudioError(
                f"{len(wave)} samples, shorter than the model's first frame ({self.min_samples} samples): nothing to "
                "transcribe"
            )
        if self.batching == "naive":
            return wave
        return self.feature_extractor(wave, sampling_rate=self.sample_rate)["input_values"][0]

    def frames(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.model._get_feat_extract_output_lengths(lengths).to(torch.long)

    def _pad(self, inputs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(padded batch, sample mask or None when all lengths are equal, frames per row) on the device."""
        lengths = torch.tensor([len(x) for x in inputs])
        batch = torch.zeros(len(inputs), int(lengths.max()), dtype=torch.float32)
        for row, x in zip(batch, inputs, strict=True):
            row[: len(x)] = torch.from_numpy(x)
        ragged = bool((lengths != lengths.max()).any())
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True)
        lengths = lengths.to(self.device)
        # equal lengths need no mask: exactly the batch-size-1 call of the model card
        mask = (torch.arange(batch.shape[1], device=self.device)[None, :] < lengths[:, None]) if ragged else None
        frames = self.frames(lengths)
        if self._masked_norm is not None and ragged:
            conv = self._conv0
            self._masked_norm.valid_frames = (lengths - conv.kernel_size[0]) // conv.stride[0] + 1
        if self._stacked_pos_convs and ragged:
            n = int(frames.max())
            self._frame_mask = torch.arange(n, device=self.device)[None, :] < frames[:, None]
        return batch, mask, frames

    @torch.inference_mode()
    def forward(self, inputs: list[np.ndarray]) -> Output:
        """Collapsed CTC ids per utterance, only each row's own frames decoded."""
        if self.batching == "naive":
            return self._forward_naive(inputs)
        try:
            batch, mask, frames = self._pad(inputs)
            logits = self._logits(batch, mask, self.precision)
            if self.emit == "log_probs":
                log_probs = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
                return Output([row[:n] for row, n in zip(log_probs, frames.tolist(), strict=True)])
            ids = logits.argmax(dim=-1)
            out = Output(collapse(ids, frames, self.tokens.blank_id))
            if self.check_precision or self.recheck_margin is not None:
                out = self._against_reference(inputs, batch, mask, frames, logits, ids, out)
        finally:
            self._masks_off()
        return out

    @torch.inference_mode()
    def _against_reference(self, inputs, batch, mask, frames, logits, ids, out: Output) -> Output:
        """check_precision: the reference's ids beside the run's, and the largest logit difference; recheck_margin:
        each utterance with a frame whose top-two margin is under the bound takes the reference's ids. The counts
        reach `precision_stats` only once the batch is done (an out-of-memory split would count it twice)."""
        valid = torch.arange(ids.shape[1], device=ids.device)[None, :] < frames[:, None]
        fast = logits.float()
        found = PrecisionStats()
        low = None
        if self.recheck_margin is not None:
            low, close = doubtful_rows(fast, frames, self.tokens.blank_id, self.recheck_margin)
            found.close_frames = int(close.sum())
        reference_ids = None
        if self.check_precision:
            reference = self._reference(batch, mask).float()
            if reference.shape != fast.shape:
                raise RuntimeError(f"reference logits {tuple(reference.shape)} vs the run's {tuple(fast.shape)}")
            # per token: equal infinities (a token both rule out) differ by 0; NaN or unequal infinities do not count
            # as a difference but mark the frame
            token_diff = torch.where(fast == reference, torch.zeros_like(fast), (fast - reference).abs())
            finite = torch.isfinite(token_diff).all(dim=-1)
            found.non_finite_frames = int((~finite & valid).sum())
            diff = token_diff.nan_to_num(0.0, posinf=0.0).amax(dim=-1).masked_fill(~(valid & finite), 0)
            found.max_abs_logit_diff = float(diff.max()) if diff.numel() else 0.0
            found.compared_utterances = len(inputs)
            reference_ids = reference.argmax(dim=-1)
            out.fp32_ids = collapse(reference_ids, frames, self.tokens.blank_id)
            if low is not None:
                # the bound's premise: fp32's argmax is among the tokens within the bound of the fast top logit;
                # a frame where it is not breaks it (whether or not the frame was called close)
                near = within_bound(fast, self.recheck_margin)
                outside = ~near.gather(-1, reference_ids[..., None]).squeeze(-1)
                found.bound_violations = int((outside & valid & finite).sum())
        if low is not None and bool(low.any()):
            rows = low.nonzero().flatten().tolist()
            found.rechecked_utterances = len(rows)
            if reference_ids is not None:
                fixed = [out.fp32_ids[r] for r in rows]
            else:
                # exact batching makes each row independent of its batchmates: the low rows alone, in fp32
                self._masks_off()
                sub_batch, sub_mask, sub_frames = self._pad([inputs[r] for r in rows])
                fixed = collapse(self._reference(sub_batch, sub_mask).argmax(dim=-1), sub_frames, self.tokens.blank_id)
            ids_out = list(out.ids)
            for r, f in zip(rows, fixed, strict=True):
                ids_out[r] = f
            out.ids = ids_out
        self.precision_stats.add(found)
        return out

    def _reference(self, batch: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """PyTorch's own forward in fp32: the reference every other precision and runtime is checked against."""
        return self.model(batch, attention_mask=None if mask is None else mask.long()).logits

    @torch.inference_mode()
    def logits(self, inputs: list[np.ndarray]) -> list[torch.Tensor]:
        """Each utterance's logits over its own frames, on the host (for tests and benchmarks)."""
        if self.batching == "naive":
            features = self.feature_extractor(inputs, sampling_rate=self.sample_rate, padding=True, return_tensors="pt")
            with self._autocast(self.precision):
                out = self.model(features["input_values"].to(self.device)).logits
            return list(out.float().cpu())
        try:
            batch, mask, frames = self._pad(inputs)
            out = self._logits(batch, mask, self.precision).float().cpu()
        finally:
            self._masks_off()
        return [row[:n] for row, n in zip(out, frames.tolist(), strict=True)]

    def use_backend(self, backend, recheck_margin: float | None = None) -> None:
        """Run `backend`'s batch -> logits instead of the model's forward (None: the model's own); one that takes
        no masks runs at its own batch size (recorded as the batching fallback). With `recheck_margin`, an
        utterance with a frame whose top-two margin is under it is re-run in PyTorch fp32."""
        self.recheck_margin = recheck_margin
        self.backend = backend
        if backend is not None and backend.max_batch_size is not None:
            self.max_batch_size = min(self.max_batch_size or backend.max_batch_size, backend.max_batch_size)
            if self.info.batching_fallback is None:
                reason = f"backend={backend.name} takes no padding masks: ran at batch size {backend.max_batch_size}"
                self.info = replace(self.info, batching_fallback=reason)

    def _logits(self, batch: torch.Tensor, mask: torch.Tensor | None, precision: str) -> torch.Tensor:
        if self.backend is not None:
            return self.backend.logits(batch, mask)
        with self._autocast(precision):
            return self.model(batch, attention_mask=None if mask is None else mask.long()).logits

    def _forward_naive(self, inputs: list[np.ndarray]) -> Output:
        # what many evaluation scripts do: the processor pads and normalises the batch, no masks
        features = self.feature_extractor(inputs, sampling_rate=self.sample_rate, padding=True, return_tensors="pt")
        batch = features["input_values"].to(self.device)
        attention = features.get("attention_mask")
        with self._autocast(self.precision):
            logits = self.model(batch, attention_mask=None if attention is None else attention.to(self.device)).logits
        if self.emit == "log_probs":
            return Output(list(torch.log_softmax(logits.float(), dim=-1).cpu().numpy()))
        ids = logits.argmax(dim=-1)
        full = torch.full((len(inputs),), ids.shape[1], device=self.device)
        return Output(collapse(ids, full, self.tokens.blank_id))

    def _autocast(self, precision: str):
        if precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[precision])

    def text(self, ids: list[int]) -> str:
        return self.tokens.text(ids)


# Parameters a CTC checkpoint may lack because only training uses them (the mask embedding of SpecAugment):
# missing, they are harmless; any other missing weight would be random, so the load fails instead
TRAINING_ONLY = re.compile(r"\w+\.masked_spec_embed")


def load_model(
    checkpoint: str,
    revision: str | None = None,
    device: str = "cpu",
    batching: str = "exact",
    precision: str = "fp32",
    check_precision: bool = False,
    compile: bool = False,
    verbose: bool = False,
) -> Transcriber:
    """Load model, feature extractor and tokenizer from a local folder or the Hub (failing fast offline).

    transformers' load report is shown only when `verbose`; what it would say that matters is checked here."""
    from huggingface_hub import try_to_load_from_cache
    from safetensors import SafetensorError
    from transformers import AutoFeatureExtractor, AutoModelForCTC, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    torch_device = parse_device(device)
    source, local = resolve_checkpoint(checkpoint)
    kwargs: dict = {"revision": revision}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity(hf_logging.INFO if verbose else hf_logging.ERROR)
    if not local:
        reason = hub_unreachable_reason()
        if reason is not None:
            if not isinstance(try_to_load_from_cache(source, "config.json", revision=revision), str):
                raise HubUnavailable(
                    f"cannot load model.checkpoint={checkpoint!r}: the Hugging Face Hub is unreachable "
                    f"({reason}) and it is not cached; {OFFLINE_HINT}"
                )
            kwargs["local_files_only"] = True  # a cached copy still works offline
    try:
        try:
            model, loading = AutoModelForCTC.from_pretrained(
                source, attn_implementation="sdpa", output_loading_info=True, **kwargs
            )
        except ValueError as err:
            if "scaled_dot_product_attention" not in str(err):
                raise
            # no SDPA: its default attention
            model, loading = AutoModelForCTC.from_pretrained(source, output_loading_info=True, **kwargs)
        feature_extractor = AutoFeatureExtractor.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except OSError as err:
        if kwargs.get("local_files_only"):
            raise HubUnavailable(
                f"cannot load model.checkpoint={checkpoint!r}: the Hugging Face Hub is unreachable "
                f"({reason}) and it is not cached; {OFFLINE_HINT}"
            ) from None
        raise ModelError(f"model.checkpoint={checkpoint!r}: {one_line(err)}") from None
    except (
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RuntimeError,
        pickle.UnpicklingError,
        SafetensorError,
    ) as err:
        raise ModelError(
            f"model.checkpoint={checkpoint!r}: cannot be loaded as a CTC model ({type(err).__name__}: {one_line(err)})"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = sorted(loading.get("missing_keys") or ())
    random = [k for k in missing if not TRAINING_ONLY.fullmatch(k)]
    if random or loading.get("mismatched_keys"):
        shown = random or sorted(map(str, loading["mismatched_keys"]))
        raise ModelError(
            f"model.checkpoint={checkpoint!r}: {len(shown)} weight(s) missing or of another shape, which would be "
            f"left random: {shown[:5]}{' ...' if len(shown) > 5 else ''}"
        )
    model.eval().to(torch_device)
    config = model.config
    info = ModelInfo(
        checkpoint=checkpoint,
        revision=revision,
        local=local,
        feat_extract_norm=feature_encoder_norm(model),
        do_stable_layer_norm=bool(getattr(config, "do_stable_layer_norm", False)),
        do_normalize=bool(getattr(feature_extractor, "do_normalize", False)),
        attn_implementation=str(getattr(config, "_attn_implementation", "eager")),
        n_parameters=sum(p.numel() for p in model.parameters()),
        vocab_size=int(config.vocab_size),
        # the snapshot folder the cached files are in is named by the commit they came from
        commit=None if local else _cached_commit(try_to_load_from_cache(source, "config.json", revision=revision)),
        training_only_missing=tuple(missing),
        model_type=str(getattr(config, "model_type", "")),
        architecture=type(model).__name__,
        batching_fallback=batching_fallback(config) if batching == "exact" else None,
    )
    transcriber = Transcriber(
        model,
        feature_extractor,
        CTCTokens.from_tokenizer(tokenizer),
        info,
        torch_device,
        batching,
        precision,
        check_precision,
    )
    if compile:
        transcriber.model = torch.compile(model, dynamic=True)
    return transcriber


AUTO_CUDA_BATCH_SIZE = 256  # max_batch_s (400 padded audio seconds by default) is the bound that matters there


def resolve_defaults(device: str, batch_size: int | None) -> tuple[str, int]:
    """`device=auto` and `batch_size=null` made concrete: the GPU when one is visible, batched there (exact
    batching keeps transcripts equal to batch size 1), one utterance at a time on the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if batch_size is None:
        batch_size = AUTO_CUDA_BATCH_SIZE if device.startswith("cuda") else 1
    return device, batch_size


def parse_device(device: str) -> torch.device:
    """`cpu`, `cuda` or `cuda:N`, checked against what this machine has."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ModelError(f"device={device!r}: expected one of ['auto', 'cpu', 'cuda', 'cuda:N']")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelError(f"device={device!r}: CUDA is not available on this machine (torch {torch.__version__})")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ModelError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(device)
