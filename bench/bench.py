"""Benchmark, side by side: the model card's script vs the harness, exact vs naive batching, the ONNX Runtime and
OpenVINO backends (fp32, batch size 1, where installed), overhead, memory.

Every method runs in its own process (so peak RSS is its own) over the same audio and the same model.
Usage: python bench/bench.py [--model base|tiny] [--limit N] [--repeat 10] [--batch-size 32] [--device cpu]
       python bench/bench.py --device cuda --batch-size 32 --speed-repeat 28   (GPU RTFx, test-clean-sized)
       python bench/bench.py --only memory --batch-size 8 --max-batch-s 160   (the peak-RSS rows alone)
Writes results/bench/bench.md and bench.json (W2V2BENCH_BENCH_OUT=<folder>: there instead) and prints the table.
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
# where it writes (models, corpora, exports, tables); its workers inherit the variable
OUT = Path(os.environ.get("W2V2BENCH_BENCH_OUT") or ROOT / "results" / "bench")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_corpus(dest: Path, repeat: int, limit: int | None, audio: Path = AUDIO) -> Path:
    """An OpenSLR test-other tree holding `audio`'s test-other utterances `repeat` times (symlinks)."""
    from w2v2bench.data.local import local_utterances

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

    from w2v2bench.data.local import local_utterances

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
        if getattr(args, "first_batch", False):
            first_batch(args)  # the fixed-cost row: the process ends as its first batch reaches the model
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

    from w2v2bench.data.local import local_utterances

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
    import torch
    import transformers  # noqa: F401  (imported before the clock starts, as in the other methods)

    from w2v2bench.backends.onnxruntime import OnnxRuntimeBackend
    from w2v2bench.backends.openvino import OpenVinoBackend
    from w2v2bench.data.local import local_utterances
    from w2v2bench.model import load_model
    from w2v2bench.pipeline import run

    if getattr(args, "tf32", False):  # fp32 storage, TF32 tensor-core matmuls and convolutions
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    start = time.perf_counter()
    utts = local_utterances(corpus, "test", "other")
    transcriber = load_model(str(model_dir), device=args.device, batching=batching, precision=args.precision)
    load_s = time.perf_counter() - start
    runtime = None
    if backend != "torch":
        cls = {"onnxruntime": OnnxRuntimeBackend, "openvino": OpenVinoBackend}[backend]
        runtime = cls.create(cls.Settings(cache=str(OUT / "exports"), precision=backend_precision), transcriber.model)
    transcriber.use_backend(runtime, recheck_margin)
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
        "load_s": load_s,
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
    }


def worker_forward(corpus: Path, model_dir: Path, args) -> dict:
    """Pure model forward on the harness's own batches: audio decoded and batches planned beforehand."""
    from w2v2bench.data import SAMPLE_RATE
    from w2v2bench.data.audio import decode
    from w2v2bench.data.batching import plan_batches
    from w2v2bench.data.local import local_utterances
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


def first_batch(args) -> None:
    """The fixed-cost rows: the wall clock when the first batch reaches the model, written for the parent, which
    noted the clock before it started this process; the process ends here."""
    args.worker_out.write_text(json.dumps({"first_batch": time.time(), "wall_s": 0.0, "texts": [], "rss_mb": 0.0}))
    os._exit(0)


def worker_fixed_harness(corpus: Path, model_dir: Path, args) -> dict:
    """The harness's command line (cli/bench.main, what `python -m w2v2bench` runs) up to its first batch."""
    from w2v2bench import model as model_module
    from w2v2bench.cli import bench

    forward = model_module.Transcriber.forward

    def hooked(self, *a, **k):
        first_batch(args)
        return forward(self, *a, **k)

    model_module.Transcriber.forward = hooked
    sys.argv = [
        "w2v2bench", f"model.checkpoint={model_dir}", "model.name=bench", "model.reference=null", "data=local",
        f"data.root={corpus}", "split=other", "device=cpu", "batch_size=1", f"output_dir={OUT / 'fixed-run'}",
    ]  # fmt: skip
    shutil.rmtree(OUT / "fixed-run", ignore_errors=True)
    bench.main()
    raise SystemExit("the harness ended without a batch")


