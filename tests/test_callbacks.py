"""`WERCallback` (issue #29, item 3): exact WER and CER inside a real `transformers.Trainer`
training the shipped demo model a few steps on shipped audio: in the log history, in what `report_to` sees, as the
best-model metric, under the evaluation's own prefix, with the model's mode as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import w2v2bench
from w2v2bench.callbacks import WERCallback
from w2v2bench.config import asset_path
from w2v2bench.testing import synth

pytest.importorskip("accelerate")  # transformers' Trainer needs it (the test extra has it)

LIMIT = 3  # the eval set: the first utterances of the demo corpus's test-clean


class Seen:
    """A stand-in `report_to` integration: what reaches callbacks' `on_log`, and the model's mode as it is called."""

    def __init__(self):
        from transformers import TrainerCallback

        outer = self

        class Spy(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                outer.logs.append(dict(logs or {}))

            def on_evaluate(self, args, state, control, model=None, **kwargs):
                outer.modes.append(model.training)

        self.logs: list[dict] = []
        self.modes: list[bool] = []
        self.callback = Spy()


def _trainer(tmp_path, callback_of, **args):
    from transformers import Trainer, TrainingArguments, Wav2Vec2ForCTC, Wav2Vec2Processor

    torch.manual_seed(0)
    model = Wav2Vec2ForCTC.from_pretrained(asset_path("demo-model"))
    processor = Wav2Vec2Processor.from_pretrained(asset_path("demo-model"))
    rows = synth.read_subset(Path(asset_path("demo-corpus")) / "test-other")[:4]
    examples = [
        {"input_values": processor(sf.read(path, dtype="float32")[0], sampling_rate=16_000).input_values[0],
         "labels": processor.tokenizer(text).input_ids} for path, text in rows
    ]  # fmt: skip

    def collate(batch):
        longest = max(len(b["input_values"]) for b in batch)
        values = np.zeros((len(batch), longest), dtype=np.float32)
        for i, b in enumerate(batch):
            values[i, : len(b["input_values"])] = b["input_values"]
        labels = torch.full((len(batch), max(len(b["labels"]) for b in batch)), -100)
        for i, b in enumerate(batch):
            labels[i, : len(b["labels"])] = torch.tensor(b["labels"])
        return {"input_values": torch.from_numpy(values), "labels": labels}

    seen = Seen()
    training = TrainingArguments(
        output_dir=str(tmp_path / "trainer"), max_steps=2, per_device_train_batch_size=2, learning_rate=1e-4,
        eval_strategy="steps", eval_steps=1, save_strategy="steps", save_steps=1, report_to=[], use_cpu=True,
        logging_steps=1, disable_tqdm=True, **args,
    )  # fmt: skip
    trainer = Trainer(model=model, args=training, train_dataset=examples, eval_dataset=examples[:2],
                      data_collator=collate, processing_class=processor)  # fmt: skip
    callback = callback_of(trainer)
    trainer.add_callback(callback)
    trainer.add_callback(seen.callback)  # after it: what an integration sees
    return trainer, callback, seen, model, processor


def test_eval_wer_reaches_the_log_history_the_integrations_and_the_best_model(tmp_path):
    trainer, callback, seen, model, processor = _trainer(
        tmp_path,
        lambda t: WERCallback(t, data="demo", split="clean", limit=LIMIT, device="cpu"),
        metric_for_best_model="wer", greater_is_better=False, load_best_model_at_end=True,
    )  # fmt: skip
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "eval_wer" in entry]
    assert [e["step"] for e in logged] == [1, 2] and all({"eval_wer", "eval_cer"} <= set(e) for e in logged)
    assert [e["eval_wer"] for e in logged] == [e["eval_wer"] for e in seen.logs if "eval_wer" in e]  # report_to
    # the best-model metric is ours: the best checkpoint is the step with the lowest eval_wer
    best = min(logged, key=lambda e: (e["eval_wer"], e["step"]))
    assert trainer.state.best_metric == best["eval_wer"]
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{best['step']}")
    # exact: the figure at the end is what evaluate() gives the same model in memory
    final = trainer.evaluate()
    again = w2v2bench.evaluate(model, "demo", processor=processor, split="clean", limit=LIMIT, device="cpu",
                               output_dir=None)  # fmt: skip
    assert final["eval_wer"] == again.wer and final["eval_cer"] == again.cer
    transcripts = [(r["id"], r["pred_text"]) for r in again.rows]
    assert [(r["id"], r["pred_text"]) for r in callback.result.rows] == transcripts and len(transcripts) == LIMIT
    # another prefix is named as such, and the model's mode is what it was for the callbacks after it
    assert set(trainer.evaluate(metric_key_prefix="test")) >= {"test_wer", "test_cer"}
    model.train()
    callback.on_evaluate(trainer.args, trainer.state, trainer.control, model=model, processing_class=processor,
                         metrics={"eval_runtime": 0.1})  # fmt: skip
    assert model.training and seen.modes and not any(seen.modes)  # evaluation mode in the Trainer's evaluations


def test_without_the_trainer_the_figures_go_into_the_evaluations_own_entry(tmp_path):
    trainer, callback, seen, model, processor = _trainer(
        tmp_path, lambda t: WERCallback(data="demo", split="clean", limit=LIMIT, device="cpu")
    )
    metrics = trainer.evaluate()
    entry = trainer.state.log_history[-1]
    assert "eval_runtime" in entry and entry["eval_wer"] == metrics["eval_wer"] == callback.result.wer
    assert not any("eval_wer" in e for e in seen.logs)  # the integrations got the Trainer's log, before ours


def test_with_several_eval_sets_it_adds_to_the_one_named(tmp_path):
    from transformers import TrainerState, Wav2Vec2ForCTC, Wav2Vec2Processor

    callback = WERCallback(data="demo", prefix="eval_dev", split="clean", limit=1, device="cpu")
    model = Wav2Vec2ForCTC.from_pretrained(asset_path("demo-model"))
    processor = Wav2Vec2Processor.from_pretrained(asset_path("demo-model"))
    state = TrainerState(global_step=5)
    other, dev = {"eval_noisy_runtime": 0.1}, {"eval_dev_runtime": 0.1}
    callback.on_evaluate(None, state, None, model=model, processing_class=processor, metrics=other)
    callback.on_evaluate(None, state, None, model=model, processing_class=processor, metrics=dev)
    assert "eval_noisy_wer" not in other and set(dev) == {"eval_dev_runtime", "eval_dev_wer", "eval_dev_cer"}
    # unnamed and without the trainer, the second set at one step shows there are several: from then on no set
    # is given the callback's figures (only the very first evaluation could not know), and a warning says why
    unnamed = WERCallback(data="demo", split="clean", limit=1, device="cpu")
    other, dev = {"eval_noisy_runtime": 0.1}, {"eval_dev_runtime": 0.1}
    unnamed.on_evaluate(None, state, None, model=model, processing_class=processor, metrics=other)
    with pytest.warns(UserWarning, match=r"several sets .* WERCallback\(prefix='eval_dev'\)"):
        unnamed.on_evaluate(None, state, None, model=model, processing_class=processor, metrics=dev)
    later = {"eval_noisy_runtime": 0.1}
    with pytest.warns(UserWarning, match="several sets"):
        unnamed.on_evaluate(None, TrainerState(global_step=6), None, model=model, processing_class=processor,
                            metrics=later)  # fmt: skip
    assert set(dev) == {"eval_dev_runtime"} and set(later) == {"eval_noisy_runtime"}


def test_what_a_review_found_fails_before_training_or_is_handled(tmp_path):
    """A feature extractor alone as processing_class, metric_for_best_model='wer' with the Trainer's default
    greater_is_better, an EarlyStoppingCallback given first, output_dir= over several evaluations, half weights."""
    import torch
    from transformers import EarlyStoppingCallback

    trainer, callback, _, model, processor = _trainer(
        tmp_path, lambda t: WERCallback(t, data="demo", split="clean", limit=LIMIT, device="cpu",
                                        output_dir=str(tmp_path / "wer")),  # fmt: skip
        metric_for_best_model="wer", greater_is_better=False, load_best_model_at_end=True,
    )  # fmt: skip
    stopper = EarlyStoppingCallback(early_stopping_patience=5)
    trainer.callback_handler.callbacks.insert(0, stopper)  # as Trainer(callbacks=[...]) puts it: before ours
    trainer.train()
    handlers = trainer.callback_handler.callbacks
    assert handlers.index(callback) < handlers.index(stopper)  # moved before it: it reads eval_wer
    assert sorted(p.name for p in (tmp_path / "wer").iterdir()) == ["001-step1-eval", "002-step2-eval"]
    model.half()  # as fp16_full_eval leaves it: a float32 copy is measured
    metrics = {"eval_runtime": 0.1, "eval_samples_per_second": 1.0}
    callback.on_evaluate(trainer.args, trainer.state, trainer.control, model=model, metrics=metrics)
    assert metrics["eval_wer"] == callback.result.wer and next(model.parameters()).dtype == torch.float16
    with pytest.raises(TypeError, match="without a tokenizer: pass processor="):
        callback.on_train_begin(
            trainer.args, trainer.state, trainer.control, processing_class=processor.feature_extractor
        )
    trainer.args.greater_is_better = True
    with pytest.raises(ValueError, match="greater_is_better=True keeps the worst checkpoint"):
        callback.on_train_begin(trainer.args, trainer.state, trainer.control, processing_class=processor)
