import numpy as np
import pytest
import torch
from transformers import AutoModelForCTC, Wav2Vec2Processor

from tests.helpers import ARCHITECTURES, LIBRISPEECH
from w2v2bench.data.audio import load_audio
from w2v2bench.data.batching import plan_batches
from w2v2bench.data.local import local_utterances
from w2v2bench.model import ModelError, load_model, parse_device, resolve_checkpoint


def waves(split: str, n: int | None = None) -> list[np.ndarray]:
    return [load_audio(u.path, u.id)[0] for u in local_utterances(LIBRISPEECH, "test", split)[:n]]


def card_protocol(processor, model, wave: np.ndarray) -> tuple[torch.Tensor, str]:
    """The model card's evaluation, one utterance: processor, model, argmax, batch_decode."""
    inputs = processor(wave, sampling_rate=16000, return_tensors="pt", padding="longest").input_values
    with torch.no_grad():
        logits = model(inputs).logits
    return logits[0], processor.batch_decode(torch.argmax(logits, dim=-1))[0]


@pytest.mark.parametrize("architecture", ARCHITECTURES, ids="-".join)
def test_batch_size_one_equals_the_model_card_protocol(tiny_architectures, architecture):
    folder = tiny_architectures[architecture]
    transcriber = load_model(str(folder))
    processor = Wav2Vec2Processor.from_pretrained(folder)
    model = AutoModelForCTC.from_pretrained(folder).eval()
    assert transcriber.info.model_type == architecture[0] and transcriber.info.batching_fallback is None
    for wave in waves("clean"):
        logits, text = card_protocol(processor, model, wave)
        ours = transcriber.logits([transcriber.prepare(wave)])[0]
        assert torch.equal(ours, logits)
        assert transcriber.text(transcriber.forward([transcriber.prepare(wave)]).ids[0]) == text


def assert_batches_equal_batch_size_one(transcriber, n: int = 32, split: str = "other") -> None:
    inputs = [transcriber.prepare(w) for w in waves(split, n)]
    single = [transcriber.logits([x])[0] for x in inputs]
    single_text = [transcriber.text(transcriber.forward([x]).ids[0]) for x in inputs]
    for batch in plan_batches([len(x) for x in inputs], 32, 10**9):
        batched = transcriber.logits([inputs[i] for i in batch])
        texts = [transcriber.text(ids) for ids in transcriber.forward([inputs[i] for i in batch]).ids]
        for i, logits, text in zip(batch, batched, texts, strict=True):
            assert logits.shape == single[i].shape
            assert (logits - single[i]).abs().max() <= 1e-4 * max(1.0, single[i].abs().max().item())
            assert text == single_text[i]


@pytest.mark.parametrize("architecture", ARCHITECTURES, ids="-".join)
def test_exact_batches_equal_batch_size_one_on_real_audio(tiny_architectures, architecture):
    assert_batches_equal_batch_size_one(load_model(str(tiny_architectures[architecture])))


