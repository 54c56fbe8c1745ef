"""Convert a fairseq wav2vec 2.0 CTC checkpoint into a Hugging Face folder, without fairseq.

Usage: python -m w2v2bench.convert checkpoint=<file.pt> dict=<dict.ltr.txt> out=<folder>

The architecture comes from the checkpoint's own `args` (2020, argparse) or `cfg` (later, omegaconf); every
tensor is mapped by name and shape, and a tensor left over or a model parameter left unset is an error.
The checkpoint is unpickled through `safe_pickle`'s allow-list, so fairseq is never imported.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ..files import read_text
from .safe_pickle import load_checkpoint

__all__ = [
    "ConversionError",
    "ConversionReport",
    "FairseqArchitecture",
    "FrontEnd",
    "convert",
    "fairseq_symbols",
    "hf_vocab",
    "map_state_dict",
    "parse_conv_layers",
    "read_architecture",
    "read_front_end",
]

FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # fairseq.data.Dictionary's first four symbols
WORD_DELIMITER = "|"
EXTRACTOR_MODES = {"default": "group", "layer_norm": "layer"}  # fairseq extractor_mode -> feat_extract_norm
ACTIVATIONS = {  # fairseq activation_fn -> transformers hidden_act (same function, fairseq.utils names)
    "gelu": "gelu",
    "gelu_accurate": "gelu_new",
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
    "swish": "swish",
}
MAX_CONV_LAYERS = 64  # guards conv_feature_layers such as "[(512, 3, 2)] * 10**9"
MAX_ENCODER_LAYERS = 1024  # the largest wav2vec 2.0 has 48; more modules than this are refused unbuilt
MAX_DICT_BYTES = 16 * 2**20  # a letter dictionary is ~200 bytes, a large sub-word one ~1 MB
DEFAULT_SAMPLE_RATE = 16000  # fairseq AudioPretrainingConfig.sample_rate
PRETRAINING_ONLY = ("quantizer.", "project_q.", "final_proj.", "target_glu.", "project_inp.")  # unused by CTC

W2V = "w2v_encoder.w2v_model."
POS_CONV = "wav2vec2.encoder.pos_conv_embed.conv"
POS_CONV_NAMES = {  # weight-norm halves; transformers uses one naming or the other, depending on torch
    "g": (f"{POS_CONV}.parametrizations.weight.original0", f"{POS_CONV}.weight_g"),
    "v": (f"{POS_CONV}.parametrizations.weight.original1", f"{POS_CONV}.weight_v"),
}
_WB = r"(weight|bias)"
_M = r"w2v_encoder\.w2v_model\."
_LAYER = _M + r"encoder\.layers\.(\d+)\."
# fairseq state-dict key -> transformers Wav2Vec2ForCTC key (a template for re.Match.expand)
KEY_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), target)
    for pattern, target in [
        (rf"w2v_encoder\.proj\.{_WB}", r"lm_head.\1"),
        (rf"{_M}mask_emb", "wav2vec2.masked_spec_embed"),
        (rf"{_M}feature_extractor\.conv_layers\.(\d+)\.0\.{_WB}",
         r"wav2vec2.feature_extractor.conv_layers.\1.conv.\2"),
        # extractor_mode "default": GroupNorm at .2 of layer 0; "layer_norm": LayerNorm at .2.1 of every layer
        (rf"{_M}feature_extractor\.conv_layers\.(\d+)\.2\.(?:1\.)?{_WB}",
         r"wav2vec2.feature_extractor.conv_layers.\1.layer_norm.\2"),
        (rf"{_M}layer_norm\.{_WB}", r"wav2vec2.feature_projection.layer_norm.\1"),
        (rf"{_M}post_extract_proj\.{_WB}", r"wav2vec2.feature_projection.projection.\1"),
        (rf"{_M}encoder\.pos_conv\.0\.bias", f"{POS_CONV}.bias"),
        (rf"{_M}encoder\.pos_conv\.0\.(?:weight_g|parametrizations\.weight\.original0)", "g"),
        (rf"{_M}encoder\.pos_conv\.0\.(?:weight_v|parametrizations\.weight\.original1)", "v"),
        (rf"{_M}encoder\.layer_norm\.{_WB}", r"wav2vec2.encoder.layer_norm.\1"),
        (rf"{_LAYER}self_attn\.(k|q|v|out)_proj\.{_WB}", r"wav2vec2.encoder.layers.\1.attention.\2_proj.\3"),
        (rf"{_LAYER}self_attn_layer_norm\.{_WB}", r"wav2vec2.encoder.layers.\1.layer_norm.\2"),
        (rf"{_LAYER}fc1\.{_WB}", r"wav2vec2.encoder.layers.\1.feed_forward.intermediate_dense.\2"),
        (rf"{_LAYER}fc2\.{_WB}", r"wav2vec2.encoder.layers.\1.feed_forward.output_dense.\2"),
        (rf"{_LAYER}final_layer_norm\.{_WB}", r"wav2vec2.encoder.layers.\1.final_layer_norm.\2"),
    ]
)  # fmt: skip


class ConversionError(ValueError):
    """The checkpoint or dictionary cannot be converted faithfully; the message says what and why."""


# ----------------------------------------------------------------------------------------------------------
# Reading the checkpoint's settings


def parse_conv_layers(spec: Any) -> tuple[tuple[int, int, int], ...]:
    """fairseq's conv_feature_layers, e.g. "[(512, 10, 5)] + [(512, 3, 2)] * 4", as (dim, kernel, stride)s.

    Only list/tuple literals of integers, `+` and `* <int>` are understood; the string is never evaluated.
    """
    if isinstance(spec, str):
        try:
            tree = ast.parse(spec, mode="eval").body
        except SyntaxError as err:
            raise ConversionError(f"conv_feature_layers={spec!r}: not a list expression ({err.msg})") from None
        layers = _conv_spec_value(tree, spec)
    else:
        layers = spec
    if not isinstance(layers, list | tuple) or not layers:
        raise ConversionError(f"conv_feature_layers={spec!r}: expected a non-empty list of (dim, kernel, stride)")
    out = []
    for layer in layers:
        if (
            not isinstance(layer, list | tuple)
            or len(layer) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in layer)
        ):
            raise ConversionError(
                f"conv_feature_layers={spec!r}: entry {layer!r} is not (dim, kernel, stride) of positive ints"
            )
        out.append((layer[0], layer[1], layer[2]))
    return tuple(out)


def _conv_spec_value(node: ast.AST, spec: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_conv_spec_value(e, spec) for e in node.elts]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _conv_spec_value(node.left, spec), _conv_spec_value(node.right, spec)
        if isinstance(left, list) and isinstance(right, list) and len(left) + len(right) <= MAX_CONV_LAYERS:
            return left + right
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        left, right = _conv_spec_value(node.left, spec), _conv_spec_value(node.right, spec)
        if isinstance(right, list):
            left, right = right, left
        if isinstance(left, list) and isinstance(right, int) and 0 <= len(left) * right <= MAX_CONV_LAYERS:
            return left * right
    raise ConversionError(
        f"conv_feature_layers={spec!r}: cannot read {ast.unparse(node)!r}; expected list literals of "
        f"(dim, kernel, stride) ints joined by + and * <int>, at most {MAX_CONV_LAYERS} layers"
    )


@dataclass(frozen=True)
class FairseqArchitecture:
    """The wav2vec 2.0 architecture fields of a fairseq checkpoint, as the checkpoint states them."""

    conv_layers: tuple[tuple[int, int, int], ...]
    extractor_mode: str
    conv_bias: bool
    encoder_layers: int
    encoder_embed_dim: int
    encoder_ffn_embed_dim: int
    encoder_attention_heads: int
    conv_pos: int
    conv_pos_groups: int
    layer_norm_first: bool
    activation_fn: str

    def hf_config(self, vocab_size: int) -> dict[str, Any]:
        """Keyword arguments for transformers.Wav2Vec2Config."""
        return dict(
            vocab_size=vocab_size,
            pad_token_id=0,  # the CTC blank: fairseq's index 0, named <pad> after the swap
            bos_token_id=1,
            eos_token_id=2,
            conv_dim=tuple(d for d, _, _ in self.conv_layers),
            conv_kernel=tuple(k for _, k, _ in self.conv_layers),
            conv_stride=tuple(s for _, _, s in self.conv_layers),
            conv_bias=self.conv_bias,
            feat_extract_norm=EXTRACTOR_MODES[self.extractor_mode],
            feat_extract_activation="gelu",  # fairseq's conv blocks and positional conv use nn.GELU
            do_stable_layer_norm=self.layer_norm_first,
            hidden_size=self.encoder_embed_dim,
            num_hidden_layers=self.encoder_layers,
            intermediate_size=self.encoder_ffn_embed_dim,
            num_attention_heads=self.encoder_attention_heads,
            num_conv_pos_embeddings=self.conv_pos,
            num_conv_pos_embedding_groups=self.conv_pos_groups,
            hidden_act=ACTIVATIONS[self.activation_fn],
            layer_norm_eps=1e-5,  # fairseq LayerNorm default
        )


@dataclass(frozen=True)
class FrontEnd:
    """Audio front-end settings of the fine-tuning task, and where each came from."""

    normalize: bool
    normalize_source: str
    sample_rate: int
    sample_rate_source: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Sections:
    """The parts of args/cfg the converter reads, as plain dicts."""

    form: str  # "args" (2020: argparse.Namespace) or "cfg" (later: omegaconf)
    finetune_model: dict[str, Any]
    finetune_task: dict[str, Any]
    finetune_root: dict[str, Any]
    w2v_model: dict[str, Any]
    w2v_task: dict[str, Any]
    w2v_root: dict[str, Any]
    prefix: str  # how the sections are spelled in messages: "args" or "cfg"


def _plain(node: Any) -> Any:
    """Namespaces, omegaconf configs and mappings as plain dicts; interpolations are left unresolved."""
    if isinstance(node, argparse.Namespace):
        return {k: _plain(v) for k, v in vars(node).items()}
    if OmegaConf.is_config(node):
        try:
            container = OmegaConf.to_container(node, resolve=False)
        except Exception as err:  # a config built by the pickle, not by omegaconf: any of its errors
            raise ConversionError(f"an omegaconf config that cannot be read ({type(err).__name__}: {err})") from None
        return _plain(container)
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    return node


def _sections(checkpoint: Mapping[str, Any]) -> _Sections:
    if checkpoint.get("cfg") is not None:
        root = _plain(checkpoint["cfg"])
        model = _mapping(root.get("model"), "cfg.model")
        w2v = model.get("w2v_args")
        w2v = _w2v_args(w2v, "cfg.model.w2v_args", model.get("w2v_path"))
        return _Sections(
            form="cfg",
            finetune_model=model,
            finetune_task=_mapping(root.get("task", {}), "cfg.task"),
            finetune_root=root,
            w2v_model=_mapping(w2v.get("model"), "cfg.model.w2v_args.model"),
            w2v_task=_mapping(w2v.get("task", {}), "cfg.model.w2v_args.task"),
            w2v_root=w2v,
            prefix="cfg",
        )
    if checkpoint.get("args") is not None:
        root = _mapping(_plain(checkpoint["args"]), "args")
        w2v = root.get("w2v_args")
        w2v = _w2v_args(w2v, "args.w2v_args", root.get("w2v_path"))
        if isinstance(w2v.get("model"), dict):  # an omegaconf-era w2v_args inside 2020-style args
            w2v_model, w2v_task = w2v["model"], _mapping(w2v.get("task", {}), "args.w2v_args.task")
        else:  # a flat argparse namespace holds model and task fields together
            w2v_model = w2v_task = w2v
        return _Sections("args", root, root, root, w2v_model, w2v_task, w2v, prefix="args")
    present = sorted(str(k) for k, v in checkpoint.items() if v is not None)
    raise ConversionError(f"checkpoint has neither 'cfg' nor 'args' (keys with values: {present})")


def _w2v_args(value: Any, where: str, w2v_path: Any) -> dict[str, Any]:
    if value is None:
        raise ConversionError(
            f"{where} is missing (w2v_path={w2v_path!r}): the checkpoint does not carry the pre-trained "
            "model's architecture, and this converter reads it from nowhere else"
        )
    return _mapping(value, where)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConversionError(f"{where}: expected a mapping, found {type(value).__name__}")
    return value


_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][\w.]*)\}")


def _resolve(value: Any, root: dict[str, Any], where: str) -> Any:
    """Follow a plain ${a.b} interpolation inside `root`; resolvers (${oc.env:...} etc.) are never run."""
    for _ in range(8):
        if not (isinstance(value, str) and value.startswith("${")):
            return value
        match = _INTERPOLATION.fullmatch(value)
        node: Any = root
        for part in match.group(1).split(".") if match else ():
            node = node.get(part, None) if isinstance(node, dict) else None
        if match is None or node is None:
            raise ConversionError(f"{where}={value!r}: only plain ${{a.b}} interpolations to a set value are read")
        value = node
    raise ConversionError(f"{where}={value!r}: interpolations nest too deeply")


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConversionError(f"{where}={value!r}: expected a positive integer")
    return value


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConversionError(f"{where}={value!r}: expected true or false")


_ARCHITECTURE_FIELDS = (
    "conv_feature_layers",
    "extractor_mode",
    "conv_bias",
    "encoder_layers",
    "encoder_embed_dim",
    "encoder_ffn_embed_dim",
    "encoder_attention_heads",
    "conv_pos",
    "conv_pos_groups",
    "layer_norm_first",
    "activation_fn",
)


def read_architecture(checkpoint: Mapping[str, Any]) -> tuple[str, FairseqArchitecture]:
    """(form, architecture) from the checkpoint's args or cfg; a missing or unsupported field is an error."""
    sec = _sections(checkpoint)
    where = f"{sec.prefix}.w2v_args" + (".model" if sec.w2v_model is not sec.w2v_root else "")
    finetune_name = sec.finetune_model.get("_name", sec.finetune_model.get("arch"))
    if finetune_name is not None and finetune_name != "wav2vec_ctc":
        raise ConversionError(f"fine-tuned model {finetune_name!r}: expected 'wav2vec_ctc' (a CTC fine-tuned model)")
    w2v_name = sec.w2v_model.get("_name", sec.w2v_model.get("arch"))
    if w2v_name is not None and w2v_name != "wav2vec2":
        raise ConversionError(f"{where} model {w2v_name!r}: expected 'wav2vec2'")
    missing = [f for f in _ARCHITECTURE_FIELDS if f not in sec.w2v_model]
    if missing:
        raise ConversionError(f"{where} lacks architecture field(s) {missing}; none are filled in from defaults")
    raw = {f: _resolve(sec.w2v_model[f], sec.w2v_root, f"{where}.{f}") for f in _ARCHITECTURE_FIELDS}
    for name, supported in (("layer_type", "transformer"), ("pos_conv_depth", 1)):
        value = _resolve(sec.w2v_model.get(name, supported), sec.w2v_root, f"{where}.{name}")
        if value != supported:
            raise ConversionError(
                f"{where}.{name}={value!r}: only {supported!r} has a transformers Wav2Vec2 equivalent"
            )
    if raw["extractor_mode"] not in EXTRACTOR_MODES:
        raise ConversionError(
            f"{where}.extractor_mode={raw['extractor_mode']!r}: expected one of {sorted(EXTRACTOR_MODES)}"
        )
    if raw["activation_fn"] not in ACTIVATIONS:
        raise ConversionError(f"{where}.activation_fn={raw['activation_fn']!r}: expected one of {sorted(ACTIVATIONS)}")
    arch = FairseqArchitecture(
        conv_layers=parse_conv_layers(raw["conv_feature_layers"]),
        extractor_mode=raw["extractor_mode"],
        conv_bias=_bool(raw["conv_bias"], f"{where}.conv_bias"),
        layer_norm_first=_bool(raw["layer_norm_first"], f"{where}.layer_norm_first"),
        activation_fn=raw["activation_fn"],
        **{
            f: _int(raw[f], f"{where}.{f}")
            for f in (
                "encoder_layers",
                "encoder_embed_dim",
                "encoder_ffn_embed_dim",
                "encoder_attention_heads",
            )
            + ("conv_pos", "conv_pos_groups")
        },
    )
    if arch.encoder_layers > MAX_ENCODER_LAYERS:
        raise ConversionError(f"{where}.encoder_layers={arch.encoder_layers}: more than {MAX_ENCODER_LAYERS}")
    if arch.encoder_embed_dim % arch.encoder_attention_heads:
        raise ConversionError(
            f"{where}: encoder_embed_dim={arch.encoder_embed_dim} is not divisible by "
            f"encoder_attention_heads={arch.encoder_attention_heads}"
        )
    return sec.form, arch


