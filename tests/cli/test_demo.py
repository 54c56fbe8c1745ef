"""The shipped offline demo: model + corpus reproduce their recorded reference figures through the harness
(in this process: the command line's own exit statuses are tested in tests/cli/test_bench.py)."""

import pytest

from tests.helpers.harness import evaluate, read_run


@pytest.mark.parametrize("split", ["clean", "other"])
def test_shipped_model_passes_its_reference_check(split, tmp_path, capsys):
    assert evaluate("model=demo", "data=demo", f"split={split}", f"output_dir={tmp_path / 'run'}") == 0
    assert "reference check PASS" in capsys.readouterr().out
    rows, summary = read_run(tmp_path / "run")
    assert summary["reference"]["passed"] and summary["n_failed"] == 0 and len(rows) == 100
    assert summary["model"]["feat_extract_norm"] == "group" and summary["model"]["do_normalize"]


def test_batched_equals_batch_size_one_on_the_trained_model(tmp_path):
    # a trained group-norm model: the case where naive padding changes transcripts most
    args = ["model=demo", "data=demo", "split=other", "reference=none"]
    assert evaluate(*args, "batch_size=1", f"output_dir={tmp_path / 'b1'}") == 0
    assert evaluate(*args, "batch_size=32", f"output_dir={tmp_path / 'b32'}") == 0
    assert evaluate(*args, "batch_size=32", "batching=naive", f"output_dir={tmp_path / 'naive'}") == 0
    rows1, s1 = read_run(tmp_path / "b1")
    rows32, s32 = read_run(tmp_path / "b32")
    rows_naive, s_naive = read_run(tmp_path / "naive")
    assert [r["pred_text"] for r in rows32] == [r["pred_text"] for r in rows1]
    assert s32["wer"] == s1["wer"] and s32["n_batches"] < s1["n_batches"]
    assert sum(a["pred_text"] != b["pred_text"] for a, b in zip(rows1, rows_naive, strict=True)) > 0
