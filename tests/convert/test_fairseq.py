"""Tests for convert and safe_pickle: fairseq-style checkpoints built from tiny HF models, converted back."""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

from tests.helpers.fairseq import fairseq_checkpoint, save, tiny_model, write_dict
from w2v2bench.cli import convert as convert_cli
from w2v2bench.convert.fairseq import ConversionError, convert, fairseq_symbols, hf_vocab, parse_conv_layers
from w2v2bench.convert.safe_pickle import RefusedGlobal, UnreadableCheckpoint, global_kind, load_checkpoint
from w2v2bench.testing import random_model
from w2v2bench.testing.random_model import VOCAB

# ---- stand-ins for fairseq objects: importable only while fake_fairseq() is active -----------------------


# ---- building fairseq-style checkpoints by the inverse mapping -------------------------------------------


# ---- round trips -----------------------------------------------------------------------------------------

ROUND_TRIPS = [
    # form, norm, normalize, zip_format, legacy_weight_norm
    ("args", "group", False, False, True),  # wav2vec_small_960h.pt: 2020, torch<1.6 legacy file
    ("args", "layer", True, True, True),
    ("cfg", "group", False, True, True),
    ("cfg", "layer", True, True, False),  # torch parametrizations names on the fairseq side too
    ("cfg-dict", "group", True, True, True),  # later fairseq: cfg saved as a plain dict (to_container)
]


ARCHITECTURE = (
    "feat_extract_norm", "do_stable_layer_norm", "conv_bias", "conv_dim", "conv_kernel", "conv_stride",
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups", "hidden_act", "vocab_size", "pad_token_id",
)  # fmt: skip


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("form,norm,normalize,zip_format,legacy_weight_norm", ROUND_TRIPS)
def test_round_trip_gives_identical_logits_and_transcripts(
    tmp_path, form, norm, normalize, zip_format, legacy_weight_norm
):
    model = tiny_model(norm)
    path = save(fairseq_checkpoint(model, form, normalize, legacy_weight_norm), tmp_path / "ft.pt", zip_format)
    if importlib.util.find_spec("fairseq") is None:  # plain unpickling would need fairseq
        with pytest.raises(ModuleNotFoundError, match="fairseq"):
            torch.load(path, weights_only=False)

    report = convert(path, write_dict(tmp_path / "dict.ltr.txt"), tmp_path / "hf")

    required = {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "vocab.json",
        "tokenizer_config.json",
    }
    assert required <= set(report.files)
    converted = Wav2Vec2ForCTC.from_pretrained(tmp_path / "hf").eval()
    processor = Wav2Vec2Processor.from_pretrained(tmp_path / "hf")
    audio = torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = model(audio).logits, converted(audio).logits
    assert torch.equal(got, expected)
    assert processor.batch_decode(got.argmax(-1)) == random_model.processor().batch_decode(expected.argmax(-1))
    assert processor.tokenizer.get_vocab() == {token: i for i, token in enumerate(VOCAB)}
    assert (processor.tokenizer.pad_token_id, processor.tokenizer.word_delimiter_token) == (0, "|")
    assert processor.feature_extractor.do_normalize is normalize
    assert processor.feature_extractor.return_attention_mask is (norm == "layer")
    for name in ARCHITECTURE:
        assert _plain(getattr(converted.config, name)) == _plain(getattr(model.config, name)), name
    assert report.form == form.removesuffix("-dict") and report.do_normalize is normalize
    assert "fairseq.logging.meters.AverageMeter" in report.placeholders
    assert report.dropped == (() if form == "args" else ("w2v_encoder.w2v_model.quantizer.vars",))
    assert f"do_normalize={normalize}" in report.summary()


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Wav2Vec2ForCTC, Path]:
    root = tmp_path_factory.mktemp("good")
    return tiny_model("group"), write_dict(root / "dict.ltr.txt")


def _add(key: str) -> Callable[[dict], None]:
    return lambda ckpt: ckpt["model"].update({key: torch.ones(2)})


def _drop(key: str) -> Callable[[dict], None]:
    return lambda ckpt: ckpt["model"].pop(key)


def _set_w2v(field: str, value: Any) -> Callable[[dict], None]:
    return lambda ckpt: setattr(ckpt["args"].w2v_args, field, value)


def _del_w2v(field: str) -> Callable[[dict], None]:
    return lambda ckpt: delattr(ckpt["args"].w2v_args, field)


