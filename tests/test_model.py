import numpy as np
import pytest
import torch
from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

from w2v2bench.data import load_audio, local_utterances, plan_batches
from w2v2bench.model import ModelError, load_model, parse_device, resolve_checkpoint

from .conftest import LIBRISPEECH


def waves(split: str, n: int | None = None) -> list[np.ndarray]:
    return [load_audio(u.path, u.id)[0] for u in local_utterances(LIBRISPEECH, "test", split)[:n]]


def card_protocol(processor, model, wave: np.ndarray) -> tuple[torch.Tensor, str]:
    """The model card's evaluation, one utterance: processor, model, argmax, batch_decode."""
    inputs = processor(wave, sampling_rate=16000, return_tensors="pt", padding="longest").input_values
    with torch.no_grad():
        logits = model(inputs).logits
    return logits[0], processor.batch_decode(torch.argmax(logits, dim=-1))[0]


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_batch_size_one_equals_the_model_card_protocol(tiny_checkpoints, norm):
    transcriber = load_model(str(tiny_checkpoints[norm]))
    processor = Wav2Vec2Processor.from_pretrained(tiny_checkpoints[norm])
    model = Wav2Vec2ForCTC.from_pretrained(tiny_checkpoints[norm]).eval()
    for wave in waves("clean"):
        logits, text = card_protocol(processor, model, wave)
        ours = transcriber.logits([transcriber.prepare(wave)])[0]
        assert torch.equal(ours, logits)
        assert transcriber.text(transcriber.forward([transcriber.prepare(wave)]).ids[0]) == text


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_exact_batches_equal_batch_size_one_on_real_audio(tiny_checkpoints, norm):
    transcriber = load_model(str(tiny_checkpoints[norm]))
    inputs = [transcriber.prepare(w) for w in waves("other", 32)]
    single = [transcriber.logits([x])[0] for x in inputs]
    single_text = [transcriber.text(transcriber.forward([x]).ids[0]) for x in inputs]
    for batch in plan_batches([len(x) for x in inputs], 32, 10**9):
        batched = transcriber.logits([inputs[i] for i in batch])
        texts = [transcriber.text(ids) for ids in transcriber.forward([inputs[i] for i in batch]).ids]
        for i, logits, text in zip(batch, batched, texts, strict=True):
            assert logits.shape == single[i].shape
            assert (logits - single[i]).abs().max() <= 1e-4 * max(1.0, single[i].abs().max().item())
            assert text == single_text[i]


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
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_exact_batches_equal_batch_size_one_on_cuda(tiny_checkpoints, precision):
    transcriber = load_model(str(tiny_checkpoints["group"]), device="cuda", precision=precision)
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


@pytest.fixture(scope="module")
def data2vec_checkpoint(tmp_path_factory):
    """A tiny random Data2VecAudioForCTC: a LayerNorm in every conv layer, no feat_extract_norm in its config."""
    from transformers import Data2VecAudioConfig, Data2VecAudioForCTC

    from w2v2bench import random_model

    folder = tmp_path_factory.mktemp("d2v")
    config = Data2VecAudioConfig(vocab_size=len(random_model.VOCAB), pad_token_id=0, **random_model.SIZES["tiny"])
    torch.manual_seed(0)
    Data2VecAudioForCTC(config).eval().save_pretrained(folder)
    random_model.processor().save_pretrained(folder)
    return folder


def test_an_encoder_without_a_group_norm_runs_as_the_card_protocol(data2vec_checkpoint):
    # the masked GroupNorm is chosen by the first conv layer's module, not by the config (this used to crash)
    from transformers import Data2VecAudioForCTC

    transcriber = load_model(str(data2vec_checkpoint))
    processor = Wav2Vec2Processor.from_pretrained(data2vec_checkpoint)
    model = Data2VecAudioForCTC.from_pretrained(data2vec_checkpoint).eval()
    for wave in waves("clean", 3):
        logits, _ = card_protocol(processor, model, wave)
        assert torch.allclose(transcriber.logits([transcriber.prepare(wave)])[0], logits, atol=1e-5)


@pytest.mark.xfail(
    reason="Data2VecAudio's positional embedding is a stack of convolutions (num_conv_pos_embeddings of them): "
    "after the first, padded frames are no longer zero and leak into an utterance's last frames; exact batching "
    "for that family is still to build",
    strict=True,
)
def test_data2vec_batches_equal_batch_size_one(data2vec_checkpoint):
    transcriber = load_model(str(data2vec_checkpoint))
    audio = [transcriber.prepare(w) for w in waves("clean", 4)]
    alone = [transcriber.logits([x])[0] for x in audio]
    for a, b in zip(alone, transcriber.logits(audio), strict=True):
        assert torch.allclose(a, b, atol=1e-4)
