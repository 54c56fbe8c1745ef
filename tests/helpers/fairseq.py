"""A fake fairseq: wav2vec 2.0 CTC checkpoints as fairseq writes them, built from a tiny transformers model."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import re
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

from w2v2bench.testing.random_model import VOCAB

CONV_SPEC = "[(16, 10, 5)] + [(16, 3, 2)] * 2"


EXTRACTOR_MODE = {"group": "default", "layer": "layer_norm"}


class AverageMeter:
    def __init__(self, val: float) -> None:
        self.val = val


class DdpBackend(enum.Enum):
    c10d = "c10d"


@dataclasses.dataclass
class CommonConfig:
    fp16: bool = True
    seed: int = 1


FAKE_FAIRSEQ = {
    "fairseq.logging.meters": [AverageMeter],
    "fairseq.dataclass.constants": [DdpBackend],
    "fairseq.dataclass.configs": [CommonConfig],
}


@contextmanager
def fake_fairseq() -> Iterator[None]:
    """Make the stand-ins picklable under fairseq.* names; afterwards nothing called fairseq is importable."""
    names = {"fairseq", "fairseq.logging", "fairseq.dataclass", *FAKE_FAIRSEQ}
    saved = {name: sys.modules.get(name) for name in names}
    saved_modules = {cls: cls.__module__ for classes in FAKE_FAIRSEQ.values() for cls in classes}
    try:
        for name in sorted(names):
            sys.modules[name] = types.ModuleType(name)
        for module, classes in FAKE_FAIRSEQ.items():
            for cls in classes:
                cls.__module__ = module
                setattr(sys.modules[module], cls.__name__, cls)
        yield
    finally:
        for cls, module in saved_modules.items():
            cls.__module__ = module
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def tiny_model(norm: str, seed: int = 0) -> Wav2Vec2ForCTC:
    config = Wav2Vec2Config(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16, 16),
        conv_kernel=(10, 3, 3),
        conv_stride=(5, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm=norm,
        do_stable_layer_norm=norm == "layer",
        conv_bias=norm == "layer",
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    return Wav2Vec2ForCTC(config).eval()


def fairseq_state(model: Wav2Vec2ForCTC, legacy_weight_norm: bool) -> OrderedDict[str, torch.Tensor]:
    """The model's tensors under fairseq names: `.2.` (group norm) or `.2.1.` (layer norm) conv norms."""
    layer_norm_slot = ".2." if model.config.feat_extract_norm == "group" else ".2.1."
    state = OrderedDict()
    for key, value in model.state_dict().items():
        for pattern, replacement in HF_TO_FAIRSEQ:
            key = re.sub(pattern, replacement, key)
        key = re.sub(r"\.conv_layers\.(\d+)\.layer_norm\.", rf".conv_layers.\1{layer_norm_slot}", key)
        if legacy_weight_norm:  # torch.nn.utils.weight_norm, as fairseq uses it
            key = key.replace("parametrizations.weight.original0", "weight_g")
            key = key.replace("parametrizations.weight.original1", "weight_v")
        state[key] = value.clone()
    return state


def fairseq_checkpoint(model: Wav2Vec2ForCTC, form: str, normalize: bool, legacy_weight_norm: bool = True) -> dict:
    """A checkpoint shaped like fairseq's: 2020 `args` (argparse) or later `cfg` (omegaconf) form."""
    state = fairseq_state(model, legacy_weight_norm)
    extra_state = {"metrics": {"train_loss": AverageMeter(3.5)}, "train_iterator": {"epoch": 2}}
    if form == "args":
        w2v_args = argparse.Namespace(
            arch="wav2vec2",
            task="audio_pretraining",
            normalize=normalize,
            sample_rate=16000,
            **w2v_fields(model),
        )
        args = argparse.Namespace(
            arch="wav2vec_ctc",
            task="audio_pretraining",
            normalize=normalize,
            sample_rate=16000,
            labels="ltr",
            w2v_path="/checkpoints/wav2vec_small.pt",
            w2v_args=w2v_args,
            ddp_backend=DdpBackend.c10d,
        )
        return {"args": args, "model": state, "extra_state": extra_state, "last_optimizer_state": None}
    state["w2v_encoder.w2v_model.quantizer.vars"] = torch.zeros(1, 4, 8)  # pre-training only: dropped
    cfg = OmegaConf.create(
        {
            "common": OmegaConf.structured(CommonConfig),
            "task": {
                "_name": "audio_finetuning",
                "normalize": normalize,
                "sample_rate": 16000,
                "labels": "ltr",
            },
            "model": {
                "_name": "wav2vec_ctc",
                "w2v_path": "/checkpoints/wav2vec_small.pt",
                "normalize": "${task.normalize}",
                "w2v_args": {
                    "model": {"_name": "wav2vec2", **w2v_fields(model)},
                    "task": {"_name": "audio_pretraining", "normalize": normalize, "sample_rate": 16000},
                },
            },
            "distributed_training": {"ddp_backend": DdpBackend.c10d},
        }
    )
    if form == "cfg-dict":
        cfg = OmegaConf.to_container(cfg)
    return {"args": None, "cfg": cfg, "model": state, "extra_state": extra_state}


def save(checkpoint: dict, path: Path, zip_format: bool = True) -> Path:
    with fake_fairseq():
        torch.save(checkpoint, path, _use_new_zipfile_serialization=zip_format)
    return path


def write_dict(path: Path, symbols: list[str] = VOCAB[4:]) -> Path:
    path.write_text("".join(f"{s} {1000 - i}\n" for i, s in enumerate(symbols)), encoding="utf-8")
    return path


HF_TO_FAIRSEQ = [  # written independently of convert.KEY_RULES, in the opposite direction
    (r"^lm_head\.", "w2v_encoder.proj."),
    (r"^wav2vec2\.", "w2v_encoder.w2v_model."),
    (r"\.masked_spec_embed$", ".mask_emb"),
    (r"\.conv_layers\.(\d+)\.conv\.", r".conv_layers.\1.0."),
    (r"\.feature_projection\.projection\.", ".post_extract_proj."),
    (r"\.feature_projection\.layer_norm\.", ".layer_norm."),
    (r"\.pos_conv_embed\.conv\.", ".pos_conv.0."),
    (r"\.attention\.", ".self_attn."),
    (r"\.layers\.(\d+)\.layer_norm\.", r".layers.\1.self_attn_layer_norm."),
    (r"\.feed_forward\.intermediate_dense\.", ".fc1."),
    (r"\.feed_forward\.output_dense\.", ".fc2."),
]


def w2v_fields(model: Wav2Vec2ForCTC) -> dict[str, Any]:
    config = model.config
    return dict(
        conv_feature_layers=CONV_SPEC,
        extractor_mode=EXTRACTOR_MODE[config.feat_extract_norm],
        conv_bias=config.conv_bias,
        encoder_layers=config.num_hidden_layers,
        encoder_embed_dim=config.hidden_size,
        encoder_ffn_embed_dim=config.intermediate_size,
        encoder_attention_heads=config.num_attention_heads,
        conv_pos=config.num_conv_pos_embeddings,
        conv_pos_groups=config.num_conv_pos_embedding_groups,
        layer_norm_first=config.do_stable_layer_norm,
        activation_fn="gelu",
    )