@pytest.mark.parametrize(
    "architecture,leak",
    [
        (("wav2vec2", "group"), "MaskedGroupNorm"),
        (("hubert", "group"), "MaskedGroupNorm"),
        (("data2vec-audio", "layer"), "_zero_padded_frames"),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else v,
)
def test_each_closed_leak_is_needed(tiny_architectures, architecture, leak, monkeypatch):
    # with the fix for that leak switched off, batch 32 no longer equals batch size 1: the test above can fail
    from torch.nn import functional

    from w2v2bench.model import Transcriber, exact

    if leak == "MaskedGroupNorm":
        monkeypatch.setattr(
            exact.MaskedGroupNorm,
            "forward",
            lambda self, x: functional.group_norm(x, self.num_groups, self.weight, self.bias, self.eps),
        )
    else:
        monkeypatch.setattr(Transcriber, "_zero_padded_frames", lambda self, module, args, out: out)
    with pytest.raises(AssertionError):
        assert_batches_equal_batch_size_one(load_model(str(tiny_architectures[architecture])), n=8)


def test_naive_padding_changes_group_norm_outputs(tiny_checkpoint):
    # the problem exact batching solves: processor padding without masks changes short utterances
    exact = load_model(str(tiny_checkpoint))
    naive = load_model(str(tiny_checkpoint), batching="naive")
    raw = waves("other", 8)
    single = [exact.logits([exact.prepare(w)])[0] for w in raw]
    padded = naive.logits([naive.prepare(w) for w in raw])
    shortest = min(range(len(raw)), key=lambda i: len(raw[i]))
    n = single[shortest].shape[0]
    assert (padded[shortest][:n] - single[shortest]).abs().max() > 1e-3


def test_masked_group_norm_is_only_installed_for_group_norm_checkpoints(tiny_checkpoints):
    group = load_model(str(tiny_checkpoints["group"]))
    layer = load_model(str(tiny_checkpoints["layer"]))
    assert group.info.feat_extract_norm == "group" and group._masked_norm is not None
    assert layer.info.feat_extract_norm == "layer" and layer._masked_norm is None


@pytest.mark.parametrize("device,message", [("gpu", r"'gpu'.*cpu.*cuda"), ("cuda:x", r"cuda:x")])
def test_bad_device_names_the_allowed_ones(device, message):
    with pytest.raises(ModelError, match=message):
        parse_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ModelError, match="CUDA is not available"):
        parse_device("cuda")


def test_missing_local_checkpoint_folder(tmp_path):
    with pytest.raises(ModelError, match="no such folder"):
        resolve_checkpoint(str(tmp_path / "missing"))
    assert resolve_checkpoint("facebook/wav2vec2-base-960h") == ("facebook/wav2vec2-base-960h", False)


def test_reduced_precision_counts_differences_from_fp32(tiny_checkpoint):
    transcriber = load_model(str(tiny_checkpoint), precision="bf16", check_precision=True)
    out = transcriber.forward([transcriber.prepare(w) for w in waves("clean", 4)])
    assert out.fp32_ids is not None and len(out.fp32_ids) == len(out.ids) == 4


@pytest.mark.cuda
@pytest.mark.parametrize(
    "architecture,precision", [(a, "fp32") for a in ARCHITECTURES] + [(("wav2vec2", "group"), "bf16")], ids=str
)
def test_exact_batches_equal_batch_size_one_on_cuda(tiny_architectures, architecture, precision):
    transcriber = load_model(str(tiny_architectures[architecture]), device="cuda", precision=precision)
    inputs = [transcriber.prepare(w) for w in waves("other", 32)]
    single = [transcriber.text(transcriber.forward([x]).ids[0]) for x in inputs]
    batched = [transcriber.text(ids) for ids in transcriber.forward(inputs).ids]
    assert batched == single


@pytest.mark.parametrize(("preset", "expected"), [(None, "8"), ("64", "64")])
def test_onednn_primitive_cache_is_kept_small_unless_the_user_chose(preset, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if preset is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = preset
    code = "import os, w2v2bench; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_at_batch_size_one_the_model_is_called_as_the_card_calls_it(tiny_checkpoint, monkeypatch):
    # issue #31: the batch-size-1 path adds nothing to the card's call: no mask, the masked GroupNorm idle (plain
    # F.group_norm), the same input tensor; the logits are bit-for-bit the card's (test above)
    transcriber = load_model(str(tiny_checkpoint))
    seen = []
    model_forward = transcriber.model.forward

    def spy(input_values, attention_mask=None, **kwargs):
        seen.append((input_values.shape, attention_mask, transcriber._masked_norm.valid_frames, kwargs))
        return model_forward(input_values, attention_mask=attention_mask, **kwargs)

    monkeypatch.setattr(transcriber.model, "forward", spy)
    wave = waves("clean", 1)[0]
    transcriber.forward([transcriber.prepare(wave)])
    ((shape, mask, valid, kwargs),) = seen
    assert shape == (1, len(wave)) and mask is None and valid is None and kwargs == {}