def worker_cli(corpus: Path, model_dir: Path, args) -> dict:
    """The harness's command line end to end (what `python -m w2v2bench ... batch_size=1` runs, outputs written):
    the parent times the whole process."""
    from w2v2bench.cli import bench

    out = OUT / "cli-run"
    shutil.rmtree(out, ignore_errors=True)
    sys.argv = [
        "w2v2bench", f"model.checkpoint={model_dir}", "model.name=bench", "model.reference=null", "data=local",
        f"data.root={corpus}", "split=other", f"device={args.device}", f"batch_size={args.batch_size}",
        f"max_batch_s={args.max_batch_s}", f"sort_window={args.window}", "progress=false", f"output_dir={out}",
    ]  # fmt: skip
    try:
        bench.main()
    except SystemExit as done:
        if done.code:
            raise
    rows = [json.loads(line) for line in (out / "transcripts.jsonl").read_text().splitlines()]
    return {"wall_s": 0.0, "texts": [r["pred_text"] for r in rows]}


WORKERS = {
    "card": worker_card,
    "cli": worker_cli,
    "fixed:card": lambda c, m, a: worker_card(c, m, argparse.Namespace(**vars(a), first_batch=True)),
    "fixed:harness": worker_fixed_harness,
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
    "torch fp32": ("torch", "fp32", "fp32", None),
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
        from w2v2bench.cli import reuse_freed_host_memory

        reuse_freed_host_memory()  # the process as the command line sets it up (the rows compare with its speed)
        args.precision = precision
        margin_value = args.recheck_margin if margin else None
        return worker_harness(corpus, model_dir, args, backend=backend, backend_precision=backend_precision,
                              recheck_margin=margin_value)  # fmt: skip

    return work


WORKERS |= {f"variant:{name}": worker_variant(name) for name in VARIANTS}


def worker_export(corpus: Path, model_dir: Path, args) -> dict:
    """The ONNX export the runtime rows share (and the int8 row's weights), made before they are timed."""
    from w2v2bench.backends.onnx_export import export_onnx
    from w2v2bench.model import load_model

    exported = export_onnx(load_model(str(model_dir)).model, OUT / "exports")
    if importlib.util.find_spec("onnxruntime") is not None:
        from w2v2bench.backends.onnx_export import quantize_int8

        quantize_int8(exported)
    return {"wall_s": 0.0, "texts": [], "export_s": None if exported.cached else exported.export_s}


WORKERS["export"] = worker_export


def export_once(corpus: Path, model_dir: Path, args) -> float | None:
    """The export, in its own process (this one stays small: a worker's peak RSS starts from its parent's at fork);
    its seconds, or None when it was cached already."""
    return run_worker("export", corpus, model_dir, args, batch_size=1)["export_s"]


def run_worker(method: str, corpus: Path, model_dir: Path, args, quiet: bool = False, **overrides) -> dict:
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
    if settings.get("tf32"):
        cmd.append("--tf32")
    out = OUT / f"worker-{method}.json"
    spawned = time.perf_counter()
    done = subprocess.run(cmd + ["--worker-out", str(out)], capture_output=True, text=True)
    process_s = time.perf_counter() - spawned  # interpreter start, imports, the work and exit: what a user waits
    if done.returncode != 0:
        raise SystemExit(f"bench worker {method} failed:\n{done.stderr[-3000:]}")
    result = json.loads(out.read_text()) | {"process_s": process_s}
    if quiet:
        return result
    print(
        f"  {method:8s} {settings['batch_size']:>3} x  {result['wall_s']:7.1f} s  {result['rss_mb']:7.0f} MB",
        flush=True,
    )
    return result


def fixed_costs(corpus: Path, model_dir: Path, args) -> dict[str, list[float]]:
    """Card script vs harness command line on one utterance, interleaved --fixed-passes times, seconds per pass:
    process start to first batch (`first:`), and the whole process, start to exit (`whole:`)."""
    seconds: dict[str, list[float]] = {"first:card": [], "first:harness": [], "whole:card": [], "whole:harness": []}
    for _ in range(args.fixed_passes):
        for method in ("card", "harness"):
            start = time.time()
            result = run_worker(f"fixed:{method}", corpus, model_dir, args, batch_size=1, quiet=True)
            seconds[f"first:{method}"].append(result["first_batch"] - start)
        for method, worker in (("card", "card"), ("harness", "cli")):
            result = run_worker(worker, corpus, model_dir, args, batch_size=1, quiet=True)
            seconds[f"whole:{method}"].append(result["process_s"])
    return seconds


def fixed_rows(seconds: dict[str, list[float]]) -> list[str]:
    """`| fixed cost ... |` rows: medians, ranges and the ratio (card / harness: above 1, the harness is sooner)."""
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    rows = []
    for part, what in (("first", "process start to first batch"), ("whole", "one utterance, process start to exit")):
        card, harness = seconds[f"{part}:card"], seconds[f"{part}:harness"]
        ratios = sorted(c / h for c, h in zip(card, harness, strict=True))
        rows.append(
            f"| fixed cost: {what}, card script / harness command line (median of {len(card)}, interleaved) | "
            f"{median(card):.2f} s [{min(card):.2f}-{max(card):.2f}] / {median(harness):.2f} s "
            f"[{min(harness):.2f}-{max(harness):.2f}] = {median(card) / median(harness):.3f} "
            f"(per pass {ratios[0]:.3f}-{ratios[-1]:.3f}) |"
        )
    return rows


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
        choices=["all", "memory", "runtimes", "gpu", "fixed", "bs1"],
        default="all",
        help="'memory': only the peak-RSS rows (1x vs --repeat x corpus), written to bench-memory.md; 'runtimes': "
        "the card script, the harness at bs 1 and every runtime and precision variant, to bench-runtimes.md; "
        "'gpu': batch sizes x precisions (--gpu-batch-sizes, fp32/tf32/bf16) against bs 1 fp32, the card script, "
        "naive padding and a profile of one batch, to bench-gpu.md (bench/gpu_check.sh runs it); 'fixed': card "
        "script vs the harness's command line on one utterance, process start to first batch and to exit, "
        "--fixed-passes interleaved, to bench-fixed.md; "
        "'bs1': batch size 1 on CPU, the card script, a bare loop, the harness and its forwards alone, --passes "
        "interleaved, medians, ranges and ratios, to bench-bs1.md",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tf32", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fixed-passes", type=int, default=5, help="interleaved passes of the fixed-cost row")
    parser.add_argument("--passes", type=int, default=3, help="interleaved passes of --only runtimes (median wall)")
    parser.add_argument("--gpu-batch-sizes", default="16,32,64,128", help="the batch sizes of --only gpu")
    parser.add_argument("--precisions", default="fp32,tf32,bf16", help="the precisions of --only gpu")
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

    from w2v2bench.testing import random_model

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
        cli1 = run_worker("cli", one, rss_model, args, window=args.rss_window)
        cli10 = run_worker("cli", big, rss_model, args, window=args.rss_window)
        card1 = run_worker("card", one, rss_model, args, batch_size=1)
        card10 = run_worker("card", big, rss_model, args, batch_size=1)
        memory.update(rss_1x=rss1, rss_big=rss10, cli_rss_1x=cli1, cli_rss_big=cli10, card_rss_1x=card1,
                      card_rss_big=card10)  # fmt: skip
        return [
            f"| harness run loop peak RSS, 1x -> {args.repeat}x corpus (wav2vec2-{args.rss_model}, "
            f"sort_window {args.rss_window}, bs {args.batch_size}) | {growth(rss1, rss10)} |",
            f"| harness command line peak RSS, 1x -> {args.repeat}x corpus (the same; glibc keeps freed memory for "
            f"reuse) | {growth(cli1, cli10)} |",
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
    if args.only == "fixed":
        seconds = fixed_costs(make_corpus(OUT / "corpus-one", 1, 1), model, args)
        table = "\n".join([f"Model: {weights}, {args.device}; one test-other utterance.", "",
                           "| measurement | value |", "|---|---:|", *fixed_rows(seconds)])  # fmt: skip
        write_outputs("bench-fixed", table, {"fixed_cost_s": seconds}, args)
        return
    if args.only == "gpu":
        gpu_table(corpus, model, weights, args)
        return
    if args.only == "bs1":
        bs1_table(corpus, model, weights, args)
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
        export_s = export_once(corpus, model, args)
        runtimes = {rt: run_worker(rt, corpus, model, args, batch_size=1) for rt in available}
    mem_rows = memory_rows()
    fixed = fixed_costs(make_corpus(OUT / "corpus-one", 1, 1), model, args)

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
        *fixed_rows(fixed),
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
        "fixed_cost_s": fixed,
    }
    write_outputs("bench", table, results, args)


