"""Batch-size-1 forwards in one process, interleaved (issue #31): the harness's `Transcriber.forward` against the
model card's call (`model(processor(x).input_values).logits`), and the run loop's host-memory trimming policies.

Usage: python bench/forwards.py [--limit 25] [--passes 5] [--model-dir results/bench/model-base]
(the model folder is the one `python bench/bench.py` builds: the wav2vec2-base architecture, random weights)
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=25)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "results" / "bench" / "model-base")
    args = parser.parse_args()

    import soundfile as sf
    import torch
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    from w2v2bench.data.local import local_utterances
    from w2v2bench.model import load_model
    from w2v2bench.pipeline import Trimmer, release_host_memory

    if not (args.model_dir / "config.json").exists():
        from w2v2bench.testing import random_model

        random_model.build(args.model_dir, "base", "group", seed=0)
    utts = local_utterances(ROOT / "tests" / "data" / "LibriSpeech", "test", "other")[: args.limit]
    waves = [sf.read(u.path, dtype="float32")[0] for u in utts]
    transcriber = load_model(str(args.model_dir), device="cpu")
    card = Wav2Vec2ForCTC.from_pretrained(args.model_dir).eval()
    processor = Wav2Vec2Processor.from_pretrained(args.model_dir)
    prepared = [transcriber.prepare(w) for w in waves]
    card_inputs = [processor(w, sampling_rate=16000, return_tensors="pt").input_values for w in waves]

    def card_call() -> None:
        for x in card_inputs:
            with torch.no_grad():
                card(x).logits.argmax(-1)

    def harness(after) -> None:
        trim = after() if isinstance(after, type) else after
        for x in prepared:
            transcriber.forward([x])
            trim(1) if isinstance(trim, Trimmer) else trim()

    methods = {
        "card's call": card_call,
        "harness forward, no trimming": lambda: harness(lambda: None),
        "harness forward, trim every batch": lambda: harness(release_host_memory),
        "harness forward, trim at most every 10 s (the run loop's)": lambda: harness(Trimmer),
    }
    walls: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.passes):
        for name, method in methods.items():  # interleaved: every method once per pass
            start = time.perf_counter()
            method()
            walls[name].append(time.perf_counter() - start)
    base = statistics.median(walls["harness forward, no trimming"])
    print(f"{len(prepared)} test-other utterances, batch size 1, {torch.get_num_threads()} threads, {args.passes} "
          "interleaved passes; model: the wav2vec2-base architecture, random weights")  # fmt: skip
    print("\n| method | median | range | / harness forward, no trimming |\n|---|---:|---:|---:|")
    for name, w in walls.items():
        print(f"| {name} | {statistics.median(w):.2f} s | {min(w):.2f}-{max(w):.2f} s | "
              f"{statistics.median(w) / base:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