FAILURES = [
    # what is wrong, mutation of a good 2020-form checkpoint, message fragment
    ("tensor with no counterpart", _add("w2v_encoder.w2v_model.encoder.adapter.weight"),
     "w2v_encoder.w2v_model.encoder.adapter.weight"),
    ("parameter left unset", _drop("w2v_encoder.w2v_model.encoder.layers.1.fc2.bias"),
     "wav2vec2.encoder.layers.1.feed_forward.output_dense.bias"),
    ("positional conv size differs", _set_w2v("conv_pos", 8), "pos_conv.0.weight_v has shape"),
    ("architecture field missing", _del_w2v("layer_norm_first"),
     "lacks architecture field(s) ['layer_norm_first']"),
    ("not wav2vec2", _set_w2v("arch", "hubert"), "'hubert': expected 'wav2vec2'"),
    ("unknown extractor mode", _set_w2v("extractor_mode", "batch_norm"),
     "expected one of ['default', 'layer_norm']"),
    ("conformer", _set_w2v("layer_type", "conformer"), "layer_type='conformer'"),
    ("no architecture at all", lambda c: setattr(c["args"], "w2v_args", None), "args.w2v_args is missing"),
    ("no args, no cfg", lambda c: c.pop("args"), "neither 'cfg' nor 'args'"),
    ("not a CTC checkpoint", _drop("w2v_encoder.proj.weight"), "not a wav2vec 2.0 CTC fine-tuned checkpoint"),
]  # fmt: skip


@pytest.mark.parametrize("what,mutate,message", FAILURES, ids=[f[0] for f in FAILURES])
def test_conversion_fails_loudly(tmp_path, good, what, mutate, message):
    model, dict_path = good
    checkpoint = fairseq_checkpoint(model, "args", normalize=False)
    mutate(checkpoint)
    with pytest.raises(ConversionError) as err:
        convert(save(checkpoint, tmp_path / "ft.pt"), dict_path, tmp_path / "hf")
    assert message in str(err.value)
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize(
    "symbols,out_has_file,message",
    [
        (
            VOCAB[4:-1],
            False,
            "gives 31 symbols (with fairseq's 4 specials), but the checkpoint's output layer has 32",
        ),
        ([*VOCAB[4:-1], "<unk>"], False, "symbol '<unk>' appears twice"),
        ([s for s in VOCAB[4:] if s != "|"] + ["#"], False, "no '|' symbol"),
        (VOCAB[4:], True, "exists and is not an empty folder"),
    ],
)
def test_dictionary_and_output_checks(tmp_path, good, symbols, out_has_file, message):
    model, _ = good
    path = save(fairseq_checkpoint(model, "args", normalize=False), tmp_path / "ft.pt")
    if out_has_file:
        (tmp_path / "hf").mkdir()
        (tmp_path / "hf" / "config.json").write_text("{}")
    with pytest.raises(ConversionError, match=re.escape(message)):
        convert(path, write_dict(tmp_path / "dict.ltr.txt", symbols), tmp_path / "hf")


def test_vocabulary_swaps_names_of_blank_and_bos_only(tmp_path):
    symbols = fairseq_symbols(write_dict(tmp_path / "dict.ltr.txt"))
    assert symbols[:5] == ["<s>", "<pad>", "</s>", "<unk>", "|"]
    assert hf_vocab(symbols) == {token: i for i, token in enumerate(VOCAB)}


BASE_CONV = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2  # wav2vec2-base's feature encoder


@pytest.mark.parametrize(
    "spec,layers",
    [
        ("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2", BASE_CONV),
        ("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]", BASE_CONV),
        ("2 * [(16, 3, 2)]", ((16, 3, 2),) * 2),
        ([[16, 10, 5], [16, 3, 2]], ((16, 10, 5), (16, 3, 2))),
    ],
)  # fmt: skip
def test_parse_conv_layers(spec, layers):
    assert parse_conv_layers(spec) == layers


@pytest.mark.parametrize(
    "spec,message",
    [
        ("__import__('os').system('true')", "cannot read"),
        ("[(512, 3, 2)] * 10**9", "cannot read"),
        ("[(512, 3, 2)] * 1000000", "at most 64 layers"),
        ("[(512, 10)]", "is not (dim, kernel, stride)"),
        ("[(512, 10, 5)", "not a list expression"),
        ("[]", "expected a non-empty list"),
    ],
)
def test_parse_conv_layers_refuses(spec, message):
    with pytest.raises(ConversionError, match=re.escape(message)):
        parse_conv_layers(spec)


# ---- safe loading ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module,name,outcome",
    [
        ("collections", "OrderedDict", "allowed"),
        ("argparse", "Namespace", "allowed"),
        ("omegaconf.dictconfig", "DictConfig", "allowed"),
        ("torch._utils", "_rebuild_tensor_v2", "allowed"),
        ("torch", "float16", "allowed"),
        ("__builtin__", "long", "allowed"),  # pickle protocol 2 spelling of int
        ("fairseq.logging.meters", "AverageMeter", "placeholder"),
        ("fairseq", "utils", "placeholder"),
        ("fairseqx.evil", "run", "refused"),
        ("os", "system", "refused"),
        ("posix", "system", "refused"),
        ("builtins", "eval", "refused"),
        ("builtins", "getattr", "refused"),
        ("subprocess", "Popen", "refused"),
        ("torch", "load", "refused"),
        ("omegaconf.omegaconf", "OmegaConf.save", "refused"),
        ("builtins", "bytearray", "refused"),  # torch allows it; bytearray(10**13) from a few bytes
        ("builtins", "bytes", "refused"),
        ("builtins", "range", "refused"),  # list(range(10**10))
        ("torch._utils", "_rebuild_qtensor", "refused"),
        ("_operator", "getitem", "refused"),
        ("numpy.core.multiarray", "_reconstruct", "allowed"),  # wrapped: empty arrays only
    ],
)
def test_allow_list(module, name, outcome):
    if outcome == "refused":
        with pytest.raises(RefusedGlobal, match=re.escape(f"{module}.{name}")):
            global_kind(module, name)
        return
    kind = global_kind(module, name)
    assert (kind == "placeholder") is (outcome == "placeholder") and kind in ("torch", "ours", "placeholder")


