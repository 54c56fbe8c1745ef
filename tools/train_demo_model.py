"""Train the small offline demo wav2vec2 CTC model on espeak-ng speech, on CPU, resumably.

Steps, each skipped when its output already exists in the work dir:
  1. synthesise the training corpus (w2v2bench.synth, subset `train`) into WORK/corpus/
  2. cache it as one int16 array (WORK/train_cache.npz)
  3. train, checkpointing to WORK/checkpoint.pt every --save-every steps (rerun the same command to
     resume; data order, dropout and masking continue from the saved generator states)
  4. export a Hugging Face folder (model + processor) to WORK/model/ and score it at batch size 1
     on the test-clean and test-other sets given by --eval-corpus.

Batching: utterances are length-sorted into buckets (lengths jittered per epoch so buckets change),
each utterance is normalised on its own (zero mean, unit variance, as the feature extractor does),
then zero-padded to the longest in its bucket, and no attention mask is passed, as the real
wav2vec2-base was trained. Bucketing keeps padding to a few percent, so the group-norm front end sees
almost no padding during training; evaluation is batch size 1 and sees none.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # run from a checkout without installing

from w2v2bench.testing import synth  # noqa: E402

# wav2vec2-base-960h's letter vocabulary, in its id order; <pad> (0) is the CTC blank.
VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]
SAMPLE_RATE = 16_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--work-dir",
        type=Path,
        default=REPO / "results" / "demo-train",
        help="corpus, cache, checkpoint, log and exported model (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="corpus and training seed (default: %(default)s)")
    p.add_argument("--n-train", type=int, default=24_000, help="training sentences (default: %(default)s)")
    p.add_argument(
        "--n-dev",
        type=int,
        default=100,
        help="training-corpus utterances held out to monitor WER (default: %(default)s)",
    )
    p.add_argument("--max-steps", type=int, default=3500, help="optimizer steps (default: %(default)s)")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="also end after this much training time (evaluation excluded); the decay "
        "follows whichever of steps and minutes runs out first (default: steps only)",
    )
    p.add_argument(
        "--batch-seconds",
        type=float,
        default=40.0,
        help="audio seconds per batch, padding included (default: %(default)s)",
    )
    p.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate (default: %(default)s)")
    p.add_argument("--warmup-steps", type=int, default=300, help="linear warm-up (default: %(default)s)")
    p.add_argument(
        "--final-lr-fraction",
        type=float,
        default=0.02,
        help="cosine decay ends at lr * this (default: %(default)s)",
    )
    p.add_argument(
        "--noise-prob",
        type=float,
        default=0.5,
        help="fraction of training utterances that get fresh coloured noise each time they are drawn "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--noise-snr",
        type=float,
        nargs=2,
        default=(5.0, 20.0),
        metavar=("LOW", "HIGH"),
        help="SNR range in dB of that noise (default: %(default)s)",
    )
    p.add_argument(
        "--speed-prob",
        type=float,
        default=0.5,
        help="fraction of training utterances that are sped up or slowed down by resampling (default: %(default)s)",
    )
    p.add_argument(
        "--speed-range",
        type=float,
        nargs=2,
        default=(0.9, 1.2),
        metavar=("LOW", "HIGH"),
        help="speed factor range; 1.2 = 20%% faster and higher (default: %(default)s)",
    )
    p.add_argument("--hidden", type=int, default=144, help="transformer width (default: %(default)s)")
    p.add_argument("--layers", type=int, default=4, help="transformer layers (default: %(default)s)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default: %(default)s)")
    p.add_argument("--conv-dim", type=int, default=64, help="channels of each conv layer (default: %(default)s)")
    p.add_argument("--save-every", type=int, default=100, help="checkpoint period in steps (default: %(default)s)")
    p.add_argument("--eval-every", type=int, default=500, help="dev WER period in steps (default: %(default)s)")
    p.add_argument(
        "--stop-after-minutes",
        type=float,
        default=None,
        help="checkpoint and exit after this much training time (resume later)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    p.add_argument(
        "--eval-corpus",
        type=Path,
        default=None,
        help="folder with test-clean/ and test-other/ to score the exported model on "
        "(default: WORK/corpus, generated with the same seed if missing)",
    )
    p.add_argument(
        "--n-test",
        type=int,
        default=100,
        help="utterances per test subset when generating them (default: %(default)s)",
    )
    p.add_argument(
        "--eval-only",
        type=Path,
        default=None,
        metavar="MODEL_DIR",
        help="only score an exported model folder on --eval-corpus",
    )
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------
def ensure_corpus(out: Path, subsets: list[str], n: dict[str, int], seed: int) -> None:
    for subset in subsets:
        if (out / f"{subset}.json").exists():
            continue
        print(f"synthesising {subset} into {out}", flush=True)
        synth.generate(out, subset, n[subset], seed)


def load_cache(work: Path, seed: int, n_train: int) -> dict[str, np.ndarray]:
    cache = work / "train_cache.npz"
    if not cache.exists():
        import soundfile as sf
        from tqdm import tqdm

        ensure_corpus(work / "corpus", ["train"], {"train": n_train}, seed)
        rows = synth.read_subset(work / "corpus" / "train")
        chunks, lengths = [], []
        for path, _ in tqdm(rows, desc="caching train", unit="utt"):
            audio, sr = sf.read(path, dtype="int16")
            assert sr == SAMPLE_RATE, (path, sr)
            chunks.append(audio)
            lengths.append(len(audio))
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            audio=np.concatenate(chunks),
            lengths=np.array(lengths),
            texts=np.array([t for _, t in rows]),
            ids=np.array([p.stem for p, _ in rows]),
        )
        os.replace(tmp, cache)
    data = np.load(cache)
    return {k: data[k] for k in data.files}


def encode(text: str) -> list[int]:
    index = {tok: i for i, tok in enumerate(VOCAB)}
    return [index["|"] if ch == " " else index.get(ch, index["<unk>"]) for ch in text]


def normalise(audio: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance, exactly as Wav2Vec2FeatureExtractor(do_normalize=True) does."""
    audio = audio.astype(np.float32)
    return (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)