def read_front_end(checkpoint: Mapping[str, Any]) -> FrontEnd:
    """normalize and sample_rate of the fine-tuning task (what fairseq applies at inference)."""
    sec = _sections(checkpoint)
    ft = f"{sec.prefix}.task" if sec.form == "cfg" else "args"
    w2v = f"{sec.prefix}.w2v_args" + (".task" if sec.w2v_task is not sec.w2v_root else "")
    notes = []

    def setting(name: str, default: Any) -> tuple[Any, Any, str]:
        ft_value = _resolve(sec.finetune_task.get(name), sec.finetune_root, f"{ft}.{name}")
        w2v_value = _resolve(sec.w2v_task.get(name), sec.w2v_root, f"{w2v}.{name}")
        if ft_value is not None:
            return ft_value, w2v_value, f"{ft}.{name}"
        if w2v_value is not None:
            return w2v_value, None, f"{w2v}.{name} (the fine-tuning task does not say)"
        notes.append(f"{name}: not in the checkpoint; fairseq's default {default!r} used")
        return default, None, f"fairseq default (neither {ft}.{name} nor {w2v}.{name} is set)"

    normalize, pretrain_normalize, normalize_source = setting("normalize", False)
    normalize = _bool(normalize, normalize_source)
    if pretrain_normalize is not None and _bool(pretrain_normalize, f"{w2v}.normalize") != normalize:
        notes.append(
            f"{ft}.normalize={normalize} differs from pre-training {w2v}.normalize={pretrain_normalize}; "
            "the fine-tuning value is what fairseq applies to the audio"
        )
    sample_rate, _, sample_rate_source = setting("sample_rate", DEFAULT_SAMPLE_RATE)
    return FrontEnd(
        normalize, normalize_source, _int(sample_rate, sample_rate_source), sample_rate_source, tuple(notes)
    )