class Payload:
    """Unpickles as call(*args): what a hostile checkpoint would contain."""

    def __init__(self, call: Callable, *args: Any) -> None:
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def _torch_file(payload: Payload, zip_format: bool, protocol: int = 2) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        checkpoint = {"model": {"w": torch.ones(2)}, "extra_state": payload}
        torch.save(checkpoint, path, _use_new_zipfile_serialization=zip_format, pickle_protocol=protocol)

    return write


def _raw_pickle(marker: Path) -> Callable[[Path], None]:
    # not a torch file at all: the payload sits where torch.load reads the legacy magic number
    return lambda path: path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")


def _torchscript_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/constants.pkl", pickle.dumps(()))
        archive.writestr("archive/data.pkl", pickle.dumps({}))


HOSTILE = [
    # name, writer(marker) -> writer(path), exception, refused global named in the message
    ("os.system in a zip checkpoint", lambda m: _torch_file(Payload(os.system, f"touch {m}"), True),
     RefusedGlobal, f"{os.system.__module__}.system"),
    ("os.system in a legacy checkpoint", lambda m: _torch_file(Payload(os.system, f"touch {m}"), False),
     RefusedGlobal, f"{os.system.__module__}.system"),
    ("raw GLOBAL os.system pickle", _raw_pickle, UnreadableCheckpoint, "not a torch.save file"),
    ("builtins.eval", lambda m: _torch_file(Payload(eval, f"__import__('os').system('touch {m}')"), True),
     RefusedGlobal, "builtins.eval"),
    ("subprocess.call", lambda m: _torch_file(Payload(subprocess.call, ["touch", str(m)]), True),
     RefusedGlobal, "subprocess.call"),
    ("dotted name, protocol 4", lambda m: _torch_file(Payload(OmegaConf.save, {}, str(m)), True, protocol=4),
     UnreadableCheckpoint, "pickle opcode STACK_GLOBAL"),  # torch.save writes protocol 2
    ("TorchScript archive", lambda m: _torchscript_zip, UnreadableCheckpoint, "TorchScript archive"),
]  # fmt: skip


@pytest.mark.parametrize("what,writer,error,named", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_checkpoint_is_refused_without_running(tmp_path, what, writer, error, named):
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.pt"
    writer(marker)(path)
    with pytest.raises(error, match=re.escape(named)):
        load_checkpoint(path)
    with pytest.raises(error, match=re.escape(named)):
        convert(path, write_dict(tmp_path / "dict.ltr.txt"), tmp_path / "hf")
    assert not marker.exists()
    assert not (tmp_path / "hf").exists()


@pytest.mark.parametrize(
    "content,message",
    [
        (pickle.dumps({"model": {}}, protocol=2), "not a torch.save file"),  # a pickle, not torch.save
        (b"", "cannot be read as a torch checkpoint"),
        (b"PK\x03\x04 truncated zip", "cannot be read as a torch checkpoint"),
    ],
)
def test_unreadable_checkpoint(tmp_path, content, message):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(UnreadableCheckpoint, match=re.escape(message)):
        load_checkpoint(tmp_path / "bad.pt")


# ---- command line ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv,status,output",
    [
        (["--help"], 0, "checkpoint=<file.pt> dict=<dict.ltr.txt> out=<folder>"),
        (["out=hf"], 2, "missing checkpoint=, dict="),
        (
            ["checkpoint=ft.pt", "dict=dict.ltr.txt", "out=hf"],
            None,
            "do_normalize=False (from args.normalize)",
        ),
        (["checkpoint=missing.pt", "dict=dict.ltr.txt", "out=hf"], 1, "missing.pt"),
    ],
)
def test_command_line_writes_only_out(tmp_path, monkeypatch, capsys, good, argv, status, output):
    model, _ = good
    save(fairseq_checkpoint(model, "args", normalize=False), tmp_path / "ft.pt")
    write_dict(tmp_path / "dict.ltr.txt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["w2v2bench.convert", *argv])
    if status is None:
        convert_cli.main()
    else:
        with pytest.raises(SystemExit) as exit_:
            convert_cli.main()
        assert exit_.value.code == status
    captured = capsys.readouterr()
    assert output in captured.out + captured.err
    written = {p.name for p in tmp_path.iterdir()} - {"ft.pt", "dict.ltr.txt"}
    assert written == ({"hf"} if status is None else set())
