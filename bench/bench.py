"""Benchmark, side by side: the model card's script vs the harness, exact vs naive batching, the ONNX Runtime and
OpenVINO backends (fp32, batch size 1, where installed), overhead, memory.

Every method runs in its own process (so peak RSS is its own) over the same audio and the same model.
Usage: python bench/bench.py [--model base|tiny] [--limit N] [--repeat 10] [--batch-size 32] [--device cpu]
       python bench/bench.py --device cuda --batch-size 32 --speed-repeat 28   (GPU RTFx, test-clean-sized)
       python bench/bench.py --only memory --batch-size 8 --max-batch-s 160   (the peak-RSS rows alone)
Writes results/bench/bench.md and bench.json and prints the table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "tests" / "data" / "LibriSpeech"
OUT = ROOT / "results" / "bench"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_corpus(dest: Path, repeat: int, limit: int | None, audio: Path = AUDIO) -> Path:
    """An OpenSLR test-other tree holding `audio`'s test-other utterances `repeat` times (symlinks)."""
    from w2v2bench.data import local_utterances

    utts = local_utterances(audio, "test", "other")[:limit]
    if dest.exists():
        shutil.rmtree(dest)
    for r in range(repeat):
        lines: dict[Path, list[str]] = {}
        for u in utts:
            speaker = str(int(u.speaker) + 100_000 * r)
            folder = dest / "test-other" / speaker / u.chapter
            folder.mkdir(parents=True, exist_ok=True)
            utt_id = f"{speaker}-{u.chapter}-{u.id.split('-')[2]}"
            (folder / f"{utt_id}.flac").symlink_to(Path(u.path).resolve())
            lines.setdefault(folder / f"{speaker}-{u.chapter}.trans.txt", []).append(f"{utt_id} {u.text}")
        for path, text in lines.items():
            path.write_text("\n".join(text) + "\n")
    return dest


# ---- workers: one method each, run in a fresh process -------------------------------------------------


def worker_card(corpus: Path, model_dir: Path, args) -> dict:
    """The model card's evaluation script as written (class names ported to transformers 5)."""
    import soundfile as sf
    import torch
    from datasets import Dataset
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    from w2v2bench.data import local_utterances

    utts = local_utterances(corpus, "test", "other")
    start = time.perf_counter()
    librispeech_eval = Dataset.from_dict({"file": [u.path for u in utts], "text": [u.text for u in utts]})
    model = Wav2Vec2ForCTC.from_pretrained(model_dir).to(args.device)
    tokenizer = Wav2Vec2Processor.from_pretrained(model_dir)  # was Wav2Vec2Tokenizer

    def map_to_array(batch):
        speech, _ = sf.read(batch["file"])
        batch["speech"] = speech
        return batch

    librispeech_eval = librispeech_eval.map(map_to_array)

    def map_to_pred(batch):
        input_values = tokenizer(batch["speech"], return_tensors="pt", padding="longest").input_values
        with torch.no_grad():
            logits = model(input_values.to(args.device)).logits
        predicted_ids = torch.argmax(logits, dim=-1)
        transcription = tokenizer.batch_decode(predicted_ids)
        batch["transcription"] = transcription
        return batch

    result = librispeech_eval.map(map_to_pred, batched=True, batch_size=1, remove_columns=["speech"])
    texts = list(result["transcription"])
    return {"wall_s": time.perf_counter() - start, "texts": texts}


def worker_bare(corpus: Path, model_dir: Path, args) -> dict:
    """A bare batch-size-1 loop: read, processor, model, argmax, batch_decode; no datasets."""
    import soundfile as sf
    import torch
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    from w2v2bench.data import local_utterances

    utts = local_utterances(corpus, "test", "other")
    start = time.perf_counter()
    model = Wav2Vec2ForCTC.from_pretrained(model_dir).to(args.device).eval()
    processor = Wav2Vec2Processor.from_pretrained(model_dir)
    texts = []
    for u in utts:
        speech, _ = sf.read(u.path, dtype="float32")
        inputs = processor(speech, sampling_rate=16000, return_tensors="pt").input_values.to(args.device)
        with torch.inference_mode():
            ids = model(inputs).logits.argmax(dim=-1)
        texts.append(processor.batch_decode(ids)[0])
    return {"wall_s": time.perf_counter() - start, "texts": texts}


