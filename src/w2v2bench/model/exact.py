"""Why batched output equals batch size 1: the masked GroupNorm and the padded-frame fixes, per architecture."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaskedGroupNorm(nn.Module):
    """`nn.GroupNorm` whose statistics come from each row's first `valid_frames[b]` frames only."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.num_groups, self.eps = norm.num_groups, norm.eps
        self.weight, self.bias = norm.weight, norm.bias
        self.valid_frames: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        valid = self.valid_frames
        if valid is None:
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        batch, channels, frames = x.shape
        groups = x.float().reshape(batch, self.num_groups, channels // self.num_groups, frames)
        mask = (torch.arange(frames, device=x.device)[None, :] < valid[:, None]).to(groups.dtype)
        mask = mask[:, None, None, :]
        count = (valid.to(groups.dtype) * (channels // self.num_groups))[:, None, None, None]
        mean = (groups * mask).sum(dim=(2, 3), keepdim=True) / count
        var = (((groups - mean) * mask) ** 2).sum(dim=(2, 3), keepdim=True) / count
        normed = ((groups - mean) * torch.rsqrt(var + self.eps)).reshape(batch, channels, frames)
        out = normed * self.weight.float()[None, :, None] + self.bias.float()[None, :, None]
        return out.to(x.dtype)


# transformers model types whose every padding leak is closed above, each proven by a test of batch 32 against
# batch size 1 on real audio (tests/test_model.py); any other type runs at batch size 1
PROVEN_EXACT = ("wav2vec2", "hubert", "data2vec-audio")


def batching_fallback(config) -> str | None:
    """Why batches of this model cannot be made exact (None when they can): then it runs at batch size 1."""
    model_type = getattr(config, "model_type", None)
    if model_type not in PROVEN_EXACT:
        return (
            f"model_type {model_type!r} is not one whose padding leaks are closed ({', '.join(PROVEN_EXACT)}): "
            "ran at batch size 1"
        )
    if getattr(config, "add_adapter", False):
        return "its adapter layers (add_adapter: true) convolve padded frames: ran at batch size 1"
    return None


def stacked_positional_convs(model: nn.Module) -> list[nn.Module]:
    """The layers of a positional embedding made of several convs (data2vec-audio's), else []."""
    pos = getattr(getattr(model.base_model, "encoder", None), "pos_conv_embed", None)
    layers = getattr(pos, "layers", None)
    return list(layers) if isinstance(layers, nn.ModuleList) and len(layers) > 1 else []


def feature_encoder_norm(model: nn.Module) -> str:
    """ "group" (over time, in the first conv layer), "layer" (per frame) or "none": read from the modules, so
    a class whose config has no `feat_extract_norm` (data2vec-audio) is described as it is."""
    layers = getattr(getattr(model.base_model, "feature_extractor", None), "conv_layers", None)
    norm = getattr(layers[0], "layer_norm", None) if layers else None
    if isinstance(norm, nn.GroupNorm):
        return "group"
    return "layer" if isinstance(norm, nn.LayerNorm) else "none"