def augment(audio: np.ndarray, rng: np.random.Generator, args: argparse.Namespace) -> np.ndarray:
    """Speed perturbation (resampling: tempo and pitch together) and fresh coloured noise, each with its
    own probability. The test-other analogue is faster and noisier than most of the training corpus."""
    import soxr

    audio = audio.astype(np.float32) / 32768.0
    if rng.random() < args.speed_prob:
        factor = float(rng.uniform(*args.speed_range))
        # Read the samples as if recorded at factor x 16 kHz and resample to 16 kHz: 1/factor as long.
        audio = soxr.resample(audio, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)
    if rng.random() < args.noise_prob:
        audio = synth.add_noise(audio, float(rng.uniform(*args.noise_snr)), rng)
    return audio


def make_batches(lengths: np.ndarray, budget: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Length buckets whose padded size (count x longest) stays within budget samples, in random order."""
    jittered = lengths * rng.uniform(0.9, 1.1, len(lengths))
    order = np.argsort(jittered, kind="stable")
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end - start + 1) * lengths[order[start : end + 1]].max() <= budget:
            end += 1
        batches.append(order[start:end])
        start = end
    return [batches[i] for i in rng.permutation(len(batches))]


# ---------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------
def build_model(args: argparse.Namespace):
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    config = Wav2Vec2Config(
        vocab_size=len(VOCAB),
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=4 * args.hidden,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        conv_bias=False,
        conv_dim=(args.conv_dim,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        hidden_dropout=0.05,
        attention_dropout=0.05,
        activation_dropout=0.05,
        feat_proj_dropout=0.05,
        final_dropout=0.05,
        layerdrop=0.0,
        mask_time_prob=0.05,
        mask_time_length=5,
        ctc_loss_reduction="mean",
        ctc_zero_infinity=True,
    )
    torch.manual_seed(args.seed)
    return Wav2Vec2ForCTC(config)


def build_processor():
    import tempfile

    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.json"
        vocab_file.write_text(json.dumps({tok: i for i, tok in enumerate(VOCAB)}))
        tokenizer = Wav2Vec2CTCTokenizer(
            str(vocab_file),
            unk_token="<unk>",
            pad_token="<pad>",
            bos_token="<s>",
            eos_token="</s>",
            word_delimiter_token="|",
            do_lower_case=False,
        )
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=False,
    )
    return Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer)


def schedule_progress(state: dict, args: argparse.Namespace) -> float:
    """Fraction of the decay phase done: the further of steps and training minutes, 0 during warm-up."""
    if state["step"] < args.warmup_steps:
        return 0.0
    by_steps = (state["step"] - args.warmup_steps) / max(1, args.max_steps - args.warmup_steps)
    if args.max_minutes is None:
        return by_steps
    warm_s = state.get("warmup_s", state["train_s"])
    by_time = (state["train_s"] - warm_s) / max(1e-9, 60 * args.max_minutes - warm_s)
    return max(by_steps, by_time)


def lr_at(state: dict, args: argparse.Namespace) -> float:
    """Linear warm-up over steps, then cosine decay to lr * final_lr_fraction."""
    if state["step"] < args.warmup_steps:
        return args.lr * (state["step"] + 1) / args.warmup_steps
    progress = min(1.0, schedule_progress(state, args))
    floor = args.final_lr_fraction
    return args.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


# ---------------------------------------------------------------------------------------------------
# Evaluation: batch size 1, processor per utterance, argmax, processor.batch_decode
# ---------------------------------------------------------------------------------------------------
@torch.inference_mode()
def transcribe(model, processor, audio: np.ndarray) -> str:
    inputs = processor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt")
    logits = model(inputs.input_values).logits
    return processor.batch_decode(logits.argmax(-1))[0]


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    return jiwer.wer(refs, hyps)


def score_subset(model, processor, root: Path, limit: int | None = None) -> tuple[float, float]:
    """(WER, CER) over a subset folder, references kept as text."""
    import jiwer
    import soundfile as sf

    model.eval()
    rows = synth.read_subset(root)[:limit]
    refs, hyps = [], []
    for path, text in rows:
        audio, _ = sf.read(path, dtype="float32")
        refs.append(text)
        hyps.append(transcribe(model, processor, audio))
    return jiwer.wer(refs, hyps), jiwer.cer(refs, hyps)


def score_dev(model, processor, data: dict[str, np.ndarray], dev: np.ndarray, starts: np.ndarray) -> float:
    model.eval()
    refs, hyps = [], []
    for i in dev:
        audio = data["audio"][starts[i] : starts[i] + data["lengths"][i]].astype(np.float32) / 32768
        refs.append(str(data["texts"][i]))
        hyps.append(transcribe(model, processor, audio))
    model.train()
    return wer(refs, hyps)


def export(model, processor, out: Path) -> None:
    """A folder that Wav2Vec2ForCTC / Wav2Vec2Processor.from_pretrained load (preprocessor_config.json
    as on the Hub, so older and newer transformers both find the feature extractor)."""
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    processor.feature_extractor.save_pretrained(tmp)
    processor.tokenizer.save_pretrained(tmp)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)


def evaluate_folder(model_dir: Path, corpus: Path) -> dict[str, dict[str, float]]:
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    model = Wav2Vec2ForCTC.from_pretrained(model_dir).eval()
    processor = Wav2Vec2Processor.from_pretrained(model_dir)
    results = {}
    for subset in ("test-clean", "test-other"):
        t0 = time.perf_counter()
        w, c = score_subset(model, processor, corpus / subset)
        results[subset] = {
            "wer": w,
            "cer": c,
            "utterances": len(synth.read_subset(corpus / subset)),
            "wall_s": round(time.perf_counter() - t0, 1),
        }
        print(
            f"{subset}: WER {100 * w:.2f} %  CER {100 * c:.2f} %  "
            f"({results[subset]['utterances']} utterances, batch size 1)",
            flush=True,
        )
    return results


# ---------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    data = load_cache(work, args.seed, args.n_train)
    lengths = data["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    split_rng = np.random.default_rng([args.seed, 7])
    perm = split_rng.permutation(len(lengths))
    dev, train_idx = np.sort(perm[: args.n_dev]), np.sort(perm[args.n_dev :])
    labels = [encode(str(t)) for t in data["texts"]]
    hours = lengths[train_idx].sum() / SAMPLE_RATE / 3600
    print(f"train: {len(train_idx)} utterances, {hours:.2f} h; dev: {len(dev)} utterances", flush=True)

    model = build_model(args)
    processor = build_processor()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters", flush=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)

    ckpt_path = work / "checkpoint.pt"
    state = {"step": 0, "epoch": 0, "batch": 0, "train_s": 0.0, "log": []}
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["torch_rng"])
        np.random.set_state(ckpt["numpy_rng"])  # wav2vec2's time masking draws from numpy's global state
        state = ckpt["state"]
        print(f"resumed from {ckpt_path} at step {state['step']}", flush=True)
    else:
        np.random.seed(args.seed)

    def save() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": np.random.get_state(),
                "state": state,
                "args": vars(args),
            },
            tmp,
        )
        os.replace(tmp, ckpt_path)

    budget = int(args.batch_seconds * SAMPLE_RATE)
    model.train()
    bar = tqdm(total=args.max_steps, initial=state["step"], desc="train", unit="step", dynamic_ncols=True)
    session_start = time.perf_counter()
    loss_avg = None

    def done() -> bool:
        return state["step"] >= args.max_steps or schedule_progress(state, args) >= 1.0

    while not done():
        batches = make_batches(lengths[train_idx], budget, np.random.default_rng([args.seed, state["epoch"]]))
        while state["batch"] < len(batches) and not done():
            t0 = time.perf_counter()
            idx = train_idx[batches[state["batch"]]]
            # Augmentation draws from a generator keyed by the step, so a resumed run draws the same.
            aug_rng = np.random.default_rng([args.seed, 11, state["step"]])
            clips = [augment(data["audio"][starts[i] : starts[i] + lengths[i]], aug_rng, args) for i in idx]
            x = np.zeros((len(idx), max(len(c) for c in clips)), dtype=np.float32)
            y = np.full((len(idx), max(len(labels[i]) for i in idx)), -100, dtype=np.int64)
            for row, (i, clip) in enumerate(zip(idx, clips, strict=True)):
                x[row, : len(clip)] = normalise(clip)
                y[row, : len(labels[i])] = labels[i]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(state, args)
            loss = model(torch.from_numpy(x), labels=torch.from_numpy(y)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            state["step"] += 1
            state["batch"] += 1
            state["train_s"] += time.perf_counter() - t0
            if state["step"] == args.warmup_steps:
                state["warmup_s"] = state["train_s"]
            loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
            bar.update()
            bar.set_postfix(loss=f"{loss_avg:.3f}", lr=f"{lr_at(state, args):.2e}", epoch=state["epoch"])
            step = state["step"]
            if step % args.eval_every == 0 or done():
                dev_wer = score_dev(model, processor, data, dev, starts)
                state["log"].append(
                    {"step": step, "loss": loss_avg, "dev_wer": dev_wer, "train_min": state["train_s"] / 60}
                )
                tqdm.write(
                    f"step {step}: loss {loss_avg:.3f} dev WER {100 * dev_wer:.2f} % "
                    f"train {state['train_s'] / 60:.1f} min"
                )
                sys.stdout.flush()
            if step % args.save_every == 0 or done():
                save()
            if args.stop_after_minutes and time.perf_counter() - session_start > 60 * args.stop_after_minutes:
                save()
                bar.close()
                print(f"stopped at step {step} after {args.stop_after_minutes} min; rerun to resume", flush=True)
                return
        if state["batch"] >= len(batches):
            state["epoch"] += 1
            state["batch"] = 0
    bar.close()
    print(
        f"trained {state['step']} steps in {state['train_s'] / 60:.1f} min ({state['epoch']} full epochs)",
        flush=True,
    )

    export(model, processor, work / "model")
    corpus = args.eval_corpus or work / "corpus"
    if args.eval_corpus is None:
        ensure_corpus(
            corpus,
            ["test-clean", "test-other"],
            {"test-clean": args.n_test, "test-other": args.n_test},
            args.seed,
        )
    results = evaluate_folder(work / "model", corpus)
    summary = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "parameters": n_params,
        "train_utterances": int(len(train_idx)),
        "train_hours": float(hours),
        "steps": state["step"],
        "epochs": state["epoch"],
        "train_min": state["train_s"] / 60,
        "log": state["log"],
        "test": results,
        "torch": torch.__version__,
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.eval_only is not None:
        evaluate_folder(args.eval_only, args.eval_corpus or args.work_dir / "corpus")
        return
    train(args)


if __name__ == "__main__":
    main()