def worker_harness(
    corpus: Path,
    model_dir: Path,
    args,
    batching: str = "exact",
    backend: str = "torch",
    backend_precision: str = "fp32",
    recheck_margin: float | None = None,
) -> dict:
    """The harness's run loop (decode threads, length-sorted batches, device-side CTC), in-process; with another
    backend, its export comes from the cache (made beforehand, its time reported apart); with `recheck_margin`,
    doubtful utterances re-run in PyTorch fp32 (their time included)."""
    import transformers  # noqa: F401  (imported before the clock starts, as in the other methods)

    from w2v2bench.backends import make_backend
    from w2v2bench.data import local_utterances
    from w2v2bench.model import load_model
    from w2v2bench.run import run

    start = time.perf_counter()
    utts = local_utterances(corpus, "test", "other")
    transcriber = load_model(str(model_dir), device=args.device, batching=batching, precision=args.precision)
    if backend != "torch":
        exports = str(OUT / "exports")
        transcriber.use_backend(make_backend(backend, transcriber.model, exports, precision=backend_precision))
    transcriber.recheck_margin = recheck_margin
    done: list = []
    stats = run(
        utts,
        transcriber,
        lambda results: done.extend(results),
        batch_size=args.batch_size,
        max_batch_s=args.max_batch_s,
        window=args.window,
        workers=args.workers,
        progress=False,
    )
    texts = [r.pred_text for r in sorted(done, key=lambda r: r.index)]  # batches come longest first
    return {
        "wall_s": time.perf_counter() - start,
        "texts": texts,
        "model_s": stats.model_s,
        "run_wall_s": stats.wall_s,
        "padding_fraction": stats.padding_fraction,
        "audio_s": stats.audio_s,
        "rechecked": None if stats.precision_check is None else stats.precision_check.rechecked_utterances,
    }


def worker_forward(corpus: Path, model_dir: Path, args) -> dict:
    """Pure model forward on the harness's own batches: audio decoded and batches planned beforehand."""
    from w2v2bench.data import SAMPLE_RATE, decode, local_utterances, plan_batches
    from w2v2bench.model import load_model

    utts = local_utterances(corpus, "test", "other")
    transcriber = load_model(str(model_dir), device=args.device, precision=args.precision)
    inputs = [decode(u, transcriber.prepare).input_values for u in utts]
    windows = [inputs[i : i + args.window] for i in range(0, len(inputs), args.window)]
    start = time.perf_counter()
    for window in windows:
        for batch in plan_batches([len(x) for x in window], args.batch_size, int(args.max_batch_s * SAMPLE_RATE)):
            transcriber.forward([window[i] for i in batch])
    return {"wall_s": time.perf_counter() - start, "texts": []}


WORKERS = {
    "card": worker_card,
    "bare": worker_bare,
    "harness": worker_harness,
    "naive": lambda c, m, a: worker_harness(c, m, a, batching="naive"),
    "forward": worker_forward,
    "onnxruntime": lambda c, m, a: worker_harness(c, m, a, backend="onnxruntime"),
    "openvino": lambda c, m, a: worker_harness(c, m, a, backend="openvino"),
}
RUNTIMES = ("onnxruntime", "openvino")  # rows where the package imports; fp32, batch size 1 (no masks in the export)
# the runtime rows: label -> (backend, backend.precision, torch precision, recheck_margin); batch size 1 each
VARIANTS = {
    "onnxruntime fp32": ("onnxruntime", "fp32", "fp32", None),
    "onnxruntime int8": ("onnxruntime", "int8", "fp32", None),
    "openvino fp32": ("openvino", "fp32", "fp32", None),
    "openvino bf16": ("openvino", "bf16", "fp32", None),
    "openvino bf16 + recheck": ("openvino", "bf16", "fp32", "margin"),
    "torch bf16 + recheck": ("torch", "fp32", "bf16", "margin"),
}


def worker_variant(name: str):
    backend, backend_precision, precision, margin = VARIANTS[name]

    def work(corpus: Path, model_dir: Path, args) -> dict:
        args.precision = precision
        margin_value = args.recheck_margin if margin else None
        return worker_harness(corpus, model_dir, args, backend=backend, backend_precision=backend_precision,
                              recheck_margin=margin_value)  # fmt: skip

    return work


WORKERS |= {f"variant:{name}": worker_variant(name) for name in VARIANTS}


def export_once(model_dir: Path) -> float | None:
    """The ONNX export the runtime rows share, made before they are timed; its seconds (None: already cached)."""
    from w2v2bench.backends.export import export_onnx
    from w2v2bench.model import load_model

    exported = export_onnx(load_model(str(model_dir)).model, OUT / "exports")
    if importlib.util.find_spec("onnxruntime") is not None:
        from w2v2bench.backends.export import quantize_int8

        quantize_int8(exported)  # the int8 row's weights, made before it is timed too
    return None if exported.cached else exported.export_s