# ----------------------------------------------------------------------------------------------------------
# Vocabulary


def fairseq_symbols(dict_path: str | Path) -> list[str]:
    """The symbols of a fairseq dictionary file, by index: `<s> <pad> </s> <unk>`, then one per line."""
    symbols = list(FAIRSEQ_SPECIALS)
    lines = read_text(dict_path, max_bytes=MAX_DICT_BYTES).splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.rstrip().rsplit(" ", 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ConversionError(f"{dict_path}:{number}: {line!r}: expected '<symbol> <count>'")
        if parts[0] in symbols:
            raise ConversionError(f"{dict_path}:{number}: symbol {parts[0]!r} appears twice (or is a special)")
        symbols.append(parts[0])
    if WORD_DELIMITER not in symbols:
        raise ConversionError(f"{dict_path}: no {WORD_DELIMITER!r} symbol, expected it as the word delimiter")
    return symbols


def hf_vocab(symbols: list[str]) -> dict[str, int]:
    """token -> id for Wav2Vec2CTCTokenizer: ids unchanged, the names of ids 0 and 1 swapped.

    fairseq's CTC blank is index 0 (`<s>`); transformers' blank is the pad token. As in transformers'
    reference conversion, index 0 is renamed `<pad>` and index 1 `<s>`, so no weight row moves.
    """
    if tuple(symbols[:4]) != FAIRSEQ_SPECIALS:
        raise ConversionError(f"symbols start {symbols[:4]}, expected fairseq's {list(FAIRSEQ_SPECIALS)}")
    named = ["<pad>", "<s>", *symbols[2:]]
    return {token: index for index, token in enumerate(named)}


# ----------------------------------------------------------------------------------------------------------
# Tensors


def map_state_dict(
    fairseq_state: Mapping[str, Any], hf_shapes: Mapping[str, tuple[int, ...]]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(transformers key -> tensor, pre-training-only keys dropped) for a fairseq CTC model state dict.

    Every fairseq tensor must map to exactly one transformers key of the same shape, and every key in
    `hf_shapes` must be set; otherwise ConversionError lists what is left over or missing.
    """
    import torch

    mapped: dict[str, Any] = {}
    source: dict[str, str] = {}
    dropped, unmapped, problems = [], [], []
    for key, value in fairseq_state.items():
        if not isinstance(value, torch.Tensor):
            problems.append(f"{key}: a {type(value).__name__}, not a tensor")
            continue
        if key.startswith(W2V) and key[len(W2V) :].startswith(PRETRAINING_ONLY):
            dropped.append(key)
            continue
        target = _hf_key(key, hf_shapes)
        if target is None:
            unmapped.append(key)
        elif target in mapped:
            problems.append(f"{key} and {source[target]} both map to {target}")
        elif tuple(value.shape) != tuple(hf_shapes[target]):
            problems.append(f"{key} has shape {tuple(value.shape)}, {target} expects {tuple(hf_shapes[target])}")
        else:
            mapped[target], source[target] = value, key
    unset = sorted(set(hf_shapes) - set(mapped))
    if unmapped:
        problems.append(f"{len(unmapped)} checkpoint tensor(s) with no transformers counterpart: {_some(unmapped)}")
    if unset:
        problems.append(f"{len(unset)} model parameter(s) not set by the checkpoint: {_some(unset)}")
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise ConversionError(f"tensor mapping failed: {shown}")
    return mapped, tuple(dropped)


def _some(names: list[str], n: int = 8) -> str:
    return str(names[:n])[:-1] + (f", ... {len(names) - n} more]" if len(names) > n else "]")


def _hf_key(key: str, hf_shapes: Mapping[str, Any]) -> str | None:
    for pattern, template in KEY_RULES:
        match = pattern.fullmatch(key)
        if match is None:
            continue
        if template in POS_CONV_NAMES:
            return next((name for name in POS_CONV_NAMES[template] if name in hf_shapes), None)
        target = match.expand(template)
        return target if target in hf_shapes else None
    return None


# ----------------------------------------------------------------------------------------------------------
# The conversion


@dataclass(frozen=True)
class ConversionReport:
    """What was read, chosen and written; `summary()` is the text the command prints."""

    checkpoint: str
    dict_path: str
    out_dir: str
    form: str
    architecture: dict[str, Any]
    do_normalize: bool
    normalize_source: str
    sampling_rate: int
    return_attention_mask: bool
    vocab_size: int
    tensors_mapped: int
    checkpoint_dtypes: tuple[str, ...]
    dropped: tuple[str, ...]
    placeholders: tuple[str, ...]
    notes: tuple[str, ...]
    files: tuple[str, ...]

    def summary(self) -> str:
        arch = self.architecture
        lines = [
            f"converted {self.checkpoint} ({self.form} form) -> {self.out_dir}",
            f"  architecture: {arch['num_hidden_layers']} layers, hidden {arch['hidden_size']}, "
            f"ffn {arch['intermediate_size']}, {arch['num_attention_heads']} heads, "
            f"feat_extract_norm={arch['feat_extract_norm']}, "
            f"do_stable_layer_norm={arch['do_stable_layer_norm']}, "
            f"conv_bias={arch['conv_bias']}, pos conv {arch['num_conv_pos_embeddings']}/"
            f"{arch['num_conv_pos_embedding_groups']} groups, hidden_act={arch['hidden_act']}",
            f"  conv layers (dim, kernel, stride): "
            f"{list(zip(arch['conv_dim'], arch['conv_kernel'], arch['conv_stride'], strict=True))}",
            f"  front end: do_normalize={self.do_normalize} (from {self.normalize_source}); "
            f"sampling_rate={self.sampling_rate}; return_attention_mask={self.return_attention_mask}",
            f"  vocabulary: {self.vocab_size} tokens from {self.dict_path}; CTC blank <pad>=0, "
            f"word delimiter {WORD_DELIMITER!r}",
            f"  tensors: {self.tensors_mapped} mapped, dtypes {list(self.checkpoint_dtypes)} -> float32; "
            f"dropped (pre-training only): {list(self.dropped) or 'none'}",
            f"  fairseq objects loaded as inert placeholders: {list(self.placeholders) or 'none'}",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Plan:
    """What a checkpoint says, checked against itself: the conversion writes nothing before this exists."""

    form: str
    arch: FairseqArchitecture
    front: FrontEnd
    config: Any  # transformers.Wav2Vec2Config
    vocab: dict[str, int]
    mapped: dict[str, Any]
    dropped: tuple[str, ...]


def _plan(checkpoint: Any, symbols: list[str], dict_path: str | Path) -> _Plan:
    """Read and cross-check the checkpoint; the model is laid out on the meta device (no memory), so an
    architecture the tensors do not fill (say a billion-wide layer) is refused before it is allocated."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model"), Mapping):
        raise ConversionError("expected a dict with a 'model' state dict")
    state = checkpoint["model"]
    odd_keys = [k for k in state if not isinstance(k, str)]
    if odd_keys:
        raise ConversionError(f"the 'model' state dict has keys that are not strings: {odd_keys[:3]!r}")
    proj = state.get("w2v_encoder.proj.weight")
    if not isinstance(proj, torch.Tensor) or proj.dim() != 2:
        sample = sorted(state)[:3]
        raise ConversionError(
            f"no w2v_encoder.proj.weight matrix, so not a wav2vec 2.0 CTC fine-tuned checkpoint (first keys: {sample})"
        )
    form, arch = read_architecture(checkpoint)
    front = read_front_end(checkpoint)
    if proj.shape[0] != len(symbols):
        raise ConversionError(
            f"dict={str(dict_path)!r} gives {len(symbols)} symbols (with fairseq's 4 specials), but the "
            f"checkpoint's output layer has {proj.shape[0]} rows"
        )
    vocab = hf_vocab(symbols)
    try:
        config = Wav2Vec2Config(**arch.hf_config(len(vocab)))
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in Wav2Vec2ForCTC(config).state_dict().items()}
    except (ValueError, TypeError, RuntimeError) as err:
        raise ConversionError(f"the architecture it states cannot be built ({type(err).__name__}: {err})") from None
    mapped, dropped = map_state_dict(state, shapes)
    return _Plan(form, arch, front, config, vocab, mapped, dropped)


