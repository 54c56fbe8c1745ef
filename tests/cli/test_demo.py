"""The shipped offline demo: model + corpus reproduce their recorded reference figures through the harness."""

import pytest

from tests.helpers.harness import bench, read_run


@pytest.mark.parametrize("split", ["clean", "other"])
def test_shipped_model_passes_its_reference_check(split, tmp_path):
    done = bench("model=demo", "data=demo", f"split={split}", f"output_dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reference check PASS" in done.stdout
    rows, summary = read_run(tmp_path / "run")
    assert summary["reference"]["passed"] and summary["n_failed"] == 0 and len(rows) == 100
    assert summary["model"]["feat_extract_norm"] == "group" and summary["model"]["do_normalize"]


def test_batched_equals_batch_size_one_on_the_trained_model(tmp_path):
    # a trained group-norm model: the case where naive padding changes transcripts most
    args = ["model=demo", "data=demo", "split=other", "reference=none"]
    one = bench(*args, "batch_size=1", f"output_dir={tmp_path / 'b1'}")
    many = bench(*args, "batch_size=32", f"output_dir={tmp_path / 'b32'}")
    naive = bench(*args, "batch_size=32", "batching=naive", f"output_dir={tmp_path / 'naive'}")
    assert one.returncode == many.returncode == naive.returncode == 0, one.stderr + many.stderr + naive.stderr
    rows1, s1 = read_run(tmp_path / "b1")
    rows32, s32 = read_run(tmp_path / "b32")
    rows_naive, s_naive = read_run(tmp_path / "naive")
    assert [r["pred_text"] for r in rows32] == [r["pred_text"] for r in rows1]
    assert s32["wer"] == s1["wer"] and s32["n_batches"] < s1["n_batches"]
    assert sum(a["pred_text"] != b["pred_text"] for a, b in zip(rows1, rows_naive, strict=True)) > 0