def run_worker(method: str, corpus: Path, model_dir: Path, args, **overrides) -> dict:
    """Run one method in a fresh process; returns its result with its own peak RSS."""
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        method,
        "--corpus",
        str(corpus),
        "--model-dir",
        str(model_dir),
    ]
    settings = {**vars(args), **overrides}
    for key in ("batch_size", "max_batch_s", "window", "workers", "device", "precision", "recheck_margin"):
        cmd += [f"--{key.replace('_', '-')}", str(settings[key])]
    out = OUT / f"worker-{method}.json"
    done = subprocess.run(cmd + ["--worker-out", str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench worker {method} failed:\n{done.stderr[-3000:]}")
    result = json.loads(out.read_text())
    print(
        f"  {method:8s} {settings['batch_size']:>3} x  {result['wall_s']:7.1f} s  {result['rss_mb']:7.0f} MB",
        flush=True,
    )
    return result


def growth(small: dict, big: dict) -> str:
    return f"{small['rss_mb']:.0f} -> {big['rss_mb']:.0f} MB ({(big['rss_mb'] / small['rss_mb'] - 1) * 100:+.1f} %)"


def identical(a: list[str], b: list[str]) -> float:
    return 100.0 * sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def write_outputs(name: str, table: str, results: dict[str, dict], args) -> None:
    """results/bench/NAME.md (the table) and NAME.json (every method's measurements), and print the table."""
    (OUT / f"{name}.md").write_text(table + "\n")
    for r in results.values():
        r.pop("texts", None)
    (OUT / f"{name}.json").write_text(
        json.dumps({"args": vars(args) | {"corpus": None}, "results": results}, indent=2, default=str)
    )
    print()
    print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        choices=["base", "tiny", "demo"],
        default="base",
        help="base, tiny: random weights of that architecture; demo: the shipped trained demo model",
    )
    parser.add_argument(
        "--recheck-margin", type=float, default=1.0, help="recheck_margin of the '+ recheck' runtime rows"
    )
    parser.add_argument("--limit", type=int, default=None, help="first N test-other utterances (default: all 100)")
    parser.add_argument("--repeat", type=int, default=10, help="corpus repetitions for the memory row")
    parser.add_argument(
        "--speed-repeat",
        type=int,
        default=1,
        help="corpus repetitions for the speed rows (28: 5.96 h, about test-clean's 5.4 h, for a GPU RTFx)",
    )
    parser.add_argument(
        "--rss-model",
        choices=["base", "tiny"],
        default="tiny",
        help="model for the 1x vs 10x memory rows (memory growth is about data, not weights)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-batch-s", type=float, default=1000.0)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--rss-window", type=int, default=100, help="sort_window of the memory rows")
    parser.add_argument("--workers", type=int, default=None, help="decode threads (default: as the harness, 0 on CPU)")
    parser.add_argument(
        "--only",
        choices=["all", "memory", "runtimes"],
        default="all",
        help="'memory': only the peak-RSS rows (1x vs --repeat x corpus), written to bench-memory.md; 'runtimes': "
        "the card script, the harness at bs 1 and every runtime and precision variant, to bench-runtimes.md",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workers is None:  # as the harness decides it
        args.workers = 0 if args.device == "cpu" else 4

    if args.worker:
        result = WORKERS[args.worker](args.corpus, args.model_dir, args)
        result["rss_mb"] = peak_rss_mb()
        args.worker_out.write_text(json.dumps(result))
        return

    import torch

    from w2v2bench import random_model

    OUT.mkdir(parents=True, exist_ok=True)
    models = {size: OUT / f"model-{size}" for size in {args.model, args.rss_model}}
    for size, folder in models.items():
        if size == "demo":
            from w2v2bench.config import asset_path

            models[size] = Path(asset_path("demo-model"))
        elif not (folder / "config.json").exists():
            random_model.build(folder, size, "group", seed=0)
    weights = (
        "the trained demo model" if args.model == "demo" else f"wav2vec2-{args.model} architecture, random weights"
    )
    if args.model == "demo":  # it knows the synthetic speech it was trained on, not LibriSpeech's
        from w2v2bench.config import asset_path

        demo = make_corpus(OUT / "corpus-demo", args.speed_repeat, args.limit, Path(asset_path("demo-corpus")))
        print(f"bench: {weights} on the demo corpus's test-other, cpu, {torch.get_num_threads()} threads")
        runtimes_table(demo, models["demo"], weights, args)
        return
    one = make_corpus(OUT / "corpus-x1", 1, args.limit)
    corpus = one if args.speed_repeat == 1 else make_corpus(OUT / "corpus-speed", args.speed_repeat, args.limit)
    big = make_corpus(OUT / f"corpus-x{args.repeat}", args.repeat, args.limit)
    model = models[args.model]
    print(f"bench: {weights}, {args.device}, {torch.get_num_threads()} threads")
    rss_model = models[args.rss_model]

    def memory_rows() -> list[str]:
        rss1 = run_worker("harness", one, rss_model, args, window=args.rss_window)
        rss10 = run_worker("harness", big, rss_model, args, window=args.rss_window)
        card1 = run_worker("card", one, rss_model, args, batch_size=1)
        card10 = run_worker("card", big, rss_model, args, batch_size=1)
        memory.update(rss_1x=rss1, rss_big=rss10, card_rss_1x=card1, card_rss_big=card10)
        return [
            f"| harness peak RSS, 1x -> {args.repeat}x corpus (wav2vec2-{args.rss_model}, "
            f"sort_window {args.rss_window}, bs {args.batch_size}) | {growth(rss1, rss10)} |",
            f"| card script peak RSS, 1x -> {args.repeat}x corpus (wav2vec2-{args.rss_model}) | "
            f"{growth(card1, card10)} |",
        ]

    memory: dict[str, dict] = {}
    if args.only == "memory":
        table = "\n".join(["| measurement | value |", "|---|---:|", *memory_rows()])
        write_outputs("bench-memory", table, memory, args)
        return

    if args.only == "runtimes":
        runtimes_table(corpus, model, weights, args)
        return

    card = run_worker("card", corpus, model, args, batch_size=1)
    bare = run_worker("bare", corpus, model, args, batch_size=1)
    h1 = run_worker("harness", corpus, model, args, batch_size=1)
    hb = run_worker("harness", corpus, model, args)
    naive = run_worker("naive", corpus, model, args)
    forward = run_worker("forward", corpus, model, args)
    runtimes, export_s = {}, None
    available = [rt for rt in RUNTIMES if importlib.util.find_spec(rt) is not None]
    if available and args.device == "cpu":
        export_s = export_once(model)
        runtimes = {rt: run_worker(rt, corpus, model, args, batch_size=1) for rt in available}
    mem_rows = memory_rows()

    audio_s = h1["audio_s"]
    bs = args.batch_size
    rows = [
        (
            "card script (datasets.map, bs 1) vs harness bs 1",
            card["wall_s"] / h1["wall_s"],
            card["rss_mb"] / h1["rss_mb"],
            identical(card["texts"], h1["texts"]),
        ),
        (
            f"card script vs harness exact bs {bs}",
            card["wall_s"] / hb["wall_s"],
            card["rss_mb"] / hb["rss_mb"],
            identical(card["texts"], hb["texts"]),
        ),
        (
            "bare bs-1 loop vs harness bs 1",
            bare["wall_s"] / h1["wall_s"],
            bare["rss_mb"] / h1["rss_mb"],
            identical(bare["texts"], h1["texts"]),
        ),
        (
            f"bare bs-1 loop vs harness exact bs {bs}",
            bare["wall_s"] / hb["wall_s"],
            bare["rss_mb"] / hb["rss_mb"],
            identical(bare["texts"], hb["texts"]),
        ),
        (
            f"harness bs 1 vs harness exact bs {bs}",
            h1["wall_s"] / hb["wall_s"],
            h1["rss_mb"] / hb["rss_mb"],
            identical(h1["texts"], hb["texts"]),
        ),
        (
            f"naive padded bs {bs} (processor padding, no masks) vs bs 1",
            h1["wall_s"] / naive["wall_s"],
            h1["rss_mb"] / naive["rss_mb"],
            identical(naive["texts"], h1["texts"]),
        ),
        *[
            (
                f"card script vs harness {rt} fp32 bs 1",
                card["wall_s"] / result["wall_s"],
                card["rss_mb"] / result["rss_mb"],
                identical(card["texts"], result["texts"]),
            )
            for rt, result in runtimes.items()
        ],
        *[
            (
                f"harness bs 1 (torch) vs harness {rt} fp32 bs 1",
                h1["wall_s"] / result["wall_s"],
                h1["rss_mb"] / result["rss_mb"],
                identical(h1["texts"], result["texts"]),
            )
            for rt, result in runtimes.items()
        ],
    ]
    lines = [
        f"Audio: {len(h1['texts'])} real LibriSpeech test-other utterances ({audio_s:.1f} s) from tests/data"
        f"{f' (repeated {args.speed_repeat}x)' if args.speed_repeat > 1 else ''}; "
        f"model: {weights}; device {args.device}, "
        f"{args.precision}, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}).",
        "",
        "| comparison | speed-up (A wall / B wall) | peak RSS ratio (A / B) | transcripts identical |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {speed:.2f}x | {rss:.2f} | {same:.0f} % |" for name, speed, rss, same in rows],
        "",
        "| measurement | value |",
        "|---|---:|",
        f"| card script wall / RTFx | {card['wall_s']:.1f} s / {audio_s / card['wall_s']:.1f} |",
        f"| bare bs-1 loop wall / RTFx | {bare['wall_s']:.1f} s / {audio_s / bare['wall_s']:.1f} |",
        f"| harness bs 1 wall / RTFx | {h1['wall_s']:.1f} s / {audio_s / h1['wall_s']:.1f} |",
        f"| harness exact bs {bs} wall / RTFx | {hb['wall_s']:.1f} s / {audio_s / hb['wall_s']:.1f} |",
        f"| harness exact bs {bs} padding fraction | {hb['padding_fraction'] * 100:.1f} % |",
        f"| harness overhead: run loop wall / pure forward wall, bs {bs} | "
        f"{hb['run_wall_s'] / forward['wall_s']:.3f} |",
        *[
            f"| harness {rt} fp32 bs 1 wall / RTFx | {r['wall_s']:.1f} s / {audio_s / r['wall_s']:.1f} |"
            for rt, r in runtimes.items()
        ],
        *([f"| ONNX export (made once, cached; outside the runtime rows) | {export_s:.1f} s |"] if export_s else []),
        *mem_rows,
        "",
        "Wall times include model loading in every method; the overhead row compares the harness's run loop "
        "(audio decoding, batching, CTC, scoring, writing) with model forwards alone on the same batches.",
    ]
    table = "\n".join(lines)
    (OUT / "bench.md").write_text(table + "\n")
    results = {
        "card": card,
        "bare": bare,
        "harness_bs1": h1,
        "harness_batched": hb,
        "naive": naive,
        "forward": forward,
        **runtimes,
        **({"onnx_export": {"export_s": export_s}} if export_s else {}),
        **memory,
    }
    write_outputs("bench", table, results, args)


def runtimes_table(corpus: Path, model: Path, weights: str, args) -> None:
    """The card script, the harness at batch size 1 (torch fp32, the reference) and every runtime variant whose
    package is installed, on the same audio in one run; transcripts compared with torch fp32's."""
    if args.device != "cpu":
        raise SystemExit("bench: --only runtimes runs on the CPU (the runtimes' CPU plugins)")
    export_s = export_once(model) if any(importlib.util.find_spec(rt) for rt in RUNTIMES) else None
    card = run_worker("card", corpus, model, args, batch_size=1)
    torch_fp32 = run_worker("harness", corpus, model, args, batch_size=1)
    results = {"card": card, "harness torch fp32": torch_fp32}
    for name, (backend, *_) in VARIANTS.items():
        if backend == "torch" or importlib.util.find_spec(backend) is not None:
            results[name] = run_worker(f"variant:{name}", corpus, model, args, batch_size=1)
    audio_s, n = torch_fp32["audio_s"], len(torch_fp32["texts"])
    rows = []
    for name, r in results.items():
        rechecked = "" if r.get("rechecked") is None else f"{r['rechecked']} / {n}"
        rows.append(
            f"| {name} | {r['wall_s']:.1f} s | {audio_s / r['wall_s']:.1f} | {card['wall_s'] / r['wall_s']:.2f}x | "
            f"{r['rss_mb']:.0f} MB | {identical(torch_fp32['texts'], r['texts']):.0f} % | {rechecked} |"
        )
    lines = [
        f"Audio: {n} {'synthetic (demo corpus)' if args.model == 'demo' else 'real LibriSpeech (tests/data)'} "
        f"test-other utterances ({audio_s:.1f} s); model: {weights}; "
        f"CPU, batch size 1, {os.cpu_count()} cores; recheck_margin {args.recheck_margin:g} in the '+ recheck' rows.",
        "",
        "| method | wall | RTFx | speed-up vs card script | peak RSS | transcripts = torch fp32 | re-run in fp32 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        *([f"| ONNX export (made once, cached; outside the rows) | {export_s:.1f} s |||||"] if export_s else []),
        "",
        "Wall times include model loading (and the runtimes' compilation); every method runs in its own process.",
    ]
    write_outputs("bench-runtimes", "\n".join(lines), results, args)


if __name__ == "__main__":
    main()
