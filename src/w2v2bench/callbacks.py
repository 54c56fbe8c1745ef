"""`WERCallback`: exact WER and CER inside a `transformers.Trainer`, at each evaluation.

At each evaluation the model being trained is run on the callback's own set through `w2v2bench.evaluate` (the
command line's code path: exact batching on a saved copy, the caller's model left as it was) and the figures are
added under the evaluation's own prefix: `eval_wer` and `eval_cer` for `trainer.evaluate()`, `test_wer` for
`metric_key_prefix="test"`. The Trainer logs its own metrics before it calls `on_evaluate`, so the callback
adds them two ways: into the evaluation's metrics (what `trainer.evaluate()` returns, what `metric_for_best_model`,
`load_best_model_at_end` and `EarlyStoppingCallback` read) and, with the trainer given, as a log of their own
(`trainer.log`: `state.log_history` and every `report_to` integration). Without the trainer the figures are
written into the evaluation's `log_history` entry instead, and the integrations do not see them.

They are computed on the main process; under several processes the others receive them (`torch.distributed`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from .api import Result, evaluate

__all__ = ["WERCallback"]


class WERCallback(TrainerCallback):
    """Exact WER and CER of the model being trained on `data`, at each evaluation of a `transformers.Trainer`.

    `trainer`: the Trainer (its `log` reaches `report_to`; without it only `log_history` and the returned metrics
    get the figures). `data`: what `w2v2bench.evaluate` takes (a conf/data name, a manifest, a Hugging Face
    dataset or folder, a `datasets.Dataset`). `processor`: the model's processor (default: the Trainer's
    `processing_class`). `prefix`: the one evaluation to add them to (`"eval_dev"` when `eval_dataset` is a dict
    of sets; default: every evaluation, under its own prefix). `quiet`: the run's table is not printed (its
    figures are logged; notes and errors still go to stderr). `**keys`: `w2v2bench.evaluate`'s keyword arguments
    (`batch_size`, `device`, `limit`, `normalizer`, `overrides` ...); no files are kept unless `output_dir` is
    given. The last evaluation's `Result` is `self.result`.
    """

    def __init__(
        self,
        trainer: Any = None,
        *,
        data: Any,
        processor: Any = None,
        prefix: str | None = None,
        quiet: bool = True,
        **keys: Any,
    ):
        self.trainer = trainer
        self.quiet = quiet
        self.data = data
        self.processor = processor
        self.prefix = prefix
        self.keys = {"output_dir": None, "progress": False, **keys}
        self.result: Result | None = None
        self._done: tuple[int, str] | None = None  # (step, prefix) of the last evaluation it measured
        self._several = False  # seen: the evaluations are of several sets (eval_dataset a dict)
        self._count = 0  # evaluations measured into output_dir

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        """Checks that would otherwise fail at the first evaluation, or never show: before training starts."""
        best = (getattr(args, "metric_for_best_model", None) or "").removeprefix("eval_")
        if best.endswith(("wer", "cer")) and getattr(args, "greater_is_better", None):
            raise ValueError(
                f"WERCallback: metric_for_best_model={args.metric_for_best_model!r} with greater_is_better=True keeps "
                "the worst checkpoint (the Trainer assumes it only for names ending in 'loss'): set "
                "greater_is_better=False"
            )
        _processor(self.processor if self.processor is not None else processing_class)
        if self.trainer is not None:  # before any EarlyStoppingCallback, which reads the metrics it adds
            callbacks = self.trainer.callback_handler.callbacks
            stoppers = [i for i, c in enumerate(callbacks) if type(c).__name__ == "EarlyStoppingCallback"]
            if stoppers and callbacks.index(self) > stoppers[0]:
                callbacks.remove(self)
                callbacks.insert(stoppers[0], self)

    def on_evaluate(self, args, state, control, model=None, processing_class=None, metrics=None, **kwargs):
        if self.trainer is not None:  # the model now (re-created by model_init, re-wrapped), not the one at init
            model = getattr(self.trainer, "model", None) or model
            if processing_class is None:
                processing_class = getattr(self.trainer, "processing_class", None)
        if metrics is None or model is None:
            return
        prefix = _prefix(metrics)
        if prefix is None or (self.prefix is not None and prefix != self.prefix):
            return
        if self.prefix is None and self._several_sets(state, prefix):
            warnings.warn(
                f"WERCallback: the evaluation has several sets ({prefix} is one); its figures are of its own set, so "
                f"name the one to add them to, e.g. WERCallback(prefix='{prefix}')",
                stacklevel=2,
            )
            return
        self._done = (state.global_step, prefix)
        figures, error = None, None
        if state.is_world_process_zero:
            try:
                figures = self._measure(model, processing_class, state.global_step, prefix)
            except Exception as err:  # every process must hear of it, or the others wait at the broadcast
                error = f"{type(err).__name__}: {err}"
                if not _several_processes():
                    raise
        figures, error = _shared((figures, error))
        if error is not None:
            raise RuntimeError(f"WERCallback on the main process: {error}")
        metrics.update(figures)
        if self.trainer is not None:
            self.trainer.log(dict(figures))  # its own log_history entry, and on_log for report_to
        elif state.log_history and f"{prefix}_runtime" in state.log_history[-1]:
            state.log_history[-1].update(figures)  # the evaluation's own entry (logged just before this call)

    def _measure(self, model, processing_class, step: int, prefix: str) -> dict:
        """evaluate() on a float32 copy of the model's weights (the caller's stays as it is), in this process alone
        (the harness would otherwise join the Trainer's process group); the figures, NaN ones refused."""
        processor = _processor(self.processor if self.processor is not None else processing_class)
        inner = getattr(getattr(model, "module", model), "_orig_mod", getattr(model, "module", model))
        if any(p.dtype != torch.float32 for p in inner.parameters()):  # fp16/bf16 evaluation casts it in place
            inner = copy.deepcopy(inner).float()
        keys = dict(self.keys)
        if keys.get("output_dir") is not None:  # a folder per evaluation: a run folder is never written twice
            self._count += 1  # (two evaluations at one step: trainer.evaluate() after training, another prefix)
            keys["output_dir"] = str(Path(keys["output_dir"]) / f"{self._count:03d}-step{step}-{prefix}")
        with _one_process(), contextlib.redirect_stdout(io.StringIO()) if self.quiet else contextlib.nullcontext():
            self.result = evaluate(inner, self.data, processor=processor, **keys)
        if self.result.status:
            warnings.warn(f"WERCallback: the run's exit status was {self.result.status} (README, Exit statuses)",
                          stacklevel=3)  # fmt: skip
        figures = {f"{prefix}_wer": self.result.wer, f"{prefix}_cer": self.result.cer}
        if any(v is None or math.isnan(v) for v in figures.values()):
            raise ValueError(f"WERCallback: no WER on {self.data!r} (no reference word scored): {figures}")
        return figures

    def _several_sets(self, state, prefix: str) -> bool:
        """Whether this evaluation is one of several sets' (`eval_dataset` a dict: prefixes `eval_<name>`)."""
        if self.trainer is not None:
            return isinstance(getattr(self.trainer, "eval_dataset", None), dict) and prefix.startswith("eval_")
        # without the trainer: a second `eval_<name>` prefix at one step, and every evaluation after it
        done = self._done
        if done is not None and done[0] == state.global_step and done[1] != prefix and prefix.startswith("eval_"):
            self._several = True
        return self._several


def _processor(processor: Any) -> Any:
    """The model's processor, checked: the harness needs its tokenizer as well as its feature extractor."""
    if processor is None or not hasattr(processor, "save_pretrained") or not hasattr(processor, "tokenizer"):
        raise TypeError(
            f"WERCallback: processing_class is a {type(processor).__name__}, without a tokenizer: pass "
            "processor=<the model's Wav2Vec2Processor> (feature extractor and tokenizer)"
        )
    return processor


def _prefix(metrics: dict) -> str | None:
    """The evaluation's metric_key_prefix: the Trainer always adds `<prefix>_runtime` and
    `<prefix>_samples_per_second` to its metrics."""
    found = [k.removesuffix("_runtime") for k in metrics if k.endswith("_runtime")]
    found = [p for p in found if f"{p}_samples_per_second" in metrics] or found
    return found[0] if len(found) == 1 else None


def _several_processes() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@contextlib.contextmanager
def _one_process():
    """The environment of one process while the harness runs: under torchrun it would join the Trainer's group."""
    names = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _shared(value: tuple) -> tuple:
    """The main process's (figures, error) on every process (one process: as they are)."""
    if _several_processes():
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        value = box[0]
    figures, error = value
    return {k: float(v) for k, v in (figures or {}).items()}, error
