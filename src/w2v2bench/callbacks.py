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
import io
import math
import warnings
from typing import Any

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

    def on_evaluate(self, args, state, control, model=None, processing_class=None, metrics=None, **kwargs):
        if metrics is None or model is None:
            return
        prefix = _prefix(metrics)
        if prefix is None or (self.prefix is not None and prefix != self.prefix):
            return
        if self.prefix is None and self._several_sets(state, prefix):
            warnings.warn(
                f"WERCallback: the evaluation has several sets ({prefix} is one); its figures are of its own set, so "
                f"name the one to add them to, e.g. WERCallback(prefix='{self._done[1] if self._done else prefix}')",
                stacklevel=2,
            )
            return
        self._done = (state.global_step, prefix)
        figures = None
        if state.is_world_process_zero:
            was_training = model.training
            try:
                with contextlib.redirect_stdout(io.StringIO()) if self.quiet else contextlib.nullcontext():
                    self.result = evaluate(model, self.data, processor=self.processor or processing_class, **self.keys)
            finally:
                model.train(was_training)
            figures = {f"{prefix}_wer": self.result.wer, f"{prefix}_cer": self.result.cer}
        figures = _shared(figures)
        metrics.update(figures)
        if self.trainer is not None:
            self.trainer.log(dict(figures))  # its own log_history entry, and on_log for report_to
        elif state.log_history and f"{prefix}_runtime" in state.log_history[-1]:
            state.log_history[-1].update(figures)  # the evaluation's own entry (logged just before this call)

    def _several_sets(self, state, prefix: str) -> bool:
        """Whether this evaluation is one of several sets' (`eval_dataset` a dict: prefixes `eval_<name>`)."""
        if self.trainer is not None:
            return isinstance(getattr(self.trainer, "eval_dataset", None), dict) and prefix.startswith("eval_")
        # without the trainer: a second `eval_<name>` prefix at one step
        done = self._done
        return done is not None and done[0] == state.global_step and done[1] != prefix and prefix.startswith("eval_")


def _prefix(metrics: dict) -> str | None:
    """The evaluation's metric_key_prefix: the Trainer always adds `<prefix>_runtime` to its metrics."""
    found = [k.removesuffix("_runtime") for k in metrics if k.endswith("_runtime")]
    return found[0] if len(found) == 1 else None


def _shared(figures: dict | None) -> dict:
    """The main process's figures on every process (one process: as they are)."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency
        return figures or {}
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [figures]
        dist.broadcast_object_list(box, src=0)
        figures = box[0]
    return {k: float(v) for k, v in (figures or {}).items() if not math.isnan(float(v))}