def convert(checkpoint_path: str | Path, dict_path: str | Path, out_dir: str | Path) -> ConversionReport:
    """Convert a fairseq wav2vec 2.0 CTC checkpoint; write a from_pretrained-ready folder at `out_dir`."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        found = sorted(p.name for p in out.iterdir())[:5] if out.is_dir() else "a file"
        raise ConversionError(f"out={str(out)!r} exists and is not an empty folder (found {found})")
    symbols = fairseq_symbols(dict_path)
    loaded = load_checkpoint(checkpoint_path)
    try:
        plan = _plan(loaded.content, symbols, dict_path)
    except ConversionError as err:
        raise ConversionError(f"{checkpoint_path}: {err}") from None
    import torch
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    model = Wav2Vec2ForCTC(plan.config).eval()
    hf_state = model.state_dict()
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in plan.mapped.values()})
    with torch.no_grad():
        model.load_state_dict({k: v.to(hf_state[k].dtype) for k, v in plan.mapped.items()}, strict=True)
    front = plan.front

    notes = list(front.notes)
    if not front.normalize:
        notes.append(
            "do_normalize=False, as the checkpoint says; transformers' reference conversion hard-codes "
            "do_normalize=True (so do the Hub's converted base models)"
        )
    else:
        notes.append("fairseq normalises with layer_norm (eps 1e-5); transformers' do_normalize uses eps 1e-7")
    return_attention_mask = plan.config.feat_extract_norm == "layer"  # as the reference conversion decides

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    vocab_path = out / "vocab.json"
    vocab_path.write_text(json.dumps(plan.vocab, ensure_ascii=False, indent=2), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(
        str(vocab_path),
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        word_delimiter_token=WORD_DELIMITER,
        do_lower_case=False,
    )
    tokenizer.save_pretrained(out)
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=front.sample_rate,
        padding_value=0.0,
        do_normalize=front.normalize,
        return_attention_mask=return_attention_mask,
    )
    extractor.save_pretrained(out)  # preprocessor_config.json, the file name the Hub checkpoints use
    return ConversionReport(
        checkpoint=str(checkpoint_path),
        dict_path=str(dict_path),
        out_dir=str(out),
        form=plan.form,
        architecture=plan.arch.hf_config(len(plan.vocab)),
        do_normalize=front.normalize,
        normalize_source=front.normalize_source,
        sampling_rate=front.sample_rate,
        return_attention_mask=return_attention_mask,
        vocab_size=len(plan.vocab),
        tensors_mapped=len(plan.mapped),
        checkpoint_dtypes=tuple(dtypes),
        dropped=plan.dropped,
        placeholders=loaded.placeholders,
        notes=tuple(notes),
        files=tuple(sorted(p.name for p in out.iterdir())),
    )


# ----------------------------------------------------------------------------------------------------------
# Command line