def worker_profile(corpus: Path, model_dir: Path, args) -> dict:
    """Where one batch's time goes, each step synchronised: host decode (FLAC + resampling + normalisation), padding
    on the host, H2D copy, model, argmax + CTC collapse on the device, D2H of the ids, text + scoring on the host."""
    import torch

    from w2v2bench.data.audio import decode
    from w2v2bench.data.local import local_utterances
    from w2v2bench.metrics.edits import utterance_counts
    from w2v2bench.metrics.normalizers import normalizer
    from w2v2bench.model import load_model

    device = torch.device(args.device)

    def sync() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    transcriber = load_model(str(model_dir), device=args.device, precision=args.precision)
    utts = local_utterances(corpus, "test", "other")[: args.batch_size]
    times: dict[str, list[float]] = {}
    for rep in range(4):  # the first is the warm-up, left out
        t0 = sync()
        decoded = [decode(u, transcriber.prepare) for u in utts]
        t1 = sync()
        lengths = torch.tensor([len(d.input_values) for d in decoded])
        batch = torch.zeros(len(decoded), int(lengths.max()))
        for row, d in zip(batch, decoded, strict=True):
            row[: len(d.input_values)] = torch.from_numpy(d.input_values)
        t2 = sync()
        on_device = batch.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else batch
        lengths_device = lengths.to(device)
        t3 = sync()
        mask = torch.arange(on_device.shape[1], device=device)[None, :] < lengths_device[:, None]
        with torch.inference_mode(), transcriber._autocast(transcriber.precision):
            logits = transcriber.model(on_device, attention_mask=mask.long()).logits
        t4 = sync()
        from w2v2bench.ctc import collapse

        ids = logits.argmax(dim=-1)
        frames = transcriber.frames(lengths_device)
        t5 = sync()
        host_ids = collapse(ids, frames, transcriber.tokens.blank_id)  # D2H of the surviving ids
        t6 = sync()
        normalize = normalizer(None)
        for d, i in zip(decoded, host_ids, strict=True):
            utterance_counts(d.utterance.text, transcriber.text(i), normalize)
        t7 = sync()
        if rep:
            for name, (a, b) in {
                "host decode": (t0, t1), "host padding": (t1, t2), "H2D copy": (t2, t3), "model": (t3, t4),
                "argmax": (t4, t5), "collapse + D2H": (t5, t6), "text + scoring": (t6, t7),
            }.items():  # fmt: skip
                times.setdefault(name, []).append(b - a)
    audio_s = float(lengths.sum()) / 16000
    return {
        "wall_s": 0.0,
        "texts": [],
        "steps": {k: sorted(v)[len(v) // 2] for k, v in times.items()},
        "audio_s": audio_s,
    }


WORKERS["profile"] = worker_profile


def gpu_table(corpus: Path, model: Path, weights: str, args) -> None:
    """Batch sizes x precisions of the harness end to end against batch size 1 fp32 (the card's protocol), the card
    script and naive padding on the same audio, model-only and end-to-end RTFx, GPU memory peak, transcripts
    identical to batch size 1 fp32, and where one batch's time goes."""
    sizes = [int(b) for b in args.gpu_batch_sizes.split(",")]
    precisions = args.precisions.split(",")
    results: dict[str, dict] = {}
    rows: list[str] = []
    header = [
        "| method | model-only RTFx | end-to-end RTFx (run loop) | end-to-end RTFx (with model load) | model load | "
        "padding | GPU memory peak | transcripts = bs 1 fp32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    reference = run_worker("harness", corpus, model, args, batch_size=1, precision="fp32")
    audio_s, n = reference["audio_s"], len(reference["texts"])

    def add(key: str, name: str, r: dict) -> None:
        """One row, and the table so far written at once: a check cut off by its time limit keeps what it measured."""
        results[key] = r
        model_rtfx = f"{audio_s / r['model_s']:.0f}" if r.get("model_s") else "–"
        run_s = r.get("run_wall_s") or r["wall_s"]
        peak = f"{r['gpu_peak_mb']:.0f} MB" if r.get("gpu_peak_mb") else "–"
        pad = f"{r['padding_fraction'] * 100:.1f} %" if r.get("padding_fraction") is not None else "–"
        load = f"{r['load_s']:.1f} s" if r.get("load_s") is not None else "–"
        same = identical(reference["texts"], r["texts"])
        rows.append(
            f"| {name} | {model_rtfx} | {audio_s / run_s:.0f} | {audio_s / r['wall_s']:.0f} | {load} | {pad} | "
            f"{peak} | {same:.1f} % |"
        )
        (OUT / "bench-gpu.partial.md").write_text("\n".join([*header, *rows]) + "\n")

    add("reference", "harness bs 1 fp32 (reference)", reference)
    for precision in precisions:
        for size in sizes:
            overrides = {"batch_size": size, "precision": "fp32" if precision == "tf32" else precision}
            r = run_worker("harness", corpus, model, args, tf32=precision == "tf32", **overrides)
            add(f"{precision} bs {size}", f"harness exact bs {size} {precision}", r)
    add("naive", f"naive padding bs {sizes[0]} fp32", run_worker("naive", corpus, model, args, batch_size=sizes[0]))
    profile = run_worker("profile", corpus, model, args, batch_size=sizes[-1], precision="fp32")
    results["profile"] = profile
    add("card", "card script, bs 1", run_worker("card", corpus, model, args, batch_size=1, precision="fp32"))
    steps = profile["steps"]
    total = sum(steps.values())
    lines = [
        f"Audio: {n} utterances, {audio_s / 3600:.2f} h (the shipped test-other audio repeated "
        f"{args.speed_repeat}x); model: {weights}; device {args.device}.",
        "",
        *header,
        *rows,
        "",
        f"Where one batch's time goes (bs {sizes[-1]}, fp32, {profile['audio_s']:.0f} s of audio, median of 3 after a "
        "warm-up; the run loop overlaps host decoding with the model when num_workers > 0):",
        "",
        "| step | time | share |",
        "|---|---:|---:|",
        *[f"| {k} | {v * 1000:.1f} ms | {v / total * 100:.0f} % |" for k, v in steps.items()],
        "",
        "Model-only RTFx: audio over the synchronised forward time (warm-up batch excluded); end to end: audio over "
        "the run loop's wall (FLAC decoding, resampling, normalisation, batching, CTC, scoring and writing rows "
        "included), and with model loading too.",
    ]
    write_outputs("bench-gpu", "\n".join(lines), results, args)


def bs1_table(corpus: Path, model: Path, weights: str, args) -> None:
    """Batch size 1 on the CPU, the card protocol, each method a process timed from spawn to exit (interpreter,
    imports, model load, the work: what a user waits): the card script, a bare loop, the harness's command line
    (outputs written) and its run loop in-process; and the harness's forwards alone. Interleaved (A B C D E, ...)
    --passes times: each method's median and range, and the ratios of the medians with the per-pass range."""
    methods = {"card script": "card", "bare loop": "bare", "harness command line": "cli",
               "harness run loop in-process": "harness", "forwards alone": "forward"}  # fmt: skip
    passes: dict[str, list[dict]] = {name: [] for name in methods}
    for _ in range(args.passes):
        for name, worker in methods.items():
            passes[name].append(run_worker(worker, corpus, model, args, batch_size=1))
    process = {name: [r["process_s"] for r in runs] for name, runs in passes.items()}
    loops = [r["run_wall_s"] for r in passes["harness run loop in-process"]]
    forwards = [r["wall_s"] for r in passes["forwards alone"]]

    def med(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    def ratio(a: list[float], b: list[float], what: str) -> str:
        per_pass = sorted(x / y for x, y in zip(a, b, strict=True))
        return f"| {what} | {med(a) / med(b):.3f} | {per_pass[0]:.3f}-{per_pass[-1]:.3f} |"

    cli, card = passes["harness command line"][0], passes["card script"][0]
    n, audio_s = len(cli["texts"]), passes["harness run loop in-process"][0]["audio_s"]
    shown = ("card script", "bare loop", "harness command line", "harness run loop in-process")
    lines = [
        f"Audio: {n} test-other utterances ({audio_s:.1f} s, tests/data); model: {weights}; CPU, batch size 1, "
        f"{os.cpu_count()} cores; {args.passes} passes, the methods interleaved in each.",
        "",
        "| method (process wall: spawn to exit) | median | range |",
        "|---|---:|---:|",
        *[
            f"| {name} | {med(process[name]):.1f} s | {min(process[name]):.1f}-{max(process[name]):.1f} s |"
            for name in shown
        ],  # fmt: skip
        f"| the run loop alone (no start-up, no load) | {med(loops):.1f} s | {min(loops):.1f}-{max(loops):.1f} s |",
        f"| its forwards alone (audio decoded beforehand) | {med(forwards):.1f} s | "
        f"{min(forwards):.1f}-{max(forwards):.1f} s |",
        "",
        "| ratio | median / median | per-pass range |",
        "|---|---:|---:|",
        ratio(process["card script"], process["harness command line"], "card script / harness command line"),
        ratio(process["card script"], process["harness run loop in-process"], "card script / harness run loop process"),
        ratio(process["bare loop"], process["harness run loop in-process"], "bare loop / harness run loop process"),
        ratio(loops, forwards, "run loop / its forwards alone (the loop's overhead)"),
        "",
        f"Above 1: the harness is faster. Transcripts identical, card script vs harness command line: "
        f"{identical(card['texts'], cli['texts']):.0f} %. The command line also hashes the weights, writes every "
        "output (transcripts, summary, tables, analysis, plot) and checks the reference.",
    ]
    write_outputs("bench-bs1", "\n".join(lines), {"process_s": process, "run_loop_s": {"loop": loops}}, args)


def runtimes_table(corpus: Path, model: Path, weights: str, args) -> None:
    """The card script, the harness at batch size 1 (torch fp32, the reference) and every runtime variant whose
    package is installed, on the same audio in one run; transcripts compared with torch fp32's."""
    if args.device != "cpu":
        raise SystemExit("bench: --only runtimes runs on the CPU (the runtimes' CPU plugins)")
    export_s = export_once(corpus, model, args) if any(importlib.util.find_spec(rt) for rt in RUNTIMES) else None
    methods = {"card": "card", "harness torch fp32": "variant:torch fp32"}
    for name, (backend, *_) in VARIANTS.items():
        if name != "torch fp32" and (backend == "torch" or importlib.util.find_spec(backend) is not None):
            methods[name] = f"variant:{name}"
    # passes interleaved (every method once per pass) so that a slow spell of a shared host falls on all of them;
    # each method's median wall is reported
    passes: dict[str, list[dict]] = {name: [] for name in methods}
    for _ in range(args.passes):
        for name, worker in methods.items():
            passes[name].append(run_worker(worker, corpus, model, args, batch_size=1))
    results = {}
    for name, runs in passes.items():  # process walls, spawn to exit: imports, load, compilation and the run
        walls = sorted(r["process_s"] for r in runs)
        results[name] = {**runs[0], "wall_s": walls[len(walls) // 2], "walls": walls}
    card, torch_fp32 = results["card"], results["harness torch fp32"]
    audio_s, n = torch_fp32["audio_s"], len(torch_fp32["texts"])
    rows = []
    for name, r in results.items():
        rechecked = "" if r.get("rechecked") is None else f"{r['rechecked']} / {n}"
        spread = f" ({r['walls'][0]:.1f}-{r['walls'][-1]:.1f})" if len(r["walls"]) > 1 else ""
        rows.append(
            f"| {name} | {r['wall_s']:.1f} s{spread} | {audio_s / r['wall_s']:.1f} | "
            f"{card['wall_s'] / r['wall_s']:.2f}x | {r['rss_mb']:.0f} MB | "
            f"{identical(torch_fp32['texts'], r['texts']):.0f} % | {rechecked} |"
        )
    lines = [
        f"Audio: {n} {'synthetic (demo corpus)' if args.model == 'demo' else 'real LibriSpeech (tests/data)'} "
        f"test-other utterances ({audio_s:.1f} s); model: {weights}; "
        f"CPU, batch size 1, {os.cpu_count()} cores; recheck_margin {args.recheck_margin:g} in the '+ recheck' rows.",
        "",
        f"| method | process wall (median of {args.passes}{', range' if args.passes > 1 else ''}) | RTFx | "
        "speed-up vs card script | peak RSS | transcripts = torch fp32 | re-run in fp32 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        *([f"| ONNX export (made once, cached; outside the rows) | {export_s:.1f} s |||||"] if export_s else []),
        "",
        "Each method runs in its own process, timed from spawn to exit (imports, model loading, the runtimes' "
        "compilation, the run); the harness rows set the process up as the command line does (glibc keeps freed "
        "memory), the passes interleaved.",
    ]
    write_outputs("bench-runtimes", "\n".join(lines), results, args)


if __name__ == "__main__":
    main()
