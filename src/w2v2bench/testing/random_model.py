"""Random-weight CTC checkpoints of the wav2vec2 family built from a config, for tests and benchmarks (no downloads).

`base` has wav2vec2-base-960h's architecture (same compute as the real model); `tiny` is small enough for
unit tests. Every family (wav2vec2, hubert, data2vec-audio) uses the base-960h 32-token letter vocabulary and
processor settings; `norm` picks the feature encoder's norm where the family has the choice.
Usage: python -m w2v2bench.random_model out=<folder> [size=tiny|base] [family=wav2vec2|hubert|data2vec-audio]
       [norm=group|layer] [seed=0]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

VOCAB = "<pad> <s> </s> <unk> | E T A O N I H S R D L U M W C F G Y P B V K ' X J Q Z".split()

SIZES = {
    "tiny": dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32, 32, 32, 32, 32, 32),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    ),
    "base": dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        conv_dim=(512,) * 7,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
    ),
}
NORMS = {
    "group": False,
    "layer": True,
}  # feat_extract_norm -> do_stable_layer_norm, as the real families pair them
# transformers model_type -> settings of its own; data2vec-audio has a LayerNorm in every conv layer (no `norm`
# choice) and a positional embedding of `num_conv_pos_embeddings` stacked convs of `conv_pos_kernel_size`
FAMILIES: dict[str, dict] = {
    "wav2vec2": {},
    "hubert": {},
    "data2vec-audio": {"num_conv_pos_embeddings": 5, "conv_pos_kernel_size": 19},
}


def processor():
    """A Wav2Vec2Processor with base-960h's vocabulary and front end (do_normalize, no attention mask)."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.json"
        vocab.write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
        tokenizer = Wav2Vec2CTCTokenizer(str(vocab), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    )
    return Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer)


def build(out: str | Path, size: str = "tiny", norm: str = "group", seed: int = 0, family: str = "wav2vec2") -> Path:
    """Write a random CTC model + processor folder that `from_pretrained` loads (`norm` is ignored for
    data2vec-audio, whose conv layers all have a LayerNorm)."""
    import torch
    from transformers import AutoConfig, AutoModelForCTC

    if size not in SIZES:
        raise ValueError(f"size={size!r}: expected one of {sorted(SIZES)}")
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r}: expected one of {sorted(NORMS)}")
    if family not in FAMILIES:
        raise ValueError(f"family={family!r}: expected one of {sorted(FAMILIES)}")
    settings = {**SIZES[size], **FAMILIES[family]}
    if family != "data2vec-audio":
        settings.update(feat_extract_norm=norm, do_stable_layer_norm=NORMS[norm], conv_bias=norm == "layer")
    config = AutoConfig.for_model(family, vocab_size=len(VOCAB), pad_token_id=0, **settings)
    torch.manual_seed(seed)
    model = AutoModelForCTC.from_config(config).eval()
    out = Path(out)
    model.save_pretrained(out)
    processor().save_pretrained(out)
    return out
